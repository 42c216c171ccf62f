"""The service's parts built from the configuration: one builder per part.

What touches the OpenTelemetry SDK (``otel``) is built in ``app.main`` alone.

``app.main.Lifecycle`` calls these in order and owns what they return (starting and
stopping it); each builder takes the configuration and the parts it needs, nothing
else, so the order of assembly reads in ``Lifecycle.start``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware

from app.api.middleware import RequestContextMiddleware
from app.bus import Bus
from app.clock import Clock
from app.config import Config
from app.descriptions.intake import PdxLimits
from app.secret_file import load_or_create_secret
from app.services.audit import AuditService
from app.services.auth import AuthService
from app.services.commands import CommandService
from app.services.description_sync import DescriptionSync
from app.services.descriptions import DescriptionLibrary
from app.services.diag_services import DiagServices
from app.services.lanes import LaneOwnership, LaneRouter
from app.services.lock_desk import LockDesk
from app.services.locks import LockService
from app.services.login_throttle import LoginLimits
from app.services.passwords import password_hasher
from app.services.pipeline import Pipeline, PipelineSettings
from app.services.registry import Services
from app.services.retention import Retention
from app.services.shared_limits import COMMAND_RATE, SharedLoginThrottle, SharedWindow
from app.services.sovd.service import Sovd
from app.services.throttle import SlidingWindow
from app.services.tokens import TokenSettings
from app.services.variants import VariantLinks, VariantService
from app.services.vehicle_links import doip_target_of
from app.services.vehicles import VehicleService
from app.store.audit import AuditStore
from app.store.commands import CommandStore
from app.store.description_blobs import DescriptionBlobStore
from app.store.engine import Engine
from app.store.limits import LimitStore
from app.store.users import UserStore
from app.store.vehicles import VehicleStore
from app.telemetry import HttpRecorder, Telemetry, Tracing
from app.vehicles.connector import TransportRouter
from app.vehicles.doip_connector import DoipConnector, DoipSettings, DoipTarget
from app.vehicles.simulator import SimulatedConnector, SimulatorSettings


@dataclass(frozen=True, slots=True)
class Stores:
    """The tables of one database, one store each."""

    users: UserStore
    audit: AuditStore
    commands: CommandStore
    vehicles: VehicleStore
    # A cluster: the limits every node counts against (app.store.limits); else None.
    limits: LimitStore | None = None

    @classmethod
    def of(cls, db: Engine, limits: LimitStore | None = None) -> Stores:
        return cls(UserStore(db), AuditStore(db), CommandStore(db), VehicleStore(db), limits)


def shared_limits(config: Config) -> LimitStore | None:
    """On a cluster (PostgreSQL and NATS both set: several nodes), the login throttle and
    the command rate count in the shared database (app.services.shared_limits); a single
    node (SQLite, or PostgreSQL alone, which admits one process) keeps them in memory."""
    if not config.cluster or config.database_url is None:
        return None
    from app.store.pg_limits import PgLimits  # asyncpg: loaded only when PostgreSQL is used

    return PgLimits(config.database_url)


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


def variant_service(config: Config) -> VariantService:
    return VariantService(config.command_timeout_s, config.call_queue_wait_s)


def doip_connector(config: Config, vehicles: VehicleStore, links: VariantLinks) -> DoipConnector:
    """The connector of vehicles with transport doip: each target read from the store."""

    async def resolve(vehicle_id: str) -> DoipTarget | None:
        vehicle = await vehicles.get(vehicle_id)
        return None if vehicle is None else doip_target_of(vehicle)

    return DoipConnector(resolve, doip_settings(config), links)


def pipeline(
    config: Config,
    commands: CommandStore,
    bus: Bus,
    router: TransportRouter,
    telemetry: Telemetry,
    clock: Clock,
    tracing: Tracing | None,
) -> Pipeline:
    settings = PipelineSettings(
        config.command_timeout_s,
        config.vehicle_queue_size,
        config.vehicle_queue_per_user,
        config.max_chunks_per_command,
    )
    return Pipeline(commands, bus, router, telemetry, settings, clock, tracing)


def auth_service(config: Config, stores: Stores, telemetry: Telemetry, clock: Clock) -> AuthService:
    """Authentication, signing with SOVD_JWT_SECRET or the one generated into the data
    directory on the first start."""
    secret = config.jwt_secret or load_or_create_secret(config.data_dir / "jwt_secret")
    return AuthService(
        stores.users,
        stores.audit,
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
            clock.monotonic,
        ),
        hasher=password_hasher(config.password_hash_profile),
        clock=clock,
        shared_throttle=None
        if stores.limits is None
        else SharedLoginThrottle(
            stores.limits, config.login_max_failures, config.login_window_s, clock
        ),
    )


def description_library(config: Config) -> DescriptionLibrary:
    limits = PdxLimits(config.pdx_max_bytes, config.pdx_max_unpacked_bytes, config.pdx_max_entries)
    return DescriptionLibrary(config.data_dir, limits)


def description_sync(
    config: Config, db: Engine, bus: Bus, library: DescriptionLibrary, clock: Clock
) -> DescriptionSync | None:
    """On a cluster, the description library every node shares (in the database); a
    single node keeps its files on disk only (None)."""
    if not config.cluster:
        return None
    blobs = DescriptionBlobStore(db)
    return DescriptionSync(library, blobs, bus, clock, config.description_sync_s)


def retention(config: Config, stores: Stores, clock: Clock) -> Retention:
    """Dead sessions go daily; commands and audit rows only with retention_days."""
    return Retention(
        stores.commands, stores.users, stores.audit, config.retention_days, clock=clock
    )


def lock_service(config: Config, pipeline: Pipeline, clock: Clock) -> LockService:
    # A lock withdraws the other users' queued commands it covers (from pipeline).
    return LockService(clock, max_per_user=config.locks_per_user, pipeline=pipeline)


def command_service(
    config: Config,
    stores: Stores,
    pipeline: Pipeline,
    bus: Bus,
    clock: Clock,
    locks: LockService,
    diag: DiagServices,
    descriptions: DescriptionLibrary,
    lanes: LaneRouter | None = None,
) -> CommandService:
    rate = config.command_rate_per_min
    shared = stores.limits is not None
    return CommandService(
        stores.commands,
        stores.vehicles,
        pipeline,
        bus,
        SlidingWindow(rate, 60.0, clock.monotonic) if rate and not shared else None,
        clock,
        locks=locks,
        diag=diag,
        descriptions=descriptions,  # the simulator emulates bound ECUs from them
        lanes=lanes,
        shared_rate=SharedWindow(stores.limits, COMMAND_RATE, rate, 60.0, clock)
        if rate and stores.limits is not None
        else None,
    )


LANE_LOST: Final = "this node lost the vehicle's lane (its database lease) while the command ran"


def lane_ownership(
    config: Config,
    db: Engine,
    bus: Bus,
    stores: Stores,
    vehicles: VehicleService,
    pipeline: Pipeline,
    telemetry: Telemetry,
    clock: Clock,
) -> tuple[LaneOwnership, LaneRouter] | None:
    """On a cluster (PostgreSQL and NATS), the lanes this node runs and the router that
    sends the others' calls to their owners; None on a single node. The vehicles' DoIP
    links follow the lanes taken and lost; the commands of lanes whose lease was lost
    end interrupted."""
    if not config.cluster:
        return None
    leases, requests = db.leases(), bus.requests()
    if leases is None or requests is None:
        return None
    ownership = LaneOwnership(
        leases,
        requests,
        stores.vehicles,
        stores.commands,
        bus,
        telemetry,
        clock,
        config.lane_sweep_s,
    )
    ownership.follow_links(vehicles.start_links, vehicles.stop_links)
    # vehicle_connections_active: this node's lanes only, so a sum over nodes is the fleet.
    vehicles.connected_gauge.scope(ownership.owns, lambda: ownership.owned)
    ownership.when_owned_changes(vehicles.connected_gauge.refresh)
    ownership.when_lost(lambda ids: pipeline.stop_lanes(ids, LANE_LOST))
    return ownership, LaneRouter(ownership, requests)


def middleware(
    config: Config,
    http_metrics: HttpRecorder | None,
    route_of: Callable[[Mapping[str, Any]], str | None],
) -> list[Middleware]:
    """The request context (ids, body limits and deadline, HTTP metrics), then CORS."""
    made = [
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
        made.append(
            Middleware(
                CORSMiddleware,
                allow_origins=list(config.cors_origins),
                allow_methods=["GET", "POST", "PATCH", "DELETE"],
                allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                expose_headers=["X-Request-ID", "Location", "Retry-After"],
                max_age=600,
            )
        )
    return made


def services(
    config: Config,
    db: Engine,
    stores: Stores,
    bus: Bus,
    pipeline: Pipeline,
    auth: AuthService,
    vehicles: VehicleService,
    descriptions: DescriptionLibrary,
    variants: VariantService,
    telemetry: Telemetry,
    clock: Clock,
    lanes: LaneRouter | None = None,
) -> Services:
    """The services the API calls, over the parts started before them."""
    locks = lock_service(config, pipeline, clock)
    diag = DiagServices(descriptions, variants)
    commands = command_service(
        config, stores, pipeline, bus, clock, locks, diag, descriptions, lanes
    )
    sovd = Sovd.build(
        vehicles, commands, config.command_timeout_s, config.call_queue_wait_s, diag, clock
    )
    return Services(
        config=config,
        db=db,
        bus=bus,
        pipeline=pipeline,
        auth=auth,
        vehicles=vehicles,
        commands=commands,
        audit=AuditService(stores.audit),
        telemetry=telemetry,
        locks=locks,
        lock_desk=LockDesk(locks, lanes),
        sovd=sovd,
        descriptions=descriptions,
        diag=diag,
        variants=variants,
        lanes=None if lanes is None else lanes.ownership,
    )
