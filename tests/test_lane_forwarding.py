"""Lane ownership and forwarding (app.services.lanes) between two nodes in one process:
the real LaneOwnership and LaneRouter of each node over fakes written here for what
lies below them (leases that one node at a time may hold, a request/reply network, the
two stores' calls they make) and the real in-process bus.

A call for a lane the other node runs reaches it with the caller's principal and comes
back as its answer; a refusal comes back as the same error (status, message,
Retry-After); with no node serving the vehicle, the node takes the lane on first use,
ending what its dead owner left as interrupted (stored, then published), or, with the
lease held elsewhere, refuses with 503 and a Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from app.bus import EventBus
from app.bus.requests import Handler, NoResponder
from app.clock import Clock
from app.errors import Overloaded, RateLimited
from app.events import ErrorEvent
from app.models import Command, Principal
from app.services.lanes import LaneOwnership, LaneRouter
from app.store.leases import LeaseLost
from app.telemetry import NoTelemetry
from app.vocabulary import CommandStatus, Role
from tests.support.follow_world import OWNER, READ_DTC, VEHICLE_ID, world
from tests.support.harness import DEADLINE_S

pytestmark = pytest.mark.fast

ENGINEER = Principal(user_id="u1", username="engineer", role=Role.ENGINEER, session_id="s1")


class Network:
    """Request/reply between the nodes: a subject answers while one node serves it."""

    def __init__(self) -> None:
        self.served: dict[str, Handler] = {}
        self.holders: dict[str, object] = {}  # vehicle -> the leases holding it

    def for_node(self) -> NodeRequests:
        return NodeRequests(self)


class _Served:
    def __init__(self, network: Network, subject: str) -> None:
        self._network, self._subject = network, subject

    async def stop(self) -> None:
        self._network.served.pop(self._subject, None)


class NodeRequests:
    def __init__(self, network: Network) -> None:
        self._network = network
        self.unconfirmed = 0  # how many next serves the bus does not confirm in time
        self.hold: asyncio.Event | None = None  # set: the next serves wait for it
        self.holding = asyncio.Event()  # a serve is waiting for ``hold``

    async def serve(self, subject: str, handler: Handler) -> _Served:
        if self.hold is not None:
            self.holding.set()
            await self.hold.wait()
        if self.unconfirmed:
            self.unconfirmed -= 1
            raise TimeoutError("the bus did not confirm the subscription")  # as NATS's
        self._network.served[subject] = handler
        return _Served(self._network, subject)

    async def request(self, subject: str, payload: bytes, timeout_s: float) -> bytes:
        handler = self._network.served.get(subject)
        if handler is None:
            raise NoResponder(subject)
        return await handler(payload)


class FakeLeases:
    def __init__(self, network: Network) -> None:
        self._network = network

    async def open(self) -> None:
        pass

    async def close(self) -> None:
        for vehicle, holder in list(self._network.holders.items()):
            if holder is self:
                del self._network.holders[vehicle]

    async def take(self, vehicle_ids: Sequence[str]) -> list[str]:
        # A lease this node holds is taken again, as PostgreSQL's advisory locks are.
        free = [v for v in vehicle_ids if self._network.holders.get(v, self) is self]
        for v in free:
            self._network.holders[v] = self
        return free

    async def check(self) -> None:
        pass


class FakeVehicles:
    def __init__(self, ids: list[str]) -> None:
        self._ids = ids
        self.read = asyncio.Event()  # the ids were read (a sweep goes on from there)

    async def ids(self) -> list[str]:
        self.read.set()
        return list(self._ids)


class FakeCommands:
    """The active commands per vehicle, as the shared database holds them."""

    def __init__(self, active: dict[str, list[tuple[str, str]]]) -> None:
        self.active = active
        self.interrupted: list[list[str]] = []

    async def interrupt_active(
        self, at: str, message: str, vehicle_ids: Sequence[str] | None = None
    ) -> list[tuple[str, str]]:
        assert vehicle_ids is not None, "a node taking lanes names them"
        self.interrupted.append(list(vehicle_ids))
        return [c for v in vehicle_ids for c in self.active.pop(v, [])]


def _command(vehicle_id: str, principal: Principal) -> Command:
    return Command(
        command_id="c-1",
        vehicle_id=vehicle_id,
        user_id=principal.user_id,
        command_name="ReadDTC",
        command_params={"ecuAddress": "0x0010"},
        status=CommandStatus.PENDING,
        error_code=None,
        error_message=None,
        submitted_at="2026-01-01T00:00:00+00:00",
        completed_at=None,
    )


class Node:
    def __init__(
        self, network: Network, vehicles: list[str], commands: FakeCommands, bus: EventBus
    ) -> None:
        self.leases = FakeLeases(network)
        self.requests = requests = network.for_node()
        self.vehicles = FakeVehicles(vehicles)
        self.ownership = LaneOwnership(
            self.leases,  # type: ignore[arg-type]
            requests,
            self.vehicles,  # type: ignore[arg-type]
            commands,  # type: ignore[arg-type]
            bus,
            NoTelemetry(),
            Clock(),
            sweep_s=2.5,
        )
        self.router = LaneRouter(self.ownership, requests)
        self.calls: list[tuple[Any, ...]] = []
        self.refuse: Exception | None = None
        self.router.attach(self._submit_here, self._cancel_here, self._withdraw_here)

    async def _submit_here(
        self,
        principal: Principal,
        vehicle_id: str,
        name: str,
        params: dict[str, Any],
        client: str | None,
        timeout_s: float | None,
    ) -> Command:
        self.calls.append((principal, vehicle_id, name, params, client, timeout_s))
        if self.refuse is not None:
            raise self.refuse
        return _command(vehicle_id, principal)

    async def _withdraw_here(
        self, principal: Principal, command_id: str, client: str | None
    ) -> bool:
        self.calls.append(("withdraw", principal, command_id, client))
        return True

    async def _cancel_here(
        self, principal: Principal, command_id: str, client: str | None
    ) -> tuple[Command, bool]:
        self.calls.append(("cancel", principal, command_id, client))
        return _command("v1", principal), True


async def _submit(node: Node, vehicle_id: str) -> Command | None:
    return await node.router.submit(
        ENGINEER, vehicle_id, "ReadDTC", {"ecuAddress": "0x10"}, "10.0.0.9", 4.0
    )


def test_a_call_for_another_nodes_lane_is_answered_by_that_node() -> None:
    async def scenario() -> None:
        network, bus = Network(), EventBus()
        commands = FakeCommands({})
        b = Node(network, ["v1", "v2"], commands, bus)
        links: list[tuple[str, list[str]]] = []

        async def taken(ids: list[str]) -> None:
            links.append(("up", ids))

        b.ownership.follow_links(taken, lambda ids: links.append(("down", ids)))
        await b.ownership.start()  # first: takes both lanes
        assert links == [("up", ["v1", "v2"])]  # the DoIP links follow the lanes
        a = Node(network, ["v1", "v2"], commands, bus)
        await a.ownership.start()
        try:
            assert (b.ownership.owned, a.ownership.owned) == (2, 0)
            command = await _submit(a, "v1")
            assert command == _command("v1", ENGINEER)
            assert a.calls == []
            assert b.calls == [(ENGINEER, "v1", "ReadDTC", {"ecuAddress": "0x10"}, "10.0.0.9", 4.0)]
            assert await a.router.cancel(ENGINEER, "v1", "c-1", None) == (
                _command("v1", ENGINEER),
                True,
            )
            assert b.calls[-1] == ("cancel", ENGINEER, "c-1", None)
            assert await a.router.withdraw(ENGINEER, "v2", "c-2", "10.0.0.9") is True
            assert b.calls[-1] == ("withdraw", ENGINEER, "c-2", "10.0.0.9")
            # The owner's refusal is the caller's: same class, message and Retry-After.
            b.refuse = RateLimited("at most 3 commands per minute per user", retry_after=7)
            with pytest.raises(RateLimited) as refused:
                await _submit(a, "v2")
            assert (refused.value.message, refused.value.retry_after) == (
                "at most 3 commands per minute per user",
                7,
            )
            assert await _submit(b, "v1") is None  # the owner runs its own calls itself
            await b.ownership.stop_serving()
            assert links[-1] == ("down", ["v1", "v2"])
        finally:
            await a.ownership.close()
            await b.ownership.close()

    asyncio.run(scenario())


def test_no_owner_the_node_takes_the_lane_or_says_503() -> None:
    async def scenario() -> None:
        network, bus = Network(), EventBus()
        commands = FakeCommands({"v1": [("left-1", "ReadDTC")], "v2": [("left-2", "ClearDTC")]})
        b = Node(network, ["v1", "v2"], commands, bus)
        await b.ownership.start()
        a = Node(network, ["v1", "v2"], commands, bus)
        await a.ownership.start()
        assert commands.interrupted == [["v1", "v2"]]  # B's start: it took both
        commands.active = {"v1": [("left-3", "ReadDTC")]}  # B's, unfinished
        try:
            # B stops serving but still holds the leases (draining): 503 on A.
            await b.ownership.stop_serving()
            with pytest.raises(Overloaded) as refused:
                await _submit(a, "v1")
            assert refused.value.retry_after == 3  # the sweep interval, rounded up
            assert "no node runs vehicle v1's commands right now" in refused.value.message
            # B's leases gone (B died): A takes v1 on first use and runs the call itself,
            # after ending what B left of v1 as interrupted, published for any stream.
            await b.leases.close()
            async with bus.subscribe("left-3") as sub:
                assert await _submit(a, "v1") is None
                event = await asyncio.wait_for(sub.get(), 1)
            assert isinstance(event, ErrorEvent)
            assert (event.status, event.error_code) == (CommandStatus.FAILED, "interrupted")
            assert commands.interrupted[-1] == ["v1"] and commands.active == {}
            assert a.ownership.owns("v1") and not a.ownership.owns("v2")
            await a.ownership.sweep()  # v2 too, on the next sweep
            assert a.ownership.owned == 2
        finally:
            await a.ownership.close()
            await b.ownership.close()

    asyncio.run(scenario())


def test_a_lane_the_bus_does_not_confirm_in_time_is_a_503_and_taken_on_the_next_call() -> None:
    async def scenario() -> None:
        network, bus = Network(), EventBus()
        node = Node(network, ["v1"], FakeCommands({}), bus)
        node.requests.unconfirmed = 1
        try:
            with pytest.raises(Overloaded) as refused:
                await _submit(node, "v1")
            assert refused.value.retry_after == 3  # the sweep interval, rounded up
            assert "could not take over vehicle v1's commands just now" in refused.value.message
            assert "TimeoutError" in refused.value.message
            assert not node.ownership.owns("v1") and node.calls == []
            # The bus answers again: the next call takes the lane and runs here.
            assert await _submit(node, "v1") is None
            assert node.ownership.owns("v1")
        finally:
            await node.ownership.close()

    asyncio.run(scenario())


def test_a_sweep_never_takes_again_a_lane_taken_while_it_waited() -> None:
    """Found by a CI run of the cluster benchmark: two commands ended "interrupted" on a
    single node. A sweep listed the free lanes, then waited for a first-use take of one
    of them; taking it again (PostgreSQL's advisory locks are re-entrant) ended the
    commands this node had started meanwhile as a dead owner's."""

    async def scenario() -> None:
        network, bus = Network(), EventBus()
        commands = FakeCommands({})
        node = Node(network, ["v1"], commands, bus)
        node.requests.hold = asyncio.Event()
        try:
            first_use = asyncio.create_task(node.ownership.take_now("v1"))
            await node.requests.holding.wait()  # v1's lease taken, its serving under way
            sweep = asyncio.create_task(node.ownership.sweep())
            await node.vehicles.read.wait()  # the sweep waits for the first-use take now
            commands.active = {"v1": [("running-1", "ReadDTC")]}  # ours, from here on
            node.requests.hold.set()
            assert await first_use is True
            await sweep
            assert commands.interrupted == [["v1"]]  # the first use's take only
            assert commands.active == {"v1": [("running-1", "ReadDTC")]}
            assert node.ownership.owns("v1")
        finally:
            await node.ownership.close()

    asyncio.run(scenario())


def test_lanes_lost_with_their_lease_stop_what_they_ran_as_interrupted(tmp_path: Path) -> None:
    """A node that lost its leases (``when_lost``) stops the commands it still runs or
    queues for those lanes: they end interrupted here, what they stored kept."""

    async def scenario() -> None:
        async with world(tmp_path) as w:
            running = await w.commands.submit(OWNER, VEHICLE_ID, *READ_DTC, None)
            queued = await w.commands.submit(OWNER, VEHICLE_ID, *READ_DTC, None)
            w.vehicle.send(running.command_id, 1)
            deadline = asyncio.get_running_loop().time() + DEADLINE_S
            while not await w.store.responses(running.command_id, 0, 10):
                assert asyncio.get_running_loop().time() < deadline, "chunk 1 never stored"
                await asyncio.sleep(0.01)
            assert w.pipeline.stop_lanes({"another vehicle"}, "not these") == 0
            assert w.pipeline.stop_lanes({VEHICLE_ID}, "the lane was lost") == 2
            while w.pipeline.active:
                assert asyncio.get_running_loop().time() < deadline, "still running"
                await asyncio.sleep(0.01)
            for command in (running, queued):
                stored = await w.store.get(command.command_id)
                assert stored is not None
                assert (stored.status, stored.error_code, stored.error_message) == (
                    CommandStatus.FAILED,
                    "interrupted",
                    "the lane was lost",
                )
            assert len(await w.store.responses(running.command_id, 0, 10)) == 1

    asyncio.run(scenario())


def test_a_lost_lease_connection_unserves_every_lane_and_says_so() -> None:
    async def scenario() -> None:
        network, bus = Network(), EventBus()
        node = Node(network, ["v1", "v2"], FakeCommands({}), bus)
        lost: list[list[str]] = []
        node.ownership.when_lost(lost.append)
        await node.ownership.start()
        assert node.ownership.owned == 2

        async def gone(vehicle_ids: Sequence[str]) -> list[str]:
            raise LeaseLost("the lease connection was lost")

        node.leases.take = gone  # type: ignore[method-assign]
        await node.ownership.sweep()
        assert (lost, node.ownership.owned, network.served) == ([["v1", "v2"]], 0, {})
        await node.ownership.close()

    asyncio.run(scenario())


def test_lock_calls_through_a_node_without_the_lane_are_decided_by_its_owner() -> None:
    """Every lock call (app.services.lock_desk) goes to the lane's owner: the lock lives
    there, and its refusals come back as the same errors; a lane lost takes its locks."""
    from app.errors import BadRequest, Forbidden, LockBroken, NotFound, PreconditionNotFulfilled
    from app.services.lock_desk import LockDesk
    from app.services.locks import LockService

    alice = ENGINEER
    bob = Principal(user_id="u2", username="bob", role=Role.ENGINEER, session_id="s2")
    admin = Principal(user_id="u3", username="root", role=Role.ADMIN, session_id="s3")

    async def scenario() -> None:
        network, bus = Network(), EventBus()
        b = Node(network, ["v1"], FakeCommands({}), bus)
        await b.ownership.start()  # B runs the lane
        a = Node(network, ["v1"], FakeCommands({}), bus)
        await a.ownership.start()
        locks_a, locks_b = LockService(Clock()), LockService(Clock())
        desk_a, desk_b = LockDesk(locks_a, a.router), LockDesk(locks_b, b.router)
        lock = await desk_a.take(alice, "v1", "0x10", "engine", 60)
        assert locks_b.locks("v1", "0x0010") == [lock] and locks_a.locks("v1", "0x0010") == []
        assert await desk_a.get(bob, "v1", lock.lock_id) == lock
        assert [x.lock_id for x in await desk_a.locks(bob, "v1", "0x10")] == [lock.lock_id]
        with pytest.raises(PreconditionNotFulfilled, match="locked by engineer"):
            await desk_a.take(bob, "v1", None, None, 60)
        with pytest.raises(BadRequest, match="lock_expiration"):
            await desk_a.take(bob, "v1", "0x18", None, 0.5)
        with pytest.raises(Forbidden, match="only its holder"):
            await desk_a.extend(bob, "v1", lock.lock_id, 60)
        with pytest.raises(NotFound):
            await desk_a.get(bob, "v1", "no-such-lock")
        extended = await desk_a.extend(alice, "v1", lock.lock_id, 120)
        assert extended.expires_at > lock.expires_at
        assert await desk_b.break_all(admin, "v1") == 1
        with pytest.raises(LockBroken, match="broken by root"):
            await desk_a.release(alice, "v1", lock.lock_id)
        again = await desk_a.take(alice, "v1", None, None, 60)
        await desk_b.release(alice, "v1", again.lock_id)
        assert await desk_a.locks(alice, "v1", None) == []
        kept = await desk_a.take(alice, "v1", None, None, 60)
        assert locks_b.locks("v1", None) == [kept]

        async def gone(vehicle_ids: Sequence[str]) -> list[str]:
            raise LeaseLost("the lease connection was lost")

        b.leases.take = gone  # type: ignore[method-assign]
        await b.ownership.sweep()  # B lost its lane: its locks went with it
        assert locks_b.locks("v1", None) == []
        await a.ownership.close()
        await b.ownership.close()

    asyncio.run(scenario())
