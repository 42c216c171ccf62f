"""Issue #24: head sampling decided before the instrumentation, in process.

At a ratio of 0.1 about one request in ten is traced, each with its route and its
command's spans; an incoming ``traceparent`` decides for itself (sampled=1 always,
sampled=0 never); an unsampled request leaves no exemplar and no ``trace_id`` in its log
lines; an unsampled request never reaches the instrumentation (the sampler is asked once,
not twice).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse

from app.logs import JsonFormatter
from otel.request_spans import PredrawnIds
from otel.tracing import Tracing, TracingSettings, log_fields
from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import Server, in_process, make_config
from tests.support.otlp_traces import SERVER, Span, TraceReceiver, named, traces

pytestmark = pytest.mark.fast

__all__ = ["traces"]  # the fixture

SUBMIT = "POST /api/v1/commands"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
COMMAND_SPANS = [
    "command.execute",
    "command.queued",
    "store.add_response",
    "store.finish",
    "store.mark_in_progress",
]


class Lines(logging.Handler):
    """Every JSON log line of the service (its own formatter), as an operator reads them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._guard:
            self.lines.append(line)


@pytest.fixture
def log_lines() -> Iterator[Lines]:
    handler = Lines()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _ratio_config(
    tmp_path: Path, traces: TraceReceiver, ratio: float, env: pytest.MonkeyPatch
) -> Any:
    # The sampler is the SDK's, as it reads it from the environment.
    env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    env.setenv("OTEL_TRACES_SAMPLER_ARG", str(ratio))
    return make_config(
        tmp_path,
        otlp_traces_endpoint=traces.traces_url,
        command_rate_per_min=0,
        vehicle_queue_size=2000,
        vehicle_queue_per_user=2000,
    )


def _children(spans: list[Span], parent: Span) -> list[str]:
    """The names of the command spans in ``parent``'s trace (store writes under the
    execution included), sorted, one of each."""
    in_trace = [s for s in spans if s.trace_id == parent.trace_id and s is not parent]
    return sorted({s.name for s in in_trace})


