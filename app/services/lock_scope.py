"""What a lock covers (pure): a lock on the whole vehicle (``ecu_address`` None) covers
every ECU; a lock on one ECU covers that ECU and any whole-vehicle call. So a vehicle lock
meets any other lock on the vehicle, and two ECU locks only on the same ECU; a lock
stands in the way of another user's state-changing command on its scope. The locks
themselves (taking, expiry, breaking, withdrawing queued commands) are
``app.services.locks``.
"""

from __future__ import annotations

from dataclasses import dataclass

from app import catalogue
from app.errors import BadRequest
from app.models import Command
from app.vehicles.addresses import InvalidAddress, canonical_address


def normalise_address(raw: str | None, field: str = catalogue.ECU_ADDRESS_PARAM) -> str | None:
    """An ECU address as locks compare it: ``0x10``, ``0x0010`` -> ``0x0010``; None is
    the whole vehicle. BadRequest naming ``field`` for anything else."""
    if raw is None:
        return None
    try:
        return canonical_address(raw, field)
    except InvalidAddress as exc:
        raise BadRequest(str(exc)) from None


def overlap(a: str | None, b: str | None) -> bool:
    """Whether two scopes meet: the whole vehicle meets everything, an ECU only itself."""
    return a is None or b is None or a == b


def scope_text(vehicle_id: str, ecu_address: str | None) -> str:
    if ecu_address is None:
        return f"vehicle {vehicle_id}"
    return f"ECU {ecu_address} of vehicle {vehicle_id}"


@dataclass(frozen=True, slots=True)
class Lock:
    lock_id: str
    vehicle_id: str
    ecu_address: str | None  # None: the whole vehicle
    component: str | None  # the ECU's name, as the caller named it (None: the vehicle)
    user_id: str
    username: str
    expires_at_monotonic: float
    expires_at: str  # RFC 3339


def covers(lock: Lock, command: Command) -> bool:
    """Whether ``lock`` stands in the way of ``command`` (another user's, changing state,
    on the locked scope)."""
    if command.user_id == lock.user_id:
        return False
    params = command.command_params
    if not catalogue.changes_state(command.command_name, params):
        return False
    address = params.get("ecuAddress")
    return overlap(
        lock.ecu_address, normalise_address(address) if isinstance(address, str) else None
    )
