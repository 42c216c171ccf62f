"""OTLP/protobuf encoding of a batch of spans, several times faster than the exporter's.

opentelemetry-exporter-otlp-proto-common builds a protobuf message object per span, per
attribute and per value (about 35 us for an HTTP span of a dozen attributes), in the
batch processor's thread, which competes with the server for the one interpreter lock.
This writes the same bytes directly: the protobuf wire format of
``ExportTraceServiceRequest`` (opentelemetry-proto), fields in number order, defaults
left out as proto3 leaves them out. Most attribute pairs repeat from span to span (method,
scheme, host, route, status), so each ``KeyValue`` is encoded once and kept (a bounded
cache, cleared when full). The resource and the instrumentation scope are taken from the
official encoder's output for the first span that has them (once each).
``tests/test_span_encoding.py`` checks the bytes against the official encoder's.

Why keep it (issue #22): measured in process (``python -m bench.tracing_split``), a
traced request costs 235 us of CPU with it and 279 us with the official encoder, and in
the wrk run every traced request's throughput depends on it (docs/performance.md).
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Final

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind

# SpanFlags: the context's is_remote is known (always), and it is remote.
_HAS_IS_REMOTE: Final = 0x100
_IS_REMOTE: Final = 0x200
_KINDS: Final = {
    SpanKind.INTERNAL: b"\x30\x01",
    SpanKind.SERVER: b"\x30\x02",
    SpanKind.CLIENT: b"\x30\x03",
    SpanKind.PRODUCER: b"\x30\x04",
    SpanKind.CONSUMER: b"\x30\x05",
}
CACHED_PAIRS: Final = 4096
CACHED_OBJECTS: Final = 256  # (resource, scope) pairs known by identity
_SCALARS: Final = frozenset((str, bool, int, float))
log = logging.getLogger(__name__)
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack


def _varint(value: int) -> bytes:
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag byte(s), the length, the bytes."""
    return tag + _varint(len(payload)) + payload


def _string_field(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode()) if text else b""


