"""A component's operations and their executions."""

from __future__ import annotations

from typing import Any

from app.api.contract import Call, Result
from app.api.error_bodies import COMMAND_ID_HEADER, generic_error
from app.api.sovd import described, tree
from app.api.sovd.types import (
    UNSET,
    DataError,
    ExecutionOut,
    ExecutionRef,
    Executions,
    ExecutionStarted,
    NewExecution,
    OperationOut,
    OperationRef,
    Operations,
    SovdQuery,
)
from app.services.sovd.entities import Target
from app.services.sovd.operations import Execution, Operation, operation

CAPABILITY = "execute"


def _ref(op: Operation) -> OperationRef:
    return OperationRef(
        id=op.id,
        name=op.name,
        proximity_proof_required=False,
        asynchronous_execution=op.asynchronous,
    )


def _executions_uri(call: Call[Any, Any], at: Target, op: Operation) -> str:
    return f"{tree.component_uri(call, at.vehicle, at.ecu)}/operations/{op.id}/executions"


def _out(execution: Execution) -> ExecutionOut:
    error: list[DataError] | Any = UNSET
    if execution.error is not None:
        failed = execution.error
        generic = generic_error(failed.error_code, failed.message, failed.parameters)
        error = [DataError(path="", error=generic)]
    return ExecutionOut(
        status=execution.status,
        capability=CAPABILITY,
        parameters=execution.parameters,
        progress=UNSET if execution.progress is None else execution.progress,
        error=error,
    )


def _op_id(call: Call[Any, Any]) -> str:
    return str(call.request.path_params["operation"])


async def _bound(call: Call[Any, Any]) -> Target | None:
    """The target when its component is bound to a description (the tree is then
    ``described``'s), else None."""
    at = await tree.target(call)
    return at if at.ecu.bound is not None else None


async def _operation(call: Call[Any, Any]) -> tuple[Target, Operation]:
    at = await tree.target(call)
    return at, operation(at.ecu, call.request.path_params["operation"])


async def list_operations(call: Call[None, SovdQuery]) -> Operations:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.list_operations(call, at)
    ecu = at.ecu
    return Operations(items=[_ref(o) for o in ecu.description.operations])


async def get_operation(call: Call[None, SovdQuery]) -> OperationOut:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.get_operation(call, at, _op_id(call))
    _, op = await _operation(call)
    modes = {"session": op.session.upper()} if op.session else UNSET
    return OperationOut(item=_ref(op), modes=modes)


async def start_execution(call: Call[NewExecution, None]) -> Result:
    """202 and where to follow it for an asynchronous operation; 200 and its result for
    a synchronous one."""
    bound = await _bound(call)
    if bound is not None:
        return await described.start_execution(call, bound, _op_id(call))
    at, op = await _operation(call)
    b = call.body
    execution = await call.services.sovd.operations.start(at, op, b.parameters, b.timeout)
    headers = {COMMAND_ID_HEADER: execution.id}
    if not op.asynchronous:
        return Result(_out(execution), status=200, headers=headers)
    headers["Location"] = f"{_executions_uri(call, at, op)}/{execution.id}"
    body = ExecutionStarted(id=execution.id, status=execution.status)
    return Result(body, status=202, headers=headers)


async def list_executions(call: Call[None, SovdQuery]) -> Executions:
    bound = await _bound(call)
    if bound is not None:
        return await described.list_executions(call, bound, _op_id(call))
    at, op = await _operation(call)
    ids = await call.services.sovd.operations.executions(at, op)
    here = _executions_uri(call, at, op)
    return Executions(items=[ExecutionRef(id=i, href=f"{here}/{i}") for i in ids])


async def get_execution(call: Call[None, SovdQuery]) -> Result:
    bound = await _bound(call)
    if bound is not None:
        return await described.get_execution(call, bound, _op_id(call))
    at, op = await _operation(call)
    execution = await call.services.sovd.operations.execution(at, op, call.path_id("execution_id"))
    return Result(_out(execution), headers={COMMAND_ID_HEADER: execution.id})


async def stop_execution(call: Call[None, None]) -> Result | None:
    bound = await _bound(call)
    if bound is not None:
        return await described.stop_execution(call, bound, _op_id(call))
    at, op = await _operation(call)
    await call.services.sovd.operations.stop(at, op, call.path_id("execution_id"))
    return None
