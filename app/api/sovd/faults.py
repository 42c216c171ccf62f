"""A component's faults: read (with filters), one fault, clear all or one."""

from __future__ import annotations

from app.api.contract import Call, Result
from app.api.error_bodies import COMMAND_ID_HEADER
from app.api.sovd import described, tree
from app.api.sovd.types import FaultOut, FaultQuery, Faults, SovdQuery
from app.descriptions.fault_status import STATUS_KEYS
from app.errors import NotFound
from app.services.sovd.faults import FaultFilter, matches
from app.vehicles.trouble_codes import DTC_STATUS_BITS

# Per status bit, lowest first: its names in the query (CDA's, then the ISO one).
_BIT_NAMES = tuple(zip(STATUS_KEYS, DTC_STATUS_BITS, strict=True))


def _filter(q: FaultQuery) -> FaultFilter:
    wanted = tuple(
        (bit, value)
        for bit, names in enumerate(_BIT_NAMES)
        for name in names
        if (value := getattr(q, name)) is not None
    )
    return FaultFilter(status=wanted, severity=q.severity)


async def list_faults(call: Call[None, FaultQuery]) -> Result:
    at = await tree.target(call)
    keep = _filter(call.query)
    if at.ecu.bound is not None:
        return await described.list_faults(call, at, keep)
    faults, command_id = await call.services.sovd.faults.read(at)
    body = Faults(items=[f for f in faults if keep.keeps(f)])
    return Result(body, headers={COMMAND_ID_HEADER: command_id})


async def get_fault(call: Call[None, SovdQuery]) -> Result:
    at = await tree.target(call)
    ref: str = call.request.path_params["fault_code"]
    if at.ecu.bound is not None:
        return await described.get_fault(call, at, ref)
    faults, command_id = await call.services.sovd.faults.read(at)
    found = next((f for f in faults if matches(f, ref)), None)
    if found is None:
        raise NotFound(f"component {at.ecu.name} has no fault {ref}", command_id=command_id)
    return Result(FaultOut(item=found), headers={COMMAND_ID_HEADER: command_id})


async def clear_faults(call: Call[None, None]) -> Result:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.clear_faults(call, at, None)
    command_id = await call.services.sovd.faults.clear(at, None)
    return Result(None, headers={COMMAND_ID_HEADER: command_id})


async def clear_fault(call: Call[None, None]) -> Result:
    ref: str = call.request.path_params["fault_code"]
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.clear_faults(call, at, ref)
    command_id = await call.services.sovd.faults.clear(at, ref)
    return Result(None, headers={COMMAND_ID_HEADER: command_id})