@pytest.mark.socket
def test_a_tenth_of_the_requests_are_traced_each_with_its_route_and_children(
    tmp_path: Path, traces: TraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process(_ratio_config(tmp_path, traces, 0.1, monkeypatch)) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        ids = [submit_read_dtc(srv.http, token, vehicle_id) for _ in range(1000)]
        srv.wait_status(token, ids[-1])  # one lane, in order: every command has ended
    spans = traces.spans()  # flushed at shutdown
    submits = named(spans, SUBMIT)
    assert 60 <= len(submits) <= 140, len(submits)
    by_id = {s.span_id: s for s in spans}
    for submit in submits:
        assert submit.kind == SERVER
        assert submit.attributes["http.route"] == "/api/v1/commands"
        assert submit.parent_span_id == ""  # a root: no traceparent came in
        assert _children(spans, submit) == COMMAND_SPANS
    # Every command span belongs to a traced submit: the unsampled ones made none.
    for span in spans:
        if span.name in ("command.queued", "command.execute", "store.finish"):
            assert by_id[span.parent_span_id].name == SUBMIT
    assert len(named(spans, "command.execute")) == len(submits)
    traced = {s.attributes["sovd.command.id"] for s in named(spans, "command.execute")}
    assert traced <= set(ids)


@pytest.mark.socket
def test_an_incoming_traceparent_decides_sampled_always_unsampled_never(
    tmp_path: Path, traces: TraceReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    sampled = [(secrets.token_hex(16), secrets.token_hex(8)) for _ in range(20)]
    unsampled = [(secrets.token_hex(16), secrets.token_hex(8)) for _ in range(20)]
    # A ratio that on its own would trace nothing, and one that would trace everything.
    for n, ratio in enumerate((0.0, 1.0)):
        with in_process(_ratio_config(tmp_path / str(n), traces, ratio, monkeypatch)) as srv:
            token = srv.token()
            vehicle_id = srv.vehicle(token)["vehicle_id"]
            last = ""
            for trace_id, parent_id in sampled:
                last = submit_read_dtc(
                    srv.http, token, vehicle_id, traceparent=f"00-{trace_id}-{parent_id}-01"
                )
            for trace_id, parent_id in unsampled:
                last = submit_read_dtc(
                    srv.http, token, vehicle_id, traceparent=f"00-{trace_id}-{parent_id}-00"
                )
            srv.wait_status(token, last)
        spans = traces.spans()
        submits = {(s.trace_id, s.parent_span_id): s for s in named(spans, SUBMIT)}
        assert set(sampled) <= set(submits), f"ratio {ratio}"
        assert not set(unsampled) & {(s.trace_id, s.parent_span_id) for s in spans}
        assert not {t for t, _ in unsampled} & {s.trace_id for s in spans}
        for key in sampled:
            assert _children(spans, submits[key]) == COMMAND_SPANS
        traces.requests.clear()


def _exemplar_trace_ids(srv: Server) -> list[str]:
    r = srv.http.get("/metrics", headers={"Accept": OPENMETRICS})
    assert r.status_code == 200
    return [
        str(sample.exemplar.labels["trace_id"])
        for family in om_parse(r.text)
        for sample in family.samples
        if sample.exemplar is not None
    ]


@pytest.mark.socket
def test_an_unsampled_request_leaves_no_exemplar_and_no_trace_id_in_its_log_lines(
    tmp_path: Path, traces: TraceReceiver, log_lines: Lines, monkeypatch: pytest.MonkeyPatch
) -> None:
    with in_process(_ratio_config(tmp_path, traces, 0.0, monkeypatch)) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        unsampled = f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"
        command_id = submit_read_dtc(srv.http, token, vehicle_id, traceparent=unsampled)
        srv.wait_status(token, command_id)
        plain = submit_read_dtc(srv.http, token, vehicle_id)  # no traceparent, ratio 0
        srv.wait_status(token, plain)
        # The command duration was recorded, with no exemplar.
        assert _exemplar_trace_ids(srv) == []
        unsampled_lines = list(log_lines.lines)
        # The same with a sampled parent: the exemplar and the trace id are there.
        trace_id = secrets.token_hex(16)
        sampled = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        traced = submit_read_dtc(srv.http, token, vehicle_id, traceparent=sampled)
        srv.wait_status(token, traced)
        assert _exemplar_trace_ids(srv) == [trace_id]
    # One line per command at INFO: its end (the submit's access line is at DEBUG).
    ends = [line for line in unsampled_lines if line.get("event") == "command_end"]
    assert sorted(line["command_id"] for line in ends) == sorted([command_id, plain])
    assert not [line for line in unsampled_lines if "trace_id" in line or "span_id" in line]
    (sampled_line,) = [
        line
        for line in log_lines.lines[len(unsampled_lines) :]
        if line.get("event") == "command_end" and line.get("command_id") == traced
    ]
    assert sampled_line["trace_id"] == trace_id
    # The sampled command's own lines (its end) carry its trace too.
    assert [
        line for line in log_lines.lines if line.get("command_id") == traced and "trace_id" in line
    ]
    assert {s.trace_id for s in traces.spans()} == {trace_id}


# -- the decision itself, on the middleware alone ----------------------------------------


class CountingSampler(Sampler):
    """The SDK's parent-based ratio sampler, counting how often it is asked."""

    def __init__(self, ratio: float) -> None:
        self.inner = ParentBased(TraceIdRatioBased(ratio))
        self.calls = 0

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.calls += 1
        return self.inner.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "counting"


def _middleware(
    ratio: float,
) -> tuple[Any, CountingSampler, InMemorySpanExporter, list[dict[str, str]]]:
    sampler = CountingSampler(ratio)
    provider = TracerProvider(
        sampler=sampler, resource=Resource.create({}), id_generator=PredrawnIds()
    )
    kept = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(kept))
    fields: list[dict[str, str]] = []

    async def app(scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        fields.append(log_fields())
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    def route_of(scope: Mapping[str, Any]) -> str | None:
        return "/x"

    middleware = Tracing(provider, TracingSettings()).middleware(app, route_of)
    return middleware, sampler, kept, fields


def _get(middleware: Any, **headers: str) -> None:
    transport = httpx.ASGITransport(app=middleware)

    async def call() -> None:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/x", headers=headers)).status_code == 200

    asyncio.run(call())


@pytest.mark.parametrize(("flag", "recorded"), [("00", False), ("01", True)])
def test_the_sampler_is_asked_once_and_an_unsampled_request_skips_the_instrumentation(
    flag: str, recorded: bool
) -> None:
    middleware, sampler, kept, fields = _middleware(0.5)
    trace_id = secrets.token_hex(16)
    _get(middleware, traceparent=f"00-{trace_id}-{secrets.token_hex(8)}-{flag}")
    # Sampled: asked by the middleware, then by the SDK as the instrumentation starts its
    # span; unsampled: by the middleware only (no instrumentation, no SDK span).
    assert sampler.calls == (2 if recorded else 1)
    assert [s.name for s in kept.get_finished_spans()] == (["GET /x"] if recorded else [])
    (line,) = fields
    assert (line.get("trace_id") == trace_id) if recorded else (line == {})


def test_a_root_span_gets_the_trace_id_its_sampling_was_decided_on() -> None:
    """The SDK's sampling of the instrumentation's span agrees with the middleware's: at
    0.5 about half the requests are traced, every decision asked twice agreed (a
    disagreement would leave a sampled decision with no span)."""
    middleware, sampler, kept, _ = _middleware(0.5)
    for _ in range(200):
        _get(middleware)
    traced = len(kept.get_finished_spans())
    assert 50 <= traced <= 150
    assert sampler.calls == 200 + traced
    ratio = TraceIdRatioBased(0.5)
    for span in kept.get_finished_spans():
        assert span.context.trace_id & ((1 << 64) - 1) < ratio.bound
