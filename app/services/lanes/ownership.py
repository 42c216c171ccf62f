"""Which vehicles' lanes this node runs (``LaneOwnership``), by lease (``app.store.leases``).

A node takes every lane no node holds: at start, then on a sweep every
``SOVD_LANE_SWEEP_S`` (so a dead owner's lanes move within about that long, once its
database session is gone), and on first use (a submission for a vehicle whose lane
nobody serves). Taking a lane first ends the commands its previous owner left unfinished
as interrupted (stored, then the terminal event published, so a stream on any node ends):
only the lane's new owner does that, and only for that lane, since only it may run the
lane now. Then the lane is served: the bus subject other nodes forward its submissions
to (``app.services.lanes.forwarding``).

Takes are serialised (one at a time on this node), so a command is never queued on a
lane whose orphans are still being interrupted. A node whose lease connection was lost
has lost every lease with it: it stops serving them all, tells ``when_lost`` (the
pipeline ends what it still runs of them as interrupted) and takes free lanes again like
any other node; the first stored end of a command stands (a terminal state never
changes).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Final

from app.bus import Bus
from app.bus.requests import Requests, Served
from app.bus.wire import lane_subject
from app.clock import Clock
from app.errors import Overloaded, StorageUnavailable
from app.events import terminal_event
from app.logs import Sampler
from app.store.commands import CommandStore
from app.store.leases import LeaseLost, Leases
from app.store.vehicles import VehicleStore
from app.telemetry import Telemetry
from app.vocabulary import CommandStatus, FailureCode

log = logging.getLogger(__name__)

TAKE_BATCH: Final = 500  # vehicles tried in one statement (PostgreSQL's parameter cap)
WARN_INTERVAL_S: Final = 30.0
INTERRUPTED_MESSAGE: Final = (
    "the node running the command stopped before it finished; it was not re-sent"
)

Handler = Callable[[bytes], Awaitable[bytes]]


class LaneOwnership:
    def __init__(
        self,
        leases: Leases,
        requests: Requests,
        vehicles: VehicleStore,
        commands: CommandStore,
        bus: Bus,
        telemetry: Telemetry,
        clock: Clock,
        sweep_s: float,
    ) -> None:
        self._leases = leases
        self._requests = requests
        self._vehicles = vehicles
        self._commands = commands
        self._bus = bus
        self._telemetry = telemetry
        self._clock = clock
        self.sweep_s = sweep_s
        self._handler: Handler | None = None
        # The DoIP links follow the lanes: kept up by the owner only (follow_links).
        self._links_taken: Callable[[list[str]], Awaitable[object]] | None = None
        self._links_lost: Callable[[list[str]], object] | None = None
        self._lanes_lost: list[Callable[[list[str]], object]] = []
        # After the lanes served changed, and after each sweep (the fleet gauges).
        self._owned_changed: Callable[[], Awaitable[None]] | None = None
        self._served: dict[str, Served] = {}  # the lanes this node runs
        self._taking = asyncio.Lock()
        self._sweeper: asyncio.Task[None] | None = None
        self._warn = Sampler(WARN_INTERVAL_S)
        self.lost = 0  # times this node lost its leases (its connection)

    def serve_with(self, handler: Handler) -> None:
        """What answers the submissions other nodes forward to this node's lanes."""
        self._handler = handler

    def follow_links(
        self,
        taken: Callable[[list[str]], Awaitable[object]],
        lost: Callable[[list[str]], object],
    ) -> None:
        """``taken(ids)`` when this node takes lanes (their links went with their last
        owner: marked down, the always-on ones kept up from now), ``lost(ids)`` when it
        stops running them."""
        self._links_taken, self._links_lost = taken, lost

    def when_lost(self, lost: Callable[[list[str]], object]) -> None:
        """``lost(ids)`` when this node's leases were lost with their connection (not at
        a shutdown): what it still runs of those lanes must stop, another node may be
        running them now. Each listener is told, in the order they came."""
        self._lanes_lost.append(lost)

    def when_owned_changes(self, changed: Callable[[], Awaitable[None]]) -> None:
        """``changed()`` once the lanes this node runs changed (taken, lost) and after
        every sweep: what this node exports of the fleet follows its lanes."""
        self._owned_changed = changed

    def owns(self, vehicle_id: str) -> bool:
        return vehicle_id in self._served

    @property
    def owned(self) -> int:
        return len(self._served)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the leases, take what is free now, then sweep in the background."""
        await self._leases.open()
        await self.sweep()
        self._sweeper = asyncio.create_task(self._sweep_loop(), name="lane-sweep")

    async def stop_serving(self) -> None:
        """Stop the sweep and take no more forwarded submissions (shutdown, first);
        the leases are kept until ``close``, after this node's commands have ended."""
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self._unserve()

    async def close(self) -> None:
        """Release every lease: another node may take the lanes now."""
        await self.stop_serving()
        await self._leases.close()

    # -- taking lanes ------------------------------------------------------------------

    async def sweep(self) -> None:
        """Take every lane no node holds (and notice a lost lease connection)."""
        try:
            ids = await self._vehicles.ids()
            async with self._taking:
                # Which are free is read under the lock: a first use may have taken one
                # while this waited, and taking a lane this node runs again (its lease is
                # re-entrant) would end the commands it runs as a dead owner's.
                free = [v for v in ids if v not in self._served]
                for start in range(0, max(len(free), 1), TAKE_BATCH):
                    await self._take(free[start : start + TAKE_BATCH])
            await self._changed()
        except LeaseLost as exc:
            await self._lost(exc)
        except (StorageUnavailable, OSError, TimeoutError) as exc:
            if self._warn.allow() is not None:
                log.warning(
                    "lane sweep: the database cannot be used now (%s)",
                    type(exc).__name__,
                    extra={"event": "lane_sweep_failed"},
                )

    async def take_now(self, vehicle_id: str) -> bool:
        """Take the vehicle's lane if no node holds it (its first use); whether this node
        runs it now."""
        async with self._taking:
            if vehicle_id in self._served:
                return True
            try:
                await self._take([vehicle_id])
            except LeaseLost as exc:
                await self._lost(exc)
                return False
            except (StorageUnavailable, OSError, TimeoutError) as exc:
                # The database, or the bus confirming the lane's subscription, did not
                # answer in time: a 503 to try again, not a 500. A lease taken meanwhile
                # is this node's (taking it again is allowed): the next sweep or call
                # serves it.
                wait = max(1, math.ceil(self.sweep_s))
                raise Overloaded(
                    f"this node could not take over vehicle {vehicle_id}'s commands just now"
                    f" (the database or the bus did not answer in time: {type(exc).__name__});"
                    f" try again in about {wait} s",
                    retry_after=wait,
                ) from None
        return vehicle_id in self._served

    async def _take(self, vehicle_ids: list[str]) -> None:
        taken = await self._leases.take(vehicle_ids)
        if not taken:
            return
        # The dead owner's unfinished commands end first: nothing of ours is queued yet.
        at = self._clock.timestamp()
        ended = await self._commands.interrupt_active(at, INTERRUPTED_MESSAGE, taken)
        for command_id, name in ended:
            self._bus.publish(
                terminal_event(
                    command_id,
                    CommandStatus.FAILED,
                    FailureCode.INTERRUPTED,
                    INTERRUPTED_MESSAGE,
                    at,
                )
            )
            self._telemetry.command_finished(
                name, CommandStatus.FAILED, FailureCode.INTERRUPTED, None
            )
        if self._links_taken is not None:
            await self._links_taken(taken)
        handler = self._handler
        if handler is None:
            raise RuntimeError("serve_with(handler) comes before start")
        for vehicle_id in taken:
            self._served[vehicle_id] = await self._requests.serve(lane_subject(vehicle_id), handler)
        self._telemetry.lanes_owned(len(self._served))
        await self._changed()
        log.info(
            "took %d vehicle lane(s); ended %d command(s) their last owner left as interrupted",
            len(taken),
            len(ended),
            extra={"event": "lanes_taken", "lanes": len(taken), "interrupted": len(ended)},
        )

    async def _lost(self, exc: LeaseLost) -> None:
        self.lost += 1
        lanes = list(self._served)
        log.error(
            "%s: this node stops running its %d lane(s) and takes free ones again",
            exc,
            len(self._served),
            extra={"event": "lanes_lost", "lanes": len(self._served)},
        )
        await self._stop_serving()
        # The lanes stop here before anything waits on the database (the gauge's refresh
        # reads one that is likely failing, for up to its timeouts).
        for lost in self._lanes_lost:
            lost(lanes)
        await self._changed()

    async def _unserve(self) -> None:
        await self._stop_serving()
        await self._changed()

    async def _stop_serving(self) -> None:
        served, self._served = self._served, {}
        self._telemetry.lanes_owned(0)
        if self._links_lost is not None:
            self._links_lost(list(served))
        for handle in served.values():
            await handle.stop()

    async def _changed(self) -> None:
        if self._owned_changed is not None:
            await self._owned_changed()

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the sweep must go on: a lane nobody takes is unusable
                log.exception("lane sweep failed")
