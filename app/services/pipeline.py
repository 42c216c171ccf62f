"""The command pipeline: per-vehicle lanes of work, and the execution of one command.

Each vehicle has a lane: a bounded FIFO of accepted commands and at most one task
working through it, so a vehicle answers one diagnostic request at a time, in
submission order, while different vehicles run concurrently. A lane's task exists only
while the lane has work. Capacity is reserved before a command is stored, so a full
lane answers 503 with nothing stored.

Executing a command: mark it ``in_progress``, stream the connector's answer under the
command deadline, decode and store each chunk with the next sequence number, then
publish it; finally store the terminal status and publish the terminal event. Garbage
from a vehicle is detected here and never stored or published.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from contextlib import aclosing
from dataclasses import dataclass, field

from app import sovd
from app.bus import EventBus
from app.clock import monotonic, utc_now
from app.errors import Overloaded
from app.events import ResponseEvent, StatusEvent, terminal_event
from app.models import Command, ResponseChunk
from app.store.commands import CommandStore, Finish
from app.telemetry import Telemetry
from app.vehicles.connector import Connector, DiagnosticRequest, VehicleUnreachable

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1


@dataclass(frozen=True, slots=True)
class Job:
    command: Command
    request: DiagnosticRequest
    accepted_at: float  # monotonic, for the duration metric


@dataclass(slots=True)
class _Lane:
    jobs: deque[Job] = field(default_factory=deque)
    reserved: int = 0
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class PipelineSettings:
    command_timeout_s: float
    lane_size: int


class Pipeline:
    def __init__(
        self,
        store: CommandStore,
        bus: EventBus,
        connector: Connector,
        telemetry: Telemetry,
        settings: PipelineSettings,
    ) -> None:
        self._store = store
        self._bus = bus
        self._connector = connector
        self._telemetry = telemetry
        self._settings = settings
        self._lanes: dict[str, _Lane] = {}
        self._accepting = True
        self._active = 0  # accepted and not yet ended
        self._idle = asyncio.Event()
        self._idle.set()

    @property
    def running(self) -> bool:
        return self._accepting

    @property
    def active(self) -> int:
        return self._active

    # -- admission -------------------------------------------------------------------

    def reserve(self, vehicle_id: str) -> None:
        """Hold a place in the vehicle's lane, or raise Overloaded."""
        if not self._accepting:
            raise Overloaded("the service is shutting down", retry_after=RETRY_AFTER_S)
        lane = self._lanes.setdefault(vehicle_id, _Lane())
        if len(lane.jobs) + lane.reserved >= self._settings.lane_size:
            raise Overloaded(
                f"vehicle {vehicle_id} already has {self._settings.lane_size} commands queued",
                retry_after=RETRY_AFTER_S,
            )
        lane.reserved += 1

    def release(self, vehicle_id: str) -> None:
        """Give back a reservation whose command was not stored."""
        lane = self._lanes.get(vehicle_id)
        if lane is not None:
            lane.reserved -= 1
            self._forget_if_idle(vehicle_id, lane)

    def enqueue(self, job: Job) -> None:
        """Turn a reservation into queued work (the command is already stored)."""
        vehicle_id = job.command.vehicle_id
        lane = self._lanes[vehicle_id]
        lane.reserved -= 1
        lane.jobs.append(job)
        self._active += 1
        self._idle.clear()
        self._telemetry.command_queued(1)
        if lane.task is None:
            lane.task = asyncio.create_task(
                self._run_lane(vehicle_id, lane), name=f"lane-{vehicle_id}"
            )

    def _forget_if_idle(self, vehicle_id: str, lane: _Lane) -> None:
        if not lane.jobs and lane.reserved == 0 and lane.task is None:
            self._lanes.pop(vehicle_id, None)

    # -- execution -------------------------------------------------------------------

    async def _run_lane(self, vehicle_id: str, lane: _Lane) -> None:
        try:
            while lane.jobs:
                job = lane.jobs[0]
                try:
                    await self._execute(job)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("command %s crashed the lane worker", job.command.command_id)
                finally:
                    lane.jobs.popleft()
        finally:
            lane.task = None
            self._forget_if_idle(vehicle_id, lane)

    async def _execute(self, job: Job) -> None:
        command = job.command
        command_id = command.command_id
        answered = False
        try:
            started_at = utc_now()
            if not await self._store.mark_in_progress(command_id, started_at):
                self._settle()  # ended meanwhile; terminal states never change
                return
            self._bus.publish(StatusEvent(command_id, "in_progress", started_at))
            end: Finish | None = None
            sequence = 0
            async with asyncio.timeout(self._settings.command_timeout_s):
                answer = self._connector.execute(job.request)
                async with aclosing(answer):
                    async for raw in answer:
                        answered = True
                        payload = sovd.decode_answer(raw.payload)
                        negative = sovd.negative_response(payload)
                        if negative is not None:
                            end = Finish(
                                "failed",
                                "request-out-of-range",
                                f"vehicle answered with negative response {negative.nrc}"
                                f" ({negative.description})",
                                utc_now(),
                            )
                            break
                        sequence += 1
                        await self._store_chunk(
                            ResponseChunk(command_id, sequence, payload, raw.is_final, utc_now())
                        )
                        if raw.is_final:
                            break
            end = end or Finish("completed", None, None, utc_now())
        except TimeoutError:
            end = Finish(
                "timeout",
                "not-responding",
                f"vehicle did not answer within {self._settings.command_timeout_s:g} s",
                utc_now(),
            )
        except VehicleUnreachable as exc:
            end = Finish("failed", "vehicle-unreachable", str(exc), utc_now())
        except sovd.InvalidResponse as exc:
            end = Finish(
                "failed",
                "invalid-response-content",
                f"vehicle's answer could not be decoded: {exc}",
                utc_now(),
            )
        except asyncio.CancelledError:
            await asyncio.shield(
                self._end(
                    job,
                    _interrupted("the service shut down while the command was running"),
                    answered,
                )
            )
            raise
        except Exception:
            log.exception("command %s failed unexpectedly", command_id)
            end = Finish(
                "failed", "sovd-server-failure", "the service failed to run the command", utc_now()
            )
        await self._end(job, end, answered)

    async def _store_chunk(self, chunk: ResponseChunk) -> None:
        await self._store.add_response(chunk)
        self._bus.publish(
            ResponseEvent(
                chunk.command_id,
                chunk.sequence_number,
                chunk.is_final,
                chunk.response_payload,
                chunk.received_at,
            )
        )
        self._telemetry.response_chunk()

    async def _end(self, job: Job, end: Finish, answered: bool) -> None:
        command = job.command
        try:
            stored = await self._store.finish(command.command_id, command.vehicle_id, end, answered)
        finally:
            self._settle()
        if stored:
            self._bus.publish(
                terminal_event(
                    command.command_id, end.status, end.error_code, end.error_message, end.at
                )
            )
            self._telemetry.command_finished(end.status, monotonic() - job.accepted_at)

    def _settle(self) -> None:
        self._active -= 1
        if self._active == 0:
            self._idle.set()
        self._telemetry.command_queued(-1)

    # -- shutdown --------------------------------------------------------------------

    async def drain(self, grace_s: float) -> None:
        """Stop accepting; let accepted commands finish for up to ``grace_s`` seconds."""
        self._accepting = False
        try:
            async with asyncio.timeout(grace_s):
                await self._idle.wait()
        except TimeoutError:
            log.warning("shutdown grace period over with %d commands unfinished", self._active)

    async def close(self) -> None:
        """Stop every lane; commands still running or queued end as interrupted."""
        self._accepting = False
        tasks = [lane.task for lane in self._lanes.values() if lane.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for lane in list(self._lanes.values()):
            while lane.jobs:
                job = lane.jobs.popleft()
                await self._end(
                    job, _interrupted("the service shut down before the command ran"), False
                )
        self._lanes.clear()


def _interrupted(message: str) -> Finish:
    return Finish("failed", "interrupted", message, utc_now())
