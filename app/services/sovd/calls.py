"""Calls that reach a vehicle: each one is a command through the pipeline.

``VehicleCalls.run`` submits the command as the caller (so the lock check, the rate
limits, history, audit and metrics apply as on ``/api/v1/commands``), follows it on the
bus and returns what it answered. ``check`` turns a command that did not succeed into
SOVD's error: a UDS negative response is ``error-response`` with the service and NRC (or
``precondition-not-fulfilled`` when the ECU refused because of its session and the call
names the session it needs), no answer in time ``not-responding``, an answer that does
not decode ``invalid-response-content``.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any, Final

from app.errors import (
    Conflict,
    ErrorResponse,
    InvalidResponseContent,
    NotResponding,
    PreconditionNotFulfilled,
    ServiceError,
    StorageUnavailable,
)
from app.events import ResponseEvent
from app.models import Command, Principal
from app.services.commands import CommandService
from app.services.sovd.entities import Target
from app.vehicles import uds
from app.vocabulary import CommandStatus, FailureCode

# NRCs an ECU gives when the request needs another session (or conditions it sets).
SESSION_NRCS: Final = frozenset({0x7E, 0x7F, 0x22})


class Until(enum.Enum):
    END = "end"  # the command has ended
    STARTED = "started"  # the vehicle sent a first chunk that is not its last, or it ended


@dataclass(frozen=True, slots=True)
class Outcome:
    command: Command  # as stored when the wait ended
    chunks: tuple[dict[str, Any], ...]  # the answer so far, in order

    @property
    def last(self) -> dict[str, Any] | None:
        return self.chunks[-1] if self.chunks else None

    def negative(self) -> dict[str, Any] | None:
        last = self.last
        found = last.get("negativeResponse") if last is not None else None
        return found if isinstance(found, dict) else None


def _hex(value: object) -> int | None:
    try:
        return int(str(value), 16)
    except ValueError:
        return None


class VehicleCalls:
    def __init__(self, commands: CommandService, wait_s: float) -> None:
        self._commands = commands
        # How long a call waits for its command (queue and execution): a little more than
        # the command deadline, which ends any execution first.
        self._wait_s = wait_s

    async def run(
        self, at: Target, command_name: str, params: dict[str, str], until: Until = Until.END
    ) -> Outcome:
        return await self.wait(at.who, await self.submit(at, command_name, params), until)

    async def submit(self, at: Target, command_name: str, params: dict[str, str]) -> Command:
        params = {"ecuAddress": at.ecu.ecu_address, **params}
        return await self._commands.submit(
            at.who, at.vehicle.vehicle_id, command_name, params, at.client
        )

    async def wait(self, who: Principal, command: Command, until: Until = Until.END) -> Outcome:
        """Follow the command until it ends (or starts answering)."""
        chunks: list[dict[str, Any]] = []
        try:
            async with (
                asyncio.timeout(self._wait_s),
                self._commands.follow(who, command.command_id) as events,
            ):
                async for event in events:
                    if isinstance(event, ResponseEvent):
                        chunks.append(event.response_payload)
                        # A final chunk (a refusal, or a run already over) means the end
                        # is near: wait for it, so the answer and the state agree.
                        if until is Until.STARTED and not event.is_final:
                            break
        except TimeoutError:
            raise NotResponding(
                f"command {command.command_id} has not ended after {self._wait_s:g} s;"
                " its answer will be in the history and on its stream",
                command_id=command.command_id,
            ) from None
        return Outcome(await self._commands.get(who, command.command_id), tuple(chunks))

    def check(self, outcome: Outcome, what: str, session: str | None = None) -> None:
        """Raise SOVD's error for a command that did not succeed. ``what`` names the call
        in messages; ``session`` is the session it needs, if any."""
        command = outcome.command
        cid = command.command_id
        negative = outcome.negative()
        if negative is not None:
            raise _refusal(negative, what, session, cid)
        if command.status in (CommandStatus.COMPLETED, CommandStatus.IN_PROGRESS):
            return
        message = command.error_message or f"command {cid} ended {command.status}"
        code = command.error_code
        if command.status is CommandStatus.TIMEOUT or code is FailureCode.VEHICLE_UNREACHABLE:
            raise NotResponding(message, command_id=cid)
        if code is FailureCode.INVALID_RESPONSE_CONTENT:
            raise InvalidResponseContent(message, command_id=cid)
        if code is FailureCode.STORAGE_UNAVAILABLE:
            raise StorageUnavailable(message, command_id=cid)
        if command.status is CommandStatus.CANCELLED:
            raise Conflict(message, command_id=cid)
        raise ServiceError(message, command_id=cid)


def _refusal(
    negative: dict[str, Any], what: str, session: str | None, command_id: str
) -> ServiceError:
    nrc = _hex(negative.get("nrc")) or 0
    sid = _hex(negative.get("service"))
    name = str(negative.get("name", uds.nrc_name(nrc)))
    parameters: dict[str, Any] = {"nrc": nrc, "nrc_name": name}
    if sid is not None:
        parameters = {"service": sid, "service_name": uds.service_name(sid), **parameters}
    if negative.get("layer") == "doip":
        parameters["layer"] = "doip"
    elif session is not None and nrc in SESSION_NRCS:
        return PreconditionNotFulfilled(
            f"{what} needs the {session} session and the ECU refused ({name}); switch it"
            f' first: PUT modes/session {{"value": "{session}"}}',
            parameters=parameters,
            command_id=command_id,
        )
    return ErrorResponse(
        f"{what}: the ECU answered with negative response 0x{nrc:02X} ({name})",
        parameters=parameters,
        command_id=command_id,
    )
