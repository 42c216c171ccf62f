"""Issues #13, #22: the fast OTLP span encoding writes exactly the official encoder's
bytes, and the fast exporter sends the collector exactly what the official one sends
(it uses two private parts of the official exporter: an upgrade that changes them fails
here)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from otel.span_encoding import FastOTLPSpanExporter, SpanEncoder
from tests.support.otlp_traces import SHUTDOWN_POLL_S

pytestmark = pytest.mark.fast


class Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def test_the_bytes_are_the_official_encoders() -> None:
    kept = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "s", "n": 3}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("a", "1.0", schema_url="https://example.com/schema")
    other = provider.get_tracer("b")
    remote = SpanContext(0x1234, 0x5678, True, TraceFlags(1), TraceState([("k", "v")]))
    attributes = {
        "s": "x",
        "i": -5,
        "b": False,
        "f": 1.5,
        "l": ["a", "b"],
        "li": [1, 2],
        "lb": (True, False),
        "lf": [0.5],
        "ln": ["a", None],
        "le": [],
        "e": "",
        "zero": 0,
    }
    with tracer.start_as_current_span(
        "root",
        kind=SpanKind.SERVER,
        context=set_span_in_context(NonRecordingSpan(remote)),
        attributes=attributes,
    ) as root:
        root.add_event("chunk", {"sovd.chunk.sequence": 1, "sovd.chunk.size": 300})
        root.add_event("empty")
        with other.start_as_current_span(
            "child", links=[Link(remote, {"x": 1}), Link(root.get_span_context())]
        ) as child:
            child.set_status(Status(StatusCode.ERROR, "boom"))
            child.set_attribute("big", 2**40)
        ok = tracer.start_span("ok")
        ok.set_status(StatusCode.OK)
        ok.end()
    for _ in range(3):  # repeated pairs come from the cache
        tracer.start_span("GET /x", kind=SpanKind.SERVER, attributes={"m": "GET"}).end()
    encoder = SpanEncoder()
    official = encode_spans(kept.spans).SerializeToString()
    assert encoder.encode(kept.spans) == official
    assert encoder.encode(kept.spans) == official  # and again, from the caches


@pytest.mark.socket
def test_the_installed_exporter_fits_the_fast_encoder() -> None:
    """The fast exporter uses two non-public parts of the installed OTLP exporter; the
    service checks them at start and falls back to the exporter's own encoder."""
    assert FastOTLPSpanExporter(endpoint="http://127.0.0.1:9/v1/traces").fits()


class Bodies:
    """An OTLP/HTTP endpoint keeping each request's raw body and headers."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        bodies = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                bodies.posts.append((headers, body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"
        threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True
        ).start()


@pytest.mark.socket
def test_the_collector_receives_the_official_exporters_bytes() -> None:
    kept = Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "s"}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    tracer = provider.get_tracer("t")
    for n in range(5):
        tracer.start_span(f"GET /{n}", kind=SpanKind.SERVER, attributes={"n": n}).end()
    bodies = Bodies()
    try:
        for exporter in (FastOTLPSpanExporter(bodies.url), OTLPSpanExporter(bodies.url)):
            assert exporter.export(kept.spans) is SpanExportResult.SUCCESS
            exporter.shutdown()
            # Shut down, it fails as the official one does, without sending.
            assert exporter.export(kept.spans) is SpanExportResult.FAILURE
    finally:
        bodies.server.shutdown()
        bodies.server.server_close()
    (fast_headers, fast), (official_headers, official) = bodies.posts
    assert fast == official
    assert fast_headers == official_headers
    assert fast_headers["content-type"] == "application/x-protobuf"


def test_equal_resources_share_a_group_as_in_the_official_encoding() -> None:
    # The encoder knows resources and scopes by identity: equal but distinct objects
    # (two providers made alike) must still make one group, a different one its own.
    kept = Keep()
    resources = [
        Resource.create({"service.name": "s"}),
        Resource.create({"service.name": "s"}),
        Resource.create({"service.name": "t"}),
    ]
    for resource in resources:
        provider = TracerProvider(resource=resource)
        provider.add_span_processor(SimpleSpanProcessor(kept))
        for name in ("a", "b"):
            provider.get_tracer("scope").start_span(name).end()
    encoder = SpanEncoder()
    official = encode_spans(kept.spans).SerializeToString()
    assert encoder.encode(kept.spans) == official
    assert encoder.encode(kept.spans[::-1]) == encode_spans(kept.spans[::-1]).SerializeToString()
