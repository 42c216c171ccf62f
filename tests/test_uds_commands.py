"""The UDS conversations over a channel written here: an emulated ECU behind it, and a
stop request the test can hold back, so the way out of a RoutineControl run (cancelled,
closed, the stop unanswered, a second cancellation) is exercised exactly."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

import pytest
from odxtools.database import Database

from app import catalogue
from app.descriptions.codec import LayerCodec
from app.vehicles import uds
from app.vehicles.connector import Chunk
from app.vehicles.emulator import DEFAULT_SPECS, Ecu, Timings, make_ecu
from app.vehicles.pdx import build_demo_pdx
from app.vehicles.pdx.demo import SELF_TEST
from app.vehicles.uds_commands import conversation
from app.vehicles.uds_conversation import ConversationSettings

pytestmark = pytest.mark.fast

STOP = bytes.fromhex("31020201")


@dataclass(frozen=True)
class Answer:
    answer: bytes | None
    nack: int | None = None


@dataclass
class EcuChannel:
    """One emulated ECU; a stop request waits for ``release`` when ``hold_stop``."""

    ecu: Ecu
    hold_stop: bool = False
    release: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[bytes] = field(default_factory=list)
    stop_waiting: asyncio.Event = field(default_factory=asyncio.Event)
    record: bytes | None = None  # answer RoutineControl with this status record instead

    async def exchange(self, ecu: int, request: bytes) -> Answer:
        self.requests.append(request)
        if self.hold_stop and request == STOP:
            self.stop_waiting.set()
            await self.release.wait()
        if self.record is not None and request[0] == uds.ROUTINE_CONTROL:
            return Answer(uds.positive(request[0], request[1:4] + self.record))
        return Answer(self.ecu.handle(request, time.monotonic()).payload)

    def session_changed(self, ecu: int, session: int) -> None:
        pass


def _channel(self_test_s: float = 60.0, **kw: object) -> EcuChannel:
    ecu = make_ecu(DEFAULT_SPECS[0x10], "V", Timings(self_test_s=self_test_s), random.Random(1))
    return EcuChannel(ecu, **kw)  # type: ignore[arg-type]


def _run(channel: EcuChannel, stop_wait_s: float = 1.0) -> AsyncGenerator[Chunk, None]:
    params = {"ecuAddress": "0x10", "routineId": "0x0201", "action": "run"}
    settings = ConversationSettings(poll_s=0.01, stop_wait_s=stop_wait_s)
    return conversation("RoutineControl", params, settings)(channel)


async def _consume_in_task(
    answer: AsyncGenerator[Chunk, None],
) -> tuple[asyncio.Task[None], list[Chunk]]:
    seen: list[Chunk] = []
    first = asyncio.Event()

    async def consume() -> None:
        async for chunk in answer:
            seen.append(chunk)
            first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first.wait(), 2)
    return task, seen


def test_a_cancelled_run_waits_a_bounded_time_for_an_unanswered_stop_then_stays_cancelled() -> None:
    async def scenario() -> None:
        channel = _channel(hold_stop=True)
        task, _ = await _consume_in_task(_run(channel, stop_wait_s=0.1))
        task.cancel()
        started = time.monotonic()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):  # a stop awaited forever fails here, not hangs
                await task
        waited = time.monotonic() - started
        assert 0.1 <= waited < 1.0
        assert task.cancelled()  # the cancellation was not swallowed by the stop's timeout
        assert channel.requests.count(STOP) == 1

    asyncio.run(scenario())


def test_a_second_cancellation_during_the_stop_wait_ends_it_at_once() -> None:
    async def scenario() -> None:
        channel = _channel(hold_stop=True)
        task, _ = await _consume_in_task(_run(channel, stop_wait_s=30))
        task.cancel()
        await asyncio.wait_for(channel.stop_waiting.wait(), 2)
        started = time.monotonic()
        task.cancel()  # the service stops while the stop is still unanswered
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):
                await task
        assert time.monotonic() - started < 1.0  # not the 30 s stop wait
        assert task.cancelled()

    asyncio.run(scenario())


def test_a_cancellation_during_the_stop_of_a_closed_run_is_not_swallowed() -> None:
    # Closed at a chunk (GeneratorExit, nothing cancelled yet), then cancelled while the
    # stop waits: the closing caller must end cancelled, not carry on as if nothing happened.
    async def scenario() -> None:
        channel = _channel(hold_stop=True)
        carried_on = False

        async def closer() -> None:
            nonlocal carried_on
            answer = _run(channel, stop_wait_s=30)
            await anext(answer)
            await answer.aclose()
            carried_on = True

        task = asyncio.create_task(closer())
        await asyncio.wait_for(channel.stop_waiting.wait(), 2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            async with asyncio.timeout(2):
                await task
        assert task.cancelled() and not carried_on

    asyncio.run(scenario())


def test_a_run_closed_at_a_progress_chunk_stops_the_routine_and_at_the_end_does_not() -> None:
    async def scenario() -> None:
        channel = _channel()
        answer = _run(channel)
        first = await anext(answer)
        assert dict(first.payload)["progress"] == 0 and not first.is_final
        await answer.aclose()  # GeneratorExit at the yield
        assert channel.requests.count(STOP) == 1
        assert channel.ecu.routine_state(SELF_TEST) == "stopped"

        quick = _channel(self_test_s=0.05)
        answer = _run(quick)
        chunks = [chunk async for chunk in answer]
        assert chunks[-1].is_final
        assert dict(chunks[-1].payload)["status"] == "completed"
        await answer.aclose()
        assert STOP not in quick.requests

    asyncio.run(scenario())


def test_a_run_whose_status_record_cannot_be_followed_is_invalid() -> None:
    async def scenario() -> None:
        channel = _channel(record=b"\xaa")  # not this project's two-byte convention
        with pytest.raises(catalogue.InvalidResponse, match="status record this service cannot"):
            async for _ in _run(channel):
                pass
        assert STOP not in channel.requests  # the start's answer was already unreadable

    asyncio.run(scenario())


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="poll_s must be a positive number of seconds"):
        ConversationSettings(poll_s=0)


def test_a_diag_service_session_switch_is_told_to_the_channel() -> None:
    """Found in review: a 0x10 sent as DiagService never told the link, so over DoIP no
    TesterPresent kept the session and the ECU fell back after S3 unnoticed."""
    database = Database()
    database.add_pdx_file(io.BytesIO(build_demo_pdx()))
    database.refresh()
    codec = LayerCodec.of_container(database, "ENGINE")
    told: list[tuple[int, int]] = []

    class Telling(EcuChannel):
        def session_changed(self, ecu: int, session: int) -> None:
            told.append((ecu, session))

    async def scenario() -> None:
        channel = Telling(_channel().ecu)
        for service in ("Extended_Start", "VIN_Read", "Default_Start"):
            talk = conversation(
                "DiagService", {"ecuAddress": "0x10"}, described=codec.encode(service, {})
            )
            chunks = [c async for c in talk(channel)]
            assert "negativeResponse" not in dict(chunks[-1].payload)

    asyncio.run(scenario())
    assert told == [(0x10, uds.EXTENDED_SESSION), (0x10, uds.DEFAULT_SESSION)]
