"""The link to one vehicle's DoIP entity: connection, threads, lifecycle, observation.

doipclient and udsoncan are blocking libraries, so every socket operation of a vehicle
runs in that vehicle's own single-thread executor (``doip_wire.Wire``, parsed with doipclient's
parser and messages), which exists only while the vehicle is connected or being
connected: never more threads than connected vehicles, never a blocked event loop. The
executor serialises the vehicle's work, like the pipeline's per-vehicle lane above it.
A worker job never raises for the vehicle's faults: it returns an outcome, and all
bookkeeping (link state, sessions, observer calls) happens on the event loop from it
(``Link``), whether or not anyone still awaits the job.

Lifecycle per vehicle: connect on first use (TCP, then routing activation), keep the
link while idle for ``idle_close_s``, then close it and its thread. A link the vehicle
closed while idle is re-opened transparently; after a failed connection attempt the
next one waits ``backoff_first_s``, doubling up to ``backoff_max_s``, and a command in
that window fails at once. A request whose caller went away (cancelled, timed out)
before the worker reached it is dropped unsent; one already sent finishes in the worker:
its answer is read and dropped, so the link stays in step. The wait for an answer is
bounded by P2, by P2* after each 0x78 "response pending", and always by the command's
deadline, so an ECU that answers 0x78 forever cannot hold the link past it. An answer
that never comes in time resets the link, so a late answer cannot pass for the next
request's. A non-default diagnostic session is kept alive with TesterPresent (0x3E 0x80)
until it ends or the link closes.

The worker reports as it goes (the link up, every message the vehicle sends) to the
event loop, so a long exchange shows the vehicle connected and seen while it talks;
what a job returns (its exchanges) is applied when it is over.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from app.catalogue import InvalidResponse
from app.clock import monotonic, utc_now
from app.vehicles import uds
from app.vehicles.addresses import format_address
from app.vehicles.connector import VehicleUnreachable
from app.vehicles.doip_jobs import Exchange, Outcome, Ticket, WireEvent
from app.vehicles.doip_observer import LinkObserver
from app.vehicles.doip_settings import DoipSettings, DoipTarget
from app.vehicles.doip_wire import Wire

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LinkState:
    connected: bool
    last_seen: str | None
    sessions: Mapping[str, str]  # ECU address -> session name, non-default ones only


# -- the link: event-loop side ------------------------------------------------------------


class Link:
    """One vehicle's link, as the event loop sees it. Only the worker touches the wire."""

    def __init__(self, vehicle_id: str, settings: DoipSettings, observer: LinkObserver) -> None:
        self.vehicle_id = vehicle_id
        self._settings = settings
        self._observer = observer
        self.up = False
        self.last_seen: str | None = None
        self.sessions: dict[int, int] = {}  # ECU -> non-default session
        self.busy = 0  # commands running on this link
        self.last_used = monotonic()
        self._failures = 0
        self._retry_at = 0.0
        self._pending = 0  # jobs submitted and not yet settled
        self._wire: Wire | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._idle: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._keepalive_queued = False
        self.always_on = False  # never closed for idleness (the connector reconnects it)
        self._closed = False  # closed for good: its target changed, or the service stops

    @property
    def has_thread(self) -> bool:
        return self._executor is not None

    @property
    def jobs(self) -> int:
        """Jobs submitted to the worker and not yet settled (running or waiting)."""
        return self._pending

    def state(self) -> LinkState:
        return LinkState(
            self.up,
            self.last_seen,
            {format_address(ecu): uds.session_name(s) for ecu, s in self.sessions.items()},
        )

    def set_target(self, target: DoipTarget) -> None:
        """Use ``target`` for the next connection (the link is down). On the event loop."""
        if self._wire is None or self._wire.target != target:
            loop = asyncio.get_running_loop()

            def report(event: WireEvent) -> None:  # from the worker thread
                loop.call_soon_threadsafe(self._apply, event)

            self._wire = Wire(target, self._settings, report)

    def check_backoff(self) -> None:
        wait = self._retry_at - monotonic()
        if not self.up and wait > 0:
            raise VehicleUnreachable(
                f"vehicle {self.vehicle_id} did not answer the last {self._failures} connection"
                f" attempt(s); the next one is allowed in {wait:.1f} s"
            )

    # -- jobs ------------------------------------------------------------------------

    def _submit(self, sid: int | None, job: Callable[[], Outcome]) -> asyncio.Future[Outcome]:
        if self._executor is None:
            # A vehicle's thread exists while it is connected or being connected.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"doip-{self.vehicle_id}")
        # The executor's queue is bounded by its callers: the pipeline's lane runs one
        # command per vehicle at a time, the keepalive queues at most one TesterPresent
        # and the idle timer one close, so a handful of jobs wait here at most.
        self._pending += 1
        future = asyncio.wrap_future(self._executor.submit(job))
        future.add_done_callback(partial(self._settle, sid))
        return future

    def _settle(self, sid: int | None, future: asyncio.Future[Outcome]) -> None:
        """Apply a job's outcome, whether or not anyone still awaits it."""
        self._pending -= 1
        try:
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                log.error(
                    "DoIP worker of vehicle %s failed",
                    self.vehicle_id,
                    exc_info=error,
                    extra={"event": "doip_worker_error", "vehicle_id": self.vehicle_id},
                )
                if self._wire is not None:
                    self._wire.close()  # its state is unknown: start afresh
                self._apply(WireEvent("down", "lost", utc_now()))
                return
            # The job's events were reported (and scheduled on the loop) before it
            # returned, so they are applied by now.
            for exchange in future.result().exchanges:
                self._exchanged(sid, exchange)
        finally:
            if self._pending == 0 and not self.up:
                self._release_thread()

    def _exchanged(self, sid: int | None, exchange: Exchange) -> None:
        if sid is None or not exchange.sent:
            return
        outcome: str
        if exchange.failure is not None:
            outcome = exchange.failure
        elif exchange.nack is not None:
            outcome = "nack"
        elif exchange.no_answer:
            outcome = "no-answer"
        elif exchange.answer is None:
            outcome = "positive"  # suppressed positive answer, acknowledged
        elif exchange.answer[:1] == bytes((uds.NEGATIVE_RESPONSE,)):
            outcome = "negative"
        elif exchange.answer[:1] == uds.positive(sid):
            outcome = "positive"
        else:
            outcome = "invalid"
        self._notify(
            self._observer.uds_exchange,
            self.vehicle_id,
            uds.service_name(sid),
            exchange.duration_s,
            outcome,
        )

    def _apply(self, event: WireEvent) -> None:
        if event.kind == "seen":
            self.last_seen = event.at
            self._notify(self._observer.vehicle_seen, self.vehicle_id, event.at)
        elif event.kind == "up":
            self.up = True
            self._failures, self._retry_at = 0, 0.0
            self._notify(self._observer.link_up, self.vehicle_id, event.at)
            self._arm_idle()
        elif event.kind == "down":
            was_up, self.up = self.up, False
            # The sessions lived on the link; the ECUs fall back to default by S3.
            self.sessions.clear()
            self._stop_keepalive()
            self._cancel(self._idle)
            self._idle = None
            if was_up:
                self._notify(self._observer.link_down, self.vehicle_id, event.reason, event.at)
        else:
            self._failures += 1
            backoff = self._settings.backoff_first_s * 2 ** (self._failures - 1)
            self._retry_at = monotonic() + min(backoff, self._settings.backoff_max_s)
            self._notify(self._observer.connect_failed, self.vehicle_id, event.reason, event.at)

    def _notify(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            # The observer is telemetry and bookkeeping: its bug must not break the link.
            log.exception("DoIP link observer failed", extra={"event": "doip_observer_error"})

    def _release_thread(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)  # nothing is queued: the thread ends now

    # -- what commands use ---------------------------------------------------------------

    async def exchange(self, ecu: int, request: bytes, until: float | None = None) -> Exchange:
        """One UDS request on the worker, waiting for its answer no later than ``until``
        (monotonic; None: P2/P2* alone bound it). Cancelling the caller drops the request
        if the worker has not sent it yet; once sent, the worker reads its answer and
        drops it, keeping the link in step."""
        wire = self._wire
        assert wire is not None
        self._refuse_if_closed()
        ticket = Ticket(until)
        future = self._submit(request[0], partial(wire.job_exchange, ecu, request, ticket))
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            ticket.abandon()
            raise
        if outcome.invalid is not None:
            raise InvalidResponse(f"vehicle {self.vehicle_id}: {outcome.invalid}")
        if outcome.unreachable is not None:
            raise VehicleUnreachable(f"vehicle {self.vehicle_id}: {outcome.unreachable}")
        return outcome.exchanges[0]

    async def connect(self) -> bool:
        """Open the link now; False if the vehicle could not be reached (the backoff
        applies as after a failed command)."""
        wire = self._wire
        assert wire is not None
        self._refuse_if_closed()
        outcome = await asyncio.shield(self._submit(None, wire.job_connect))
        return outcome.unreachable is None

    async def probe(self) -> None:
        """If the vehicle closed the idle link, mark it down now rather than at the
        next command."""
        wire = self._wire
        if self.up and wire is not None and self.busy == 0:
            await asyncio.shield(self._submit(None, wire.job_probe))

    def session_changed(self, ecu: int, session: int) -> None:
        if session == uds.DEFAULT_SESSION:
            self.sessions.pop(ecu, None)
        else:
            self.sessions[ecu] = session
        if self.sessions and self.up:
            if self._keepalive is None:
                self._keepalive = asyncio.create_task(
                    self._keep_sessions(), name=f"doip-keepalive-{self.vehicle_id}"
                )
        elif not self.sessions:
            self._stop_keepalive()

    def touch(self) -> None:
        self.last_used = monotonic()

    # -- background tasks ----------------------------------------------------------------

    async def _keep_sessions(self) -> None:
        try:
            while self.sessions and self.up:
                await asyncio.sleep(self._settings.tester_present_s)
                wire = self._wire
                if not self.sessions or not self.up or wire is None:
                    break
                if self._keepalive_queued:
                    continue  # the last one still waits behind a long request: no pile-up
                self._keepalive_queued = True
                try:
                    job = partial(wire.job_tester_present, tuple(self.sessions))
                    await asyncio.shield(self._submit(uds.TESTER_PRESENT, job))
                finally:
                    self._keepalive_queued = False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "TesterPresent of vehicle %s failed",
                self.vehicle_id,
                extra={"event": "doip_keepalive_error"},
            )
        finally:
            if self._keepalive is asyncio.current_task():
                self._keepalive = None

    def _stop_keepalive(self) -> None:
        self._cancel(self._keepalive)
        self._keepalive = None

    def _arm_idle(self) -> None:
        if self._idle is None:
            self._idle = asyncio.create_task(
                self._close_when_idle(), name=f"doip-idle-{self.vehicle_id}"
            )

    async def _close_when_idle(self) -> None:
        try:
            while True:
                wait = self.last_used + self._settings.idle_close_s - monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif self.busy or self.always_on:
                    # A command is running (its end sets last_used again), or the link
                    # is to stay up.
                    await asyncio.sleep(self._settings.idle_close_s)
                else:
                    break
            wire = self._wire
            if self.up and wire is not None:
                await asyncio.shield(self._submit(None, partial(wire.job_close, "idle")))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "closing the idle link of vehicle %s failed",
                self.vehicle_id,
                extra={"event": "doip_idle_error"},
            )
        finally:
            if self._idle is asyncio.current_task():
                self._idle = None

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _refuse_if_closed(self) -> None:
        # A command that still holds a link closed under it (an admin changed the target
        # mid-command, say) must not reopen it: nothing would ever close it again.
        if self._closed:
            raise VehicleUnreachable(
                f"vehicle {self.vehicle_id}: its link was closed (target changed or stopping)"
            )

    async def close(self) -> None:
        """Close the link for good and let its thread end (the target changed, or the
        service stops)."""
        self._closed = True
        self._stop_keepalive()
        self._cancel(self._idle)
        self._idle = None
        wire = self._wire
        if wire is not None and self._executor is not None:
            wire.abort()  # a request still waiting for its answer stops waiting
            await asyncio.wait({self._submit(None, partial(wire.job_close, "closed"))})
