"""``vehicle_connections_active`` as this node exports it (``ConnectedGauge``).

On one node the gauge is the fleet's count of connected vehicles, taken in the same
transaction as the write that changed it. On a cluster every node reads the same
database, so each exporting the fleet's count would make a sum over instances count each
vehicle once per node: there a node exports only the connected vehicles whose lane it
runs (``scope``), and ``sum without (instance)`` over the nodes is the fleet again. The
lane owner holds a DoIP vehicle's link, so it writes that vehicle's status and refreshes
at once; a simulated vehicle's status set through another node reaches its owner's
gauge at the owner's next lane sweep (``SOVD_LANE_SWEEP_S``), when every node refreshes.

Refreshes are serialised, each reading after the write it follows committed, so the
last one to run sets what the database holds now.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from app.errors import StorageUnavailable
from app.store.vehicles import VehicleStore
from app.telemetry import Telemetry

log = logging.getLogger(__name__)


class ConnectedGauge:
    def __init__(self, store: VehicleStore, telemetry: Telemetry) -> None:
        self._store = store
        self._telemetry = telemetry
        self._owns: Callable[[str], bool] | None = None  # None: every lane is this node's
        self._owned: Callable[[], int] = lambda: 1
        self._lock = asyncio.Lock()

    def scope(self, owns: Callable[[str], bool], owned: Callable[[], int]) -> None:
        """A cluster: count only the vehicles ``owns`` says this node runs (``owned``:
        how many it runs; none, and the gauge is 0 without asking the database)."""
        self._owns, self._owned = owns, owned

    async def report(self, fleet_connected: int) -> None:
        """A write just counted ``fleet_connected`` vehicles connected in the fleet."""
        if self._owns is None:
            self._telemetry.vehicles_connected(fleet_connected)
        else:
            await self.refresh()

    async def refresh(self) -> None:
        """Count again from the database (a cluster: the lanes taken or lost, a sweep);
        a database that cannot answer now leaves the gauge as it was."""
        async with self._lock:
            try:
                count = await self._count()
            except (StorageUnavailable, OSError, TimeoutError) as exc:
                log.warning(
                    "could not count the connected vehicles (%s)",
                    type(exc).__name__,
                    extra={"event": "connected_gauge_failed"},
                )
                return
            self._telemetry.vehicles_connected(count)

    async def _count(self) -> int:
        owns = self._owns
        if owns is None:
            return await self._store.count_connected()
        if not self._owned():
            return 0
        return sum(1 for vehicle_id in await self._store.connected_ids() if owns(vehicle_id))
