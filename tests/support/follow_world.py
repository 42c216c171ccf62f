"""A world to follow commands in, without sockets: a real database (a SQLite file, or an
engine the test's ``open_engine`` fixture opens: SQLite or PostgreSQL) with two users and
a vehicle, the real store, bus and pipeline, and a scripted vehicle (tests/test_follow.py,
and tests/test_bus_nats.py across two nodes)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bus import EventBus
from app.clock import Clock
from app.events import Event, ResponseEvent, StatusEvent
from app.models import Principal
from app.services.commands import CommandService
from app.services.pipeline import Pipeline, PipelineSettings
from app.store.commands import CommandStore
from app.store.database import Database
from app.store.engine import Engine
from app.store.vehicles import VehicleStore
from app.telemetry import NoTelemetry
from app.vehicles.connector import Chunk, DiagnosticRequest
from app.vocabulary import Role
from tests.support.harness import insert_users

VEHICLE_ID = str(uuid.uuid4())
OWNER = Principal(user_id=str(uuid.uuid4()), username="owner", role=Role.ENGINEER, session_id="s1")
OTHER = Principal(user_id=str(uuid.uuid4()), username="other", role=Role.ENGINEER, session_id="s2")
READ_DTC = ("ReadDTC", {"ecuAddress": "0x10"})


class Vehicle:
    """A scripted vehicle: each command answers the chunks the test hands it."""

    def __init__(self) -> None:
        self._answers: dict[str, asyncio.Queue[Chunk]] = {}

    def _queue(self, command_id: str) -> asyncio.Queue[Chunk]:
        return self._answers.setdefault(command_id, asyncio.Queue())

    def send(self, command_id: str, n: int, *, final: bool = False) -> None:
        self._queue(command_id).put_nowait(Chunk({"n": n}, final))

    async def execute(self, request: DiagnosticRequest) -> AsyncIterator[Chunk]:
        queue = self._queue(request.command_id)
        while True:
            chunk = await queue.get()
            yield chunk
            if chunk.is_final:
                return


@dataclass
class World:
    db: Engine
    store: CommandStore
    bus: EventBus
    vehicle: Vehicle
    commands: CommandService
    pipeline: Pipeline


def _seed(conn: Any) -> None:
    at = Clock().timestamp()
    insert_users(conn, OWNER, OTHER)
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at) VALUES (?, 'WVWZZZ1KZAW000001', 'VW', 'Golf', 2021,"
        " 'connected', 'healthy', ?)",
        (VEHICLE_ID, at),
    )


@asynccontextmanager
async def world(where: Path | Callable[[], Engine], queue_size: int = 256) -> AsyncIterator[World]:
    """``where``: a folder for a SQLite file, or a function opening an engine."""
    db = Database(where / "sovd.db") if isinstance(where, Path) else where()
    await db.open()
    try:
        await db.write(_seed)
        store, bus, vehicle = CommandStore(db), EventBus(queue_size), Vehicle()
        pipeline = Pipeline(store, bus, vehicle, NoTelemetry(), PipelineSettings(30.0, 8))
        commands = CommandService(store, VehicleStore(db), pipeline, bus)
        try:
            yield World(db, store, bus, vehicle, commands, pipeline)
        finally:
            await pipeline.drain(0)
            await pipeline.close()
    finally:
        await db.close()


def describe(events: list[Event]) -> list[str]:
    out = []
    for e in events:
        if isinstance(e, ResponseEvent):
            out.append(f"chunk {e.sequence_number}")
        elif isinstance(e, StatusEvent):
            out.append(str(e.status))
        else:
            out.append(f"{e.status} {e.error_code}")
    return out
