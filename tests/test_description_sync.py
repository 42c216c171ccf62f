"""How a node's description library follows the shared one (``app.services.
description_sync``) without any notice: two libraries in two data directories, one
database (a real SQLite file), the in-process bus (which carries no notice, as a lost
one), files parsed by the real loader process. What a node learns at start
(``catch_up``) and at its periodic pass (``follow``): a file added or removed through
the other node, its own file from before it shared (shared at start), and a local file
whose name the library holds with other bytes (set aside, never lost)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
import time
from pathlib import Path

import pytest

from app.bus import EventBus
from app.clock import Clock
from app.descriptions.intake import PdxLimits
from app.errors import Conflict
from app.services.description_sync import MANIFEST, REPLACED, DescriptionSync
from app.services.descriptions import DescriptionLibrary
from app.store.database import Database
from app.store.description_blobs import DescriptionBlobStore
from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec
from tests.support.harness import DEADLINE_S, auth, in_process, make_config
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.fast

LIMITS = PdxLimits(32 * 1024 * 1024, 256 * 1024 * 1024, 4096)


def _pdx(ecu: str, address: int) -> bytes:
    did = PdxDid(0x2A01, "OilTemperature", "Oil temperature", 1, 0.5, -40, "degC")
    return pdx_of(PdxSpec((PdxEcu(ecu, logical_address=address, dids=(did,)),), name=f"{ecu}_PDX"))


FLUX, GAMMA = _pdx("FLUX", 0x50), _pdx("GAMMA", 0x51)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def _settled(library: DescriptionLibrary) -> dict[str, str | None]:
    """name -> sha256 once nothing is loading; every file ready."""
    deadline = time.monotonic() + DEADLINE_S
    while library.loading():
        assert time.monotonic() < deadline, f"still loading: {library.loading()}"
        await asyncio.sleep(0.02)
    listed = library.all()
    assert [d.error for d in listed if d.state != "ready"] == []
    return {d.name: d.sha256 for d in listed}


class _Node:
    def __init__(self, data_dir: Path, blobs: DescriptionBlobStore, period_s: float = 3600) -> None:
        self.library = DescriptionLibrary(data_dir, LIMITS)
        self.sync = DescriptionSync(self.library, blobs, EventBus(16), Clock(), period_s)

    async def start(self) -> _Node:
        await self.sync.catch_up()
        self.library.start()
        return self

    async def close(self) -> None:
        await self.sync.aclose()
        await self.library.aclose()


def test_a_node_follows_the_shared_library_at_start_and_at_its_pass(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        blobs = DescriptionBlobStore(db)
        nodes: list[_Node] = []
        try:
            # B has a file of its own from before it joined (or added with the CLI).
            own = tmp_path / "b" / "descriptions" / "own.pdx"
            own.parent.mkdir(parents=True)
            own.write_bytes(FLUX)
            a = await _Node(tmp_path / "a", blobs).start()
            nodes.append(a)
            added = await a.library.add("gamma.pdx", GAMMA)
            assert [(f.name, f.sha256) for f in await blobs.listing()] == [
                ("gamma.pdx", added.sha256)
            ]
            b = await _Node(tmp_path / "b", blobs).start()
            nodes.append(b)
            assert await _settled(b.library) == {"gamma.pdx": _sha(GAMMA), "own.pdx": _sha(FLUX)}
            assert await blobs.content("own.pdx") == (_sha(FLUX), FLUX)  # shared at B's start
            # A hears of nothing (no notice); its pass brings own.pdx in.
            assert "own.pdx" not in await _settled(a.library)
            await a.sync.follow()
            assert await _settled(a.library) == {"gamma.pdx": _sha(GAMMA), "own.pdx": _sha(FLUX)}
            assert (tmp_path / "a" / "descriptions" / "own.pdx").read_bytes() == FLUX
            # Removed through B: gone from A's library and directory at A's pass.
            await b.library.remove("gamma.pdx")
            await a.sync.follow()
            assert await _settled(a.library) == {"own.pdx": _sha(FLUX)}
            assert not (tmp_path / "a" / "descriptions" / "gamma.pdx").exists()
            # A pass with nothing new changes nothing.
            await a.sync.follow()
            assert await _settled(a.library) == {"own.pdx": _sha(FLUX)}

            # B stopped; meanwhile A shares clash.pdx, and B's directory gets a file of
            # that name with other bytes.
            await b.close()
            nodes.remove(b)
            await a.library.remove("own.pdx")
            await a.library.add("clash.pdx", GAMMA)
            (tmp_path / "b" / "descriptions" / "clash.pdx").write_bytes(FLUX)
            b = await _Node(tmp_path / "b", blobs).start()
            nodes.append(b)
            # own.pdx, removed elsewhere while B was down, is gone; the shared clash.pdx
            # is used; B's is kept aside.
            assert await _settled(b.library) == {"clash.pdx": _sha(GAMMA)}
            assert not (tmp_path / "b" / "descriptions" / "own.pdx").exists()
            aside = list((tmp_path / "b" / "descriptions" / REPLACED).iterdir())
            assert [p.read_bytes() for p in aside] == [FLUX]
            assert [f.name for f in await blobs.listing()] == ["clash.pdx"]
            manifest = (tmp_path / "b" / "descriptions" / MANIFEST).read_text()
            assert "clash.pdx" in manifest and "own.pdx" not in manifest
        finally:
            for node in nodes:
                await node.close()
            await db.close()

    asyncio.run(scenario())


def test_an_upload_of_a_name_another_node_shared_is_409_and_stores_nothing(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        blobs = DescriptionBlobStore(db)
        a = await _Node(tmp_path / "a", blobs).start()
        b = await _Node(tmp_path / "b", blobs).start()
        try:
            await a.library.add("x.pdx", GAMMA)
            # B has not followed yet: its own checks pass, the database refuses.
            with pytest.raises(Conflict, match=r"x\.pdx exists"):
                await b.library.add("x.pdx", FLUX)
            assert await _settled(b.library) == {}
            assert sorted(p.name for p in (tmp_path / "b" / "descriptions").glob("*.pdx")) == []
            assert await blobs.content("x.pdx") == (_sha(GAMMA), GAMMA)
        finally:
            await a.close()
            await b.close()
            await db.close()

    asyncio.run(scenario())


def test_the_periodic_pass_runs_by_itself(tmp_path: Path) -> None:
    """A running node's follower (``start``) catches up with no notice and no call."""

    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        blobs = DescriptionBlobStore(db)
        a = await _Node(tmp_path / "a", blobs).start()
        b = await _Node(tmp_path / "b", blobs, period_s=0.1).start()
        b.sync.start()
        try:
            await a.library.add("gamma.pdx", GAMMA)
            deadline = time.monotonic() + DEADLINE_S
            while "gamma.pdx" not in {d.name for d in b.library.all()}:
                assert time.monotonic() < deadline, "B's pass never took gamma.pdx"
                await asyncio.sleep(0.02)
            assert await _settled(b.library) == {"gamma.pdx": _sha(GAMMA)}
            await a.library.remove("gamma.pdx")
            while b.library.all():
                assert time.monotonic() < deadline, "B's pass never removed gamma.pdx"
                await asyncio.sleep(0.02)
        finally:
            await a.close()
            await b.close()
            await db.close()

    asyncio.run(scenario())


def test_a_single_node_keeps_its_files_on_disk_only(tmp_path: Path) -> None:
    """SQLite, no bus: an upload is stored as ever; the shared table exists and stays
    empty, and no manifest is written."""
    config = make_config(tmp_path)
    with in_process(config) as srv:
        r = srv.http.post(
            "/api/v1/descriptions",
            params={"name": "gamma.pdx"},
            content=GAMMA,
            headers={**auth(srv.admin_token()), "content-type": "application/zip"},
        )
        assert r.status_code == 201, r.text
    descriptions = config.data_dir / "descriptions"
    assert (descriptions / "gamma.pdx").read_bytes() == GAMMA
    assert not (descriptions / MANIFEST).exists()
    with contextlib.closing(sqlite3.connect(config.db_path)) as conn:
        assert conn.execute("SELECT count(*) FROM description_files").fetchone() == (0,)
