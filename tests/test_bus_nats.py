"""The NATS bus between nodes (issue #23 item 2), on a real ``nats-server``: two bus
objects stand for two nodes (two apps cannot share one data directory).

A subscriber on one node gets the events published on the other, whole (typed reading
included) and in order, and a node never gets its own back; notices go to the other
nodes only; a node that could not pass some events on sends a gap instead of a stream with
a hole; an outage overflows the subscribers (their readers start again from the store),
readiness says so, and the bus carries on once the server is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from app.bus import DescriptionsChanged, LockChanged, Missed, Notice, SessionRevoked, UserRevoked
from app.bus.nats_bus import NatsBus
from app.errors import StartupError
from app.events import ErrorEvent, ResponseChunk, StatusEvent
from app.services.commands import CommandService
from app.services.pipeline import Pipeline, PipelineSettings
from app.store.vehicles import VehicleStore
from app.telemetry import NoTelemetry
from app.vehicles.connector import DtcRecord, Negative
from app.vocabulary import CommandStatus, FailureCode
from tests.support import follow_world
from tests.support.nats import NatsServer

pytestmark = pytest.mark.socket

DEADLINE_S = 5.0
CID = "6f1c2b1e-0000-4000-8000-000000000001"
READ = follow_world.READ_DTC


@asynccontextmanager
async def node(url: str, **kwargs: int) -> AsyncIterator[NatsBus]:
    bus = NatsBus((url,), **kwargs)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.aclose()


def _chunk(n: int, command_id: str = CID) -> ResponseChunk:
    return ResponseChunk(
        command_id=command_id,
        sequence_number=n,
        response_payload={"n": n},
        is_final=False,
        received_at="t",
    )


async def _poll(predicate: object, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not predicate():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _until_ready(bus: NatsBus) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while not await bus.ready(0.2):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the bus did not reconnect")
        await asyncio.sleep(0.05)


def test_a_subscriber_gets_another_nodes_events_whole_and_in_order(
    nats_server: NatsServer,
) -> None:
    typed = ResponseChunk(
        command_id=CID,
        sequence_number=3,
        response_payload={"dtc": "P0100"},
        is_final=True,
        received_at="t",
        negative=Negative(nrc=0x31, name="requestOutOfRange", service=0x19),
        raw=b"\x59\x02\xff",
        dtc=DtcRecord(number=0x010001, status=0x09),
    )
    sent = [
        StatusEvent(command_id=CID, status=CommandStatus.IN_PROGRESS, at="t0"),
        _chunk(1),
        _chunk(2),
        typed,
        ErrorEvent(
            command_id=CID,
            status=CommandStatus.FAILED,
            error_code=FailureCode.REQUEST_OUT_OF_RANGE,
            error_message="refused",
            at="t1",
        ),
    ]

    async def scenario() -> None:
        async with node(nats_server.url) as a, node(nats_server.url) as b:
            async with b.subscribe(CID) as there, a.subscribe(CID) as here:
                for event in sent:
                    a.publish(event)
                got = [await asyncio.wait_for(there.get(), DEADLINE_S) for _ in sent]
                assert got == sent
                # The publishing node's own subscriber got each event once, locally.
                assert [await here.get() for _ in sent] == sent
                b.publish(_chunk(9, "other-command"))  # not this subject
                a.publish(_chunk(4))
                assert await asyncio.wait_for(there.get(), DEADLINE_S) == _chunk(4)
                assert await here.get() == _chunk(4)
                # No duplicate follows, on either node.
                for sub in (here, there):
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(sub.get(), 0.05)
            assert a.subscriber_count(CID) == 0 and b.subscriber_count(CID) == 0

    asyncio.run(scenario())


def test_notices_reach_the_other_nodes_only(nats_server: NatsServer) -> None:
    notices = [
        SessionRevoked(session_id="s1"),
        UserRevoked(user_id="u1"),
        LockChanged(
            change="taken",
            vehicle_id="v1",
            lock_id="l1",
            ecu_address="0x10",
            component="engine",
            user_id="u2",
            username="alice",
            expires_at="2030-01-01T00:00:00Z",
        ),
        DescriptionsChanged(change="added", name="engine.pdx", sha256="ab" * 32),
    ]

    async def scenario() -> None:
        async with node(nats_server.url) as a, node(nats_server.url) as b:
            heard_a: list[Notice] = []
            heard_b: list[Notice] = []
            a.on_notice(heard_a.append)
            b.on_notice(heard_b.append)
            for notice in notices:
                a.broadcast(notice)
            await _poll(lambda: len(heard_b) == len(notices), "b to hear a's notices")
            assert heard_b == notices
            b.broadcast(SessionRevoked(session_id="s2"))
            await _poll(lambda: heard_a, "a to hear b's notice")
            assert heard_a == [SessionRevoked(session_id="s2")]
            await asyncio.sleep(0.05)  # no node hears its own
            assert len(heard_b) == len(notices)

    asyncio.run(scenario())


def test_events_that_could_not_go_out_become_a_gap_not_a_hole(nats_server: NatsServer) -> None:
    """An outbox of one: publishing five events at once sends the first, loses the rest
    and then a gap marker. The other node's subscriber overflows (its reader starts again
    from the store): it never gets 1 then 5."""

    async def scenario() -> None:
        async with node(nats_server.url, outbox_size=1) as a, node(nats_server.url) as b:
            async with b.subscribe(CID) as there, a.subscribe(CID) as here:
                for n in range(1, 6):
                    a.publish(_chunk(n))
                got = []
                with pytest.raises(Missed):
                    while True:
                        got.append(await asyncio.wait_for(there.get(), DEADLINE_S))
                # An overflowed subscription raises at once, what it held abandoned: the
                # reader gets 1 or nothing before it starts again, never a later event.
                assert got in ([], [_chunk(1)]), got
                assert a.lost == 4, a.lost
                # Locally nothing was lost.
                assert [(await here.get()).sequence_number for _ in range(5)] == [1, 2, 3, 4, 5]  # type: ignore[union-attr]
            # Once the gap marker is out (the subscriber above may have started again
            # sooner, on a subscription NATS was slow to confirm), a new follower gets the
            # command's later events again; one published while the marker was still owed
            # is part of the gap (a real follower replays it from the store).
            deadline = asyncio.get_running_loop().time() + DEADLINE_S
            while a.pending:
                assert asyncio.get_running_loop().time() < deadline, "the gap never went out"
                await asyncio.sleep(0.01)
            async with b.subscribe(CID) as again:
                a.publish(_chunk(6))
                assert await asyncio.wait_for(again.get(), DEADLINE_S) == _chunk(6), a.lost

    asyncio.run(scenario())


def test_an_outage_overflows_subscribers_and_the_bus_carries_on(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:

        async def scenario() -> None:
            async with node(server.url) as a, node(server.url) as b:
                async with b.subscribe(CID) as there:
                    server.stop()
                    with pytest.raises(Missed):  # it may miss events from now on
                        await asyncio.wait_for(there.get(), DEADLINE_S)
                assert not await a.ready(0.5)
                # Meanwhile a node's own subscribers still get its events.
                async with a.subscribe(CID) as here:
                    a.publish(_chunk(1))
                    assert await asyncio.wait_for(here.get(), DEADLINE_S) == _chunk(1)
                server.start()  # the same port
                for bus in (a, b):
                    await _until_ready(bus)
                async with b.subscribe(CID) as there:
                    a.publish(_chunk(2))
                    assert await asyncio.wait_for(there.get(), DEADLINE_S) == _chunk(2)

        asyncio.run(scenario())
    finally:
        server.stop()


def test_no_server_is_a_start_up_error_naming_the_variable_without_credentials() -> None:
    async def scenario() -> None:
        bus = NatsBus(("nats://someone:hunter2-secret@127.0.0.1:1",), start_timeout_s=0.5)
        with pytest.raises(StartupError) as caught:
            await bus.start()
        message = str(caught.value)
        assert message.startswith("SOVD_BUS_URL: cannot reach the NATS server")
        assert "nats://127.0.0.1:1" in message and "(ConnectionRefusedError)" in message
        assert "hunter2" not in message and "someone" not in message

    asyncio.run(scenario())


def test_a_command_run_on_one_node_is_followed_on_the_other_each_chunk_once(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """``follow`` unchanged across nodes: the pipeline publishes on node A; readers on
    node B (one SQLite file stands for the shared database) join while chunks keep coming,
    each at another point, and each gets the replay then the live chunks, every one once
    and in order, then the end."""
    chunks = 40

    async def scenario() -> None:
        async with (
            node(nats_server.url) as a,
            node(nats_server.url) as b,
            follow_world.world(tmp_path) as w,
        ):
            # Node A runs the command (its pipeline publishes on A); B only reads.
            pipeline = Pipeline(w.store, a, w.vehicle, NoTelemetry(), PipelineSettings(30.0, 8))
            on_a = CommandService(w.store, VehicleStore(w.db), pipeline, a)
            on_b = CommandService(w.store, VehicleStore(w.db), pipeline, b)
            try:
                command = await on_a.submit(
                    follow_world.OWNER, follow_world.VEHICLE_ID, *READ, None
                )
                cid = command.command_id

                async def reader() -> list[str]:
                    async with on_b.follow(follow_world.OWNER, cid, 0) as events:
                        return follow_world.describe([event async for event in events])

                readers = []
                await until_stored(w, cid, 0)
                for n in range(1, chunks + 1):
                    if n % 8 == 1:  # a reader joins every eighth chunk
                        readers.append(asyncio.create_task(reader()))
                    w.vehicle.send(cid, n, final=n == chunks)
                    if n % 3 == 0:
                        await until_stored(w, cid, n)  # some chunks stored before a join
                async with asyncio.timeout(DEADLINE_S):
                    results = await asyncio.gather(*readers)
                expected = [
                    "in_progress",
                    *(f"chunk {n}" for n in range(1, chunks + 1)),
                    "completed",
                ]
                assert len(results) == 5 and all(got == expected for got in results)
                assert b.subscriber_count(cid) == 0
            finally:
                await pipeline.drain(0)
                await pipeline.close()

    asyncio.run(scenario())


async def until_stored(w: follow_world.World, cid: str, n: int) -> None:
    deadline = asyncio.get_running_loop().time() + DEADLINE_S
    while True:
        command = await w.store.get(cid)
        started = command is not None and command.status is not CommandStatus.PENDING
        if started and len(await w.store.responses(cid)) >= n:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {n} stored chunks")
        await asyncio.sleep(0.005)
