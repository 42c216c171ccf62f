"""OTLP/HTTP receivers inside the test: decode what the service exports with
opentelemetry-proto. ``OtlpReceiver`` is the endpoint for any signal (the metrics one is
in tests/test_otel_otlp.py); ``TraceReceiver`` gives the spans as plain records to
assert on."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, Self, TypeVar

import pytest
from google.protobuf.message import Message
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as ProtoSpan
from opentelemetry.proto.trace.v1.trace_pb2 import Status

RequestT = TypeVar("RequestT", bound=Message)

SERVER = ProtoSpan.SPAN_KIND_SERVER
ERROR = Status.STATUS_CODE_ERROR

# How often a receiver's serve_forever looks for shutdown(): how long close() waits.
SHUTDOWN_POLL_S = 0.02


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass
class Event:
    name: str
    attributes: dict[str, Any]


@dataclass
class Link:
    trace_id: str
    span_id: str


@dataclass
class Span:
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]
    status_code: int
    status_message: str
    events: list[Event] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)

    @classmethod
    def of(cls, span: ProtoSpan) -> Span:
        return cls(
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            kind=span.kind,
            attributes=_attributes(span.attributes),
            status_code=span.status.code,
            status_message=span.status.message,
            events=[Event(e.name, _attributes(e.attributes)) for e in span.events],
            links=[Link(lk.trace_id.hex(), lk.span_id.hex()) for lk in span.links],
        )


class OtlpReceiver(Generic[RequestT]):
    """An OTLP/HTTP collector endpoint in the test: each export the service posts is kept
    decoded as ``request_type`` (with the path it came to) and answered with an empty
    ``response_type``, as a collector does."""

    def __init__(self, request_type: type[RequestT], response_type: type[Message]) -> None:
        self.requests: list[RequestT] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = request_type()
                request.ParseFromString(body)
                with receiver._lock:
                    receiver.requests.append(request)
                    receiver.paths.append(self.path)
                reply = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # shutdown() waits for serve_forever's next poll: 0.5 s by default, at every close.
        self._thread = threading.Thread(
            target=self.server.serve_forever, args=(SHUTDOWN_POLL_S,), daemon=True
        )
        self._thread.start()

    def received(self) -> list[RequestT]:
        """The exports so far (a copy: the server thread keeps appending)."""
        with self._lock:
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TraceReceiver(OtlpReceiver[ExportTraceServiceRequest]):
    def __init__(self) -> None:
        super().__init__(ExportTraceServiceRequest, ExportTraceServiceResponse)

    @property
    def traces_url(self) -> str:
        return self.url + "/v1/traces"

    def spans(self) -> list[Span]:
        return [
            Span.of(span)
            for request in self.received()
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]

    def resources(self) -> list[dict[str, Any]]:
        return [
            _attributes(rs.resource.attributes) for r in self.received() for rs in r.resource_spans
        ]


@pytest.fixture
def traces() -> Iterator[TraceReceiver]:
    with TraceReceiver() as receiver:
        yield receiver


def named(spans: list[Span], name: str) -> list[Span]:
    return [s for s in spans if s.name == name]


def of_command(spans: list[Span], command_id: str) -> list[Span]:
    return [s for s in spans if s.attributes.get("sovd.command.id") == command_id]
