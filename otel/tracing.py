"""Traces: HTTP server spans, one trace per command, trace ids for log lines.

Built only when tracing is on (``build_tracing``); when it is off the service holds a
no-op seam and installs no middleware, so a request costs nothing here.

Sampling is decided once per request, before any instrumentation runs
(``otel.request_spans``): an unsampled request goes around opentelemetry-instrumentation-
asgi and makes nothing here either (no command spans, no store spans, no trace id in its
log lines, no exemplar); a sampled one goes through it.

A command's trace (``CommandSpans``): the submit request's span is the parent of
``command.queued`` (its wait in the vehicle's lane), ``command.execute`` (the vehicle's
answer, an event per chunk) and the ``store.*`` spans of its writes; the terminal
status goes on the last of its spans as attributes and span status.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel.outage import SETTLE_S, TRACES_FLUSH_S, ExportHealth
from otel.request_spans import (
    PredrawnIds,
    RouteResolver,
    TracingMiddleware,
)
from otel.scrape import ASGIApp

# Span and attribute names: the contract with whoever reads the traces (README).
SPAN_QUEUED: Final = "command.queued"
SPAN_EXECUTE: Final = "command.execute"
EVENT_CHUNK: Final = "chunk"
ATTR_COMMAND_ID: Final = "sovd.command.id"
ATTR_COMMAND_NAME: Final = "sovd.command.name"
ATTR_VEHICLE_ID: Final = "sovd.vehicle.id"
ATTR_ECU_ADDRESS: Final = "sovd.ecu.address"
ATTR_STATUS: Final = "sovd.command.status"
ATTR_ERROR_CODE: Final = "sovd.error.code"
ATTR_CHUNK_SEQUENCE: Final = "sovd.chunk.sequence"
ATTR_CHUNK_SIZE: Final = "sovd.chunk.size"
TRACER_NAME: Final = "sovd-command-service"
# Commands whose submit span a stream can still link to (the newest ones).
LINKED_COMMANDS: Final = 4096
# The loggers the OTLP span exporters log their failures to (the gRPC one: optional).
EXPORTER_LOGGERS: Final = (
    OTLPSpanExporter.__module__,
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    endpoint: str | None = None  # the full traces URL; None: the exporter's default
    protocol: str = "http/protobuf"  # or grpc
    excluded_prefixes: tuple[str, ...] = ("/metrics", "/health/")


def make_exporter(settings: TracingSettings) -> SpanExporter:
    if settings.protocol == "grpc":
        # Optional: the service's grpc extra (checked when the configuration is read).
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter as GrpcSpanExporter,
        )

        exporter: SpanExporter = GrpcSpanExporter(endpoint=settings.endpoint)
        return exporter
    from otel.span_encoding import FastOTLPSpanExporter

    fast = FastOTLPSpanExporter(endpoint=settings.endpoint)
    if fast.fits():
        return fast
    log.warning(
        "the installed OTLP exporter differs from the one the fast span encoder was built"
        " for; spans go through its own encoder",
        extra={"event": "span_encoder_fallback"},
    )
    return OTLPSpanExporter(endpoint=settings.endpoint)


class CommandSpans:
    """One command's spans, from its acceptance (in the submit request, whose span is the
    parent) to its end. Each call is made by the pipeline at that point of the command."""

    __slots__ = ("_attributes", "_execute", "_parent", "_queued", "_tracer")

    def __init__(self, tracer: trace.Tracer, attributes: dict[str, str]) -> None:
        self._tracer = tracer
        self._attributes = attributes
        parent = otel_context.get_current()
        self._queued: Span | None = tracer.start_span(
            SPAN_QUEUED, context=parent, attributes=attributes
        )
        if not trace.get_current_span(parent).get_span_context().is_valid:
            # No request span (not traced): the queue span is the root, so the command
            # still makes one trace.
            parent = trace.set_span_in_context(self._queued, parent)
        self._parent = parent
        self._execute: Span | None = None

    def started(self) -> None:
        """The command left the queue: its execution begins."""
        if self._queued is not None:
            self._queued.end()
            self._queued = None
        self._execute = self._tracer.start_span(
            SPAN_EXECUTE, context=self._parent, attributes=self._attributes
        )

    def attach(self) -> None:
        """Make the command current in the running task (its store spans, log lines and
        exemplars belong to it): the execution while it runs, else the submit's span.
        Only for a task of its own: the context is never detached, it ends with the task."""
        ctx = (
            self._parent
            if self._execute is None
            else trace.set_span_in_context(self._execute, self._parent)
        )
        otel_context.attach(ctx)

    def chunk(self, sequence: int, size: int) -> None:
        if self._execute is not None:
            self._execute.add_event(
                EVENT_CHUNK, {ATTR_CHUNK_SEQUENCE: sequence, ATTR_CHUNK_SIZE: size}
            )

    def ended(self, status: str, error_code: str | None, error: str | None) -> None:
        """The terminal status is decided: on the open span (the execution, or the queue
        wait of a command that never ran), with ``error`` as the span's error status."""
        span = self._execute or self._queued
        if span is None:
            return
        span.set_attribute(ATTR_STATUS, status)
        if error_code is not None:
            span.set_attribute(ATTR_ERROR_CODE, error_code)
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        self.close()

    def close(self) -> None:
        """End whatever is still open (the command left the pipeline)."""
        for span in (self._queued, self._execute):
            if span is not None:
                span.end()
        self._queued = self._execute = None

    @property
    def parent(self) -> otel_context.Context:
        """The context the command's spans start in (its root's, without a request)."""
        return self._parent

    @property
    def context(self) -> trace.SpanContext:
        return trace.get_current_span(self._parent).get_span_context()


