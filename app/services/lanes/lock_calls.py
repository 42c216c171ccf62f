"""SOVD lock calls for a vehicle, as they travel to the node that runs its lane (issue #23
item 4). On a cluster a vehicle's locks live with its lane's owner, the one node that
checks them before admitting a state-changing command and withdraws what a new lock
covers from the lane's queue; every lock call (take, list, read, extend, release, break)
is made there, by ``app.services.lock_desk`` directly or over the bus
(``app.services.lanes.forwarding``), and answered as if made where the client called.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from app.models import Principal
from app.services.lock_scope import Lock
from app.services.locks import LockService

LockOp = Literal["take", "list", "get", "extend", "release", "break_all"]


class LockCall(msgspec.Struct, frozen=True, kw_only=True, tag="lock"):
    op: LockOp
    principal: Principal
    vehicle_id: str
    ecu_address: str | None = None  # take, list: the scope (None: the whole vehicle)
    component: str | None = None  # take: the ECU's name as the caller named it
    lock_id: str | None = None  # get, extend, release
    expiration_s: float = 0.0  # take, extend


class LockAnswer(msgspec.Struct, frozen=True, kw_only=True):
    # The lock taken, extended or read, or the scope's locks (a lock's
    # ``expires_at_monotonic`` is the owner's clock: only ``expires_at`` means anything
    # elsewhere).
    locks: list[Lock] = []
    broken: int = 0  # break_all: how many locks went


def run_here(locks: LockService, call: LockCall) -> LockAnswer:
    """``call`` on this node's locks (it runs the vehicle's lane, or is the only node);
    a refusal is raised as the ServiceError ``LockService`` raises."""
    who, vehicle = call.principal, call.vehicle_id
    if call.op == "take":
        taken = locks.take(who, vehicle, call.ecu_address, call.component, call.expiration_s)
        return LockAnswer(locks=[taken])
    if call.op == "list":
        return LockAnswer(locks=locks.locks(vehicle, call.ecu_address))
    if call.op == "break_all":
        return LockAnswer(broken=locks.break_all(who, vehicle))
    lock_id = call.lock_id or ""
    if call.op == "get":
        return LockAnswer(locks=[locks.get(vehicle, lock_id)])
    if call.op == "extend":
        return LockAnswer(locks=[locks.extend(who, vehicle, lock_id, call.expiration_s)])
    locks.release(who, vehicle, lock_id)
    return LockAnswer()
