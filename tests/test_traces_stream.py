"""Issue #13: one ReadDTC over real HTTP and a real WebSocket is one trace, exported over
OTLP/HTTP to a receiver in the test; its trace id is an exemplar on /metrics and in the
submit request's log line.

Socket tier (SOCKET_TIER): the response stream needs real WebSocket frames.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from prometheus_client.parser import text_string_to_metric_families as text_parse

from app.logs import JsonFormatter
from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import Server, make_config, running
from tests.support.otlp_traces import SERVER, Span, TraceReceiver, named, of_command, traces

pytestmark = pytest.mark.socket

__all__ = ["traces"]  # the fixture

OPENMETRICS = "application/openmetrics-text; version=1.0.0"


class Lines(logging.Handler):
    """The service's JSON log lines (its own formatter), as the operator reads them."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, Any]] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        line = json.loads(self.format(record))
        with self._lock2:
            self.lines.append(line)


@pytest.fixture
def access_log() -> Iterator[Lines]:
    handler = Lines()
    logger = logging.getLogger("app.access")
    level = logger.level
    logger.addHandler(handler)
    # DEBUG: the submit's line is there (issue #22 item 7: at INFO its command's end
    # line names it instead).
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _one(spans: list[Span], name: str) -> Span:
    found = named(spans, name)
    assert len(found) == 1, (name, [s.name for s in spans])
    return found[0]


def test_a_read_dtc_is_one_trace_from_the_submit_to_the_stream(
    tmp_path: Path, traces: TraceReceiver, access_log: Lines
) -> None:
    trace_id, parent_id = secrets.token_hex(16), secrets.token_hex(8)
    traceparent = f"00-{trace_id}-{parent_id}-01"
    config = make_config(tmp_path, otlp_traces_endpoint=traces.traces_url)
    with running(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        command_id = submit_read_dtc(srv.http, token, vehicle_id, traceparent=traceparent)
        events, code = srv.stream(command_id, token)
        assert code == 1000
        assert [e.get("status", e["event"]) for e in events] == [
            "in_progress",
            "response",
            "response",
            "response",
            "completed",
        ]
        srv.command(token, command_id)
        exposition = _exemplar_and_plain_text(srv, trace_id)
    spans = traces.spans()  # the batch processor flushed at shutdown

    # The HTTP span of the submit: named by its route template, the client's span its parent.
    submit = _one(spans, "POST /api/v1/commands")
    assert submit.kind == SERVER
    assert submit.attributes["http.route"] == "/api/v1/commands"
    assert (submit.trace_id, submit.parent_span_id) == (trace_id, parent_id)
    # The command's spans: children of the submit, in its trace.
    queued, execute = _one(spans, "command.queued"), _one(spans, "command.execute")
    for span in (queued, execute):
        assert (span.trace_id, span.parent_span_id) == (trace_id, submit.span_id)
        assert span.attributes["sovd.command.id"] == command_id
        assert span.attributes["sovd.command.name"] == "ReadDTC"
        assert span.attributes["sovd.vehicle.id"] == vehicle_id
        assert span.attributes["sovd.ecu.address"] == "0x0010"
    chunks = [e for e in execute.events if e.name == "chunk"]
    assert [e.attributes["sovd.chunk.sequence"] for e in chunks] == [1, 2, 3]
    assert all(e.attributes["sovd.chunk.size"] > 0 for e in chunks)
    assert execute.attributes["sovd.command.status"] == "completed"
    assert "sovd.error.code" not in execute.attributes
    # The writes that matter: start and each chunk inside the execution, the end after it.
    writes = [s for s in spans if s.name.startswith("store.")]
    assert sorted(s.name for s in writes if s.parent_span_id == execute.span_id) == [
        "store.add_response",
        "store.add_response",
        "store.add_response",
        "store.mark_in_progress",
    ]
    (finish,) = named(spans, "store.finish")
    assert (finish.trace_id, finish.parent_span_id) == (trace_id, submit.span_id)
    # The stream: its own span, in its own trace, linked to the command's.
    stream = _one(spans, "WS /ws/responses/{command_id}")
    assert stream.attributes["http.route"] == "/ws/responses/{command_id}"
    assert stream.attributes["sovd.command.id"] == command_id
    assert [(lk.trace_id, lk.span_id) for lk in stream.links] == [(trace_id, submit.span_id)]
    assert stream.trace_id != trace_id
    # The access token in the stream's query string is in no span.
    assert token not in repr([s.attributes for s in spans])
    # Every span of the command is in its one trace; /health and /metrics made none.
    assert {s.trace_id for s in of_command(spans, command_id) if s is not stream} == {trace_id}
    assert not [s for s in spans if "/health" in s.name or "/metrics" in s.name]
    # Other routes are named by template too, never by raw path.
    assert named(spans, "GET /api/v1/commands/{command_id}")
    assert not [s for s in spans if command_id in s.name]
    assert traces.resources()[0]["service.name"] == "sovd-command-service"
    # The log line of the submit request carries the same trace.
    (line,) = [
        x for x in access_log.lines if x.get("method") == "POST" and x["path"] == "/api/v1/commands"
    ]
    assert (line["trace_id"], line["span_id"]) == (trace_id, submit.span_id)
    assert line["level"] == "debug"
    assert exposition == trace_id


def _exemplar_and_plain_text(srv: Server, trace_id: str) -> str:
    """The duration bucket's exemplar in OpenMetrics; the plain text parses, none there."""
    r = srv.http.get("/metrics", headers={"Accept": OPENMETRICS})
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    exemplars = [
        sample
        for family in om_parse(r.text)
        if family.name == "command_execution_duration_seconds"
        for sample in family.samples
        if sample.exemplar is not None
    ]
    assert len(exemplars) == 1, exemplars
    (sample,) = exemplars
    assert sample.name == "command_execution_duration_seconds_bucket"
    assert sample.labels["status"] == "completed"
    assert set(sample.exemplar.labels) == {"trace_id", "span_id"}
    # The exemplar sits on the bucket its value falls in.
    assert sample.exemplar.value <= float(sample.labels["le"])
    plain = srv.http.get("/metrics")
    assert plain.headers["content-type"].startswith("text/plain")
    assert "trace_id" not in plain.text
    families = {f.name for f in text_parse(plain.text)}
    assert "command_execution_duration_seconds" in families
    return str(sample.exemplar.labels["trace_id"])
