"""Calls that reach a vehicle: each one is a command through the pipeline.

``VehicleCalls.run`` submits the command as the caller (so the lock check, the rate
limits, history, audit and metrics apply as on ``/api/v1/commands``), follows it on the
bus and returns what it answered. ``check`` turns a command that did not succeed into
SOVD's error: a UDS negative response is ``error-response`` with the service and NRC (or
``precondition-not-fulfilled`` when the ECU refused because of its session and the call
names the session it needs), no answer in time ``not-responding``, an answer that does
not decode ``invalid-response-content``; a command another user's lock withdrew before
it ran ``precondition-not-fulfilled``, as the lock refuses a new call.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.errors import (
    Conflict,
    ErrorResponse,
    InvalidResponseContent,
    NotResponding,
    Overloaded,
    PreconditionNotFulfilled,
    ServiceError,
    StorageUnavailable,
)
from app.events import ResponseEvent, StatusEvent
from app.models import Command
from app.services.commands import CommandService
from app.services.sovd.entities import Target
from app.vehicles import uds
from app.vehicles.connector import Negative
from app.vocabulary import CommandStatus, FailureCode

# A call waits this much longer than the command deadline once its command started.
WAIT_MARGIN_S: Final = 5.0


class Until(enum.Enum):
    END = "end"  # the command has ended
    STARTED = "started"  # the vehicle sent a first chunk that is not its last, or it ended


@dataclass(frozen=True, slots=True)
class Outcome:
    """A call's command and its answer so far: each chunk as the connector typed it
    (``ResponseEvent``: the stored payload, and the negative response, the ECU's bytes
    and the DTC read from it)."""

    command: Command  # as stored when the wait ended
    events: tuple[ResponseEvent, ...]  # the answer so far, in order

    @property
    def chunks(self) -> tuple[dict[str, Any], ...]:
        """The chunks' payloads (the decoded values), in order."""
        return tuple(e.response_payload for e in self.events)

    @property
    def last(self) -> dict[str, Any] | None:
        return self.events[-1].response_payload if self.events else None

    @property
    def raw(self) -> bytes:
        """The ECU's message the last chunk was read from (empty: none)."""
        return self.events[-1].raw if self.events else b""

    def negative(self) -> Negative | None:
        """The ECU's refusal, typed: the last chunk's (a refusal is always the last)."""
        return self.events[-1].negative if self.events else None


class VehicleCalls:
    def __init__(
        self, commands: CommandService, command_timeout_s: float, queue_wait_s: float
    ) -> None:
        self._commands = commands
        # The longest a call waits for its command to start (its vehicle's lane may be
        # busy, say with running self-tests).
        self._queue_wait_s = queue_wait_s
        # Once it started, the pipeline's deadline ends it; the margin covers the writes.
        self._run_wait_s = command_timeout_s + WAIT_MARGIN_S

    async def run(
        self,
        at: Target,
        command_name: str,
        params: Mapping[str, Any],
        until: Until = Until.END,
        timeout_s: float | None = None,
    ) -> Outcome:
        return await self.wait(at, await self.submit(at, command_name, params, timeout_s), until)

    async def submit(
        self,
        at: Target,
        command_name: str,
        params: Mapping[str, Any],
        timeout_s: float | None = None,
    ) -> Command:
        params = {"ecuAddress": at.ecu.ecu_address, **params}
        return await self._commands.submit(
            at.who, at.vehicle.vehicle_id, command_name, params, at.client, timeout_s
        )

    async def wait(self, at: Target, command: Command, until: Until = Until.END) -> Outcome:
        """Follow the command until it ends (or starts answering). One that never left
        its vehicle's queue within the queue wait is taken out of it, never sent, and the
        call is ``overloaded``: a client is never told "no answer" for a call that then
        runs. One that started gets the run wait (its deadline, and a margin)."""
        cid = command.command_id
        chunks: list[ResponseEvent] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._queue_wait_s
        started = False
        async with self._commands.follow(at.who, cid) as events:
            following = aiter(events)
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        event = await anext(following)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if started:
                        raise NotResponding(
                            f"command {cid} has not ended in time; its answer will be in"
                            " the history and on its stream",
                            command_id=cid,
                        ) from None
                    if await self._commands.withdraw(at.who, cid, at.client):
                        raise Overloaded(
                            f"vehicle {at.vehicle.vin} is busy: the call waited"
                            f" {self._queue_wait_s:g} s for its turn and was not sent",
                            retry_after=max(1, round(self._queue_wait_s)),
                            command_id=cid,
                        ) from None
                    started = True  # it left the queue meanwhile: give it its run
                    deadline = loop.time() + self._run_wait_s
                    continue
                if isinstance(event, StatusEvent) and event.status is CommandStatus.IN_PROGRESS:
                    started = True
                    deadline = loop.time() + self._run_wait_s
                elif isinstance(event, ResponseEvent):
                    chunks.append(event)
                    # A final chunk (a refusal, or a run already over) means the end is
                    # near: wait for it, so the answer and the state agree.
                    if until is Until.STARTED and not event.is_final:
                        break
                elif event.is_terminal:
                    break
        return Outcome(await self._commands.get(at.who, cid), tuple(chunks))

    def check(self, outcome: Outcome, what: str) -> None:
        """Raise SOVD's error for a command that did not succeed. ``what`` names the call
        in messages."""
        error = error_of(outcome, what)
        if error is not None:
            raise error


def error_of(outcome: Outcome, what: str) -> ServiceError | None:
    """SOVD's error for a command that did not succeed (None while it is running or once
    it completed)."""
    command = outcome.command
    cid = command.command_id
    negative = outcome.negative()
    if negative is not None:
        return _refusal(negative, what, cid)
    if command.status in (
        CommandStatus.COMPLETED,
        CommandStatus.IN_PROGRESS,
        CommandStatus.PENDING,
    ):
        return None
    message = command.error_message or f"command {cid} ended {command.status}"
    code = command.error_code
    if command.status is CommandStatus.TIMEOUT or code is FailureCode.VEHICLE_UNREACHABLE:
        return NotResponding(message, command_id=cid)
    if code is FailureCode.INVALID_RESPONSE_CONTENT:
        return InvalidResponseContent(message, command_id=cid)
    if code is FailureCode.STORAGE_UNAVAILABLE:
        return StorageUnavailable(message, command_id=cid)
    if command.status is CommandStatus.CANCELLED:
        if code is FailureCode.LOCKED_OUT:
            # Another user locked it before it ran: refused as a lock refuses a call.
            return PreconditionNotFulfilled(message, command_id=cid)
        return Conflict(message, command_id=cid)
    return ServiceError(message, command_id=cid)


def _refusal(negative: Negative, what: str, command_id: str) -> ServiceError:
    nrc, name = negative.nrc, negative.name
    parameters: dict[str, Any] = {"nrc": nrc, "nrc_name": name}
    if negative.service is not None:
        sid = negative.service
        parameters = {"service": sid, "service_name": uds.service_name(sid), **parameters}
    if negative.layer == "doip":
        parameters["layer"] = "doip"
    return ErrorResponse(
        f"{what}: the ECU answered with negative response 0x{nrc:02X} ({name})",
        parameters=parameters,
        command_id=command_id,
    )
