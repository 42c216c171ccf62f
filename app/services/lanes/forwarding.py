"""Submissions and cancels for a lane another node runs, forwarded to it (``LaneRouter``).

A node that takes a call for a vehicle whose lane it does not run asks the lane's owner
over the bus (request/reply on ``sovd.lane.<vehicle_id>``) and answers the client with
the owner's answer: the command (201) or the refusal, as if made here (same status, error
code, message and Retry-After). What travels: the caller's principal as this node
authenticated it (from the token or certificate, checked against the shared database;
never a field the client sent), the call's arguments and the client's address. The owner
believes the principal, as every node believes what arrives on ``sovd.>`` (NATS is
inside the trust boundary: docs/operations.md), and checks everything else itself: the
catalogue, the vehicle, SOVD locks, its lane's places and shares. The command rate is
counted by the node the client called, in the shared database (``app.services.
shared_limits``). SOVD lock calls travel the same way (``lock_calls``): a vehicle's locks
live with its lane's owner.

No node runs the lane (its owner died and its lease is not yet free, or no node has
taken it): this node tries to take it on the spot; if another still holds it, 503
``overloaded`` naming why, with Retry-After the sweep interval. The owner not answering
in time: 503 saying the command may have been accepted (its history tells).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any, Final

import msgspec

from app.bus.requests import NoAnswer, NoResponder, Requests
from app.bus.wire import lane_subject
from app.errors import Overloaded, ServiceError
from app.models import Command, Principal
from app.services.lanes.lock_calls import LockAnswer, LockCall
from app.services.lanes.ownership import LaneOwnership

# How long a forwarded call waits for the owner (it stores the command, durable, first).
FORWARD_TIMEOUT_S: Final = 10.0


class _Submit(msgspec.Struct, frozen=True, kw_only=True, tag="submit"):
    principal: Principal
    vehicle_id: str
    command_name: str
    command_params: dict[str, Any]
    client: str | None
    timeout_s: float | None


class _Cancel(msgspec.Struct, frozen=True, kw_only=True, tag="cancel"):
    principal: Principal
    vehicle_id: str
    command_id: str
    client: str | None


class _Withdraw(msgspec.Struct, frozen=True, kw_only=True, tag="withdraw"):
    principal: Principal
    vehicle_id: str
    command_id: str
    client: str | None


class _Refusal(msgspec.Struct, frozen=True, kw_only=True):
    status: int
    error_code: str
    message: str
    retry_after: int | None
    parameters: dict[str, Any] | None = None
    command_id: str | None = None


class _Reply(msgspec.Struct, frozen=True, kw_only=True):
    command: Command | None = None
    stored: bool = False  # a cancel: its end is stored; a withdrawal: it was withdrawn
    refusal: _Refusal | None = None
    lock_answer: LockAnswer | None = None  # a lock call's


_encode = msgspec.msgpack.Encoder().encode
_decode_call = msgspec.msgpack.Decoder(_Submit | _Cancel | _Withdraw | LockCall).decode
_decode_reply = msgspec.msgpack.Decoder(_Reply).decode


def _refusal_classes() -> dict[tuple[int, str], type[ServiceError]]:
    found: dict[tuple[int, str], type[ServiceError]] = {}
    todo: list[type[ServiceError]] = [ServiceError]
    while todo:
        cls = todo.pop()
        found.setdefault((cls.status_code, str(cls.error_code)), cls)
        todo.extend(cls.__subclasses__())
    return found


def _raise(refusal: _Refusal) -> None:
    """The owner's refusal, raised here as the same error."""
    cls = _refusal_classes().get((refusal.status, refusal.error_code), ServiceError)
    raise cls(
        refusal.message,
        retry_after=refusal.retry_after,
        parameters=refusal.parameters,
        command_id=refusal.command_id,
    )


SubmitHere = Callable[
    [Principal, str, str, dict[str, Any], str | None, float | None], Awaitable[Command]
]
CancelHere = Callable[[Principal, str, str | None], Awaitable[tuple[Command, bool]]]
WithdrawHere = Callable[[Principal, str, str | None], Awaitable[bool]]
LockHere = Callable[[LockCall], LockAnswer]


