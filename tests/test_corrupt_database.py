"""A database that cannot be read stops the start with one clear line, not a traceback."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from app.store.migrations import MIGRATIONS
from tests.support.process import Process, run_app, server_env

pytestmark = pytest.mark.socket

PAGE = 4096


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run_app(env)


def _one_clear_line(result: subprocess.CompletedProcess[str], db: Path) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert "Traceback" not in lines[0]
    record = json.loads(lines[0])
    assert record["event"] == "startup_failed" and "exception" not in record
    message = str(record["message"])
    assert str(db) in message and "backup" in message
    return message


def test_a_file_that_is_not_a_database_stops_the_start_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "data" / "sovd.db"
    db.parent.mkdir()
    db.write_bytes(b"this is not a database\n" * 500)
    message = _one_clear_line(_start(server_env(tmp_path)), db)
    assert "not a database" in message
    assert db.read_bytes() == b"this is not a database\n" * 500  # left for a person to look at


def test_a_database_with_a_damaged_page_stops_the_start_in_one_line(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    first = Process(env)
    first.token()
    assert first.stop() == 0  # a clean stop: everything is in the main file
    db = tmp_path / "data" / "sovd.db"
    pages = db.stat().st_size // PAGE
    assert pages > 4
    with db.open("r+b") as handle:  # overwrite a page in the middle, header intact
        handle.seek(PAGE * (pages // 2))
        handle.write(b"\xa5" * PAGE)
    message = _one_clear_line(_start(env), db)
    assert "malformed" in message or "integrity" in message


def test_a_database_from_a_newer_version_stops_the_start_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "data" / "sovd.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    result = _start(server_env(tmp_path))
    assert result.returncode == 1, result.stdout + result.stderr
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    record = json.loads(lines[0])
    assert record["event"] == "startup_failed" and "exception" not in record
    assert f"version {len(MIGRATIONS) + 1} is newer" in record["message"]
    assert "backup" in record["message"]
