"""Assembles the service: routes, middleware, and the lifespan that owns every part.

Nothing imports this module; it imports everything. ``create_app(config)`` builds an
app whose lifespan opens the database, recovers commands a crash left unfinished,
creates the first users and demo fleet, starts telemetry, and on the way out drains
the pipeline, closes the response streams and the database.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route, WebSocketRoute

from app import console, logs
from app.api import contract, openapi, ws
from app.api.errors import EXCEPTION_HANDLERS
from app.api.metrics import METRICS_PATH, MetricsRoute
from app.api.middleware import RequestContextMiddleware
from app.api.routes import ENDPOINTS
from app.bus import EventBus
from app.clock import Clock
from app.config import Config
from app.datadir import DataDirLock
from app.descriptions.intake import PdxLimits
from app.errors import StartupError
from app.models import SYSTEM_ACTOR
from app.secret_file import load_or_create_secret
from app.services.audit import AuditService
from app.services.auth import AuthService, TokenSettings, password_hasher
from app.services.commands import CommandService
from app.services.descriptions import DescriptionLibrary
from app.services.diag_services import DiagServices
from app.services.locks import LockService
from app.services.pipeline import Pipeline, PipelineSettings
from app.services.registry import Services
from app.services.retention import Retention
from app.services.sovd.service import AccessEnded, Sovd
from app.services.throttle import LoginLimits, SlidingWindow
from app.services.variants import VariantLinks, VariantService
from app.services.vehicle_links import VehicleLinks, doip_target_of
from app.services.vehicles import DEMO_DOIP_VIN, VehicleService
from app.store.audit import AuditStore
from app.store.commands import CommandStore
from app.store.database import Database
from app.store.users import UserStore
from app.store.vehicles import VehicleStore
from app.telemetry import (
    METRIC_COMMANDS,
    REFUSAL_CODES,
    REFUSED,
    NoTelemetry,
    NoTracing,
    Telemetry,
)
from app.vehicles import uds
from app.vehicles.connector import Connector, TransportRouter
from app.vehicles.doip_connector import DoipConnector, DoipSettings, DoipTarget
from app.vehicles.doip_link import UDS_OUTCOMES
from app.vehicles.pdx.demo import DEMO_PDX_NAME, build_demo_pdx
from app.vehicles.simulator import SimulatedConnector, SimulatorSettings
from app.vocabulary import TERMINAL_STATUSES, AuthFailureReason, CommandStatus, FailureCode
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
    from app.vehicles.emulator.server import DoipEmulator

log = logging.getLogger(__name__)

STREAM_CLOSE_TIMEOUT_S = 5.0

# The HTTP routes come from the route table (app/api/routes.py); the WebSocket is its own.
ROUTES: list[Route | WebSocketRoute] = [
    *contract.routes(ENDPOINTS),
    WebSocketRoute("/ws/responses/{command_id}", ws.response_stream),
]


def route_templates(
    routes: list[Route | WebSocketRoute],
) -> Callable[[Mapping[str, Any]], str | None]:
    """The matched route's template, so HTTP metrics carry
    /api/v1/commands/{command_id}, never a raw path."""
    templates: dict[object, str] = {route.endpoint: route.path for route in routes}

    def route_template(scope: Mapping[str, Any]) -> str | None:
        return templates.get(scope.get("endpoint"))

    return route_template


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
# Where SOVD_DEMO_EMULATOR's in-process ECU emulator listens (port: any free one).
DEMO_EMULATOR_HOST = "127.0.0.1"


def telemetry_settings(config: Config) -> TelemetrySettings:
    try:
        version = importlib.metadata.version("sovd-command-service")
    except importlib.metadata.PackageNotFoundError:
        version = ""
    return TelemetrySettings(
        service_name=config.otel_service_name,
        service_version=version,
        resource_attributes=config.otel_resource_attributes,
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
        sampler=config.traces_sampler,
        sampler_arg=config.traces_sampler_arg,
    )


def simulator_for(config: Config) -> SimulatedConnector:
    return SimulatedConnector(
        SimulatorSettings(
            seed=config.sim_seed,
            latency_ms=config.sim_latency_ms,
            self_test_s=config.sim_self_test_s,
            p_timeout=config.sim_p_timeout,
            p_unreachable=config.sim_p_unreachable,
            p_malformed=config.sim_p_malformed,
        )
    )


def doip_settings(config: Config) -> DoipSettings:
    return DoipSettings(
        p2_s=config.doip_p2_ms / 1000,
        p2_star_s=config.doip_p2_star_ms / 1000,
        connect_timeout_s=config.doip_connect_timeout_s,
        idle_close_s=config.doip_idle_close_s,
        tester_present_s=config.doip_tester_present_s,
        backoff_first_s=config.doip_backoff_first_s,
        backoff_max_s=config.doip_backoff_max_s,
    )


def provide_demo_description(descriptions: DescriptionLibrary) -> None:
    """The demo description (``app.vehicles.pdx.demo``) into the description library, as
    the demo vehicles are seeded with their ECUs bound to it: built in the background
    (building takes a second), never over a file there; meanwhile it is listed as
    loading, as any description at start."""
    if descriptions.provide(DEMO_PDX_NAME, build_demo_pdx):
        log.info(
            "the demo description %s is being built",
            DEMO_PDX_NAME,
            extra={"event": "demo_description", "description": DEMO_PDX_NAME},
        )
    else:
        log.warning(
            "the demo description was not stored: a file named %s is there already (the"
            " demo ECUs are bound to the containers it has, if any)",
            DEMO_PDX_NAME,
            extra={"event": "demo_description_skipped", "description": DEMO_PDX_NAME},
        )


class Lifecycle:
    """Starts the service's parts and stops them in the right order, once."""

    def __init__(
        self,
        config: Config,
        connector: Connector,
        streams: ws.StreamRegistry,
        otel: Instrumentation | None,
        clock: Clock,
        tracing: Tracing | None = None,
    ) -> None:
        self._clock = clock
        self._tracing = tracing
        self._config = config
        self._connector = connector
        self._streams = streams
        self._telemetry: Telemetry = otel.metrics if otel is not None else NoTelemetry()
        self._otel = otel
        self.services: Services | None = None
        self.retention: Retention | None = None
        self._drained = False
        self._lock = DataDirLock(config.data_dir)
        self.startup_error: StartupError | None = None
        self.started = asyncio.Event()  # set once every part has started
        # Vehicles with transport doip (built at start: the targets live in the store).
        self.doip: DoipConnector | None = None
        self.links: VehicleLinks | None = None
        self.emulator: DoipEmulator | None = None  # SOVD_DEMO_EMULATOR

    async def start(self) -> Services:
        config = self._config
        telemetry = self._telemetry
        # First of all: a second process on this database would end our live commands
        # as interrupted in its crash recovery.
        self._lock.acquire()
        db = Database(config.db_path)
        try:
            await db.open()
        except BaseException:
            self._lock.release()
            raise
        try:
            secret = config.jwt_secret or load_or_create_secret(config.data_dir / "jwt_secret")
            user_store, audit_store = UserStore(db), AuditStore(db)
            command_store, vehicle_store = CommandStore(db), VehicleStore(db)
            bus = EventBus(config.ws_queue_size)
            links = self.links = VehicleLinks(vehicle_store, telemetry)

            async def resolve(vehicle_id: str) -> DoipTarget | None:
                vehicle = await vehicle_store.get(vehicle_id)
                return None if vehicle is None else doip_target_of(vehicle)

            # Identified ECU variants are forgotten when a vehicle's link goes down.
            variants = VariantService(config.command_timeout_s, config.call_queue_wait_s)
            doip = self.doip = DoipConnector(
                resolve, doip_settings(config), VariantLinks(links, variants)
            )
            pipeline = Pipeline(
                command_store,
                bus,
                TransportRouter(self._connector, doip),
                telemetry,
                PipelineSettings(
                    config.command_timeout_s,
                    config.vehicle_queue_size,
                    config.vehicle_queue_per_user,
                    config.max_chunks_per_command,
                ),
                self._clock,
                self._tracing,
            )
            auth_service = AuthService(
                user_store,
                audit_store,
                TokenSettings(
                    secret,
                    config.access_token_ttl_s,
                    config.refresh_token_ttl_s,
                    config.session_max_age_s,
                    config.refresh_retry_grace_s,
                ),
                telemetry,
                LoginLimits(
                    config.login_max_failures,
                    config.login_window_s,
                    config.login_max_concurrent,
                    config.login_audit_per_min,
                    self._clock.monotonic,
                ),
                hasher=password_hasher(config.password_hash_profile),
                clock=self._clock,
            )
            # ECU descriptions (started below): binding an ECU checks its container.
            descriptions = DescriptionLibrary(
                config.data_dir,
                PdxLimits(
                    config.pdx_max_bytes, config.pdx_max_unpacked_bytes, config.pdx_max_entries
                ),
            )
            vehicle_service = VehicleService(
                vehicle_store, telemetry, self._clock, doip, containers=descriptions
            )
            # Logout, disabling and deleting a user close the affected streams at once.
            auth_service.on_revocation(self._streams)
            interrupted = await command_store.interrupt_active(
                self._clock.timestamp(),
                "the service stopped before the command finished; it was not re-sent",
            )
            if interrupted:
                log.warning(
                    "ended %d commands left unfinished by the last run as interrupted",
                    len(interrupted),
                    extra={"event": "recovery"},
                )
                for _, name in interrupted:
                    # Counted, but no duration sample: how long they ran is unknown.
                    telemetry.command_finished(
                        name, CommandStatus.FAILED, FailureCode.INTERRUPTED, None
                    )
            await auth_service.ensure_initial_users(
                config.admin_password, config.engineer_password, SYSTEM_ACTOR
            )
            seeded = config.demo_data and bool(await vehicle_service.seed_demo())
            if seeded:
                log.info("added the demo fleet", extra={"event": "demo_data"})
            await vehicle_service.report_connected()
            if config.demo_emulator:
                seeded = await self._start_emulator(vehicle_service) or seeded
            if seeded:  # the demo vehicles' ECUs are bound to the demo description
                provide_demo_description(descriptions)
            # DoIP vehicles are disconnected until their link is up; the always-on ones
            # connect now (in the background: start-up does not wait for a vehicle).
            always_on = await vehicle_service.start_links()
            doip.start()
            if always_on:
                log.info(
                    "connecting %d always-on DoIP vehicle(s)",
                    len(always_on),
                    extra={"event": "doip_always_on"},
                )
        except BaseException:
            await self._close_doip()
            await db.close()
            self._lock.release()
            raise
        # Always: dead sessions go daily; commands and audit rows only with retention_days.
        self.retention = Retention(
            command_store, user_store, audit_store, config.retention_days, clock=self._clock
        )
        self.retention.start()
        # A lock withdraws the other users' queued commands it covers (from pipeline).
        locks = LockService(self._clock, max_per_user=config.locks_per_user, pipeline=pipeline)
        diag = DiagServices(descriptions, variants)
        commands = CommandService(
            command_store,
            vehicle_store,
            pipeline,
            bus,
            SlidingWindow(config.command_rate_per_min, 60.0, self._clock.monotonic)
            if config.command_rate_per_min
            else None,
            self._clock,
            locks=locks,
            diag=diag,
            descriptions=descriptions,  # the simulator emulates bound ECUs from them
        )
        variants.attach(commands)  # identification runs as DiagService commands
        # ECU descriptions: what is on disk loads in the background (the service answers).
        descriptions.start()
        self.services = Services(
            config=config,
            db=db,
            bus=bus,
            pipeline=pipeline,
            auth=auth_service,
            vehicles=vehicle_service,
            commands=commands,
            audit=AuditService(audit_store),
            telemetry=telemetry,
            locks=locks,
            sovd=Sovd.build(
                vehicle_service,
                commands,
                config.command_timeout_s,
                config.call_queue_wait_s,
                diag,
                self._clock,
            ),
            descriptions=descriptions,
            diag=diag,
            variants=variants,
        )
        auth_service.on_revocation(AccessEnded(locks, self.services.sovd.modes))
        self.started.set()
        return self.services

    async def _start_emulator(self, vehicles: VehicleService) -> bool:
        """SOVD_DEMO_EMULATOR: the ECU emulator on a free loopback port, and the demo
        fleet's DoIP vehicle pointing at it; whether that vehicle was added now."""
        # Imported here: the DoIP emulator is demo equipment, not loaded unless asked for.
        from app.vehicles.emulator.server import DoipEmulator, EmulatorSettings

        self.emulator = DoipEmulator(EmulatorSettings(vin=DEMO_DOIP_VIN))
        port = await self.emulator.start(DEMO_EMULATOR_HOST, 0)
        vehicle, added = await vehicles.add_doip_demo(DEMO_EMULATOR_HOST, port)
        log.info(
            "ECU emulator listening on %s:%d for DoIP vehicle %s",
            DEMO_EMULATOR_HOST,
            port,
            DEMO_DOIP_VIN,
            extra={"event": "demo_emulator", "vehicle_id": vehicle and vehicle.vehicle_id},
        )
        return added

    async def _close_doip(self) -> None:
        """The DoIP links (their threads end), the last link states stored, the emulator."""
        try:
            if self.doip is not None:
                await self.doip.aclose()
            if self.links is not None:
                await self.links.flush()
        finally:
            if self.emulator is not None:
                await self.emulator.close()

    async def drain(self, grace_s: float) -> None:
        """Stop taking commands, let running ones finish within ``grace_s``, close the
        response streams (1001), and end whatever is left as interrupted."""
        if self._drained or self.services is None:
            return
        self._drained = True
        await self.services.pipeline.drain(grace_s)
        await self._streams.close_all(STREAM_CLOSE_TIMEOUT_S)
        await self.services.pipeline.close()

    async def stop(self) -> None:
        if self.services is None:
            return
        try:
            if self.retention is not None:
                await self.retention.stop()
            await self.services.sovd.aclose()  # no session expiry outlives the service
            await self.services.descriptions.aclose()  # a loader process ends with us
            await self.drain(0)
        finally:
            try:
                # After the pipeline: no command uses a link any more; before the
                # database: the links' last states are written.
                await self._close_doip()
            finally:
                await self.services.db.close()
            self._lock.release()
            if self._otel is not None:
                self._otel.shutdown()
            if self._tracing is not None:
                self._tracing.shutdown()  # the batch processor exports what it holds
                logs.include_context(None)  # this app's lines no longer look for spans


