"""The shared ECU description files (``app.store.description_blobs``, migration 9) on both
engines (``open_engine``: SQLite here in the fast tier, PostgreSQL in the socket tier):
bytes in and out unchanged (every byte value, a NUL among them), one file per name (the
second add of a name is ``NameTaken``, the first kept), a listing without the bytes, a
removal, and all of it seen by a new opening of the database."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from app.store.description_blobs import DescriptionBlobStore, NameTaken, SharedFile
from tests.support.postgres import OpenEngine

pytestmark = pytest.mark.fast

DATA = bytes(range(256)) * 64 + b"\x00PK\x03\x04"  # every byte value; zip magic after a NUL


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_files_are_kept_whole_once_per_name_and_removed(open_engine: OpenEngine) -> None:
    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            blobs = DescriptionBlobStore(db)
            assert await blobs.listing() == []
            assert await blobs.content("a.pdx") is None
            await blobs.add("a.pdx", _sha(DATA), DATA, "2026-12-07T20:00:00.000Z")
            with pytest.raises(NameTaken):
                await blobs.add("a.pdx", _sha(b"other"), b"other", "2026-12-07T20:00:01.000Z")
            await blobs.add("b.pdx", _sha(b"b"), b"b", "2026-12-07T20:00:02.000Z")
        finally:
            await db.close()
        db = open_engine()  # a new opening (another node) sees the same
        await db.open()
        try:
            blobs = DescriptionBlobStore(db)
            assert await blobs.listing() == [
                SharedFile("a.pdx", _sha(DATA), len(DATA), "2026-12-07T20:00:00.000Z"),
                SharedFile("b.pdx", _sha(b"b"), 1, "2026-12-07T20:00:02.000Z"),
            ]
            assert await blobs.content("a.pdx") == (_sha(DATA), DATA)  # the first one's
            assert await blobs.remove("a.pdx") is True
            assert await blobs.remove("a.pdx") is False
            assert [f.name for f in await blobs.listing()] == ["b.pdx"]
            assert await blobs.content("a.pdx") is None
            # The name is free again.
            await blobs.add("a.pdx", _sha(b"new"), b"new", "2026-12-07T20:00:03.000Z")
            assert await blobs.content("a.pdx") == (_sha(b"new"), b"new")
        finally:
            await db.close()

    asyncio.run(scenario())


def test_two_adds_of_one_name_at_once_store_one(open_engine: OpenEngine) -> None:
    """The database decides a race: one add wins, the other is NameTaken."""

    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            blobs = DescriptionBlobStore(db)
            results = await asyncio.gather(
                blobs.add("x.pdx", _sha(b"one"), b"one", "t1"),
                blobs.add("x.pdx", _sha(b"two"), b"two", "t2"),
                return_exceptions=True,
            )
            assert sorted(type(r).__name__ for r in results) == ["NameTaken", "NoneType"]
            kept = await blobs.content("x.pdx")
            winner = b"one" if results[0] is None else b"two"
            assert kept == (_sha(winner), winner)
        finally:
            await db.close()

    asyncio.run(scenario())