def _any_value(value: Any) -> bytes:
    """AnyValue of an attribute value, as ``opentelemetry-proto`` writes it (a oneof: set
    even when the value is the default). TypeError for a type no attribute can have (the
    batch then goes through the official encoder)."""
    if isinstance(value, str):
        return _field(b"\x0a", value.encode())
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: two's complement
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if value is None:
        return b""
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join(_field(b"\x0a", _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        pairs = b"".join(_field(b"\x0a", _key_value(str(k), v)) for k, v in value.items())
        return _field(b"\x32", pairs)
    raise TypeError(f"no OTLP encoding for an attribute value of type {type(value)}")


def _key_value(key: str, value: Any) -> bytes:
    return _string_field(b"\x0a", key) + _field(b"\x12", _any_value(value))


class SpanEncoder:
    """Encodes batches of finished spans; one per exporter (its caches are its own and it
    runs in the exporter's one thread)."""

    def __init__(self) -> None:
        self._pairs: dict[tuple[str, type, Any], bytes] = {}
        self._resources: dict[Any, bytes] = {}
        self._scopes: dict[Any, bytes] = {}
        # (id(resource), id(scope)) -> (resource, scope, their canonical equals): one
        # provider's spans share one object of each, and hashing a Resource serializes
        # its attributes to JSON each time (about 5 us a span). The objects are kept,
        # so their ids cannot be reused while they are here.
        self._known: dict[tuple[int, int], tuple[Any, Any, Any, Any]] = {}
        self._canonical: dict[Any, Any] = {}

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        """The serialized ``ExportTraceServiceRequest`` of ``spans``."""
        # Grouped by the canonical objects' ids: equal resources (and scopes) share one
        # group, as in the official encoder, without hashing them for each span.
        grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
        for span in spans:
            resource, scope = self._keys(span)
            _, by_scope = grouped.setdefault(id(resource), (resource, {}))
            by_scope.setdefault(id(scope), (scope, []))[1].append(_field(b"\x12", self._span(span)))
        out = []
        for resource, scopes in grouped.values():
            body = [_field(b"\x0a", self._resource(resource))]
            for scope, encoded in scopes.values():
                scope_body = _field(b"\x0a", self._scope(scope)) + b"".join(encoded)
                if scope is not None and scope.schema_url:
                    scope_body += _string_field(b"\x1a", scope.schema_url)
                body.append(_field(b"\x12", scope_body))
            body.append(_string_field(b"\x1a", resource.schema_url))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)

    def _keys(self, span: ReadableSpan) -> tuple[Any, Any]:
        """The canonical (first seen equal) resource and scope of ``span``."""
        resource, scope = span.resource, span.instrumentation_scope or None
        known = self._known.get((id(resource), id(scope)))
        if known is None or known[0] is not resource or known[1] is not scope:
            if resource not in self._resources or scope not in self._scopes:
                self._learn(span)
            if len(self._known) >= CACHED_OBJECTS:
                self._known.clear()
            known = (
                resource,
                scope,
                self._canonical.setdefault(resource, resource),
                self._canonical.setdefault(scope, scope),
            )
            self._known[(id(resource), id(scope))] = known
        return known[2], known[3]

    def _learn(self, span: ReadableSpan) -> None:
        """The resource's and the scope's bytes, from the official encoding of ``span``."""
        (resource_spans,) = encode_spans([span]).resource_spans
        self._resources[span.resource] = resource_spans.resource.SerializeToString()
        scope = resource_spans.scope_spans[0].scope
        self._scopes[span.instrumentation_scope or None] = scope.SerializeToString()

    def _resource(self, resource: Any) -> bytes:
        return self._resources[resource]

    def _scope(self, scope: Any) -> bytes:
        return self._scopes[scope]

    def _attributes(self, tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
        if not attributes:
            return b""
        pairs = self._pairs
        out = []
        for key, value in attributes.items():
            kind = type(value)
            cache_key = (key, kind, value) if kind in _SCALARS else None
            encoded = pairs.get(cache_key) if cache_key is not None else None
            if encoded is None:
                pair = _key_value(key, value)
                encoded = tag + _varint(len(pair)) + pair
                if cache_key is not None:
                    if len(pairs) >= CACHED_PAIRS:
                        pairs.clear()  # unbounded values (ids, paths): start again
                    pairs[cache_key] = encoded
            out.append(encoded)
        return b"".join(out)

    def _span(self, span: ReadableSpan) -> bytes:
        context = span.get_span_context()
        assert context is not None
        parent = span.parent
        out = [
            b"\x0a\x10",
            context.trace_id.to_bytes(16, "big"),
            b"\x12\x08",
            context.span_id.to_bytes(8, "big"),
        ]
        state = context.trace_state
        if state:
            out.append(_string_field(b"\x1a", ",".join(f"{k}={v}" for k, v in state.items())))
        if parent is not None:
            out += (b"\x22\x08", parent.span_id.to_bytes(8, "big"))
        out += (
            _string_field(b"\x2a", span.name),
            _KINDS[span.kind],
            b"\x39",
            _pack_fixed64(span.start_time or 0),
            b"\x41",
            _pack_fixed64(span.end_time or 0),
            self._attributes(b"\x4a", span.attributes),
        )
        if span.dropped_attributes:
            out.append(b"\x50" + _varint(span.dropped_attributes))
        for event in span.events:
            body = (
                b"\x09"
                + _pack_fixed64(event.timestamp)
                + _string_field(b"\x12", event.name)
                + self._attributes(b"\x1a", event.attributes)
            )
            if event.dropped_attributes:
                body += b"\x20" + _varint(event.dropped_attributes)
            out.append(_field(b"\x5a", body))
        if span.dropped_events:
            out.append(b"\x60" + _varint(span.dropped_events))
        for link in span.links:
            body = (
                b"\x0a\x10"
                + link.context.trace_id.to_bytes(16, "big")
                + b"\x12\x08"
                + link.context.span_id.to_bytes(8, "big")
                + self._attributes(b"\x22", link.attributes)
            )
            if link.dropped_attributes:
                body += b"\x28" + _varint(link.dropped_attributes)
            out.append(_field(b"\x6a", body + b"\x35" + _pack_fixed32(_flags(link.context))))
        if span.dropped_links:
            out.append(b"\x70" + _varint(span.dropped_links))
        status = span.status
        status_body = _string_field(b"\x12", status.description or "")
        if status.status_code.value:
            status_body += b"\x18" + _varint(status.status_code.value)
        out.append(_field(b"\x7a", status_body))
        out.append(b"\x85\x01" + _pack_fixed32(_flags(parent)))
        return b"".join(out)


def _flags(context: SpanContext | None) -> int:
    if context is not None and context.is_remote:
        return _HAS_IS_REMOTE | _IS_REMOTE
    return _HAS_IS_REMOTE


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The OTLP/HTTP span exporter (its endpoint, headers, timeout, compression, retries,
    all as OTEL_EXPORTER_OTLP_* configure it), with the batch encoded by ``SpanEncoder``;
    a batch it cannot encode goes through the official encoder instead.

    Two private parts of opentelemetry-exporter-otlp-proto-http 1.45 are used, because
    the exporter has no public way to send bytes already encoded: ``_client.export``
    (its HTTP client: sends, retries) and ``_shutdown`` (its flag). ``fits`` checks them
    at start (the service falls back to the official exporter, with a warning, when they
    are gone), and tests/test_span_encoding.py fails on an upgrade that changes them: the
    collector must receive from this exporter the very bytes the official one sends.
    What this skips of the official ``export``: its own metrics (off unless
    OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED) and its 64 MiB request cap (a batch of 512
    spans is a few hundred KiB)."""

    def __init__(self, endpoint: str | None = None) -> None:
        super().__init__(endpoint=endpoint)
        self._encoder = SpanEncoder()

    def fits(self) -> bool:
        """Whether the installed exporter has the parts ``export`` uses (its HTTP client
        and shutdown flag: not public API, so checked once at start rather than trusted)."""
        client = getattr(self, "_client", None)
        return callable(getattr(client, "export", None)) and isinstance(
            getattr(self, "_shutdown", None), bool
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return super().export(spans)  # says so and fails, as the exporter does
        try:
            data = self._encoder.encode(spans)
        except Exception:
            log.exception(
                "could not encode %d spans; the exporter's encoder takes them", len(spans)
            )
            return super().export(spans)
        result = self._client.export(data)
        return SpanExportResult.SUCCESS if result.success else SpanExportResult.FAILURE
