"""Issue #9 items 3 and 7: the telemetry seam stays a seam.

- ``otel`` imports nothing from ``app``; nothing of the service but ``app/main.py`` (the
  assembly) imports ``otel``; there is one ``Telemetry`` (the app's protocol).
- The metrics' label values come from the vocabulary (handed over at construction and
  pre-registered at 0); an unknown value is refused, never counted as ``other``/``failed``.
- The active-requests count belongs to ``otel.Metrics`` and changes only through its
  methods, consistent with a collection running in another thread.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import generate_latest

import otel
from app.main import METRIC_LABELS
from app.telemetry import REFUSED, NoTelemetry, Telemetry
from app.vocabulary import (
    TERMINAL_STATUSES,
    AuthFailureReason,
    CommandName,
    CommandStatus,
    FailureCode,
)
from otel import HttpServerMetrics, Instrumentation, TelemetrySettings, build_instrumentation
from tests.support.scrape import Samples, parse, total, value

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.socket
def test_otel_imports_nothing_from_the_app() -> None:
    for path in sorted((ROOT / "otel").glob("*.py")):
        assert "app" not in _imports(path), path
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, otel; print(sorted(m for m in sys.modules"
            " if m == 'app' or m.startswith('app.')))",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert loaded.stdout.strip() == "[]"


def test_only_the_assembly_imports_otel() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in sorted((ROOT / "app").rglob("*.py"))
        if path != ROOT / "app" / "main.py" and "otel" in _imports(path)
    ]
    assert offenders == []


def test_there_is_one_telemetry() -> None:
    assert not hasattr(otel, "Telemetry")
    for name in vars(Telemetry):
        if not name.startswith("_"):
            assert callable(getattr(otel.Metrics, name)), name
            assert callable(getattr(NoTelemetry, name)), name


@pytest.fixture
def instruments() -> Iterator[Instrumentation]:
    built = build_instrumentation(TelemetrySettings(), METRIC_LABELS)
    yield built
    built.shutdown()


def _scrape(instruments: Instrumentation) -> Samples:
    return parse(generate_latest(instruments.registry).decode())


def _label(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(labels)[label] for (n, labels) in samples if n == name}


def test_label_values_are_the_vocabulary_pre_registered_at_zero(
    instruments: Instrumentation,
) -> None:
    samples = _scrape(instruments)
    statuses = _label(samples, "commands_executed_total", "status")
    commands = _label(samples, "commands_executed_total", "command")
    reasons = _label(samples, "sovd_authentication_failures_total", "reason")
    assert statuses == {str(s) for s in TERMINAL_STATUSES} | {REFUSED}
    assert commands == {str(c) for c in CommandName}
    assert reasons == {str(r) for r in AuthFailureReason}
    for command in CommandName:
        for status in [*TERMINAL_STATUSES, REFUSED]:
            assert value(samples, "commands_executed_total", command=command, status=status) == 0


def test_an_unknown_label_value_is_refused_never_counted_as_other(
    instruments: Instrumentation,
) -> None:
    metrics = instruments.metrics
    with pytest.raises(KeyError):
        metrics.auth_failure("bad_credential")  # a typo
    with pytest.raises(KeyError):
        metrics.command_finished(CommandName.READ_DTC, CommandStatus.IN_PROGRESS, None, 1.0)
    with pytest.raises(KeyError):
        metrics.command_finished("ReadDtc", CommandStatus.COMPLETED, None, 1.0)  # a typo
    metrics.command_finished(CommandName.READ_DTC, CommandStatus.TIMEOUT, None, 0.5)
    # An ECU's refusal is counted apart from a fault of the service.
    metrics.command_finished(
        CommandName.CLEAR_DTC, CommandStatus.FAILED, FailureCode.ERROR_RESPONSE, 0.1
    )
    metrics.command_finished(
        CommandName.CLEAR_DTC, CommandStatus.FAILED, FailureCode.VEHICLE_UNREACHABLE, 0.1
    )
    metrics.auth_failure(AuthFailureReason.THROTTLED)
    samples = _scrape(instruments)
    assert value(samples, "commands_executed_total", command="ReadDTC", status="timeout") == 1
    assert total(samples, "commands_executed_total", status="timeout") == 1
    assert value(samples, "commands_executed_total", command="ClearDTC", status="refused") == 1
    assert value(samples, "commands_executed_total", command="ClearDTC", status="failed") == 1
    assert value(samples, "commands_executed_total", command="ReadDTC", status="failed") == 0
    assert (
        value(
            samples,
            "command_execution_duration_seconds_count",
            command="ClearDTC",
            status="refused",
        )
        == 1
    )
    assert value(samples, "sovd_command_timeout_total") == 1
    assert value(samples, "sovd_authentication_failures_total", reason="throttled") == 1
    assert _label(samples, "sovd_authentication_failures_total", "reason") == set(AuthFailureReason)


def test_active_requests_change_only_through_metrics_with_collection_in_another_thread(
    instruments: Instrumentation,
) -> None:
    metrics = instruments.metrics
    assert not hasattr(metrics, "http_active")  # no dict for another module to mutate
    recorder = HttpServerMetrics(metrics, lambda scope: "/api/v1/things")
    stop = threading.Event()
    errors: list[BaseException] = []

    def collect() -> None:
        while not stop.is_set():
            try:
                generate_latest(instruments.registry)
            except BaseException as exc:  # reported below
                errors.append(exc)
                return

    collector = threading.Thread(target=collect)
    collector.start()
    try:
        methods = ("GET", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "HEAD")
        for i in range(3000):
            scope = {"path": "/api/v1/things", "method": methods[i % 7], "scheme": "http"}
            if i % 5 == 0:
                scope["scheme"] = f"s{i % 50}"  # new keys while collection runs
            started = recorder.start(scope)
            recorder.finish(started, scope, 200)
    finally:
        stop.set()
        collector.join()
    assert errors == []
    samples = _scrape(instruments)
    active = [v for (name, _), v in samples.items() if name == "http_server_active_requests"]
    assert len(active) > 10 and all(v == 0 for v in active)
    assert total(samples, "http_server_request_duration_seconds_count") == 3000
