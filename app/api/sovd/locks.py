"""Locks on a vehicle (the server root) or one component: while a user holds one, other
users' state-changing calls there are refused (``app.services.locks``). The calls go
through ``app.services.lock_desk``: on a cluster, to the node that runs the vehicle's lane."""

from __future__ import annotations

from typing import Any

from app.api.contract import Call, Result
from app.api.sovd import tree
from app.api.sovd.types import LockCreated, LockOut, LockRef, Locks, NewLock, SovdQuery
from app.errors import NotFound
from app.models import Vehicle
from app.services.sovd.entities import Component


async def _scope(call: Call[Any, Any]) -> tuple[Vehicle, Component | None, str]:
    """The vehicle, the component (None: the whole vehicle) and the locks' URI."""
    if "component" in call.request.path_params:
        at = await tree.target(call)
        return at.vehicle, at.ecu, f"{tree.component_uri(call, at.vehicle, at.ecu)}/locks"
    vehicle = await tree.vehicle(call)
    return vehicle, None, f"{tree.base_uri(call, vehicle)}/locks"


async def take_lock(call: Call[NewLock, None]) -> Result:
    vehicle, ecu, here = await _scope(call)
    lock = await call.services.lock_desk.take(
        call.who,
        vehicle.vehicle_id,
        ecu.ecu_address if ecu else None,
        ecu.name if ecu else None,
        call.body.lock_expiration,
    )
    return Result(LockCreated(id=lock.lock_id), headers={"Location": f"{here}/{lock.lock_id}"})


async def list_locks(call: Call[None, SovdQuery]) -> Locks:
    vehicle, ecu, _ = await _scope(call)
    found = await call.services.lock_desk.locks(
        call.who, vehicle.vehicle_id, ecu.ecu_address if ecu else None
    )
    return Locks(
        items=[LockRef(id=lock.lock_id, owned=lock.user_id == call.who.user_id) for lock in found]
    )


async def get_lock(call: Call[None, SovdQuery]) -> LockOut:
    vehicle, ecu, _ = await _scope(call)
    lock = await call.services.lock_desk.get(call.who, vehicle.vehicle_id, call.path_id("lock_id"))
    _same_scope(lock.ecu_address, ecu, call.path_id("lock_id"))
    return LockOut(lock_expiration=lock.expires_at)


async def extend_lock(call: Call[NewLock, None]) -> None:
    vehicle, ecu, _ = await _scope(call)
    lock_id = call.path_id("lock_id")
    await _here(call, vehicle, ecu, lock_id)
    await call.services.lock_desk.extend(
        call.who, vehicle.vehicle_id, lock_id, call.body.lock_expiration
    )


async def release_lock(call: Call[None, None]) -> None:
    vehicle, ecu, _ = await _scope(call)
    lock_id = call.path_id("lock_id")
    await _here(call, vehicle, ecu, lock_id)
    await call.services.lock_desk.release(call.who, vehicle.vehicle_id, lock_id)


async def break_all_locks(call: Call[None, None]) -> None:
    """An admin breaks every lock of the vehicle and its components (the table admits
    admins only); each holder hears ``lock-broken`` once."""
    vehicle = await tree.vehicle(call)
    await call.services.lock_desk.break_all(call.who, vehicle.vehicle_id)


async def _here(
    call: Call[Any, Any], vehicle: Vehicle, ecu: Component | None, lock_id: str
) -> None:
    """A live lock must be addressed where it was taken; one that is gone is left to
    ``extend``/``release`` to report (``lock-broken`` to its holder, else not found)."""
    try:
        lock = await call.services.lock_desk.get(call.who, vehicle.vehicle_id, lock_id)
    except NotFound:
        return
    _same_scope(lock.ecu_address, ecu, lock_id)


def _same_scope(lock_ecu: str | None, ecu: Component | None, lock_id: str) -> None:
    """A lock is found only where it was taken (the vehicle's, or that component's)."""
    if lock_ecu != (ecu.ecu_address if ecu else None):
        raise NotFound(f"lock {lock_id} does not exist here")
