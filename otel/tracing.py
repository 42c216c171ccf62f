"""Traces: HTTP server spans, one trace per command, trace ids for log lines.

Built only when tracing is on (``build_tracing``); when it is off the service holds a
no-op seam and installs no middleware, so a request costs nothing here.

HTTP spans come from opentelemetry-instrumentation-asgi's ``OpenTelemetryMiddleware``,
wrapped so that it does only what spans need:

- ``/metrics`` and ``/health/*`` never reach it (a prefix test, not its URL regexes);
- no ``receive``/``send`` child spans (three extra spans per request), and a no-op meter
  (the service's own middleware records the HTTP metrics, cheaper);
- the span is named ``METHOD /route/template`` and given ``http.route`` from the route
  Starlette matched, once the response starts (the name is only the method before, as
  the conventions say for a request no route matched); never the raw path;
- the query string is hidden from it: a WebSocket's carries the access token, and the
  instrumentation would copy it into ``http.url``.

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
from collections.abc import Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation import asgi
from opentelemetry.instrumentation._semconv import _get_schema_url, _StabilityMode
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.instrumentation.asgi.version import __version__ as asgi_version
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from otel.outage import SETTLE_S, TRACES_FLUSH_S, ExportHealth
from otel.scrape import ASGIApp

RouteResolver = Callable[[Mapping[str, Any]], str | None]

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
ATTR_ROUTE: Final = "http.route"
WEBSOCKET_PREFIX: Final = "WS"
TRACER_NAME: Final = "sovd-command-service"
# Commands whose submit span a stream can still link to (the newest ones).
LINKED_COMMANDS: Final = 4096
# Never exported in a span: the instrumentation copies headers only when told to by
# OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*, and then masks these.
SANITIZED_HEADERS: Final = ("authorization", "cookie", "set-cookie", "x-api-key")
# The loggers the OTLP span exporters log their failures to (the gRPC one: optional).
EXPORTER_LOGGERS: Final = (
    OTLPSpanExporter.__module__,
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
)
_HIDDEN_QUERY: Final = "sovd.tracing.query"

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    endpoint: str | None = None  # the full traces URL; None: the exporter's default
    protocol: str = "http/protobuf"  # or grpc
    sampler: str = "parentbased_always_on"
    sampler_arg: float | None = None
    excluded_prefixes: tuple[str, ...] = ("/metrics", "/health/")


def make_sampler(name: str, arg: float | None) -> Sampler:
    """The sampler named as OTEL_TRACES_SAMPLER names it (the ratio: the ARG, default 1)."""
    kind = name.removeprefix("parentbased_")
    base: Sampler
    if kind == "always_on":
        base = ALWAYS_ON
    elif kind == "always_off":
        base = ALWAYS_OFF
    else:  # traceidratio
        base = TraceIdRatioBased(1.0 if arg is None else arg)
    return ParentBased(base) if kind != name else base


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


def _span_details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    # The route is not known yet (routing comes later): the method alone, renamed to
    # METHOD /template at the response start.
    if scope["type"] == "websocket":
        return WEBSOCKET_PREFIX, {}
    return scope.get("method", "HTTP"), {}


def _prefer_stable_semconv(middleware: OpenTelemetryMiddleware, provider: TracerProvider) -> None:
    """The stable HTTP conventions (``http.request.method``, ``url.path``,
    ``http.response.status_code``, ...), as the service's HTTP metrics are named, unless
    OTEL_SEMCONV_STABILITY_OPT_IN chose otherwise. The instrumentation's default is the
    old names: two more attributes per span, and more work per request to make them.
    The instrumentation reads its mode once, when it is built (a private attribute;
    tests/test_traces_stream.py pins the attribute names)."""
    if middleware._sem_conv_opt_in_mode is _StabilityMode.DEFAULT:
        middleware._sem_conv_opt_in_mode = _StabilityMode.HTTP
        # Its spans name the conventions' version they follow.
        middleware.tracer = _RequestSpanTracer(
            provider.get_tracer(
                asgi.__name__, asgi_version, schema_url=_get_schema_url(_StabilityMode.HTTP)
            )
        )
    else:
        middleware.tracer = _RequestSpanTracer(middleware.tracer)


class _RequestSpanTracer(trace.Tracer):
    """The instrumentation's tracer, less one copy of the request's attributes: it hands
    them to ``start_span`` and then sets each again on the span it got (when recording),
    so the span starts without them (our samplers never read them)."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Span:
        kwargs.pop("attributes", None)
        return self._tracer.start_span(name, *args, **kwargs)

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._tracer.start_as_current_span(name, *args, **kwargs)


class TracingMiddleware:
    """The outermost layer when tracing is on (see the module's docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        provider: TracerProvider,
        route_of: RouteResolver,
        excluded_prefixes: tuple[str, ...],
    ) -> None:
        self._app = app
        self._route_of = route_of
        self._excluded = excluded_prefixes
        self._traced = OpenTelemetryMiddleware(
            self._named,
            default_span_details=_span_details,
            tracer_provider=provider,
            meter_provider=NoOpMeterProvider(),
            exclude_spans=["receive", "send"],
            http_capture_headers_sanitize_fields=list(SANITIZED_HEADERS),
        )
        _prefer_stable_semconv(self._traced, provider)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"].startswith(self._excluded):
            await self._app(scope, receive, send)
            return
        query = scope.get("query_string")
        if query:
            scope["query_string"] = b""
            scope[_HIDDEN_QUERY] = query
        await self._traced(scope, receive, send)

    async def _named(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        query = scope.pop(_HIDDEN_QUERY, None)
        if query is not None:
            scope["query_string"] = query
        span = trace.get_current_span()
        if not span.is_recording():
            await self._app(scope, receive, send)
            return
        route_of = self._route_of

        async def naming_send(message: MutableMapping[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start" or kind == "websocket.accept":
                route = route_of(scope)
                if route is not None:
                    verb = scope["method"] if kind == "http.response.start" else WEBSOCKET_PREFIX
                    span.update_name(f"{verb} {route}")
                    span.set_attribute(ATTR_ROUTE, route)
            await send(message)

        await self._app(scope, receive, naming_send)


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
    def context(self) -> trace.SpanContext:
        return trace.get_current_span(self._parent).get_span_context()


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
    ) -> CommandSpans:
        attributes = {
            ATTR_COMMAND_ID: command_id,
            ATTR_COMMAND_NAME: command_name,
            ATTR_VEHICLE_ID: vehicle_id,
        }
        if ecu_address is not None:
            attributes[ATTR_ECU_ADDRESS] = ecu_address
        spans = CommandSpans(self._tracer, attributes)
        with self._lock:
            self._commands[command_id] = spans.context
            if len(self._commands) > LINKED_COMMANDS:
                self._commands.popitem(last=False)
        return spans

    @contextmanager
    def span(self, name: str) -> Iterator[None]:
        """A child of the current span (a store write of the current command)."""
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
    """``trace_id`` and ``span_id`` of the current span, for a log line; {} without one."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
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
    sampling as configured, exporting in batches (the processor's OTEL_BSP_* settings)."""
    provider = TracerProvider(
        sampler=make_sampler(settings.sampler, settings.sampler_arg),
        resource=resource,
        span_limits=SpanLimits(),
    )
    health = ExportHealth("traces", EXPORTER_LOGGERS)
    health.attach()
    watched = WatchedSpanExporter(exporter or make_exporter(settings), health)
    provider.add_span_processor(BatchSpanProcessor(watched))
    return Tracing(provider, settings, watched)
