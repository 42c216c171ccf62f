"""DoIP links as the fleet sees them: the connector's ``LinkObserver``.

A link coming up or going down becomes the vehicle's ``connection_status`` (and what the
vehicle last sent its ``last_seen_at``); the ``vehicle_connections_active`` gauge is set
from the store after each write (``app.services.fleet_gauge``: on a cluster, of the
lanes this node runs), so it counts simulated vehicles by the status an admin
gave them and DoIP vehicles while their link is up. Losses and per-service UDS latency
go to telemetry at once.

The observer is called on the event loop by the connector, in the middle of its
bookkeeping: it never awaits. Store writes are coalesced (the newest status and
last-seen time per vehicle) and written by one guarded task; a burst of events is one
transaction, and a write the database refuses is logged and left to the next event.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from app.errors import StorageUnavailable
from app.models import Vehicle
from app.services.fleet_gauge import ConnectedGauge
from app.store.vehicles import VehicleStore
from app.telemetry import Telemetry
from app.vehicles.doip_observer import LinkDownReason
from app.vehicles.doip_settings import DoipTarget
from app.vocabulary import ConnectionStatus, Transport

log = logging.getLogger(__name__)


class LinkControl(Protocol):
    """What the fleet asks of the DoIP connector (``DoipConnector``)."""

    async def disconnect(self, vehicle_id: str) -> None: ...

    def keep_up(self, vehicle_id: str, on: bool) -> None: ...


class NoLinkControl:
    async def disconnect(self, vehicle_id: str) -> None:
        pass

    def keep_up(self, vehicle_id: str, on: bool) -> None:
        pass


class VehicleLinks:
    """The service's ``LinkObserver`` (see the module docstring)."""

    def __init__(self, store: VehicleStore, telemetry: Telemetry, gauge: ConnectedGauge) -> None:
        self._store = store
        self._telemetry = telemetry
        self._gauge = gauge
        # vehicle -> (newest status, newest last_seen_at); None: unchanged.
        self._pending: dict[str, tuple[ConnectionStatus | None, str | None]] = {}
        self._writer: asyncio.Task[None] | None = None

    # -- LinkObserver ---------------------------------------------------------------

    def link_up(self, vehicle_id: str, at: str) -> None:
        self._note(vehicle_id, ConnectionStatus.CONNECTED, at)

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None:
        if reason == "lost":
            self._telemetry.vehicle_connection_lost()
        self._note(vehicle_id, ConnectionStatus.DISCONNECTED, None)

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None:
        log.info(
            "DoIP vehicle %s could not be reached: %s",
            vehicle_id,
            reason,
            extra={"event": "doip_connect_failed", "vehicle_id": vehicle_id},
        )

    def vehicle_seen(self, vehicle_id: str, at: str) -> None:
        self._note(vehicle_id, None, at)

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        self._telemetry.vehicle_request(service, outcome, duration_s)

    # -- the writer ---------------------------------------------------------------------

    def _note(self, vehicle_id: str, status: ConnectionStatus | None, seen: str | None) -> None:
        old_status, old_seen = self._pending.get(vehicle_id, (None, None))
        self._pending[vehicle_id] = (status or old_status, seen or old_seen)
        if self._writer is None:
            self._writer = asyncio.get_running_loop().create_task(
                self._write(), name="vehicle-links-writer"
            )

    async def _write(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, {}
                try:
                    connected = await self._store.set_links(batch)
                except StorageUnavailable:
                    log.warning(
                        "could not store the DoIP link state of %d vehicle(s)",
                        len(batch),
                        extra={"event": "doip_link_store_failed"},
                    )
                    continue
                await self._gauge.report(connected)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("storing DoIP link states failed", extra={"event": "doip_link_error"})
        finally:
            self._writer = None

    async def flush(self) -> None:
        """Wait until every state noted so far is written (or failed to be)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)


def doip_target_of(vehicle: Vehicle) -> DoipTarget | None:
    """The connector's target for a vehicle; None if it is not a DoIP vehicle (any more)."""
    spec = vehicle.doip
    if vehicle.transport is not Transport.DOIP or spec is None:
        return None
    return DoipTarget(
        spec.host,
        logical_address=int(spec.logical_address, 16),
        port=spec.port,
        tester_address=int(spec.tester_address, 16),
        ecu_addresses=tuple(int(a, 16) for a in spec.ecu_addresses),
    )
