"""Issue #13: traces, in process (the stream's span is in test_traces_stream.py).

A failing command's span carries the error; tracing is off by default and then installs
nothing and exports nothing; commands recovered at start-up invent no spans; sampling
and the variables that turn tracing on are read once, as the OTel SDK names them.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Config, ConfigError
from app.main import create_app
from app.telemetry import NoTracing
from otel.provider import TelemetrySettings, make_resource
from otel.tracing import TracingMiddleware
from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import auth, in_process, make_config
from tests.support.otlp_traces import ERROR, TraceReceiver, named, of_command, traces

pytestmark = pytest.mark.fast

__all__ = ["traces"]  # the fixture

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.socket
def test_a_failing_command_has_error_status_and_its_error_code(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token, "unreachable")["vehicle_id"]
        command_id = srv.submit(token, vehicle_id)["command_id"]
        assert srv.wait_status(token, command_id)["error_code"] == "vehicle-unreachable"
    (execute,) = named(of_command(traces.spans(), command_id), "command.execute")
    assert execute.status_code == ERROR
    assert execute.status_message  # why, in words
    assert execute.attributes["sovd.command.status"] == "failed"
    assert execute.attributes["sovd.error.code"] == "vehicle-unreachable"


@pytest.mark.socket
def test_a_command_cancelled_in_the_queue_ends_its_queue_span(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    # A vehicle that never answers in time: the second command waits in the queue.
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url, command_timeout_s=5)
    with in_process(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token, "timeout")["vehicle_id"]
        srv.submit(token, vehicle_id)
        waiting = srv.submit(token, vehicle_id)["command_id"]
        r = srv.http.post(f"/api/v1/commands/{waiting}/cancel", headers=auth(token))
        assert r.status_code == 200, r.text
    spans = of_command(traces.spans(), waiting)
    assert [s.name for s in spans] == ["command.queued"]
    assert spans[0].attributes["sovd.command.status"] == "cancelled"
    assert spans[0].attributes["sovd.error.code"] == "cancelled"
    assert spans[0].status_code != ERROR  # cancelling is no failure


@pytest.mark.socket
def test_tracing_is_off_by_default_installs_nothing_and_exports_nothing(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path)
    assert not config.tracing_enabled
    app = create_app(config)
    assert not [m for m in app.user_middleware if m.cls is TracingMiddleware]
    assert isinstance(app.state.tracing, NoTracing)
    with in_process(config) as srv:
        token = srv.token()
        srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
        assert isinstance(srv.services.pipeline._tracing, NoTracing)
        # The exposition has no exemplars either.
        r = srv.http.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert "trace_id" not in r.text
    assert traces.requests == []


@pytest.mark.socket
def test_commands_recovered_at_start_up_invent_no_spans(
    tmp_path: Path, traces: TraceReceiver
) -> None:
    config = make_config(tmp_path)
    with in_process(config) as srv:
        token = srv.token()
        command_id = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, command_id)
    with sqlite3.connect(config.db_path) as conn:  # as a crash leaves it: mid-run
        conn.execute(
            "UPDATE commands SET status = 'in_progress', error_code = NULL,"
            " error_message = NULL, completed_at = NULL WHERE command_id = ?",
            (command_id,),
        )
    traced = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(traced) as srv:
        token = srv.token()
        assert srv.command(token, command_id)["error_code"] == "interrupted"
        # A command run now is traced as usual.
        fresh = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, fresh)
    spans = traces.spans()
    assert of_command(spans, fresh)
    assert of_command(spans, command_id) == []
    # The recovery's write made no span either: one terminal write traced, the fresh one's.
    assert len(named(spans, "store.finish")) == 1


@pytest.mark.socket
def test_an_unsampled_parent_is_honoured(tmp_path: Path, traces: TraceReceiver) -> None:
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(config) as srv:
        token = srv.token()
        unsampled = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
        command_id = submit_read_dtc(
            srv.http, token, srv.vehicle(token)["vehicle_id"], traceparent=unsampled
        )
        srv.wait_status(token, command_id)
    spans = traces.spans()
    assert named(spans, "POST /api/v1/auth/login")  # others are sampled
    assert of_command(spans, command_id) == []
    assert named(spans, "POST /api/v1/commands") == []


@pytest.mark.socket
def test_the_sampler_variable_turns_sampling_off(
    tmp_path: Path, traces: TraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")  # read by the SDK
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with in_process(config) as srv:
        token = srv.token()
        srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
    assert traces.spans() == []


@pytest.mark.parametrize(
    ("env", "enabled"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
    ],
)
def test_tracing_turns_on_with_the_standard_variables(env: dict[str, str], enabled: bool) -> None:
    assert Config.from_env(env).tracing_enabled is enabled


@pytest.mark.parametrize(
    ("env", "named_variable"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "OTEL_TRACES_EXPORTER"),
        ({"OTEL_TRACES_SAMPLER": "sometimes"}, "OTEL_TRACES_SAMPLER"),
        ({"OTEL_TRACES_SAMPLER_ARG": "1.5"}, "OTEL_TRACES_SAMPLER_ARG"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "collector:4318"}, "OTEL_EXPORTER_OTLP_TRACES"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
    ],
)
def test_a_bad_tracing_variable_is_named(env: dict[str, str], named_variable: str) -> None:
    with pytest.raises(ConfigError, match=named_variable):
        Config.from_env(env)


def test_grpc_without_its_exporter_says_what_to_install() -> None:
    # The grpc exporter is an optional extra, not installed with the service.
    with pytest.raises(ConfigError, match=r"OTEL_EXPORTER_OTLP_PROTOCOL.*\[grpc\]"):
        Config.from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


@pytest.mark.parametrize(
    ("env", "sampler"),
    [
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"},
            "ParentBased{root:TraceIdRatioBased{0.25}",
        ),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.5"}, "TraceIdRatio"),
        ({}, "ParentBased{root:AlwaysOnSampler"),
    ],
)
def test_the_sampler_and_its_ratio_are_the_sdks_reading_of_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: dict[str, str], sampler: str
) -> None:
    """Read by the SDK, checked once by the configuration (OTEL_* never read twice)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = Config.from_env(
        {**env, "SOVD_DB_PATH": str(tmp_path / "sovd.db"), "OTEL_TRACES_EXPORTER": "otlp"}
    )
    tracing = create_app(config).state.tracing
    try:
        assert tracing.provider.sampler.get_description().startswith(sampler)
    finally:
        tracing.shutdown()


