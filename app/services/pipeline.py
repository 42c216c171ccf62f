"""The command pipeline: per-vehicle lanes of work, and the execution of one command.

Each vehicle has a lane: a bounded FIFO of accepted commands and at most one task
working through it, so a vehicle answers one diagnostic request at a time, in
submission order, while different vehicles run concurrently. A lane's task exists only
while the lane has work. Capacity is reserved before a command is stored, so a full
lane answers 503 with nothing stored; one user may hold at most ``user_share`` places of
a lane (429 beyond), so one engineer cannot lock everyone else out of a vehicle. The
``Retry-After`` of both estimates the real wait from the vehicle's recent execution
times (an exponentially weighted average; the command deadline while there is none).

Executing a command: mark it ``in_progress``, stream the connector's answer under the
command deadline (typed chunks, decoded by the connector), store each chunk's payload
with the next sequence number, then publish it; a chunk typed negative ends the command
failed. Each execution runs in its own task, so ``cancel`` can stop it: the
connector's answer generator is closed (the connector learns it through
``GeneratorExit``/``CancelledError``) and the deadline goes with the task. A step that
stores and then publishes runs shielded, whole, so a chunk is never stored yet unsent.
Garbage from a vehicle is refused by its connector (``app.catalogue.InvalidResponse``) and
never stored or published.

Ending a command: its terminal status is written, then the terminal event published. A
write the database refuses (a full disk) is retried with backoff (0.05 s doubling to
2 s) until it lands, and only then is the event published, so every accepted command
ends without a restart once the storage is back. At shutdown those retries go on until
the grace period is over; what is still unwritten then is ended as ``interrupted`` by the
next start's recovery.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import logging
import math
from collections import Counter, deque
from collections.abc import Coroutine
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any, Final, TypeVar

from app import catalogue
from app.bus import EventBus
from app.clock import Clock
from app.errors import Overloaded, RateLimited, StorageUnavailable
from app.events import ResponseChunk, StatusEvent, terminal_event
from app.models import Actor, Command
from app.store.commands import CommandStore, Finish
from app.telemetry import (
    NO_COMMAND_TRACE,
    STORE_CHUNK,
    STORE_FINISH,
    STORE_START,
    CommandTrace,
    NoTracing,
    Telemetry,
    Tracing,
)
from app.vehicles.connector import (
    Connector,
    DiagnosticRequest,
    Negative,
    VehicleNotResponding,
    VehicleUnreachable,
)
from app.vocabulary import CommandStatus, FailureCode

log = logging.getLogger(__name__)
T = TypeVar("T")

SHUTDOWN_RETRY_AFTER_S: Final = 1
# The negative response that has a failure code of its own (request-out-of-range).
REQUEST_OUT_OF_RANGE_NRC: Final = 0x31
# Terminal writes the database refused are retried after this, doubling up to the cap.
RETRY_FIRST_S: Final = 0.05
RETRY_MAX_S: Final = 2.0
# Weight of the newest execution time in a vehicle's average.
EWMA_WEIGHT: Final = 0.3
# At close, unwritten terminal writes get at least this long even with no grace left.
FINAL_WRITES_MIN_S: Final = 1.0
# While shutdown waits for commands, what it waits for is logged this often.
DRAIN_LOG_INTERVAL_S: Final = 5.0
# At most this many commands are named in one such line.
DRAIN_LOG_NAMED: Final = 5
# The command parameter naming the ECU (an attribute of the command's trace).
ECU_ADDRESS_PARAM: Final = catalogue.ECU_ADDRESS_PARAM
# How a command ended by itself; only these teach the lane's average.
_NATURAL_ENDS: Final = frozenset(
    {CommandStatus.COMPLETED, CommandStatus.FAILED, CommandStatus.TIMEOUT}
)


@dataclass(frozen=True, slots=True)
class Job:
    command: Command
    request: DiagnosticRequest
    accepted_at: float  # monotonic, for the duration metric
    # A shorter deadline than the service's, asked for by the caller (a SOVD execution's
    # ``timeout``); never a longer one.
    timeout_s: float | None = None


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    command_timeout_s: float
    lane_size: int
    user_share: int = 8  # places of one lane a single user may hold
    # The most chunks one command's answer may have; beyond it the command fails
    # invalid-response-content (a broken or hostile ECU cannot flood the store).
    max_chunks: int = 4096


@dataclass(frozen=True, slots=True)
class Cancellation:
    """Who stops a command, and why (its error message and the ``command.cancel`` row)."""

    actor: Actor
    reason: str
    code: FailureCode = FailureCode.CANCELLED  # the command's error_code


class _Stage(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    ENDING = "ending"  # its terminal status is decided; the write may still be pending


@dataclass(eq=False, slots=True)
class _Entry:
    """An accepted command, from its queueing until its terminal status is stored."""

    job: Job
    # Resolves when the first attempt to store the end is over: True if stored, False if
    # the database refused it (then it is retried until it lands).
    outcome: asyncio.Future[bool]
    stage: _Stage = _Stage.QUEUED
    run: asyncio.Task[Finish | None] | None = None
    step: asyncio.Task[Any] | None = None  # the store-then-publish step in flight
    cancellation: Cancellation | None = None
    answered: bool = False  # the vehicle sent something
    trace: CommandTrace = NO_COMMAND_TRACE  # its spans (tracing on), from the submit

    @property
    def command_id(self) -> str:
        return self.job.command.command_id

    @property
    def user_id(self) -> str:
        return self.job.command.user_id


@dataclass(slots=True)
class _Lane:
    queued: deque[_Entry] = field(default_factory=deque)
    current: _Entry | None = None
    started_at: float = 0.0  # monotonic, of the current entry
    reserved: Counter[str] = field(default_factory=Counter)  # per user
    users: Counter[str] = field(default_factory=Counter)  # entries queued or running
    task: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return len(self.queued) + (self.current is not None) + self.reserved.total()

    def share(self, user_id: str) -> int:
        return self.users[user_id] + self.reserved[user_id]

    @property
    def idle(self) -> bool:
        return not self.queued and self.current is None and not self.reserved and self.task is None


def _cancelled(cancellation: Cancellation, at: str) -> Finish:
    return Finish(CommandStatus.CANCELLED, cancellation.code, cancellation.reason, at)


def _interrupted(message: str, at: str) -> Finish:
    return Finish(CommandStatus.FAILED, FailureCode.INTERRUPTED, message, at)


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class Pipeline:
    def __init__(
        self,
        store: CommandStore,
        bus: EventBus,
        connector: Connector,
        telemetry: Telemetry,
        settings: PipelineSettings,
        clock: Clock | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self._clock = clock or Clock()
        self._tracing: Tracing = tracing or NoTracing()
        self._store = store
        self._bus = bus
        self._connector = connector
        self._telemetry = telemetry
        self._settings = settings
        self._lanes: dict[str, _Lane] = {}
        self._entries: dict[str, _Entry] = {}
        self._typical_s: dict[str, float] = {}  # per vehicle: recent execution times
        self._endings: set[asyncio.Task[None]] = set()
        self._unwritten = 0  # terminal writes waiting for a retry
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
        return self._unwritten

    # -- admission -------------------------------------------------------------------

    def reserve(self, vehicle_id: str, user_id: str) -> None:
        """Hold a place in the vehicle's lane for ``user_id``, or raise RateLimited (the
        user holds their share) or Overloaded (the lane is full)."""
        if not self._accepting:
            raise Overloaded("the service is shutting down", retry_after=SHUTDOWN_RETRY_AFTER_S)
        lane = self._lanes.setdefault(vehicle_id, _Lane())
        share = self._settings.user_share
        if lane.share(user_id) >= share:
            wait = self._wait_for_user(vehicle_id, lane, user_id)
            raise RateLimited(
                f"you already have {share} commands queued for vehicle {vehicle_id} (the most "
                f"one user may hold); try again in about {wait} s",
                retry_after=wait,
            )
        if lane.size >= self._settings.lane_size:
            wait = self._wait(vehicle_id, lane, 0)
            raise Overloaded(
                f"vehicle {vehicle_id} already has {self._settings.lane_size} commands queued;"
                f" try again in about {wait} s",
                retry_after=wait,
            )
        lane.reserved[user_id] += 1

    def release(self, vehicle_id: str, user_id: str) -> None:
        """Give back a reservation whose command was not stored."""
        lane = self._lanes.get(vehicle_id)
        if lane is not None:
            _decrement(lane.reserved, user_id)
            self._forget_if_idle(vehicle_id, lane)

    def enqueue(self, job: Job) -> None:
        """Turn a reservation into queued work (the command is already stored)."""
        vehicle_id, user_id = job.command.vehicle_id, job.command.user_id
        lane = self._lanes[vehicle_id]
        _decrement(lane.reserved, user_id)
        command = job.command
        # Called in the submit request: its span becomes the command trace's parent.
        trace = self._tracing.command_accepted(
            command.command_id,
            command.command_name,
            command.vehicle_id,
            command.command_params.get(ECU_ADDRESS_PARAM),
        )
        entry = _Entry(job, asyncio.get_running_loop().create_future(), trace=trace)
        lane.queued.append(entry)
        lane.users[user_id] += 1
        self._entries[entry.command_id] = entry
        self._active += 1
        self._idle.clear()
        self._telemetry.command_queued(1)
        if lane.task is None:
            # A context of its own: not the submit request's (whose span would then be
            # current for every later command of the lane).
            lane.task = asyncio.create_task(
                self._run_lane(vehicle_id, lane),
                name=f"lane-{vehicle_id}",
                context=contextvars.Context(),
            )

    def _forget_if_idle(self, vehicle_id: str, lane: _Lane) -> None:
        if lane.idle:
            self._lanes.pop(vehicle_id, None)

    def _leave(self, lane: _Lane, entry: _Entry) -> None:
        _decrement(lane.users, entry.user_id)

    # -- Retry-After -------------------------------------------------------------------

    def _typical(self, vehicle_id: str) -> float:
        """How long a command on this vehicle usually runs; without history, its bound."""
        return self._typical_s.get(vehicle_id, self._settings.command_timeout_s)

    def _learn(self, vehicle_id: str, duration_s: float) -> None:
        duration_s = min(duration_s, self._settings.command_timeout_s)
        previous = self._typical_s.get(vehicle_id)
        self._typical_s[vehicle_id] = (
            duration_s if previous is None else previous + EWMA_WEIGHT * (duration_s - previous)
        )

    def _wait(self, vehicle_id: str, lane: _Lane, queued_ahead: int) -> int:
        """Seconds, at least 1, until the running command and ``queued_ahead`` queued ones
        have ended."""
        typical = self._typical(vehicle_id)
        wait = queued_ahead * typical
        if lane.current is not None:
            wait += max(typical - (self._clock.monotonic() - lane.started_at), 0.0)
        return max(1, math.ceil(wait))

    def _wait_for_user(self, vehicle_id: str, lane: _Lane, user_id: str) -> int:
        """Seconds until the user's first command in the lane has ended, freeing a place."""
        if lane.current is not None and lane.current.user_id == user_id:
            return self._wait(vehicle_id, lane, 0)
        for position, entry in enumerate(lane.queued):
            if entry.user_id == user_id:
                return self._wait(vehicle_id, lane, position + 1)
        return 1  # only reservations, which turn into commands or go within moments

    # -- cancellation ----------------------------------------------------------------

    def cancel(self, command_id: str, cancellation: Cancellation) -> asyncio.Future[bool] | None:
        """Stop a queued or running command: it ends ``cancelled``. Returns the future of
        the first attempt to store that (True: stored; False: deferred until the storage
        takes writes), or None if the command is not queued or running here (it has
        ended or is ending)."""
        entry = self._entries.get(command_id)
        if entry is None or entry.stage is _Stage.ENDING:
            return None
        if entry.stage is _Stage.QUEUED:
            return self.withdraw(command_id, cancellation)
        run = entry.run
        if run is None or run.done():
            return None  # its answer is complete; the lane is ending it
        entry.cancellation = cancellation
        run.cancel()
        return entry.outcome

    def withdraw(self, command_id: str, cancellation: Cancellation) -> asyncio.Future[bool] | None:
        """Take a command out of its lane before the vehicle ever sees it: it ends
        ``cancelled``. None if it is not waiting in a lane (it started, or has ended)."""
        entry = self._entries.get(command_id)
        if entry is None or entry.stage is not _Stage.QUEUED:
            return None
        lane = self._lanes[entry.job.command.vehicle_id]
        lane.queued.remove(entry)
        self._leave(lane, entry)
        entry.cancellation = cancellation
        self._end(entry, _cancelled(cancellation, self._clock.timestamp()))
        return entry.outcome

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

    # -- execution -------------------------------------------------------------------

    async def _run_lane(self, vehicle_id: str, lane: _Lane) -> None:
        try:
            while lane.queued:
                entry = lane.queued.popleft()
                lane.current, lane.started_at = entry, self._clock.monotonic()
                entry.trace.started()
                try:
                    await self._supervise(vehicle_id, lane, entry)
                finally:
                    lane.current = None
                    self._leave(lane, entry)
        finally:
            lane.task = None
            self._forget_if_idle(vehicle_id, lane)

    async def _supervise(self, vehicle_id: str, lane: _Lane, entry: _Entry) -> None:
        """Run one command in its own task and end it however that went."""
        run = asyncio.create_task(self._execute(entry), name=f"command-{entry.command_id}")
        entry.run = run
        entry.stage = _Stage.RUNNING
        try:
            await asyncio.wait({run})
        except asyncio.CancelledError:  # the service is stopping
            run.cancel()
            await self._settled(entry)
            ending = self._outcome(entry, run)  # interrupted, unless it ended just now
            if ending is None:
                self._forget(entry, stored=False)
            else:
                self._end(entry, ending)
            raise
        await self._settled(entry)
        end = self._outcome(entry, run)
        if end is None:
            self._forget(entry, stored=False)  # ended meanwhile; terminal states never change
            return
        if end.status in _NATURAL_ENDS:
            self._learn(vehicle_id, self._clock.monotonic() - lane.started_at)
        self._end(entry, end)

    @staticmethod
    async def _settled(entry: _Entry) -> None:
        """Wait until the execution and its last store-then-publish step are over, so the
        terminal event follows everything published before it."""
        pending = {t for t in (entry.run, entry.step) if t is not None and not t.done()}
        if pending:
            await asyncio.wait(pending)

    def _outcome(self, entry: _Entry, run: asyncio.Task[Finish | None]) -> Finish | None:
        if run.cancelled():
            if entry.cancellation is not None:
                return _cancelled(entry.cancellation, self._clock.timestamp())
            return _interrupted(
                "the service shut down while the command was running", self._clock.timestamp()
            )
        exc = run.exception()
        if exc is not None:
            log.error("command %s failed unexpectedly", entry.command_id, exc_info=exc)
            return Finish(
                CommandStatus.FAILED,
                FailureCode.SERVER_FAILURE,
                "the service failed to run the command",
                self._clock.timestamp(),
            )
        return run.result()

    async def _step(self, entry: _Entry, work: Coroutine[Any, Any, T]) -> T:
        """Run a store-then-publish step whole: cancelling the execution does not cut it
        between the two (the lane waits for it before ending the command)."""
        step = asyncio.create_task(work)
        entry.step = step
        return await asyncio.shield(step)

    async def _execute(self, entry: _Entry) -> Finish | None:
        """The command's terminal state, or None if it had already ended."""
        job = entry.job
        command_id = job.command.command_id
        contacted = False
        entry.trace.attach()
        try:
            if not await self._step(entry, self._start(command_id)):
                return None
            end: Finish | None = None
            sequence = 0
            deadline_s, cap = self._deadline(job), self._settings.max_chunks
            # The deadline travels with the request, so a transport never sends it late
            # nor waits for its answer past it (the timeout below is the same instant).
            request = replace(
                job.request,
                deadline=asyncio.get_running_loop().time() + deadline_s,
                max_chunks=cap,
            )
            async with asyncio.timeout(deadline_s):
                answer = self._connector.execute(request)
                contacted = True
                async with aclosing(answer):
                    async for received in answer:
                        entry.answered = True
                        if sequence == cap:
                            raise catalogue.InvalidResponse(
                                f"it had more than {cap} chunks, the most a command holds"
                                f" (SOVD_MAX_CHUNKS_PER_COMMAND); the first {cap} are stored"
                            )
                        sequence += 1
                        entry.trace.chunk(sequence, len(received.raw))
                        # A negative response is the answer's last chunk, kept (the
                        # stream and the SOVD API show the service and NRC), and the
                        # command fails.
                        chunk = ResponseChunk(
                            command_id=command_id,
                            sequence_number=sequence,
                            response_payload=dict(received.payload),
                            is_final=received.is_final,
                            received_at=self._clock.timestamp(),
                            # The connector's typed reading travels with it (#20 item 7).
                            negative=received.negative,
                            raw=received.raw,
                            dtc=received.dtc,
                        )
                        await self._step(entry, self._store_chunk(chunk))
                        if received.negative is not None:
                            end = self._refused(received.negative)
                            break
                        if received.is_final:
                            break
            return end or Finish(CommandStatus.COMPLETED, None, None, self._clock.timestamp())
        except TimeoutError:
            return Finish(
                CommandStatus.TIMEOUT,
                FailureCode.NOT_RESPONDING,
                f"vehicle did not answer within {self._deadline(job):g} s",
                self._clock.timestamp(),
            )
        except VehicleNotResponding as exc:
            return Finish(
                CommandStatus.TIMEOUT,
                FailureCode.NOT_RESPONDING,
                f"vehicle did not answer: {exc}",
                self._clock.timestamp(),
            )
        except VehicleUnreachable as exc:
            return Finish(
                CommandStatus.FAILED,
                FailureCode.VEHICLE_UNREACHABLE,
                str(exc),
                self._clock.timestamp(),
            )
        except catalogue.InvalidResponse as exc:
            return Finish(
                CommandStatus.FAILED,
                FailureCode.INVALID_RESPONSE_CONTENT,
                f"vehicle's answer could not be decoded: {exc}",
                self._clock.timestamp(),
            )
        except StorageUnavailable:
            what = (
                "the vehicle's answer could not be stored"
                if contacted
                else "the command could not be stored as started, so it was not sent"
            )
            return Finish(
                CommandStatus.FAILED,
                FailureCode.STORAGE_UNAVAILABLE,
                f"{what}: the database refused writes",
                self._clock.timestamp(),
            )

    def _refused(self, negative: Negative) -> Finish:
        return Finish(
            CommandStatus.FAILED,
            FailureCode.REQUEST_OUT_OF_RANGE
            if negative.nrc == REQUEST_OUT_OF_RANGE_NRC
            else FailureCode.ERROR_RESPONSE,
            f"vehicle answered with negative response 0x{negative.nrc:02X} ({negative.name})",
            self._clock.timestamp(),
        )

    def _deadline(self, job: Job) -> float:
        limit = self._settings.command_timeout_s
        return limit if job.timeout_s is None else min(job.timeout_s, limit)

    async def _start(self, command_id: str) -> bool:
        started_at = self._clock.timestamp()
        with self._tracing.span(STORE_START):
            marked = await self._store.mark_in_progress(command_id, started_at)
        if not marked:
            return False
        self._bus.publish(
            StatusEvent(command_id=command_id, status=CommandStatus.IN_PROGRESS, at=started_at)
        )
        return True

    async def _store_chunk(self, chunk: ResponseChunk) -> None:
        with self._tracing.span(STORE_CHUNK):
            await self._store.add_response(chunk)
        self._bus.publish(chunk)
        self._telemetry.response_chunk()

    # -- ending ----------------------------------------------------------------------

    def _end(self, entry: _Entry, end: Finish) -> None:
        """Store ``end`` as the command's terminal state (retrying until it lands), then
        publish it; runs as its own task, which shutdown waits for."""
        entry.stage = _Stage.ENDING
        duration_s = self._clock.monotonic() - entry.job.accepted_at
        failed = end.status in (CommandStatus.FAILED, CommandStatus.TIMEOUT)
        entry.trace.ended(end.status, end.error_code, end.error_message if failed else None)
        task = asyncio.create_task(
            self._write_end(entry, end, duration_s), name=f"end-{entry.command_id}"
        )
        self._endings.add(task)
        task.add_done_callback(self._endings.discard)

    async def _write_end(self, entry: _Entry, end: Finish, duration_s: float) -> None:
        command = entry.job.command
        entry.trace.attach()  # the terminal write, log line and exemplar: the command's
        cancelled_by = None
        if end.status is CommandStatus.CANCELLED and entry.cancellation is not None:
            cancelled_by = entry.cancellation.actor
        delay, failures, stored, landed = RETRY_FIRST_S, 0, False, False
        try:
            while True:
                try:
                    with self._tracing.span(STORE_FINISH):
                        stored = await self._store.finish(
                            command.command_id,
                            command.vehicle_id,
                            end,
                            entry.answered,
                            cancelled_by,
                        )
                    break
                except Exception as exc:
                    failures += 1
                    if failures == 1:
                        self._unwritten += 1
                        _resolve(entry.outcome, False)
                        log.warning(
                            "could not store the end of command %s (%s); retrying until it lands",
                            command.command_id,
                            exc,
                            extra={"event": "terminal_write_retry"},
                        )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX_S)
            landed = True
            if failures:
                log.info(
                    "stored the end of command %s after %d failed attempts",
                    command.command_id,
                    failures,
                    extra={"event": "terminal_write_stored"},
                )
            if stored:
                log.info(
                    "command %s ended %s",
                    command.command_id,
                    end.status,
                    extra={
                        "event": "command_end",
                        "command_id": command.command_id,
                        "vehicle_id": command.vehicle_id,
                        "status": end.status,
                        "error_code": end.error_code,
                        "duration_ms": round(duration_s * 1000, 1),
                    },
                )
                self._bus.publish(
                    terminal_event(
                        command.command_id, end.status, end.error_code, end.error_message, end.at
                    )
                )
                self._telemetry.command_finished(
                    command.command_name, end.status, end.error_code, duration_s
                )
        finally:
            if failures:
                self._unwritten -= 1
            if not landed:
                log.warning(
                    "the end of command %s was not stored before shutdown; the next start"
                    " ends it as interrupted",
                    command.command_id,
                )
            self._forget(entry, stored)

    def _forget(self, entry: _Entry, stored: bool) -> None:
        """The command has left the pipeline."""
        self._entries.pop(entry.command_id, None)
        entry.trace.close()
        _resolve(entry.outcome, stored)
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
                self._leave(lane, entry)
                self._end(
                    entry,
                    _interrupted(
                        "the service shut down before the command ran", self._clock.timestamp()
                    ),
                )
        self._lanes.clear()
        if self._endings:
            budget = max(self._close_by - self._clock.monotonic(), FINAL_WRITES_MIN_S)
            _, left = await asyncio.wait(set(self._endings), timeout=budget)
            for task in left:
                task.cancel()
            await asyncio.gather(*left, return_exceptions=True)


def _resolve(future: asyncio.Future[bool], value: bool) -> None:
    if not future.done():
        future.set_result(value)
