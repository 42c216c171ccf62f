import asyncio
import sqlite3
from pathlib import Path

import pytest

from app.errors import StartupError
from app.models import Actor, Command, ResponseChunk, User, Vehicle
from app.store.commands import CommandStore
from app.store.database import Database
from app.store.migrations import MIGRATIONS
from app.store.users import UserStore
from app.store.vehicles import VehicleStore


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def test_a_new_database_is_migrated_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    async def scenario() -> tuple[str, int, int, int]:
        db = Database(tmp_path / "a" / "sovd.db")
        await db.open()
        try:
            return await db.read(
                lambda c: (
                    c.execute("PRAGMA journal_mode").fetchone()[0],
                    c.execute("PRAGMA foreign_keys").fetchone()[0],
                    c.execute("PRAGMA user_version").fetchone()[0],
                    c.execute("PRAGMA busy_timeout").fetchone()[0],
                )
            )
        finally:
            await db.close()

    mode, fks, version, busy = _run(scenario())
    assert (mode, fks, version) == ("wal", 1, len(MIGRATIONS))
    assert busy > 0
    assert _run(scenario())[2] == len(MIGRATIONS)  # reopening migrates nothing again


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sovd.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={len(MIGRATIONS) + 1}")
    with pytest.raises(RuntimeError, match="newer than this service knows"):
        _run(Database(path).open())


def test_a_chunk_sequence_number_is_unique_per_command(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        try:
            actor = Actor(None, "test", None)
            user = User("u1", "alice", "engineer")
            await UserStore(db).create(user, "hash", "t", actor)
            await VehicleStore(db).insert(
                Vehicle(
                    "v1", "WVWZZZ1KZAW000001", "VW", "Golf", 2020, "connected", "healthy", None
                ),
                "t",
                None,
            )
            store = CommandStore(db)
            await store.insert(
                Command("c1", "v1", "u1", "ReadDTC", {}, "pending", None, None, "t", None), actor
            )
            chunk = ResponseChunk("c1", 1, {"a": 1}, False, "t")
            await store.add_response(chunk)
            with pytest.raises(sqlite3.IntegrityError):
                await store.add_response(chunk)
            # The failed write rolled back whole; the store still works.
            await store.add_response(ResponseChunk("c1", 2, {"a": 2}, True, "t"))
            assert [c.sequence_number for c in await store.responses("c1")] == [1, 2]
            with pytest.raises(sqlite3.IntegrityError):  # foreign keys are enforced
                await store.add_response(ResponseChunk("nope", 1, {}, True, "t"))
        finally:
            await db.close()

    _run(scenario())


def test_writes_that_arrive_together_commit_together_and_fail_alone(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        try:
            actor = Actor(None, "test", None)
            users = UserStore(db)

            def broken(conn: sqlite3.Connection) -> None:
                conn.execute("INSERT INTO users (user_id) VALUES ('half')")  # NOT NULLs missing

            results = await asyncio.gather(
                *(
                    users.create(User(f"u{n}", f"user{n}", "engineer"), "h", "t", actor)
                    for n in range(5)
                ),
                db.write(broken),
                users.create(User("u9", "user9", "engineer"), "h", "t", actor),
                return_exceptions=True,
            )
            assert results[:5] == [True] * 5 and results[6] is True
            assert isinstance(results[5], sqlite3.IntegrityError)
            names = await db.read(
                lambda c: [r[0] for r in c.execute("SELECT user_id FROM users ORDER BY user_id")]
            )
            assert names == ["u0", "u1", "u2", "u3", "u4", "u9"]
        finally:
            await db.close()

    _run(scenario())


def test_close_finishes_the_writes_already_asked_for(tmp_path: Path) -> None:
    async def scenario() -> None:
        db = Database(tmp_path / "sovd.db")
        await db.open()
        users = UserStore(db)
        actor = Actor(None, "test", None)
        pending = [
            asyncio.ensure_future(
                users.create(User(f"u{n}", f"user{n}", "engineer"), "h", "t", actor)
            )
            for n in range(20)
        ]
        await asyncio.sleep(0)  # let them queue
        await db.close()
        assert [await p for p in pending] == [True] * 20
        with pytest.raises(RuntimeError, match="closed"):
            await users.create(User("late", "late", "engineer"), "h", "t", actor)

    _run(scenario())
    with sqlite3.connect(tmp_path / "sovd.db") as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (20,)


def test_migrating_a_version_1_database_keeps_commands_and_their_answers(tmp_path: Path) -> None:
    """Migration 2 rebuilds ``commands`` (for the status ``cancelled``); the rows that
    reference it must survive the DROP and RENAME, and the new status must be allowed."""
    path = tmp_path / "sovd.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version=1; COMMIT;")
        conn.execute("INSERT INTO users VALUES ('u1', 'alice', 'h', 'engineer', 0, 't')")
        conn.execute(
            "INSERT INTO vehicles VALUES ('v1', 'WVWZZZ1KZAW000001', 'VW', 'Golf', 2020,"
            " 'connected', 'healthy', NULL, 't')"
        )
        conn.execute(
            "INSERT INTO commands (command_id, vehicle_id, user_id, command_name,"
            " command_params, status, submitted_at) VALUES ('c1', 'v1', 'u1', 'ReadDTC', '{}',"
            " 'completed', 't')"
        )
        conn.execute("INSERT INTO command_responses VALUES ('c1', 1, '{}', 1, 't')")
    conn.close()

    async def scenario() -> tuple[int, int, str]:
        db = Database(path)
        await db.open()
        try:
            await db.write(
                lambda c: c.execute("UPDATE commands SET status = 'cancelled' WHERE seq = 1")
            )
            return await db.read(
                lambda c: (
                    c.execute("SELECT count(*) FROM command_responses").fetchone()[0],
                    c.execute("PRAGMA user_version").fetchone()[0],
                    c.execute("SELECT status FROM commands").fetchone()[0],
                )
            )
        finally:
            await db.close()

    assert _run(scenario()) == (1, len(MIGRATIONS), "cancelled")


def test_a_file_that_is_not_a_database_is_refused_naming_the_path(tmp_path: Path) -> None:
    path = tmp_path / "sovd.db"
    path.write_bytes(b"not sqlite" * 1000)
    with pytest.raises(StartupError, match=f"the database {path} cannot be used: file is not a"):
        _run(Database(path).open())
