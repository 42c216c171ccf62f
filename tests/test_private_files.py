"""The data directory and everything the service keeps in it are private to its owner,
whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from app.datadir import make_private_dir
from app.store.database import Database
from tests.support.process import Process, server_env

pytestmark = pytest.mark.socket


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _permissive_umask() -> None:
    os.umask(0o002)  # what many desktops and containers run with


def test_the_running_service_keeps_its_files_owner_only(tmp_path: Path) -> None:
    proc = Process(server_env(tmp_path), preexec_fn=_permissive_umask)
    try:
        proc.token()  # a write: the WAL is in use
        data = tmp_path / "data"
        assert _mode(data) == 0o700
        for name in ("sovd.db", "sovd.db-wal", "sovd.db-shm", "jwt_secret", "sovd.lock"):
            if name == "jwt_secret" and not (data / name).exists():
                continue  # a configured key: no file
            assert _mode(data / name) == 0o600, name
    finally:
        proc.stop()


def test_an_existing_database_readable_by_others_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "data" / "sovd.db"

    async def open_and_close() -> None:
        db = Database(path)
        await db.open()
        await db.write(lambda c: c.execute("CREATE TABLE IF NOT EXISTS t (x)"))
        await db.close()

    asyncio.run(open_and_close())
    os.chmod(path, 0o644)
    asyncio.run(open_and_close())
    assert _mode(path) == 0o600


def test_an_existing_directory_is_left_as_it_is(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    os.chmod(shared, 0o755)  # noqa: S103 - a shared directory, on purpose
    make_private_dir(shared)
    assert _mode(shared) == 0o755  # say the current directory: not ours to lock down
    make_private_dir(shared / "new" / "data")
    assert _mode(shared / "new" / "data") == 0o700