class _UnsampledCommand:
    """The trace of a command whose submit request was not sampled: no spans, only the
    request's (unsampled) context, made current in the command's own tasks so that what
    they do is left out too (a store write, a log line, an exemplar)."""

    __slots__ = ("_context",)

    def __init__(self, context: otel_context.Context) -> None:
        self._context = context

    def started(self) -> None:
        pass

    def attach(self) -> None:
        otel_context.attach(self._context)  # never detached: it ends with the task

    def chunk(self, sequence: int, size: int) -> None:
        pass

    def ended(self, status: str, error_code: str | None, error: str | None) -> None:
        pass

    def close(self) -> None:
        pass


_NO_SPAN: Final = nullcontext()


def _unsampled(span: Span) -> bool:
    """The current span is a decision not to sample (a request head sampling left out,
    or an incoming traceparent with sampled=0); False without any span."""
    context = span.get_span_context()
    return context.is_valid and not context.trace_flags.sampled


class WatchedSpanExporter(SpanExporter):
    """A span exporter that tells ``ExportHealth`` how each export ended, and once shut
    down fails every export at once (the batch processor's last ones included) instead
    of handing it to a closed exporter that would say so for each batch."""

    def __init__(self, exporter: SpanExporter, health: ExportHealth) -> None:
        self.exporter = exporter
        self._health = health
        self._lock = threading.Lock()
        self._closed = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._closed:
            return SpanExportResult.FAILURE
        with self._health.exporting():
            result = self.exporter.export(spans)
        self._health.exported(result is SpanExportResult.SUCCESS)
        return result

    def shutdown(self) -> None:
        """Shut the exporter down (ends a retry wait at once); once, from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def close_health(self, deadline: float) -> None:
        self._health.close(deadline)


class Tracing:
    """What the service holds when tracing is on (the app's ``Tracing`` seam)."""

    def __init__(
        self,
        provider: TracerProvider,
        settings: TracingSettings,
        exporter: WatchedSpanExporter | None = None,
    ) -> None:
        self.provider = provider
        self._settings = settings
        self._exporter = exporter
        self._tracer = provider.get_tracer(TRACER_NAME)
        # command id -> its submit span, for the streams that follow it
        self._commands: OrderedDict[str, trace.SpanContext] = OrderedDict()
        self._lock = threading.Lock()

    def middleware(self, app: ASGIApp, route_of: RouteResolver) -> ASGIApp:
        return TracingMiddleware(app, self.provider, route_of, self._settings.excluded_prefixes)

    def command_accepted(
        self, command_id: str, command_name: str, vehicle_id: str, ecu_address: str | None
    ) -> CommandSpans | _UnsampledCommand:
        if _unsampled(trace.get_current_span()):
            # No span, no attributes, no link to keep.
            return _UnsampledCommand(otel_context.get_current())
        attributes = {
            ATTR_COMMAND_ID: command_id,
            ATTR_COMMAND_NAME: command_name,
            ATTR_VEHICLE_ID: vehicle_id,
        }
        if ecu_address is not None:
            attributes[ATTR_ECU_ADDRESS] = ecu_address
        spans = CommandSpans(self._tracer, attributes)
        if not spans.context.trace_flags.sampled:
            # No request span, and the sampler left the command's root out.
            spans.close()
            return _UnsampledCommand(spans.parent)
        with self._lock:
            self._commands[command_id] = spans.context
            if len(self._commands) > LINKED_COMMANDS:
                self._commands.popitem(last=False)
        return spans

    def span(self, name: str) -> AbstractContextManager[None]:
        """A child of the current span (a store write of the current command; that span
        may have ended: the command's end is written after its spans are closed, as a
        child of the submit request's span); nothing when it is not sampled. Without any
        current span, a root the sampler decides on."""
        if _unsampled(trace.get_current_span()):
            return _NO_SPAN
        return self._child(name)

    @contextmanager
    def _child(self, name: str) -> Iterator[None]:
        with self._tracer.start_as_current_span(name, kind=SpanKind.INTERNAL):
            yield

    def stream_opened(self, command_id: str) -> None:
        """The current span (a WebSocket's) follows ``command_id``: link it to the
        command's trace."""
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute(ATTR_COMMAND_ID, command_id)
        with self._lock:
            target = self._commands.get(command_id)
        if target is not None and target.is_valid:
            span.add_link(target)

    def shutdown(self, flush_s: float = TRACES_FLUSH_S) -> bool:
        """Export what is buffered and stop (the batch processor flushes), for at most
        ``flush_s``: then the exporter is shut down, which ends its retries, and what it
        still held is dropped. Whether everything was done in time.

        The SDK's span processor has no shutdown timeout of its own: the provider is shut
        down in a helper thread (a daemon: the process never waits for it)."""
        deadline = time.monotonic() + flush_s
        done = threading.Event()

        def stop() -> None:
            try:
                self.provider.shutdown()
            finally:
                done.set()

        threading.Thread(target=stop, name="otel-traces-shutdown", daemon=True).start()
        in_time = done.wait(max(0.0, flush_s - SETTLE_S))
        if self._exporter is not None:
            if not in_time:
                self._exporter.shutdown()
            self._exporter.close_health(deadline)
        return in_time


def log_fields() -> dict[str, str]:
    """``trace_id`` and ``span_id`` of the current span, for a log line; {} without one
    or when it is not sampled (no trace to find: the ids would lead nowhere)."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid or not ctx.trace_flags.sampled:
        return {}
    return {
        "trace_id": trace.format_trace_id(ctx.trace_id),
        "span_id": trace.format_span_id(ctx.span_id),
    }


def build_tracing(
    settings: TracingSettings,
    resource: Resource,
    exporter: SpanExporter | None = None,
) -> Tracing:
    """A TracerProvider of its own (never the global one: several apps may share a process),
    sampling as OTEL_TRACES_SAMPLER(_ARG) say (read by the SDK), exporting in batches (the
    processor's OTEL_BSP_* settings)."""
    provider = TracerProvider(
        sampler=None,
        resource=resource,
        span_limits=SpanLimits(),
        id_generator=PredrawnIds(),  # the request's sampling decided on the span's trace id
    )
    health = ExportHealth("traces", EXPORTER_LOGGERS)
    health.attach()
    watched = WatchedSpanExporter(exporter or make_exporter(settings), health)
    provider.add_span_processor(BatchSpanProcessor(watched))
    return Tracing(provider, settings, watched)
