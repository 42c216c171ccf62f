"""The service's parts started and stopped in order, once: ``Lifecycle``.

``app.main.create_app`` builds one and hands it the telemetry it assembled; ``start``
opens the database and the bus, builds the services (``app.builders``), recovers what
a crash left, seeds the demo fleet; ``drain`` and ``stop`` undo it in reverse. It
imports nothing of ``otel`` (only ``app.main`` does).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from app import builders, demo
from app.bus import Bus, open_bus
from app.clock import Clock
from app.config import Config
from app.datadir import DataDirLock
from app.errors import StartupError
from app.models import SYSTEM_ACTOR
from app.services.description_sync import DescriptionSync
from app.services.descriptions import DescriptionLibrary
from app.services.fleet_gauge import ConnectedGauge
from app.services.lanes import LaneOwnership
from app.services.registry import Services
from app.services.relay import Relay
from app.services.retention import Retention
from app.services.sovd.service import AccessEnded
from app.services.variants import VariantLinks
from app.services.vehicle_links import VehicleLinks
from app.services.vehicles import VehicleService
from app.store.commands import CommandStore
from app.store.engine import Engine, open_database
from app.store.limits import LimitStore
from app.telemetry import NoTelemetry, Telemetry, Tracing
from app.vehicles.connector import Connector, TransportRouter
from app.vehicles.doip_connector import DoipConnector
from app.vocabulary import CommandStatus, FailureCode

if TYPE_CHECKING:
    from app.api.ws_streams import StreamRegistry
    from app.vehicles.emulator.server import DoipEmulator

log = logging.getLogger(__name__)

STREAM_CLOSE_TIMEOUT_S = 5.0


class Lifecycle:
    """Starts the service's parts and stops them in the right order, once."""

    def __init__(
        self,
        config: Config,
        connector: Connector,
        streams: StreamRegistry,
        clock: Clock,
        telemetry: Telemetry | None = None,
        tracing: Tracing | None = None,
        on_stop: Sequence[Callable[[], object]] = (),
    ) -> None:
        self._clock = clock
        self._tracing = tracing
        self._config = config
        self._connector = connector
        self._streams = streams
        self._telemetry: Telemetry = telemetry if telemetry is not None else NoTelemetry()
        # Telemetry's shutdowns, last (app.main built the instruments and owns them).
        self._on_stop = tuple(on_stop)
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
        self.lanes: LaneOwnership | None = None  # a cluster: the lanes this node runs
        self._limits: LimitStore | None = None  # a cluster: the shared limits' connection
        self._sync: DescriptionSync | None = None  # a cluster: the shared descriptions

    async def start(self) -> Services:
        config, telemetry, clock = self._config, self._telemetry, self._clock
        db = await self._open_database()
        self._limits = builders.shared_limits(config)
        # The bus (SOVD_BUS_URL: NATS; else in-process); a NATS server out of reach is a
        # start-up error naming the variable.
        bus: Bus = open_bus(config.bus_servers, config.ws_queue_size)
        try:
            await bus.start()
            # A cluster: login throttle and command rate count in the shared database.
            stores = builders.Stores.of(db, self._limits)
            gauge = ConnectedGauge(stores.vehicles, telemetry)
            links = self.links = VehicleLinks(stores.vehicles, telemetry, gauge)
            # Identified ECU variants are forgotten when a vehicle's link goes down.
            variants = builders.variant_service(config)
            doip = self.doip = builders.doip_connector(
                config, stores.vehicles, VariantLinks(links, variants)
            )
            router = TransportRouter(self._connector, doip)
            pipeline = builders.pipeline(
                config, stores.commands, bus, router, telemetry, clock, self._tracing
            )
            auth = builders.auth_service(config, stores, telemetry, clock)
            # ECU descriptions (started below): binding an ECU checks its container.
            descriptions = builders.description_library(config)
            # A cluster: the files every node shares, in this node's directory first.
            self._sync = builders.description_sync(config, db, bus, descriptions, clock)
            if self._sync is not None:
                await self._sync.catch_up()
            vehicles = VehicleService(
                stores.vehicles, telemetry, clock, doip, containers=descriptions, gauge=gauge
            )
            # Logout, disabling and deleting a user close the affected streams at once
            # (on every node: the relay, below, tells the others over the bus).
            auth.on_revocation(self._streams)
            # A cluster: each lane's new owner ends what its dead owner left (app.services.lanes).
            cluster = builders.lane_ownership(
                config, db, bus, stores, vehicles, pipeline, telemetry, clock
            )
            if cluster is None:
                await self._recover(stores.commands)
            await auth.users.ensure_initial_users(
                config.admin_password, config.engineer_password, SYSTEM_ACTOR
            )
            await self._prepare_fleet(vehicles, doip, descriptions)
        except BaseException:
            await self._close_doip()
            await bus.aclose()
            if self._limits is not None:
                await self._limits.close()
            await db.close()
            self._lock.release()
            raise
        self.retention = builders.retention(config, stores, clock)
        self.retention.start()
        services = self.services = builders.services(
            config,
            db,
            stores,
            bus,
            pipeline,
            auth,
            vehicles,
            descriptions,
            variants,
            telemetry,
            clock,
            None if cluster is None else cluster[1],
        )
        variants.attach(services.commands)  # identification runs as DiagService commands
        # ECU descriptions: what is on disk loads in the background (the service answers).
        descriptions.start()
        if self._sync is not None:
            self._sync.start()  # follows the other nodes' additions and removals
        auth.on_revocation(AccessEnded(services.locks, services.sovd.modes))
        # Revocations and lock changes to and from the other nodes (SOVD_BUS_URL).
        Relay(bus, auth, services.locks)
        if cluster is not None:
            self.lanes = cluster[0]
            await self.lanes.start()  # takes the free lanes, then sweeps
        self.started.set()
        return services

    async def _open_database(self) -> Engine:
        # First of all: a second process on this database would end our live commands
        # as interrupted in its crash recovery.
        self._lock.acquire()
        db = open_database(
            self._config.db_path, self._config.database_url, shared=self._config.cluster
        )
        db.shared_cache_s = self._config.cluster_read_cache_s
        try:
            await db.open()
        except BaseException:
            self._lock.release()
            raise
        return db

    async def _recover(self, commands: CommandStore) -> None:
        """End the commands a crash left unfinished as interrupted (never re-sent)."""
        interrupted = await commands.interrupt_active(
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
                self._telemetry.command_finished(
                    name, CommandStatus.FAILED, FailureCode.INTERRUPTED, None
                )

    async def _prepare_fleet(
        self, vehicles: VehicleService, doip: DoipConnector, descriptions: DescriptionLibrary
    ) -> None:
        """The demo fleet (and its emulator, and the demo description its ECUs are bound
        to) when asked for, the links' states, and the always-on DoIP vehicles connecting."""
        config = self._config
        seeded = config.demo_data and bool(await vehicles.seed_demo())
        if seeded:
            log.info("added the demo fleet", extra={"event": "demo_data"})
        await vehicles.report_connected()
        if config.demo_emulator:
            self.emulator, added = await demo.start_emulator(vehicles)
            seeded = added or seeded
        if seeded:  # the demo vehicles' ECUs are bound to the demo description
            demo.provide_description(descriptions)
        # DoIP vehicles are disconnected until their link is up; the always-on ones
        # connect now (in the background: start-up does not wait for a vehicle). On a
        # cluster, those of the lanes this node takes, when it takes them.
        always_on = [] if config.cluster else await vehicles.start_links()
        doip.start()
        if always_on:
            log.info(
                "connecting %d always-on DoIP vehicle(s)",
                len(always_on),
                extra={"event": "doip_always_on"},
            )

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
        if self.lanes is not None:
            await self.lanes.stop_serving()  # forwarded calls find no owner here now
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
            if self._sync is not None:
                await self._sync.aclose()
            await self.services.descriptions.aclose()  # a loader process ends with us
            await self.drain(0)
        finally:
            try:
                # After the pipeline: no command uses a link any more; before the
                # database: the links' last states are written.
                await self._close_doip()
            finally:
                try:
                    if self.lanes is not None:
                        await self.lanes.close()  # our commands have ended: lanes free
                    await self.services.bus.aclose()  # after the pipeline's last event
                finally:
                    if self._limits is not None:
                        shared = self.services.auth.passwords.shared
                        if shared is not None:
                            await shared.settle()  # the give-backs under way land first
                        await self._limits.close()
                    await self.services.db.close()
            self._lock.release()
            for shutdown in self._on_stop:
                shutdown()
