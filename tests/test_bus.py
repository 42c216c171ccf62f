import asyncio

import pytest

from app.bus import EventBus, Overflowed
from app.events import ResponseEvent, StatusEvent
from app.vocabulary import CommandStatus

pytestmark = pytest.mark.fast


def _chunk(command_id: str, n: int) -> ResponseEvent:
    return ResponseEvent(
        command_id=command_id,
        sequence_number=n,
        response_payload={"n": n},
        is_final=False,
        received_at="t",
    )


def test_subscribers_get_their_commands_events_in_order() -> None:
    async def scenario() -> None:
        bus = EventBus(queue_size=8)
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


def test_unsubscribes_even_when_the_body_raises() -> None:
    async def scenario() -> None:
        bus = EventBus()
        with pytest.raises(RuntimeError):
            async with bus.subscribe("a"):
                assert bus.subscriber_count("a") == 1
                raise RuntimeError("boom")
        assert bus.subscriber_count("a") == 0

    asyncio.run(scenario())


def test_a_full_subscriber_is_dropped_without_blocking_the_publisher() -> None:
    async def scenario() -> None:
        bus = EventBus(queue_size=2)
        async with bus.subscribe("a") as slow, bus.subscribe("a") as fast:
            for n in range(1, 4):
                bus.publish(_chunk("a", n))  # never awaits, never blocks
                assert (await fast.get()).sequence_number == n  # type: ignore[union-attr]
            assert slow.overflowed
            assert bus.subscriber_count("a") == 1
            with pytest.raises(Overflowed):
                await slow.get()
            bus.publish(_chunk("a", 4))
            assert (await fast.get()).sequence_number == 4  # type: ignore[union-attr]

    asyncio.run(scenario())
