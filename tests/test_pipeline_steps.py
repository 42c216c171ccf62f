"""Issue #22 item 7: a chunk's store-then-publish step runs in the execution's own task (no
task per step). A cancel, or the command's deadline, that comes while a chunk's write is
under way waits for the step: the chunk stored is published too, then the command ends.
The real SQLite file, store and pipeline; a store that holds chunk writes until the test
lets them go, and a vehicle that answers one chunk and then nothing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from app.bus import EventBus
from app.clock import Clock
from app.events import Event, ResponseChunk, ResponseEvent
from app.models import Actor, Principal
from app.services.commands import CommandService
from app.services.pipeline import Cancellation, Pipeline, PipelineSettings
from app.store.commands import CommandStore
from app.store.engine import Engine
from app.store.vehicles import VehicleStore
from app.telemetry import NoTelemetry
from app.vehicles.connector import Chunk, DiagnosticRequest
from app.vocabulary import TERMINAL_STATUSES, Role
from tests.support.harness import insert_users
from tests.support.postgres import OpenEngine

pytestmark = pytest.mark.fast

DEADLINE_S = 5.0
VEHICLE_ID = str(uuid.uuid4())
OWNER = Principal(user_id=str(uuid.uuid4()), username="owner", role=Role.ENGINEER, session_id="s1")


class RecordingBus(EventBus):
    def __init__(self) -> None:
        super().__init__()
        self.published: list[Event] = []
        self.ended = asyncio.Event()  # a terminal event was published

    def publish(self, event: Event) -> None:
        self.published.append(event)
        if not isinstance(event, ResponseEvent) and event.status in TERMINAL_STATUSES:
            self.ended.set()
        super().publish(event)


class HeldStore(CommandStore):
    """Holds every chunk's write until ``go`` is set."""

    def __init__(self, db: Engine) -> None:
        super().__init__(db)
        self.writing = asyncio.Event()
        self.go = asyncio.Event()

    async def add_response(self, chunk: ResponseChunk) -> None:
        self.writing.set()
        await self.go.wait()
        await super().add_response(chunk)


class OneChunkThenSilence:
    async def execute(self, request: DiagnosticRequest) -> AsyncIterator[Chunk]:
        yield Chunk({"n": 1}, False)
        await asyncio.Event().wait()  # nothing more, ever


def _seed(conn: Any) -> None:
    insert_users(conn, OWNER)
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at) VALUES (?, 'WVWZZZ1KZAW000001', 'VW', 'Golf', 2021,"
        " 'connected', 'healthy', ?)",
        (VEHICLE_ID, Clock().timestamp()),
    )


def _run(
    open_engine: OpenEngine,
    timeout_s: float,
    scenario: Callable[[HeldStore, RecordingBus, Pipeline, str], Awaitable[None]],
) -> None:
    async def main() -> None:
        db = open_engine()
        await db.open()
        try:
            await db.write(_seed)
            store, bus = HeldStore(db), RecordingBus()
            pipeline = Pipeline(
                store, bus, OneChunkThenSilence(), NoTelemetry(), PipelineSettings(timeout_s, 8)
            )
            commands = CommandService(store, VehicleStore(db), pipeline, bus)
            try:
                async with asyncio.timeout(DEADLINE_S):
                    command = await commands.submit(
                        OWNER, VEHICLE_ID, "ReadDTC", {"ecuAddress": "0x10"}, None
                    )
                    await store.writing.wait()  # chunk 1's step is under way
                    await scenario(store, bus, pipeline, command.command_id)
            finally:
                await pipeline.drain(0)
                await pipeline.close()
        finally:
            await db.close()

    asyncio.run(main())


def _described(bus: RecordingBus, command_id: str) -> list[str]:
    return [
        f"chunk {e.sequence_number}" if isinstance(e, ResponseEvent) else str(e.status)
        for e in bus.published
        if e.command_id == command_id
    ]


async def _ended(bus: RecordingBus, command_id: str) -> list[str]:
    """What was published for the command, once its terminal event is among it."""
    await bus.ended.wait()
    return _described(bus, command_id)


def test_a_cancel_during_a_chunks_write_waits_for_it_to_be_published(
    open_engine: OpenEngine,
) -> None:
    async def scenario(store: HeldStore, bus: RecordingBus, pipeline: Pipeline, cid: str) -> None:
        actor = Actor(user_id=OWNER.user_id, username="owner", client_address=None)
        outcome = pipeline.cancel(cid, Cancellation(actor, "stopped by the test"))
        assert outcome is not None
        for _ in range(20):  # the execution gets every chance to end early: it must not
            await asyncio.sleep(0)
        assert not outcome.done()
        assert _described(bus, cid) == ["in_progress"]
        store.go.set()
        assert await outcome is True
        assert await _ended(bus, cid) == ["in_progress", "chunk 1", "cancelled"]
        assert len(await store.responses(cid)) == 1

    _run(open_engine, 30.0, scenario)


def test_a_deadline_passing_during_a_chunks_write_ends_the_command_after_it(
    open_engine: OpenEngine,
) -> None:
    async def scenario(store: HeldStore, bus: RecordingBus, pipeline: Pipeline, cid: str) -> None:
        await asyncio.sleep(0.3)  # the 0.1 s deadline passes while chunk 1's write is held
        assert _described(bus, cid) == ["in_progress"]
        store.go.set()
        assert await _ended(bus, cid) == ["in_progress", "chunk 1", "timeout"]
        assert len(await store.responses(cid)) == 1

    _run(open_engine, 0.1, scenario)
