"""Issue #9 item 5: the stream's semantics live in ``CommandService.follow``, tested here
without sockets: a real SQLite file (and a real PostgreSQL database in the socket tier),
the real store, bus and pipeline, a scripted vehicle.

What ``follow`` promises: the replay then the live events, every chunk exactly once and in
order (also for a reader caught mid-stream, and for a chunk published while the replay
is read), ending with the terminal event; ``Overflowed`` for a reader too far behind; no
subscription left behind, however the reader stops.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from app.bus import Overflowed
from app.errors import NotFound
from app.events import (
    ErrorEvent,
    Event,
    ResponseChunk,
    ResponseEvent,
    StatusEvent,
    terminal_event,
)
from app.models import Command
from app.services.follow import REPLAY_PAGE, follow
from app.vocabulary import TERMINAL_STATUSES, CommandStatus, FailureCode
from tests.support.follow_world import (
    OTHER,
    OWNER,
    READ_DTC,
    VEHICLE_ID,
    World,
    describe,
    world,
)
from tests.support.postgres import OpenEngine

pytestmark = pytest.mark.fast

DEADLINE_S = 5.0


def run(
    open_engine: OpenEngine, scenario: Callable[[World], Awaitable[None]], **kwargs: Any
) -> None:
    async def main() -> None:
        async with world(open_engine, **kwargs) as w:
            async with asyncio.timeout(DEADLINE_S):
                await scenario(w)

    asyncio.run(main())


async def until(predicate: Callable[[], Awaitable[Any]], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (value := await predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return value


async def submit(w: World) -> str:
    command = await w.commands.submit(OWNER, VEHICLE_ID, *READ_DTC, None)
    return command.command_id


async def stored_chunks(w: World, command_id: str) -> int:
    return len(await w.store.responses(command_id))


def test_a_reader_caught_mid_stream_gets_every_chunk_once_then_the_end(
    open_engine: OpenEngine,
) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        w.vehicle.send(cid, 1)
        w.vehicle.send(cid, 2)
        await until(lambda: _has(w, cid, 2), "two chunks stored")
        got: list[Event] = []
        async with w.commands.follow(OWNER, cid, 0) as events:
            got.append(await anext(events))  # the replay: in_progress, 1, 2
            w.vehicle.send(cid, 3)
            w.vehicle.send(cid, 4, final=True)
            got += [event async for event in events]
        assert describe(got) == [
            "in_progress",
            "chunk 1",
            "chunk 2",
            "chunk 3",
            "chunk 4",
            "completed",
        ]
        assert w.bus.subscriber_count(cid) == 0

    run(open_engine, scenario)


async def _started(w: World, cid: str) -> bool:
    command = await w.store.get(cid)
    return command is not None and command.status is CommandStatus.IN_PROGRESS


async def _has(w: World, cid: str, n: int) -> bool:
    return await stored_chunks(w, cid) >= n


def test_a_chunk_published_while_the_replay_is_read_is_given_once(open_engine: OpenEngine) -> None:
    """The race the order subscribe-then-read exists for, made to happen every time: the
    chunk is stored and published after the subscription and before the read, so it is
    both in the replay and waiting live."""

    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        w.vehicle.send(cid, 1)
        await until(lambda: _has(w, cid, 1), "chunk 1 stored")

        async def snapshot_amid_the_pipeline() -> tuple[Command, list[ResponseChunk]]:
            assert w.bus.subscriber_count(cid) == 1  # subscribed before anything is read
            w.vehicle.send(cid, 2)
            await until(lambda: _has(w, cid, 2), "chunk 2 stored")  # and published
            return await w.commands.snapshot(OWNER, cid, 0)

        async with follow(w.bus, cid, 0, snapshot_amid_the_pipeline) as events:
            first = [await anext(events) for _ in range(3)]
            w.vehicle.send(cid, 3, final=True)
            rest = [event async for event in events]
        assert describe(first + rest) == [
            "in_progress",
            "chunk 1",
            "chunk 2",
            "chunk 3",
            "completed",
        ]

    run(open_engine, scenario)


def test_a_reader_after_the_end_gets_the_stored_answer_and_stops(open_engine: OpenEngine) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        for n in (1, 2):
            w.vehicle.send(cid, n, final=n == 2)
        await until(lambda: _ended(w, cid), "the command to end")
        async with w.commands.follow(OWNER, cid, 0) as events:
            got = [event async for event in events]  # ends without any live event
        assert describe(got) == ["in_progress", "chunk 1", "chunk 2", "completed"]
        async with w.commands.follow(OWNER, cid, 1) as events:  # since: after chunk 1
            assert describe([e async for e in events]) == ["in_progress", "chunk 2", "completed"]

    run(open_engine, scenario)


async def _ended(w: World, cid: str) -> bool:
    command = await w.store.get(cid)
    return command is not None and command.status.is_terminal


def test_a_cancelled_command_ends_with_its_error_event(open_engine: OpenEngine) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        async with w.commands.follow(OWNER, cid, 0) as events:
            assert describe([await anext(events)]) == ["in_progress"]
            await w.commands.cancel(OWNER, cid, None)
            rest = [event async for event in events]
        assert describe(rest) == ["cancelled cancelled"]
        assert isinstance(rest[0], ErrorEvent) and rest[0].error_code is FailureCode.CANCELLED

    run(open_engine, scenario)


def test_a_reader_too_far_behind_gets_overflowed_and_leaves_no_subscription(
    open_engine: OpenEngine,
) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        with pytest.raises(Overflowed):
            async with w.commands.follow(OWNER, cid, 0) as events:
                assert describe([await anext(events)]) == ["in_progress"]
                for n in range(1, 5):  # four chunks into a queue of two, nobody reading
                    w.vehicle.send(cid, n)
                await until(lambda: _has(w, cid, 4), "four chunks stored")
                assert events.overflowed  # known at once, before the next read
                async for _ in events:
                    pass
        assert w.bus.subscriber_count(cid) == 0

    run(open_engine, scenario, queue_size=2)


def test_a_reader_cancelled_while_waiting_leaves_no_subscription(open_engine: OpenEngine) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        waiting = asyncio.Event()

        async def read() -> None:
            async with w.commands.follow(OWNER, cid, 0) as events:
                await anext(events)  # in_progress
                waiting.set()
                await anext(events)  # nothing comes

        reader = asyncio.create_task(read())
        await waiting.wait()
        assert w.bus.subscriber_count(cid) == 1
        reader.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reader
        assert w.bus.subscriber_count(cid) == 0

    run(open_engine, scenario)


def test_someone_elses_command_is_not_found_before_anything_is_given(
    open_engine: OpenEngine,
) -> None:
    async def scenario(w: World) -> None:
        cid = await submit(w)
        with pytest.raises(NotFound):
            async with w.commands.follow(OTHER, cid, 0):
                raise AssertionError("entered")
        with pytest.raises(NotFound):
            async with w.commands.follow(OWNER, str(uuid.uuid4()), 0):
                raise AssertionError("entered")
        assert w.bus.subscriber_count(cid) == 0

    run(open_engine, scenario)


def test_terminal_has_one_definition() -> None:
    for status in CommandStatus:
        if status.is_terminal:
            event = terminal_event("c", status, FailureCode.INTERRUPTED, "m", "t")
            assert event.is_terminal
        else:
            with pytest.raises(ValueError, match="not a terminal status"):
                terminal_event("c", status, None, None, "t")
        assert StatusEvent(command_id="c", status=status, at="t").is_terminal is status.is_terminal
    assert set(TERMINAL_STATUSES) == {s for s in CommandStatus if s.is_terminal}
    assert not ResponseEvent(
        command_id="c", sequence_number=1, response_payload={}, is_final=True, received_at="t"
    ).is_terminal


def _paged(w: World) -> list[tuple[int, int | None]]:
    """Record the (after, limit) of every page the store is asked for."""
    asked: list[tuple[int, int | None]] = []
    read = w.store.responses

    async def responses(
        command_id: str, after: int = 0, limit: int | None = None
    ) -> list[ResponseChunk]:
        asked.append((after, limit))
        return await read(command_id, after, limit)

    w.store.responses = responses  # type: ignore[method-assign]
    return asked


@pytest.mark.parametrize("end_live", [True, False], ids=["end-live", "ended-before"])
def test_a_long_answer_is_replayed_a_page_at_a_time_each_chunk_once(
    open_engine: OpenEngine, end_live: bool
) -> None:
    """Round 3 (#19 item 3): the replay read a command's whole answer in one go; now it
    reads pages of REPLAY_PAGE chunks as the reader gets to them, and a terminal status
    of the snapshot comes after the last page."""
    total = 2 * REPLAY_PAGE + 7

    async def scenario(w: World) -> None:
        cid = await submit(w)
        await until(lambda: _started(w, cid), "the command to start")
        for n in range(1, total):
            w.vehicle.send(cid, n)
        if not end_live:
            w.vehicle.send(cid, total, final=True)
        await until(lambda: _has(w, cid, total - 1 if end_live else total), "the chunks stored")
        asked = _paged(w)
        got: list[Event] = []
        async with w.commands.follow(OWNER, cid, 0) as events:
            got.append(await anext(events))
            if end_live:
                w.vehicle.send(cid, total, final=True)
            got += [event async for event in events]
        numbers = [e.sequence_number for e in got if isinstance(e, ResponseEvent)]
        assert numbers == list(range(1, total + 1))
        assert describe(got)[0] == "in_progress" and describe(got)[-1] == "completed"
        assert describe(got).count("completed") == 1
        # The first page came with the snapshot; the rest were read a page at a time.
        assert [limit for _, limit in asked] == [REPLAY_PAGE] * len(asked)
        assert [after for after, _ in asked][:2] == [REPLAY_PAGE, 2 * REPLAY_PAGE]

    run(open_engine, scenario)
