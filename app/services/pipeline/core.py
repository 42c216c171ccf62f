"""The command pipeline: per-vehicle lanes of work, each worked through by one task.

Each vehicle has a lane: a bounded FIFO of accepted commands and at most one task
working through it, so a vehicle answers one diagnostic request at a time, in
submission order, while different vehicles run concurrently. A lane's task exists only
while the lane has work. Admission (places, Retry-After) is ``admission``; running one
command is ``execution``; storing its end is ``ending``. Here: the lanes' tasks,
cancellation and shutdown.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Collection
from typing import Final

from app import catalogue, logs
from app.bus import Bus
from app.clock import Clock
from app.errors import Overloaded
from app.models import Command
from app.services.pipeline.admission import Admission, Lane
from app.services.pipeline.ending import Endings
from app.services.pipeline.entries import (
    NATURAL_ENDS,
    Cancellation,
    Entry,
    Job,
    PipelineSettings,
    Stage,
    cancelled,
    interrupted,
    log,
    resolve,
)
from app.services.pipeline.execution import Execution
from app.store.commands import CommandStore
from app.telemetry import NoTracing, Telemetry, Tracing
from app.vehicles.connector import Connector

SHUTDOWN_RETRY_AFTER_S: Final = 1
# At close, unwritten terminal writes get at least this long even with no grace left.
FINAL_WRITES_MIN_S: Final = 1.0
# While shutdown waits for commands, what it waits for is logged this often.
DRAIN_LOG_INTERVAL_S: Final = 5.0
# At most this many commands are named in one such line.
DRAIN_LOG_NAMED: Final = 5
# The command parameter naming the ECU (an attribute of the command's trace).
ECU_ADDRESS_PARAM: Final = catalogue.ECU_ADDRESS_PARAM


class Pipeline:
    def __init__(
        self,
        store: CommandStore,
        bus: Bus,
        connector: Connector,
        telemetry: Telemetry,
        settings: PipelineSettings,
        clock: Clock | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._clock = clock or Clock()
        self._tracing: Tracing = tracing or NoTracing()
        self._telemetry = telemetry
        self._admission = Admission(settings, self._clock)
        self._lanes = self._admission.lanes
        self._execution = Execution(
            store, bus, connector, telemetry, settings, self._clock, self._tracing
        )
        self._endings = Endings(store, bus, telemetry, self._clock, self._tracing, self._forget)
        self._entries: dict[str, Entry] = {}
        self._accepting = True
        self._close_by = 0.0  # monotonic: end of the shutdown grace
        self._active = 0  # accepted and not yet ended
        self._idle = asyncio.Event()
        self._idle.set()
        self._hurry = asyncio.Event()  # a second stop signal: give up the grace at once

    @property
    def running(self) -> bool:
        return self._accepting

    @property
    def active(self) -> int:
        return self._active

    @property
    def unwritten(self) -> int:
        """Commands whose terminal status the database refused, waiting for a retry."""
        return self._endings.unwritten

    # -- admission -------------------------------------------------------------------

    def reserve(self, vehicle_id: str, user_id: str) -> None:
        """Hold a place in the vehicle's lane for ``user_id``, or raise RateLimited (the
        user holds their share) or Overloaded (the lane is full)."""
        if not self._accepting:
            raise Overloaded("the service is shutting down", retry_after=SHUTDOWN_RETRY_AFTER_S)
        self._admission.reserve(vehicle_id, user_id)

    def release(self, vehicle_id: str, user_id: str) -> None:
        """Give back a reservation whose command was not stored."""
        self._admission.release(vehicle_id, user_id)

    def enqueue(self, job: Job) -> None:
        """Turn a reservation into queued work (the command is already stored)."""
        command = job.command
        # Called in the submit request: its span becomes the command trace's parent.
        trace = self._tracing.command_accepted(
            command.command_id,
            command.command_name,
            command.vehicle_id,
            command.command_params.get(ECU_ADDRESS_PARAM),
        )
        entry = Entry(job, asyncio.get_running_loop().create_future(), trace=trace)
        request = logs.current_request()
        if request is not None:  # its access line goes to DEBUG; the end line names it
            request.started_command = True
            entry.request_id, entry.user = request.request_id, request.user()
        lane = self._admission.queue(entry)
        self._entries[entry.command_id] = entry
        self._active += 1
        self._idle.clear()
        self._telemetry.command_queued(1)
        if lane.task is None:
            # A context of its own: not the submit request's (whose span would then be
            # current for every later command of the lane).
            lane.task = asyncio.create_task(
                self._run_lane(command.vehicle_id, lane),
                name=f"lane-{command.vehicle_id}",
                context=contextvars.Context(),
            )

    # -- cancellation ----------------------------------------------------------------

    def cancel(self, command_id: str, cancellation: Cancellation) -> asyncio.Future[bool] | None:
        """Stop a queued or running command: it ends ``cancelled``. Returns the future of
        the first attempt to store that (True: stored; False: deferred until the storage
        takes writes), or None if the command is not queued or running here (it has
        ended or is ending)."""
        entry = self._entries.get(command_id)
        if entry is None or entry.stage is Stage.ENDING:
            return None
        if entry.stage is Stage.QUEUED:
            return self.withdraw(command_id, cancellation)
        run = entry.run
        if run is None or run.done():
            return None  # its answer is complete; the lane is ending it
        entry.cancellation = cancellation
        self._execution.stop(entry)
        return entry.outcome

    def withdraw(self, command_id: str, cancellation: Cancellation) -> asyncio.Future[bool] | None:
        """Take a command out of its lane before the vehicle ever sees it: it ends
        ``cancelled``. None if it is not waiting in a lane (it started, or has ended)."""
        entry = self._entries.get(command_id)
        if entry is None or entry.stage is not Stage.QUEUED:
            return None
        lane = self._lanes[entry.job.command.vehicle_id]
        lane.queued.remove(entry)
        self._admission.leave(lane, entry)
        entry.cancellation = cancellation
        self._endings.end(entry, cancelled(cancellation, self._clock.timestamp()))
        return entry.outcome

    def stop_lanes(self, vehicle_ids: Collection[str], reason: str) -> int:
        """End every queued or running command of these vehicles as interrupted (on a
        cluster: their lanes are no longer this node's, another node may run them now);
        how many. A running one stops as ``cancel`` stops it."""
        stopped = 0
        for entry in list(self._entries.values()):
            vehicle_id = entry.job.command.vehicle_id
            if vehicle_id not in vehicle_ids or entry.stage is Stage.ENDING:
                continue
            if entry.stage is Stage.QUEUED:
                lane = self._lanes[vehicle_id]
                lane.queued.remove(entry)
                self._admission.leave(lane, entry)
                self._endings.end(entry, interrupted(reason, self._clock.timestamp()))
            else:
                run = entry.run
                if run is None or run.done():
                    continue
                entry.interruption = reason
                self._execution.stop(entry)
            stopped += 1
        return stopped

    def cancel_user(self, user_id: str, cancellation: Cancellation) -> int:
        """Cancel every queued or running command of ``user_id``; how many."""
        return sum(
            self.cancel(entry.command_id, cancellation) is not None
            for entry in list(self._entries.values())
            if entry.user_id == user_id
        )

    def queued(self, vehicle_id: str) -> list[Command]:
        """The commands waiting in the vehicle's lane, in order (not the running one):
        those ``withdraw`` can still take out unsent. Synchronous, so a caller that
        withdraws some of them in the same step sees none start in between."""
        lane = self._lanes.get(vehicle_id)
        return [] if lane is None else [entry.job.command for entry in lane.queued]

    # -- the lanes' tasks -------------------------------------------------------------

    async def _run_lane(self, vehicle_id: str, lane: Lane) -> None:
        try:
            while lane.queued:
                entry = lane.queued.popleft()
                lane.current, lane.started_at = entry, self._clock.monotonic()
                entry.trace.started()
                try:
                    await self._supervise(vehicle_id, lane, entry)
                finally:
                    lane.current = None
                    self._admission.leave(lane, entry)
        finally:
            lane.task = None
            self._admission.forget_if_idle(vehicle_id, lane)

    async def _supervise(self, vehicle_id: str, lane: Lane, entry: Entry) -> None:
        """Run one command in its own task and end it however that went."""
        run = asyncio.create_task(
            self._execution.execute(entry), name=f"command-{entry.command_id}"
        )
        entry.run = run
        entry.stage = Stage.RUNNING
        try:
            await asyncio.wait({run})
        except asyncio.CancelledError:  # the service is stopping
            self._execution.stop(entry)
            await self._execution.settled(entry)
            ending = self._execution.outcome(entry, run)  # interrupted, unless it ended just now
            if ending is None:
                self._forget(entry, stored=False)
            else:
                self._endings.end(entry, ending)
            raise
        await self._execution.settled(entry)
        end = self._execution.outcome(entry, run)
        if end is None:
            self._forget(entry, stored=False)  # ended meanwhile; terminal states never change
            return
        if end.status in NATURAL_ENDS:
            self._admission.learn(vehicle_id, self._clock.monotonic() - lane.started_at)
        self._endings.end(entry, end)

    def _forget(self, entry: Entry, stored: bool) -> None:
        """The command has left the pipeline."""
        self._entries.pop(entry.command_id, None)
        entry.trace.close()
        resolve(entry.outcome, stored)
        self._active -= 1
        if self._active == 0:
            self._idle.set()
        self._telemetry.command_queued(-1)

    # -- shutdown --------------------------------------------------------------------

    async def drain(self, grace_s: float) -> None:
        """Stop accepting; let accepted commands finish for up to ``grace_s`` seconds (or
        until ``hurry``), saying every few seconds which ones it waits for."""
        self._accepting = False
        self._close_by = self._clock.monotonic() + grace_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_s  # the event loop's time, as asyncio.wait's timeout
        waiting = asyncio.ensure_future(self._idle.wait())
        hurry = asyncio.ensure_future(self._hurry.wait())
        try:
            while not waiting.done() and not hurry.done():
                left = deadline - loop.time()
                if left <= 0:
                    break
                self._log_waiting(left)
                await asyncio.wait(
                    {waiting, hurry},
                    timeout=min(left, DRAIN_LOG_INTERVAL_S),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        finally:
            waiting.cancel()
            hurry.cancel()
        if self._active:
            why = "stopping at once (second signal)" if self._hurry.is_set() else "grace over"
            log.warning(
                "shutdown %s with %d commands unfinished; they end as interrupted",
                why,
                self._active,
                extra={"event": "shutdown_unfinished", "commands": self._active},
            )

    def hurry(self) -> None:
        """Give up what is left of the shutdown grace: ``drain`` returns now and ``close``
        ends what is left as interrupted (its writes get ``FINAL_WRITES_MIN_S``)."""
        self._close_by = self._clock.monotonic()
        self._hurry.set()

    def _log_waiting(self, left_s: float) -> None:
        if not self._active:
            return
        now = self._clock.monotonic()
        named = [
            f"{e.command_id} ({e.job.command.vehicle_id}, {e.stage.value},"
            f" {now - e.job.accepted_at:.1f} s since accepted)"
            for e in list(self._entries.values())[:DRAIN_LOG_NAMED]
        ]
        more = self._active - len(named)
        log.warning(
            "shutdown waits up to %.1f s more for %d commands: %s%s; send the signal again"
            " to stop at once",
            left_s,
            self._active,
            ", ".join(named),
            f" and {more} more" if more > 0 else "",
            extra={
                "event": "shutdown_waiting",
                "commands": self._active,
                "seconds_left": round(left_s, 1),
            },
        )

    async def close(self) -> None:
        """Stop every lane; commands still running or queued end as interrupted. Terminal
        writes still failing get what is left of the grace (at least a moment)."""
        self._accepting = False
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in list(self._lanes.values()):
            while lane.queued:
                entry = lane.queued.popleft()
                self._admission.leave(lane, entry)
                self._endings.end(
                    entry,
                    interrupted(
                        "the service shut down before the command ran", self._clock.timestamp()
                    ),
                )
        self._lanes.clear()
        if self._endings.pending:
            await self._endings.wait(
                max(self._close_by - self._clock.monotonic(), FINAL_WRITES_MIN_S)
            )
