"""One process per data directory: a second start on the same database changes nothing."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from app.datadir import DataDirLock, DataDirLocked
from app.main import create_app
from tests.support.harness import make_config, running
from tests.support.process import (
    Process,
    run_app,
    server_env,
    submit_command,
    vehicle_with_profile,
    wait_until,
)

pytestmark = pytest.mark.socket


def _rows(db: Path) -> list[tuple[Any, ...]]:
    # Read-only, so this look does not change what it looks at.
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT * FROM commands ORDER BY command_id").fetchall()


def test_a_second_instance_on_the_same_database_exits_at_once_and_changes_nothing(
    tmp_path: Path,
) -> None:
    env = server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="60")
    first = Process(env)
    try:
        token = first.token()
        stuck = vehicle_with_profile(first, token, "timeout")
        running_id, queued_id = (
            submit_command(first, token, stuck),
            submit_command(first, token, stuck),
        )
        headers = {"Authorization": f"Bearer {token}"}

        def status(cid: str) -> str:
            return str(first.http.get(f"/api/v1/commands/{cid}", headers=headers).json()["status"])

        wait_until(lambda: status(running_id) == "in_progress", "the command to run")
        db = tmp_path / "data" / "sovd.db"
        before = _rows(db)

        started = time.monotonic()
        second = run_app(env)
        # "At once": it does not wait for the lock (which the first holds for as long as it
        # runs). The bound only tells a refusal from a wait; a loaded two-core machine took
        # 7 s to start and refuse, so it is generous.
        assert time.monotonic() - started < 30
        assert second.returncode == 1
        lines = (second.stdout + second.stderr).strip().splitlines()
        assert len(lines) == 1, lines
        record = json.loads(lines[0])
        lock = tmp_path / "data" / "sovd.lock"
        assert record["event"] == "startup_failed"
        assert str(lock) in record["message"] and f"pid {first.proc.pid}" in record["message"]
        assert "Traceback" not in lines[0]
        # No crash recovery ran: the live instance's commands are as they were.
        assert _rows(db) == before
        assert (status(running_id), status(queued_id)) == ("in_progress", "pending")
        assert not any(r.get("event") == "recovery" for r in first.log_records())
    finally:
        first.stop()


def test_the_lock_is_held_by_the_app_lifespan_and_released_on_stop(tmp_path: Path) -> None:
    config = make_config(tmp_path)

    async def start_and_stop() -> None:
        app = create_app(config)
        async with app.router.lifespan_context(app):
            pass

    with running(config), pytest.raises(DataDirLocked, match=f"pid {os.getpid()}"):
        asyncio.run(start_and_stop())
    asyncio.run(start_and_stop())  # free again once the first has stopped


def test_the_lock_file_names_its_holder_and_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first, second = DataDirLock(data), DataDirLock(data)
    first.acquire()
    try:
        assert (data / "sovd.lock").read_text().strip() == str(os.getpid())
        assert (data / "sovd.lock").stat().st_mode & 0o777 == 0o600
        with pytest.raises(DataDirLocked, match=f"{data / 'sovd.lock'} is locked .*pid"):
            second.acquire()
    finally:
        first.release()
    second.acquire()
    second.release()
