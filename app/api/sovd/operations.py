"""A component's operations and their executions: a bound component's 0x31 services
(``described``); an ECU bound to no description has none."""

from __future__ import annotations

from typing import Any

from app.api.contract import Call, Result
from app.api.sovd import described, tree
from app.api.sovd.types import (
    Executions,
    NewExecution,
    OperationOut,
    Operations,
    SovdQuery,
)
from app.errors import NotFound
from app.services.sovd.entities import Target


def _op_id(call: Call[Any, Any]) -> str:
    return str(call.request.path_params["operation"])


async def _bound(call: Call[Any, Any]) -> Target:
    """The target, whose component must be bound to a description (NotFound naming the
    operation otherwise: an unbound ECU has no operations)."""
    at = await tree.target(call)
    if at.ecu.bound is None:
        raise NotFound(
            f"component {at.ecu.name} has no operation {_op_id(call)[:64]} (it has: none;"
            " it is bound to no ECU description)"
        )
    return at


async def list_operations(call: Call[None, SovdQuery]) -> Operations:
    at = await tree.target(call)
    if at.ecu.bound is None:
        return Operations(items=[])
    return await described.list_operations(call, at)


async def get_operation(call: Call[None, SovdQuery]) -> OperationOut:
    return await described.get_operation(call, await _bound(call), _op_id(call))


async def start_execution(call: Call[NewExecution, None]) -> Result:
    """202 and where to follow it for an asynchronous operation; 200 and its result for
    a synchronous one."""
    return await described.start_execution(call, await _bound(call), _op_id(call))


async def list_executions(call: Call[None, SovdQuery]) -> Executions:
    return await described.list_executions(call, await _bound(call), _op_id(call))


async def get_execution(call: Call[None, SovdQuery]) -> Result:
    return await described.get_execution(call, await _bound(call), _op_id(call))


async def stop_execution(call: Call[None, None]) -> Result | None:
    return await described.stop_execution(call, await _bound(call), _op_id(call))
