"""Lane leases on PostgreSQL (app.store.pg_leases): one holder per vehicle, released when
the holder's connection ends (closed, or killed as with a dead node), then taken by
another; a holder that lost its connection is told so once (LeaseLost)."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.store.leases import LANE_NAMESPACE, LeaseLost, Leases, lease_key
from app.store.postgres import PostgresDatabase
from tests.support.harness import DEADLINE_S
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.socket


def _leases(url: str) -> Leases:
    leases = PostgresDatabase(url, shared=True).leases()
    assert leases is not None
    return leases


def test_lease_key_is_a_stable_signed_32_bit_number() -> None:
    assert lease_key("a") == -390611389  # CRC-32 of "a" (0xE8B7BE43) as signed: pinned
    keys = [lease_key(f"vehicle-{i}") for i in range(1000)]
    assert all(-(2**31) <= k < 2**31 for k in keys)
    assert len(set(keys)) == 1000


def test_no_leases_unless_shared(postgres_url: str) -> None:
    assert PostgresDatabase(postgres_url).leases() is None


def test_one_holder_per_vehicle_until_its_connection_ends(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    asyncio.run(_one_holder(postgres_server, postgres_url))


async def _one_holder(postgres_server: PostgresServer, postgres_url: str) -> None:
    a, b = _leases(postgres_url), _leases(postgres_url)
    await a.open()
    await b.open()
    try:
        assert await a.take(["v1", "v2"]) == ["v1", "v2"]
        assert await b.take(["v1", "v2", "v3"]) == ["v3"]
        await a.close()  # a node stopping: its lanes are free at once
        assert sorted(await b.take(["v1", "v2"])) == ["v1", "v2"]
        a = _leases(postgres_url)
        await a.open()
        assert await a.take(["v1", "v2", "v3"]) == []
        # b's session killed (a node's host gone): a takes over, b hears it lost them.
        killed = postgres_server.psql(
            "SELECT count(pg_terminate_backend(pid)) FROM (SELECT DISTINCT pid FROM pg_locks"
            f" WHERE locktype = 'advisory' AND classid = {LANE_NAMESPACE}) AS holders",
            database=postgres_url.rsplit("/", 1)[1],
        )
        assert killed.split() == ["1"], killed
        # The backend ends a moment after it is told to: poll, with a deadline.
        taken: list[str] = []
        deadline = time.monotonic() + DEADLINE_S
        while len(taken) < 3 and time.monotonic() < deadline:
            taken += await a.take([v for v in ("v1", "v2", "v3") if v not in taken])
            await asyncio.sleep(0.02)
        assert sorted(taken) == ["v1", "v2", "v3"]
        with pytest.raises(LeaseLost):
            await b.check()
        await b.check()  # told once; the new connection holds nothing
        assert await b.take(["v1"]) == []
    finally:
        await a.close()
        await b.close()
