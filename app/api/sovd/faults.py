"""A component's faults: read (with filters), one fault, clear all or one."""

from __future__ import annotations

from app.api.contract import Call, Result
from app.api.errors import COMMAND_ID_HEADER
from app.api.sovd import tree
from app.api.sovd.types import FaultOut, FaultQuery, Faults, SovdQuery
from app.errors import NotFound
from app.services.sovd.faults import STATUS_BITS, FaultFilter, matches


def _filter(q: FaultQuery) -> FaultFilter:
    wanted = tuple((bit, value) for bit in STATUS_BITS if (value := getattr(q, bit)) is not None)
    return FaultFilter(status=wanted, severity=q.severity)


async def list_faults(call: Call[None, FaultQuery]) -> Result:
    faults, command_id = await call.services.sovd.faults.read(await tree.target(call))
    keep = _filter(call.query)
    body = Faults(items=[f for f in faults if keep.keeps(f)])
    return Result(body, headers={COMMAND_ID_HEADER: command_id})


async def get_fault(call: Call[None, SovdQuery]) -> Result:
    at = await tree.target(call)
    ref: str = call.request.path_params["fault_code"]
    faults, command_id = await call.services.sovd.faults.read(at)
    found = next((f for f in faults if matches(f, ref)), None)
    if found is None:
        raise NotFound(f"component {at.ecu.name} has no fault {ref}", command_id=command_id)
    return Result(FaultOut(item=found), headers={COMMAND_ID_HEADER: command_id})


async def clear_faults(call: Call[None, None]) -> Result:
    command_id = await call.services.sovd.faults.clear(await tree.target(call), None)
    return Result(None, headers={COMMAND_ID_HEADER: command_id})


async def clear_fault(call: Call[None, None]) -> Result:
    ref: str = call.request.path_params["fault_code"]
    command_id = await call.services.sovd.faults.clear(await tree.target(call), ref)
    return Result(None, headers={COMMAND_ID_HEADER: command_id})
