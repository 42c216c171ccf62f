"""Where the API's SOVD lock calls go (``LockDesk``): this node's locks
(``app.services.locks``) on a single node, or when this node runs the vehicle's lane; on a
cluster, else, the lane owner's, over the bus (``app.services.lanes.lock_calls``). So a
vehicle's locks are decided in one place, the node that also checks them before a
state-changing command enters the lane: two users racing for conflicting locks through
two nodes get one lock, and a lock taken through one node refuses another user's
state-changing call through any other (it is forwarded to the owner, which checks).

The lock semantics are ``LockService``'s, unchanged (expiry, break, ``lock-broken``
once, withdrawal of queued commands). Locks stay in the owner's memory: when a lane
moves (its owner died, or lost its database lease), that vehicle's locks are gone, as
after a restart of a single node, along with the commands the old owner was running
(they end ``interrupted``).
"""

from __future__ import annotations

from app.errors import ServiceError
from app.models import Principal
from app.services.lanes import LaneRouter
from app.services.lanes.lock_calls import LockAnswer, LockCall, run_here
from app.services.lock_scope import Lock
from app.services.locks import LockService


class LockDesk:
    def __init__(self, locks: LockService, lanes: LaneRouter | None = None) -> None:
        self._locks = locks
        self._lanes = lanes
        if lanes is not None:
            lanes.attach_locks(self._here)  # calls the other nodes forward to this one
            # Leases lost: those lanes' locks are the next owner's to decide now.
            lanes.ownership.when_lost(locks.forget_vehicles)

    def _here(self, call: LockCall) -> LockAnswer:
        return run_here(self._locks, call)

    async def _call(self, call: LockCall) -> LockAnswer:
        if self._lanes is not None:
            answer = await self._lanes.locks(call)
            if answer is not None:
                return answer
        return self._here(call)  # this node runs the lane (or is the only node)

    async def take(
        self,
        who: Principal,
        vehicle_id: str,
        ecu_address: str | None,
        component: str | None,
        expiration_s: float,
    ) -> Lock:
        call = LockCall(
            op="take",
            principal=who,
            vehicle_id=vehicle_id,
            ecu_address=ecu_address,
            component=component,
            expiration_s=expiration_s,
        )
        return _one((await self._call(call)).locks)

    async def locks(self, who: Principal, vehicle_id: str, ecu_address: str | None) -> list[Lock]:
        call = LockCall(op="list", principal=who, vehicle_id=vehicle_id, ecu_address=ecu_address)
        return (await self._call(call)).locks

    async def get(self, who: Principal, vehicle_id: str, lock_id: str) -> Lock:
        call = LockCall(op="get", principal=who, vehicle_id=vehicle_id, lock_id=lock_id)
        return _one((await self._call(call)).locks)

    async def extend(
        self, who: Principal, vehicle_id: str, lock_id: str, expiration_s: float
    ) -> Lock:
        call = LockCall(
            op="extend",
            principal=who,
            vehicle_id=vehicle_id,
            lock_id=lock_id,
            expiration_s=expiration_s,
        )
        return _one((await self._call(call)).locks)

    async def release(self, who: Principal, vehicle_id: str, lock_id: str) -> None:
        await self._call(
            LockCall(op="release", principal=who, vehicle_id=vehicle_id, lock_id=lock_id)
        )

    async def break_all(self, who: Principal, vehicle_id: str) -> int:
        call = LockCall(op="break_all", principal=who, vehicle_id=vehicle_id)
        return (await self._call(call)).broken


def _one(locks: list[Lock]) -> Lock:
    if len(locks) != 1:
        raise ServiceError(f"the lane's owner answered {len(locks)} locks where one was due")
    return locks[0]
