"""HTTP server spans, with the sampling decided first (issue #24).

The tracer provider's own sampler (``TracerProvider.sampler``, as OTEL_TRACES_SAMPLER
configured it) decides each request before any instrumentation runs, honouring an
incoming ``traceparent`` (the global propagator extracts it):

- a request it will not record goes around opentelemetry-instrumentation-asgi: its
  context gets a non-recording span with the sampled flag clear, so the command spans
  below it are unsampled too, no exemplar is kept and no log line names it; nothing
  else is built (no attributes, no span object of the SDK's). With an incoming
  ``traceparent`` that span continues its trace (its trace id, a fresh span id); without
  any propagation header every such request shares one context made up front, since its
  ids are never seen (nothing records, logs, links or propagates an unsampled span);
- a request it records goes through ``OpenTelemetryMiddleware`` as it always did. The
  trace id the decision was made on is the one the SDK then uses (``PredrawnIds``), so
  the SDK's own sampling of the span decides the same way (the samplers are pure
  functions of the parent and the trace id).

Around the instrumentation, only what spans need:

- ``/metrics`` and ``/health/*`` never reach it (a prefix test, not its URL regexes);
- no ``receive``/``send`` child spans (three extra spans per request), and a no-op meter
  (the service's own middleware records the HTTP metrics, cheaper);
- the span is named ``METHOD /route/template`` and given ``http.route`` from the route
  Starlette matched, once the response starts (the name is only the method before, as
  the conventions say for a request no route matched); never the raw path;
- the query string is hidden from it: a WebSocket's carries the access token, and the
  instrumentation would copy it into ``http.url``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, Final, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware, asgi_getter
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.propagate import extract, get_global_textmap
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind, TraceFlags

from otel.scrape import ASGIApp

RouteResolver = Callable[[Mapping[str, Any]], str | None]

ATTR_ROUTE: Final = "http.route"
WEBSOCKET_PREFIX: Final = "WS"
# Never exported in a span: the instrumentation copies headers only when told to by
# OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_*, and then masks these.
SANITIZED_HEADERS: Final = ("authorization", "cookie", "set-cookie", "x-api-key")
_HIDDEN_QUERY: Final = "sovd.tracing.query"
_SERVER_SPAN: Final = "sovd.tracing.span"  # the instrumentation's span, handed to _named
_UNSAMPLED_ROOT: Final = TraceFlags(TraceFlags.RANDOM_TRACE_ID)
_UNSAMPLED: Final = TraceFlags(TraceFlags.DEFAULT)

# The trace id a request's sampling was decided on, for the SDK's next root span in
# this context (the instrumentation's server span); 0: none.
_PREDRAWN: ContextVar[int] = ContextVar("sovd_predrawn_trace_id", default=0)


class PredrawnIds(RandomIdGenerator):
    """The SDK's random ids, except that a root span started while a predrawn trace id
    is set takes that one (once)."""

    def generate_trace_id(self) -> int:
        drawn = _PREDRAWN.get()
        if drawn:
            _PREDRAWN.set(0)
            return drawn
        return super().generate_trace_id()


def _hand_over(span: Span, scope: dict[str, Any]) -> None:
    """The instrumentation's ``server_request_hook``: its span, for ``_named`` (cheaper
    than reading it back from the context)."""
    scope[_SERVER_SPAN] = span


def _span_details(scope: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    # The route is not known yet (routing comes later): the method alone, renamed to
    # METHOD /template at the response start.
    if scope["type"] == "websocket":
        return WEBSOCKET_PREFIX, {}
    return scope.get("method", "HTTP"), {}


class _RequestSpanTracer(trace.Tracer):
    """The instrumentation's tracer, less one copy of the request's attributes: it hands
    them to ``start_span`` and then sets each again on the span it got (when recording),
    so the span starts without them (the samplers of OTEL_TRACES_SAMPLER never read
    them)."""

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
        if not isinstance(provider.id_generator, PredrawnIds):
            raise TypeError("the tracer provider must draw its ids with PredrawnIds")
        self._sampler = provider.sampler
        self._ids = provider.id_generator
        # What an unsampled request without any propagation header runs in: one context
        # for them all, made once. Its ids lead nowhere (nothing records, logs, links or
        # propagates an unsampled span's ids), so a fresh pair per request would only cost.
        self._unsampled_root = trace.set_span_in_context(
            NonRecordingSpan(
                SpanContext(
                    self._ids.generate_trace_id(),
                    self._ids.generate_span_id(),
                    is_remote=False,
                    trace_flags=_UNSAMPLED_ROOT,
                )
            )
        )
        # The headers the propagator reads (traceparent, tracestate, baggage): a request
        # with none of them has no parent, and nothing to extract.
        self._fields = frozenset(f.lower().encode("latin-1") for f in get_global_textmap().fields)
        self._traced = OpenTelemetryMiddleware(
            self._named,
            default_span_details=_span_details,
            tracer_provider=provider,
            meter_provider=NoOpMeterProvider(),
            exclude_spans=["receive", "send"],
            http_capture_headers_sanitize_fields=list(SANITIZED_HEADERS),
            server_request_hook=_hand_over,
        )
        # Its tracer (a public attribute, made with the schema URL of the conventions
        # OTEL_SEMCONV_STABILITY_OPT_IN chose), less the attributes' first copy.
        self._traced.tracer = _RequestSpanTracer(self._traced.tracer)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if (kind != "http" and kind != "websocket") or scope["path"].startswith(self._excluded):
            await self._app(scope, receive, send)
            return
        fields = self._fields
        parent: otel_context.Context | None = None
        for name, _ in scope["headers"]:
            if name in fields:
                parent = extract(cast(dict[str, Any], scope), getter=asgi_getter)
                break
        # No propagation header (the usual request): a root, nothing to look up.
        root = True
        if parent is not None:
            parent_span = trace.get_current_span(parent).get_span_context()
            root = not parent_span.is_valid
        trace_id = self._ids.generate_trace_id() if root else parent_span.trace_id
        decision = self._sampler.should_sample(
            parent, trace_id, scope.get("method", WEBSOCKET_PREFIX), SpanKind.SERVER
        )
        if decision.decision is not Decision.DROP:
            await self._through_instrumentation(scope, receive, send, trace_id if root else 0)
            return
        if parent is None and not decision.trace_state:
            token = otel_context.attach(self._unsampled_root)
        else:
            unsampled = SpanContext(
                trace_id,
                self._ids.generate_span_id(),
                is_remote=False,
                trace_flags=_UNSAMPLED_ROOT if root else _UNSAMPLED,
                trace_state=decision.trace_state,
            )
            token = otel_context.attach(
                trace.set_span_in_context(NonRecordingSpan(unsampled), parent)
            )
        try:
            await self._app(scope, receive, send)
        finally:
            otel_context.detach(token)

    async def _through_instrumentation(
        self, scope: MutableMapping[str, Any], receive: Any, send: Any, trace_id: int
    ) -> None:
        query = scope.get("query_string")
        if query:
            scope["query_string"] = b""
            scope[_HIDDEN_QUERY] = query
        drawn = _PREDRAWN.set(trace_id)
        try:
            await self._traced(scope, receive, send)
        finally:
            _PREDRAWN.reset(drawn)

    async def _named(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        query = scope.pop(_HIDDEN_QUERY, None)
        if query is not None:
            scope["query_string"] = query
        span = scope.pop(_SERVER_SPAN, None)
        if span is None or not span.is_recording():
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
