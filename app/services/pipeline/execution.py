"""Executing one command: mark it ``in_progress``, stream the connector's answer under the
command deadline (typed chunks, decoded by the connector), store each chunk's payload with
the next sequence number, then publish it; a chunk typed negative ends the command failed.

Each execution runs in its own task, so ``cancel`` can stop it: the connector's answer
generator is closed (the connector learns it through ``GeneratorExit``/``CancelledError``)
and the deadline goes with the task. A step that stores and then publishes runs whole (a
stop or the deadline waits for its end), so a chunk is never stored yet unsent. Garbage
from a vehicle is refused by its connector (``app.catalogue.InvalidResponse``) and never
stored or published.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from contextlib import aclosing
from dataclasses import replace
from typing import Final, TypeVar

from app import catalogue
from app.bus import Bus
from app.clock import Clock
from app.errors import StorageUnavailable
from app.events import ResponseChunk, StatusEvent
from app.services.pipeline.entries import (
    Entry,
    Job,
    PipelineSettings,
    cancelled,
    interrupted,
    log,
)
from app.store.commands import CommandStore, Finish
from app.telemetry import STORE_CHUNK, STORE_START, Telemetry, Tracing
from app.vehicles.connector import (
    Connector,
    Negative,
    VehicleNotResponding,
    VehicleUnreachable,
)
from app.vocabulary import CommandStatus, FailureCode

T = TypeVar("T")

# The negative response that has a failure code of its own (request-out-of-range).
REQUEST_OUT_OF_RANGE_NRC: Final = 0x31


class Execution:
    """Runs one entry's command against the vehicle and says how it ended."""

    def __init__(
        self,
        store: CommandStore,
        bus: Bus,
        connector: Connector,
        telemetry: Telemetry,
        settings: PipelineSettings,
        clock: Clock,
        tracing: Tracing,
    ) -> None:
        self._store = store
        self._bus = bus
        self._connector = connector
        self._telemetry = telemetry
        self._settings = settings
        self._clock = clock
        self._tracing = tracing

    @staticmethod
    def stop(entry: Entry) -> None:
        """Cancel the execution, but never inside a store-then-publish step: one under way
        finishes first (a chunk stored is always published), then the execution stops."""
        run = entry.run
        if run is None or run.done():
            return
        if entry.stepping:
            entry.stop_requested = True
        else:
            run.cancel()

    @staticmethod
    async def settled(entry: Entry) -> None:
        """Wait until the execution, its last store-then-publish step included, is over,
        so the terminal event follows everything published before it."""
        if entry.run is not None and not entry.run.done():
            await asyncio.wait({entry.run})

    def outcome(self, entry: Entry, run: asyncio.Task[Finish | None]) -> Finish | None:
        if run.cancelled():
            if entry.cancellation is not None:
                return cancelled(entry.cancellation, self._clock.timestamp())
            return interrupted(
                entry.interruption or "the service shut down while the command was running",
                self._clock.timestamp(),
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

    @staticmethod
    async def _step(entry: Entry, work: Awaitable[T], timer: asyncio.Timeout | None = None) -> T:
        """Run a store-then-publish step whole, in the execution's own task (no task of its
        own per step: issue #22 item 7): a ``stop`` waits for its end, and so does the
        deadline (held off during the step, then due at once if it passed meanwhile)."""
        deadline = None
        if timer is not None and not timer.expired():
            deadline = timer.when()
            timer.reschedule(None)
        entry.stepping = True
        try:
            return await work
        finally:
            entry.stepping = False
            if deadline is not None and timer is not None:
                timer.reschedule(deadline)
            if entry.stop_requested:
                raise asyncio.CancelledError  # the stop asked for during the step

    async def execute(self, entry: Entry) -> Finish | None:
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
            async with asyncio.timeout(deadline_s) as timer:
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
                        await self._step(entry, self._store_chunk(chunk), timer)
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
