"""The bus's promises, for each backend: the in-process one, and NATS (a real
``nats-server``; those cases are ``socket``): a subscriber gets its command's events in
order, a full one is dropped without blocking the publisher, a subscription always ends.
What only NATS does (between nodes, its outages) is tests/test_bus_nats.py."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from app.bus import Bus, EventBus, Overflowed
from app.bus.nats_bus import NatsBus
from app.events import ResponseEvent, StatusEvent
from app.vocabulary import CommandStatus

pytestmark = pytest.mark.fast

OpenBus = Callable[..., AbstractAsyncContextManager[Bus]]


@pytest.fixture(
    params=["in-process", pytest.param("nats", marks=pytest.mark.socket)],
)
def open_bus(request: pytest.FixtureRequest) -> OpenBus:
    """Opens a started bus of the parameter's kind (closed after the block)."""
    url = request.getfixturevalue("nats_server").url if request.param == "nats" else None

    @asynccontextmanager
    async def opened(queue_size: int = 256) -> AsyncIterator[Bus]:
        bus: Bus = EventBus(queue_size) if url is None else NatsBus((url,), queue_size)
        await bus.start()
        try:
            yield bus
        finally:
            await bus.aclose()

    return opened


def _chunk(command_id: str, n: int) -> ResponseEvent:
    return ResponseEvent(
        command_id=command_id,
        sequence_number=n,
        response_payload={"n": n},
        is_final=False,
        received_at="t",
    )


def test_subscribers_get_their_commands_events_in_order(open_bus: OpenBus) -> None:
    async def scenario() -> None:
        async with open_bus(queue_size=8) as bus:
            async with (
                bus.subscribe("a") as first,
                bus.subscribe("a") as second,
                bus.subscribe("b") as other,
            ):
                bus.publish(_chunk("a", 1))
                bus.publish(_chunk("a", 2))
                bus.publish(StatusEvent(command_id="b", status=CommandStatus.IN_PROGRESS, at="t"))
                for sub in (first, second):
                    assert [(await sub.get()).sequence_number for _ in range(2)] == [1, 2]  # type: ignore[union-attr]
                assert (await other.get()).command_id == "b"
            assert bus.subscriber_count("a") == 0 and bus.subscriber_count("b") == 0

    asyncio.run(scenario())


def test_unsubscribes_even_when_the_body_raises(open_bus: OpenBus) -> None:
    async def scenario() -> None:
        async with open_bus() as bus:
            with pytest.raises(RuntimeError):
                async with bus.subscribe("a"):
                    assert bus.subscriber_count("a") == 1
                    raise RuntimeError("boom")
            assert bus.subscriber_count("a") == 0

    asyncio.run(scenario())


def test_a_full_subscriber_is_dropped_without_blocking_the_publisher(open_bus: OpenBus) -> None:
    async def scenario() -> None:
        async with (
            open_bus(queue_size=2) as bus,
            bus.subscribe("a") as slow,
            bus.subscribe("a") as fast,
        ):
            for n in range(1, 4):
                bus.publish(_chunk("a", n))  # never awaits, never blocks
                assert (await fast.get()).sequence_number == n  # type: ignore[union-attr]
            assert slow.overflowed and not slow.missed  # its own slowness, not the bus's
            assert bus.subscriber_count("a") == 1
            with pytest.raises(Overflowed):
                await slow.get()
            bus.publish(_chunk("a", 4))
            assert (await fast.get()).sequence_number == 4  # type: ignore[union-attr]

    asyncio.run(scenario())


def test_the_bus_is_ready_while_it_can_reach_the_others(open_bus: OpenBus) -> None:
    async def scenario() -> None:
        async with open_bus() as bus:
            assert await bus.ready(1.0)
            assert bus.name in ("in-process", "nats")

    asyncio.run(scenario())
