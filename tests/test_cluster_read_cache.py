"""The fleet page's read cache on a shared database (a cluster): an answer is kept at most
``SOVD_CLUSTER_READ_CACHE_S`` from when its read began, since other nodes' writes do not
move this node's version; this node's own writes end it at once; 0 reads every time.

Two engines on one SQLite file play two nodes (the cache is the engine's, whichever
database is behind it); the clock is the engine's own, a test's here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.models import Actor, Vehicle
from app.store.database import Database
from app.store.vehicles import VehicleFilter, VehicleStore
from app.vocabulary import ConnectionStatus, SimulatorProfile

pytestmark = pytest.mark.fast

ACTOR = Actor(user_id=None, username="test", client_address=None)


def _vehicle(n: int) -> Vehicle:
    return Vehicle(
        vehicle_id=f"v{n}",
        vin=f"WVWZZZ1KZ0000000{n}",
        make="VW",
        model="Golf",
        year=2020,
        connection_status=ConnectionStatus.CONNECTED,
        simulator_profile=SimulatorProfile.HEALTHY,
        last_seen_at=None,
    )


async def _fleet(store: VehicleStore) -> int:
    return (await store.find(VehicleFilter()))[1]


@pytest.mark.parametrize("keep_s", [1.0, 0.0])
def test_another_nodes_write_shows_within_the_cache_time_and_ours_at_once(
    tmp_path: Path, keep_s: float
) -> None:
    async def scenario() -> None:
        path = tmp_path / "sovd.db"
        here, there = Database(path), Database(path)
        await here.open()
        await there.open()
        now = [100.0]
        here.shared, here.shared_cache_s, here.monotonic = True, keep_s, lambda: now[0]
        mine, theirs = VehicleStore(here), VehicleStore(there)
        try:
            assert await _fleet(mine) == 0
            await theirs.insert(_vehicle(1), "t", ACTOR)  # another node's write
            now[0] += 0.5
            # Kept for keep_s from its read: still the old answer half-way through.
            assert await _fleet(mine) == (0 if keep_s else 1)
            now[0] += 0.6  # 1.1 s after the first read began
            assert await _fleet(mine) == 1
            await theirs.insert(_vehicle(2), "t", ACTOR)
            await mine.insert(_vehicle(3), "t", ACTOR)  # our own write: shown at once
            assert await _fleet(mine) == 3
        finally:
            await here.close()
            await there.close()

    asyncio.run(scenario())


def test_on_one_node_the_cache_waits_for_a_write_however_long(tmp_path: Path) -> None:
    """Not shared: this process is the only writer, so time alone never ends an answer
    (a write by another engine, which a single node never has, shows that it is kept)."""

    async def scenario() -> None:
        path = tmp_path / "sovd.db"
        here, there = Database(path), Database(path)
        await here.open()
        await there.open()
        now = [0.0]
        here.monotonic = lambda: now[0]
        mine = VehicleStore(here)
        try:
            assert here.shared is False
            await mine.insert(_vehicle(1), "t", ACTOR)
            assert await _fleet(mine) == 1
            await VehicleStore(there).insert(_vehicle(2), "t", ACTOR)
            now[0] += 3600.0
            assert await _fleet(mine) == 1  # from memory, an hour on
            await mine.insert(_vehicle(3), "t", ACTOR)
            assert await _fleet(mine) == 3
        finally:
            await here.close()
            await there.close()

    asyncio.run(scenario())