class LaneRouter:
    """Runs a call on this node if it runs the vehicle's lane, else asks the owner."""

    def __init__(
        self,
        ownership: LaneOwnership,
        requests: Requests,
        timeout_s: float = FORWARD_TIMEOUT_S,
    ) -> None:
        self._ownership = self.ownership = ownership
        self._requests = requests
        self._timeout_s = timeout_s
        self._submit_here: SubmitHere | None = None
        self._cancel_here: CancelHere | None = None
        self._withdraw_here: WithdrawHere | None = None
        self._lock_here: LockHere | None = None
        ownership.serve_with(self.answer)

    def attach(
        self, submit_here: SubmitHere, cancel_here: CancelHere, withdraw_here: WithdrawHere
    ) -> None:
        self._submit_here, self._cancel_here = submit_here, cancel_here
        self._withdraw_here = withdraw_here

    def attach_locks(self, lock_here: LockHere) -> None:
        """How this node answers the lock calls of the lanes it runs (``LockDesk``)."""
        self._lock_here = lock_here

    def runs_here(self, vehicle_id: str) -> bool:
        return self._ownership.owns(vehicle_id)

    async def submit(
        self,
        principal: Principal,
        vehicle_id: str,
        command_name: str,
        command_params: dict[str, Any],
        client: str | None,
        timeout_s: float | None,
    ) -> Command | None:
        """The owner's command; None when this node runs the lane (the caller goes on)."""
        call = _Submit(
            principal=principal,
            vehicle_id=vehicle_id,
            command_name=command_name,
            command_params=command_params,
            client=client,
            timeout_s=timeout_s,
        )
        reply = await self._ask(vehicle_id, call)
        if reply is None:
            return None
        if reply.command is None:
            raise ServiceError("the lane's owner answered without a command")
        return reply.command

    async def cancel(
        self, principal: Principal, vehicle_id: str, command_id: str, client: str | None
    ) -> tuple[Command, bool] | None:
        """The owner's cancel (the command, whether its end is stored); None when this
        node runs the lane."""
        call = _Cancel(
            principal=principal, vehicle_id=vehicle_id, command_id=command_id, client=client
        )
        reply = await self._ask(vehicle_id, call)
        if reply is None:
            return None
        if reply.command is None:
            raise ServiceError("the lane's owner answered without a command")
        return reply.command, reply.stored

    async def withdraw(
        self, principal: Principal, vehicle_id: str, command_id: str, client: str | None
    ) -> bool | None:
        """The owner's withdrawal of a command still waiting in its lane (whether it was
        withdrawn); None when this node runs the lane."""
        call = _Withdraw(
            principal=principal, vehicle_id=vehicle_id, command_id=command_id, client=client
        )
        reply = await self._ask(vehicle_id, call)
        return None if reply is None else reply.stored

    async def locks(self, call: LockCall) -> LockAnswer | None:
        """The owner's answer to a lock call; None when this node runs the lane."""
        reply = await self._ask(call.vehicle_id, call)
        if reply is None:
            return None
        if reply.lock_answer is None:
            raise ServiceError("the lane's owner answered a lock call without its answer")
        return reply.lock_answer

    async def _ask(
        self, vehicle_id: str, call: _Submit | _Cancel | _Withdraw | LockCall
    ) -> _Reply | None:
        if self._ownership.owns(vehicle_id):
            return None
        try:
            data = await self._requests.request(
                lane_subject(vehicle_id), _encode(call), self._timeout_s
            )
        except NoResponder:
            if await self._ownership.take_now(vehicle_id):
                return None
            wait = max(1, math.ceil(self._ownership.sweep_s))
            raise Overloaded(
                f"no node runs vehicle {vehicle_id}'s commands right now (its node has"
                f" stopped and another takes them over within about {wait} s); try again",
                retry_after=wait,
            ) from None
        except NoAnswer as exc:
            # What to look at before trying again: a lock call's lock, else the command.
            look = "the vehicle's locks" if isinstance(call, LockCall) else "the command history"
            raise Overloaded(
                f"the node that runs vehicle {vehicle_id}'s commands did not answer within"
                f" {self._timeout_s:g} s ({exc}); the call may have been carried out: see"
                f" {look} before trying again",
                retry_after=max(1, math.ceil(self._ownership.sweep_s)),
            ) from None
        reply = _decode_reply(data)
        if reply.refusal is not None:
            _raise(reply.refusal)
        return reply

    async def answer(self, data: bytes) -> bytes:
        """A call another node forwarded to a lane this node runs: the reply it sends back."""
        try:
            call = _decode_call(data)
            if not self._ownership.owns(call.vehicle_id):
                raise Overloaded(
                    f"vehicle {call.vehicle_id}'s commands are moving to another node; try again",
                    retry_after=max(1, math.ceil(self._ownership.sweep_s)),
                )
            if isinstance(call, LockCall):
                if self._lock_here is None:
                    raise Overloaded("this node is starting; try again", retry_after=1)
                return _encode(_Reply(lock_answer=self._lock_here(call)))
            if (
                self._submit_here is None
                or self._cancel_here is None
                or self._withdraw_here is None
            ):
                raise Overloaded("this node is starting; try again", retry_after=1)
            if isinstance(call, _Submit):
                command = await self._submit_here(
                    call.principal,
                    call.vehicle_id,
                    call.command_name,
                    call.command_params,
                    call.client,
                    call.timeout_s,
                )
                return _encode(_Reply(command=command))
            if isinstance(call, _Withdraw):
                withdrawn = await self._withdraw_here(call.principal, call.command_id, call.client)
                return _encode(_Reply(stored=withdrawn))
            command, stored = await self._cancel_here(call.principal, call.command_id, call.client)
            return _encode(_Reply(command=command, stored=stored))
        except ServiceError as exc:
            refusal = _Refusal(
                status=exc.status_code,
                error_code=str(exc.error_code),
                message=exc.message,
                retry_after=exc.retry_after,
                parameters=exc.parameters,
                command_id=exc.command_id,
            )
            return _encode(_Reply(refusal=refusal))