def create_app(
    config: Config,
    *,
    connector: Connector | None = None,
    clock: Clock | None = None,
) -> Starlette:
    """The app. ``connector`` replaces the simulator; ``clock`` is the one clock every part
    reads (auth, principal cache, throttles, retention, pipeline; tests pass a fake and
    move it)."""
    streams = ws.StreamRegistry(config.ws_max_connections, config.ws_max_per_user)
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
    api_route_of = route_templates(routes)

    def route_of(scope: Mapping[str, Any]) -> str | None:
        # The console's requests are labelled by their template too, never by raw path.
        return api_route_of(scope) or console.route_template(scope)

    if otel is not None:
        http_metrics = HttpServerMetrics(otel.metrics, route_of)
    # Traces: off unless configured, and then no layer of theirs is installed at all.
    tracing: Tracing | None = None
    if config.tracing_enabled:
        tracing = build_tracing(tracing_settings(config), make_resource(telemetry_settings(config)))
        logs.include_context(log_fields)
    middleware = [] if tracing is None else [Middleware(tracing.middleware, route_of=route_of)]
    middleware += [
        Middleware(
            RequestContextMiddleware,
            drain_limit=config.max_body_bytes,
            http_metrics=http_metrics,
            route_of=route_of,
            body_timeout_s=config.request_timeout_s,
        )
    ]
    if config.cors_origins:
        # Off unless origins are listed; bearer tokens, so no cookies (credentials) needed.
        middleware.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID", "Location", "Retry-After"],
                max_age=600,
            )
        )
    lifecycle = Lifecycle(
        config, connector or simulator_for(config), streams, otel, clock or Clock(), tracing
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