def test_the_resource_is_the_sdks_reading_of_the_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    unnamed = make_resource(TelemetrySettings(service_version="1.2")).attributes
    assert (unnamed["service.name"], unnamed["service.version"]) == ("sovd-command-service", "1.2")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,site=lab%201")
    named = make_resource(TelemetrySettings()).attributes
    assert (named["service.name"], named["site"]) == ("from-attrs", "lab 1")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sovd-lab")
    assert make_resource(TelemetrySettings()).attributes["service.name"] == "sovd-lab"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("OTEL_RESOURCE_ATTRIBUTES", "site"),
        ("OTEL_SEMCONV_STABILITY_OPT_IN", "htp"),
    ],
)
def test_a_bad_variable_the_sdk_reads_is_named_at_start(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        Config.from_env({name: value})
    Config.from_env({"OTEL_SEMCONV_STABILITY_OPT_IN": "http,database"})  # a list is fine


SPAN_ATTRIBUTES = """
import asyncio, json
import httpx
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel.tracing import TracingSettings, build_tracing

async def app(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})

kept = InMemorySpanExporter()
tracing = build_tracing(TracingSettings(), Resource.create({}), exporter=kept)
client = httpx.AsyncClient(
    transport=httpx.ASGITransport(app=tracing.middleware(app, lambda scope: "/x")),
    base_url="http://t",
)
asyncio.run(client.get("/x"))
tracing.shutdown()
(span,) = kept.get_finished_spans()
print(json.dumps(sorted(span.attributes)))
"""


@pytest.mark.parametrize(
    ("opt_in", "present", "absent"),
    [
        ("http", {"http.request.method", "url.path", "http.response.status_code"}, {"http.method"}),
        ("", {"http.method", "http.target", "http.status_code"}, {"http.request.method"}),
    ],
)
@pytest.mark.socket
def test_the_http_conventions_follow_the_public_switch(
    opt_in: str, present: set[str], absent: set[str]
) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN, read by the instrumentation once per process (so in
    a process of its own); the Dockerfile sets http."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["OTEL_SEMCONV_STABILITY_OPT_IN"] = opt_in
    out = subprocess.run(
        [sys.executable, "-c", SPAN_ATTRIBUTES],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    attributes = set(json.loads(out.splitlines()[-1]))
    assert present <= attributes, attributes
    assert not absent & attributes
    assert "http.route" in attributes
