"""A component's modes: the diagnostic session (read and set) and the security state."""

from __future__ import annotations

from app.api.contract import Call, Result
from app.api.error_bodies import COMMAND_ID_HEADER
from app.api.sovd import described, tree
from app.api.sovd.types import ModeChange, ModeOut, ModeRef, Modes, ModeSet, SovdQuery
from app.services.sovd.modes import MODES, mode


async def list_modes(call: Call[None, SovdQuery]) -> Modes:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.list_modes(call, at)
    return Modes(items=[ModeRef(id=m.id, name=m.name) for m in MODES])


async def get_mode(call: Call[None, SovdQuery]) -> Result:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return Result(await described.get_mode(call, at, call.request.path_params["mode"]))
    info = mode(call.request.path_params["mode"])
    value, command_id = await call.services.sovd.modes.read(at, info.id)
    headers = {COMMAND_ID_HEADER: command_id} if command_id is not None else None
    return Result(ModeOut(id=info.id, name=info.name, value=value), headers=headers)


async def set_mode(call: Call[ModeChange, None]) -> Result:
    at = await tree.target(call)
    if at.ecu.bound is not None:
        return await described.set_mode(call, at, call.request.path_params["mode"])
    info = mode(call.request.path_params["mode"])
    b = call.body
    command_id = await call.services.sovd.modes.set(at, info.id, b.value, b.mode_expiration)
    body = ModeSet(id=info.id, value=b.value.lower())
    return Result(body, headers={COMMAND_ID_HEADER: command_id})
