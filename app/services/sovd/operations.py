"""SOVD operations of a component and their executions (UDS 0x31 RoutineControl).

An execution is a ``RoutineControl`` command with action ``run``: the connector starts
the routine, reports its progress as chunks and sends ``stop`` if the command is
cancelled. So the execution's id is its command's id, its state is the command's and its
last chunk's, and stopping it (``DELETE``) is cancelling the command. An asynchronous
operation answers once the ECU has accepted the start; a synchronous one once it ended.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import Any, Final

from app.errors import BadRequest, Conflict, NotFound, ServiceError
from app.events import ResponseChunk, ResponseEvent
from app.models import Command
from app.services.commands import CommandService
from app.services.sovd.calls import Outcome, Until, VehicleCalls, error_of
from app.services.sovd.entities import Component, Target
from app.store.commands import CommandFilter
from app.vehicles import uds
from app.vehicles.description import Operation
from app.vocabulary import ACTIVE_STATUSES, CommandName, CommandStatus

__all__ = ["Execution", "ExecutionStatus", "Operation", "Operations", "operation"]

ROUTINE_COMMAND: Final = CommandName.ROUTINE_CONTROL
RUN: Final = "run"
# What a routine chunk carries besides its result parameters.
_ROUTINE_FIELDS: Final = frozenset({"ecuAddress", "routineId", "action", "status", "progress"})


class ExecutionStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Execution:
    id: str
    status: ExecutionStatus
    parameters: dict[str, Any]
    progress: int | None
    error: ServiceError | None  # why it failed, as the call that started it was told


def operation(ecu: Component, op_id: str) -> Operation:
    for found in ecu.description.operations:
        if found.id == op_id:
            return found
    known = ", ".join(o.id for o in ecu.description.operations) or "none"
    raise NotFound(f"component {ecu.name} has no operation {op_id[:64]} (it has: {known})")


def _params(ecu: Component, op: Operation) -> dict[str, str]:
    return {
        "ecuAddress": ecu.ecu_address,
        "routineId": uds.format_did(op.routine_id),
        "action": RUN,
    }


def _state(at: Target, op: Operation, command: Command, chunks: list[ResponseChunk]) -> Execution:
    last = chunks[-1].response_payload if chunks else {}
    progress = last.get("progress")
    parameters = {k: v for k, v in last.items() if k not in _ROUTINE_FIELDS}
    error = None
    if command.status in ACTIVE_STATUSES:
        status = ExecutionStatus.RUNNING
    elif command.status is CommandStatus.CANCELLED:
        status = ExecutionStatus.STOPPED
    elif command.status is CommandStatus.COMPLETED:
        ended = str(last.get("status", ExecutionStatus.COMPLETED))
        known = {s.value for s in ExecutionStatus}
        status = ExecutionStatus(ended) if ended in known else ExecutionStatus.FAILED
    else:
        status = ExecutionStatus.FAILED
        # Read back from the history: the typed fields from the stored form.
        events = tuple(_replayed(c) for c in chunks)
        outcome = Outcome(command, events)
        error = error_of(outcome, _what(at, op), op.session)
        if outcome.negative() is not None:
            parameters = {}
    return Execution(
        id=command.command_id,
        status=status,
        parameters=parameters,
        progress=progress if isinstance(progress, int) else None,
        error=error,
    )


def _replayed(chunk: ResponseChunk) -> ResponseEvent:
    return ResponseEvent.replayed(
        chunk.command_id,
        chunk.sequence_number,
        chunk.is_final,
        chunk.response_payload,
        chunk.received_at,
    )


def _what(at: Target, op: Operation) -> str:
    return f"operation {op.id} of {at.ecu.name}"


class Operations:
    def __init__(self, calls: VehicleCalls, commands: CommandService) -> None:
        self._calls = calls
        self._commands = commands
        # One start at a time per operation of an ECU: the running check and the
        # submission go together. One small lock per (vehicle, ECU, routine) ever started.
        self._starting: dict[tuple[str, int, int], asyncio.Lock] = {}

    def _filter(self, at: Target, op: Operation, **kw: Any) -> CommandFilter:
        return CommandFilter(
            vehicle_id=at.vehicle.vehicle_id,
            command_name=ROUTINE_COMMAND,
            params=tuple(_params(at.ecu, op).items()),
            **kw,
        )

    async def start(
        self,
        at: Target,
        op: Operation,
        parameters: dict[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Execution:
        """Run the operation: its execution once the ECU accepted the start (asynchronous)
        or once it ended (synchronous). Conflict if it is already running. ``timeout_s``
        ends it sooner than the command deadline (stopped on the ECU, ``failed``)."""
        if parameters:
            raise BadRequest(f"body.parameters: operation {op.id} takes no parameters")
        key = (at.vehicle.vehicle_id, at.ecu.address, op.routine_id)
        async with self._starting.setdefault(key, asyncio.Lock()):
            running, _ = await self._commands.find_unrestricted(
                self._filter(at, op, statuses=tuple(ACTIVE_STATUSES), limit=1)
            )
            if running:
                mine = running[0].user_id == at.who.user_id
                raise Conflict(
                    f"operation {op.id} of {at.ecu.name} is already running"
                    + (f" (execution {running[0].command_id})" if mine else " (another user's)")
                )
            command = await self._calls.submit(at, ROUTINE_COMMAND, _params(at.ecu, op), timeout_s)
        until = Until.STARTED if op.asynchronous else Until.END
        outcome = await self._calls.wait(at, command, until)
        self._calls.check(outcome, _what(at, op), op.session)
        _, chunks = await self._commands.snapshot(at.who, outcome.command.command_id, 0)
        return _state(at, op, outcome.command, chunks)

    async def executions(self, at: Target, op: Operation) -> list[str]:
        """The ids of the caller's executions of the operation (an admin: everyone's),
        newest first, at most 200."""
        found, _ = await self._commands.find(at.who, self._filter(at, op, limit=200))
        return [c.command_id for c in found]

    async def _own(
        self, at: Target, op: Operation, execution_id: str
    ) -> tuple[Command, list[ResponseChunk]]:
        try:
            command, chunks = await self._commands.snapshot(at.who, execution_id, 0)
        except NotFound:
            command = None
        wanted = _params(at.ecu, op)
        if (
            command is None
            or command.vehicle_id != at.vehicle.vehicle_id
            or command.command_name != ROUTINE_COMMAND
            or any(command.command_params.get(k) != v for k, v in wanted.items())
        ):
            raise NotFound(f"operation {op.id} of {at.ecu.name} has no execution {execution_id}")
        return command, chunks

    async def execution(self, at: Target, op: Operation, execution_id: str) -> Execution:
        return _state(at, op, *await self._own(at, op, execution_id))

    async def stop(self, at: Target, op: Operation, execution_id: str) -> None:
        """Stop a running execution: its command is cancelled, and the connector sends
        RoutineControl stop to the ECU."""
        command, _ = await self._own(at, op, execution_id)
        if command.is_terminal:
            raise Conflict(f"execution {execution_id} has already ended ({command.status})")
        await self._commands.cancel(at.who, execution_id, at.client)
