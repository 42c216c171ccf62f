"""Assembles the service: routes, middleware, and the lifespan that owns every part.

Nothing imports this module; it imports everything. ``create_app(config)`` builds an
app whose lifespan opens the database, recovers commands a crash left unfinished,
creates the first users and demo fleet, starts telemetry, and on the way out drains
the pipeline, closes the response streams and the database.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route, WebSocketRoute

from app import builders, console, logs
from app.api import openapi, routing, ws
from app.api.error_bodies import EXCEPTION_HANDLERS
from app.api.metrics import METRICS_PATH, MetricsRoute
from app.api.routes import ENDPOINTS
from app.api.ws_streams import StreamRegistry
from app.clock import Clock
from app.config import Config
from app.errors import StartupError
from app.lifecycle import Lifecycle
from app.telemetry import (
    METRIC_COMMANDS,
    REFUSAL_CODES,
    REFUSED,
    NoTracing,
)
from app.vehicles import uds
from app.vehicles.connector import Connector
from app.vehicles.doip_observer import UDS_OUTCOMES
from app.version import version
from app.vocabulary import TERMINAL_STATUSES, AuthFailureReason, CommandStatus
from otel import (
    HttpServerMetrics,
    Instrumentation,
    MetricLabels,
    TelemetrySettings,
    Tracing,
    TracingSettings,
    build_instrumentation,
    build_tracing,
    log_fields,
    make_resource,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)

# The HTTP routes come from the route table (app/api/routes.py); the WebSocket is its own.
ROUTES: list[Route | WebSocketRoute] = [
    *routing.routes(ENDPOINTS),
    WebSocketRoute("/ws/responses/{command_id}", ws.response_stream),
]


# The metrics' label values, from the vocabulary: each pre-registered at 0.
METRIC_LABELS = MetricLabels(
    command_statuses=tuple(TERMINAL_STATUSES),
    timeout_status=CommandStatus.TIMEOUT,
    auth_failure_reasons=tuple(AuthFailureReason),
    command_names=METRIC_COMMANDS,
    refused_status=REFUSED,
    refusal_codes=frozenset(REFUSAL_CODES),
    vehicle_services=tuple(uds.SERVICE_NAMES.values()),
    vehicle_outcomes=UDS_OUTCOMES,
)


def telemetry_settings(config: Config) -> TelemetrySettings:
    return TelemetrySettings(
        service_version=version(),
        otlp_endpoint=config.otlp_endpoint,
        otlp_metrics_endpoint=config.otlp_metrics_endpoint,
        otlp_export_interval_ms=config.otlp_export_interval_ms,
        exemplars=config.tracing_enabled,
    )


def tracing_settings(config: Config) -> TracingSettings:
    endpoint = config.otlp_traces_endpoint
    if endpoint is None and config.otlp_endpoint:
        # The common endpoint is a base URL for HTTP (the signal's path appended) and the
        # collector's address as it is for gRPC.
        base = config.otlp_endpoint.rstrip("/")
        endpoint = base if config.otlp_traces_protocol == "grpc" else base + "/v1/traces"
    return TracingSettings(
        endpoint=endpoint,
        protocol=config.otlp_traces_protocol,
    )


def _shutdowns(otel: Instrumentation | None, tracing: Tracing | None) -> list[Callable[[], object]]:
    """What ends telemetry when the service stops: the meters, then the spans (the batch
    processor exports what it holds), then this app's log lines stop looking for spans."""
    done: list[Callable[[], object]] = []
    if otel is not None:
        done.append(otel.shutdown)
    if tracing is not None:
        done += [tracing.shutdown, lambda: logs.include_context(None)]
    return done


def create_app(
    config: Config,
    *,
    connector: Connector | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The app. ``connector`` replaces the simulator; ``clock`` is the one clock every part
    reads (auth, principal cache, throttles, retention, pipeline; tests pass a fake and
    move it)."""
    streams = StreamRegistry(config.ws_max_connections, config.ws_max_per_user)
    routes = list(ROUTES)
    otel: Instrumentation | None = None
    http_metrics: HttpServerMetrics | None = None
    if config.metrics_enabled:
        otel = build_instrumentation(telemetry_settings(config), METRIC_LABELS)
        routes.append(
            Route(
                METRICS_PATH, MetricsRoute(otel.exposition, config.metrics_token), methods=["GET"]
            )
        )
    api_route_of = routing.route_templates(routes)

    def route_of(scope: Mapping[str, Any]) -> str | None:
        # The console's requests are labelled by their template too, never by raw path.
        return api_route_of(scope) or console.route_template(scope)

    if otel is not None:
        http_metrics = HttpServerMetrics(otel.metrics, route_of)
    # Traces: off unless configured, and then no layer of theirs is installed at all.
    tracing: Tracing | None = None
    if config.tracing_enabled:
        tracing = build_tracing(
            tracing_settings(config),
            make_resource(telemetry_settings(config)),
        )
        logs.include_context(log_fields)
    middleware = [] if tracing is None else [Middleware(tracing.middleware, route_of=route_of)]
    middleware += builders.middleware(config, http_metrics, route_of)
    lifecycle = Lifecycle(
        config,
        connector or builders.simulator_for(config),
        streams,
        clock or Clock(),
        None if otel is None else otel.metrics,
        tracing,
        _shutdowns(otel, tracing),
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            app.state.services = await lifecycle.start()
        except StartupError as exc:
            lifecycle.startup_error = exc  # for python -m app to report in one line
            raise
        try:
            yield
        finally:
            await lifecycle.stop()

    app = Starlette(
        # The console (app/console) last: its page and files are no API endpoints.
        routes=[*routes, *console.routes(config)],
        middleware=middleware,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.streams = streams
    app.state.tracing = tracing or NoTracing()
    app.state.openapi = openapi.render(config.metrics_enabled)
    app.state.lifecycle = lifecycle
    return app
