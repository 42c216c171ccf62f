"""SOVD operations: what an execution's status may be, and the executions of the
asynchronous ones. Only an ECU bound to a description has operations (its 0x31 services,
by CDA's mapping: ``described``); an unbound ECU has none.

An asynchronous operation (CDA: it has a stop or request-results service) runs from its
start until it is stopped: one execution at a time per vehicle, component and operation,
kept in memory as CDA keeps them (a restart forgets them).
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from app.errors import BadRequest, Conflict, ErrorResponse, NotFound
from app.services.commands import CommandService
from app.services.sovd.described_calls import Answer, DescribedCalls, body_error
from app.services.sovd.entities import Target

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

    from app.descriptions.sovd_map import Operation

# The NRC of a stop with no run to stop (ISO 14229-1: the routine is not running).
REQUEST_SEQUENCE_ERROR: Final = 0x24


class ExecutionStatus(enum.StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Running:
    """An asynchronous execution started and not stopped (CDA keeps them in memory)."""

    execution_id: str
    user_id: str
    parameters: dict[str, Any]  # the start's answer


class Executions:
    """Start, follow and stop the operations of bound ECUs, sent by ``DescribedCalls``."""

    def __init__(self, calls: DescribedCalls, commands: CommandService) -> None:
        self._calls = calls
        self._commands = commands
        # (vehicle_id, component, operation id lower-cased) -> its running execution.
        self._running: dict[tuple[str, str, str], Running] = {}
        # One small lock per (vehicle_id, component, operation) ever started.
        self._starting: dict[tuple[str, str, str], asyncio.Lock] = {}

    def _key(self, at: Target, op: Operation) -> tuple[str, str, str]:
        return (at.vehicle.vehicle_id, at.ecu.name, op.id.lower())

    async def start(
        self,
        at: Target,
        layer: DiagLayer,
        op: Operation,
        parameters: Mapping[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Answer:
        """Send the operation's start with the body's ``parameters``; an asynchronous
        one (CDA: it has a stop or request-results service) is then running until it is
        stopped (Conflict for a second start meanwhile)."""
        from app.descriptions import sovd_map
        from app.descriptions.parameters import CodecError

        if op.start is None:
            raise BadRequest(f"operation {op.id} of {at.ecu.name} has no start service")
        try:  # the body checked first, so that its errors name it
            sovd_map.encode_execution(layer, op.start, parameters or {})
        except CodecError as exc:
            raise body_error(exc, "body.parameters") from None
        key = self._key(at, op)
        if not op.asynchronous_execution:
            return await self._calls.send(at, layer, op.start, parameters, timeout_s)
        # The running check and the start go together: of two starts at once, the
        # second waits for the first's answer and then finds it running.
        async with self._starting.setdefault(key, asyncio.Lock()):
            running = self._running.get(key)
            if running is not None:
                mine = running.user_id == at.who.user_id
                raise Conflict(
                    f"operation {op.id} of {at.ecu.name} is already running"
                    + (f" (execution {running.execution_id})" if mine else " (another user's)")
                )
            answer = await self._calls.send(at, layer, op.start, parameters, timeout_s)
            self._running[key] = Running(answer.command_id, at.who.user_id, answer.parameters)
        return answer

    async def _running_one(self, at: Target, op: Operation, execution_id: str) -> Running:
        running = self._running.get(self._key(at, op))
        if running is None or running.execution_id != execution_id:
            raise NotFound(f"operation {op.id} of {at.ecu.name} has no execution {execution_id}")
        await self._commands.get(at.who, execution_id)  # NotFound unless the caller's (or admin)
        return running

    def executions(self, at: Target, op: Operation) -> list[str]:
        """The running execution, if the caller may see it (its user's, or an admin)."""
        running = self._running.get(self._key(at, op))
        if running is None or not (at.who.is_admin or running.user_id == at.who.user_id):
            return []
        return [running.execution_id]

    async def results(
        self, at: Target, layer: DiagLayer, op: Operation, execution_id: str
    ) -> tuple[bool, dict[str, Any], str]:
        """Whether the results were asked for (RequestResults sent), the parameters, and
        the command that has them (the start's when there is no request-results)."""
        running = await self._running_one(at, op, execution_id)
        if op.request_results is None:
            return False, running.parameters, running.execution_id
        answer = await self._calls.send(at, layer, op.request_results)
        return True, answer.parameters, answer.command_id

    async def stop(
        self, at: Target, layer: DiagLayer, op: Operation, execution_id: str
    ) -> Answer | None:
        """Send the operation's stop (None: it has none); the execution is gone after.
        A stop the ECU refuses with requestSequenceError (0x24: no run of it to stop, it
        has ended) ends the execution as well: otherwise a routine that completed could
        never be started again (CDA needs ``x-sovd2uds-force`` for that)."""
        await self._running_one(at, op, execution_id)
        answer = None
        if op.stop is not None:
            try:
                answer = await self._calls.send(at, layer, op.stop)
            except ErrorResponse as refused:
                if (refused.parameters or {}).get("nrc") != REQUEST_SEQUENCE_ERROR:
                    raise
        key = self._key(at, op)
        current = self._running.get(key)
        if current is not None and current.execution_id == execution_id:
            del self._running[key]
        return answer
