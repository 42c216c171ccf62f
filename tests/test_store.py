import asyncio
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from app.errors import StartupError
from app.events import ResponseChunk
from app.models import Actor, Command, DoipTargetSpec, ServiceAccount, User, Vehicle
from app.store.commands import CommandFilter, CommandStore
from app.store.database import Database
from app.store.dialects import POSTGRES
from app.store.engine import open_database
from app.store.health import can_write
from app.store.migrations import MIGRATIONS
from app.store.service_accounts import CertificateTaken, ServiceAccountStore
from app.store.sql import Conn, IntegrityError
from app.store.users import UserStore
from app.store.vehicles import VehicleFilter, VehicleStore
from app.vocabulary import (
    AuditAction,
    CommandStatus,
    ConnectionStatus,
    Role,
    SimulatorProfile,
    Transport,
)
from tests.support.postgres import OpenEngine

# A test that opens its database with ``open_engine`` runs on SQLite here, in the fast
# tier, and on PostgreSQL in the socket tier (a real server: tests/support/postgres.py).
pytestmark = pytest.mark.fast


ACTOR = Actor(user_id=None, username="test", client_address=None)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _count_once(open_engine: OpenEngine, table: str) -> int:
    """The rows of ``table``, read by a new opening of the test's database."""
    db = open_engine()
    await db.open()
    try:
        return await db.read(
            lambda c: int(c.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        )
    finally:
        await db.close()


def _chunk(
    command_id: str, sequence: int, payload: dict[str, Any], *, is_final: bool
) -> ResponseChunk:
    return ResponseChunk(
        command_id=command_id,
        sequence_number=sequence,
        response_payload=payload,
        is_final=is_final,
        received_at="t",
    )


async def _command_with_vehicle(db: Any) -> None:
    """User u1, vehicle v1 and its pending command c1."""
    await UserStore(db).create(
        User(user_id="u1", username="alice", role=Role.ENGINEER), "h", "t", ACTOR
    )
    await VehicleStore(db).insert(
        Vehicle(
            vehicle_id="v1",
            vin="WVWZZZ1KZAW000001",
            make="VW",
            model="Golf",
            year=2020,
            connection_status=ConnectionStatus.CONNECTED,
            simulator_profile=SimulatorProfile.HEALTHY,
            last_seen_at=None,
        ),
        "t",
        None,
    )
    await CommandStore(db).insert(
        Command(
            command_id="c1",
            vehicle_id="v1",
            user_id="u1",
            command_name="ReadDTC",
            command_params={},
            status=CommandStatus.PENDING,
            error_code=None,
            error_message=None,
            submitted_at="t",
            completed_at=None,
        ),
        ACTOR,
    )


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
    with pytest.raises(StartupError, match="newer than this service knows"):
        _run(Database(path).open())


def test_a_chunk_sequence_number_is_unique_per_command(open_engine: OpenEngine) -> None:
    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            await _command_with_vehicle(db)
            store = CommandStore(db)
            chunk = _chunk("c1", 1, {"a": 1}, is_final=False)
            await store.add_response(chunk)
            with pytest.raises(IntegrityError):  # the same error on either engine
                await store.add_response(chunk)
            # The failed write rolled back whole; the store still works.
            await store.add_response(_chunk("c1", 2, {"a": 2}, is_final=True))
            assert [c.sequence_number for c in await store.responses("c1")] == [1, 2]
            with pytest.raises(IntegrityError):  # foreign keys are enforced
                await store.add_response(_chunk("nope", 1, {}, is_final=True))
        finally:
            await db.close()

    _run(scenario())


def test_writes_that_arrive_together_commit_together_and_fail_alone(
    open_engine: OpenEngine,
) -> None:
    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            actor = Actor(user_id=None, username="test", client_address=None)
            users = UserStore(db)

            def broken(conn: Conn) -> None:
                conn.execute("INSERT INTO users (user_id) VALUES ('half')")  # NOT NULLs missing

            results = await asyncio.gather(
                *(
                    users.create(
                        User(user_id=f"u{n}", username=f"user{n}", role=Role.ENGINEER),
                        "h",
                        "t",
                        actor,
                    )
                    for n in range(5)
                ),
                db.write(broken),
                users.create(
                    User(user_id="u9", username="user9", role=Role.ENGINEER), "h", "t", actor
                ),
                return_exceptions=True,
            )
            assert results[:5] == [True] * 5 and results[6] is True
            assert isinstance(results[5], IntegrityError)
            names = await db.read(
                lambda c: [r[0] for r in c.execute("SELECT user_id FROM users ORDER BY user_id")]
            )
            assert names == ["u0", "u1", "u2", "u3", "u4", "u9"]
        finally:
            await db.close()

    _run(scenario())


def test_a_write_failing_after_its_statements_leaves_nothing_and_its_batch_commits(
    open_engine: OpenEngine,
) -> None:
    """A write that raises after its statements (not a database error) rolls back alone;
    the writes batched with it, before and after it, are committed with their results."""

    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:

            def insert(name: str, fail: bool = False) -> Any:
                def run(conn: Conn) -> str:
                    conn.execute(
                        "INSERT INTO users (user_id, username, username_key, password_hash,"
                        " role, disabled, created_at) VALUES (?, ?, ?, 'h', 'engineer', 0, 't')",
                        (name, name, name),
                    )
                    if fail:
                        raise ValueError(f"{name} changed its mind")
                    count = conn.execute("SELECT count(*) FROM users").fetchone()[0]
                    return f"{name}:{count}"

                return run

            # Queued in one go, before the committer wakes: one batch.
            results = await asyncio.gather(
                *(db.write(insert(f"a{n}")) for n in range(3)),
                db.write(insert("bad", fail=True)),
                *(db.write(insert(f"b{n}")) for n in range(2)),
                return_exceptions=True,
            )
            assert results[:3] == ["a0:1", "a1:2", "a2:3"]
            assert isinstance(results[3], ValueError)
            assert results[4:] == ["b0:4", "b1:5"]  # the failed write's row was not there
            names = await db.read(
                lambda c: [r[0] for r in c.execute("SELECT user_id FROM users ORDER BY user_id")]
            )
            assert names == ["a0", "a1", "a2", "b0", "b1"]
        finally:
            await db.close()

    _run(scenario())


def test_a_duplicate_chunk_in_a_batch_fails_alone_and_the_others_are_stored(
    open_engine: OpenEngine,
) -> None:
    """Chunks and audit rows may be sent together at the end of a batch (PostgreSQL):
    one of them breaking a constraint fails its own write only."""

    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            await _command_with_vehicle(db)
            store = CommandStore(db)
            await store.add_response(_chunk("c1", 1, {"n": 1}, is_final=False))
            results = await asyncio.gather(  # queued together: one batch
                store.add_response(_chunk("c1", 2, {"n": 2}, is_final=False)),
                store.mark_in_progress("c1", "t2"),
                store.add_response(_chunk("c1", 1, {"again": 1}, is_final=False)),
                store.add_response(_chunk("c1", 3, {"n": 3}, is_final=True)),
                return_exceptions=True,
            )
            assert results[:2] == [None, True] and results[3] is None
            assert isinstance(results[2], IntegrityError)
            chunks = await store.responses("c1")
            assert [(c.sequence_number, c.response_payload) for c in chunks] == [
                (1, {"n": 1}),
                (2, {"n": 2}),
                (3, {"n": 3}),
            ]
            actions = await db.read(
                lambda c: [
                    r[0] for r in c.execute("SELECT action FROM audit_log ORDER BY audit_id")
                ]
            )
            assert actions[-2:] == [AuditAction.COMMAND_SUBMIT, AuditAction.COMMAND_START]
        finally:
            await db.close()

    _run(scenario())


def test_a_snapshot_reads_the_command_and_a_page_of_its_chunks(open_engine: OpenEngine) -> None:
    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            await _command_with_vehicle(db)
            store = CommandStore(db)
            assert await store.snapshot("absent", 0) == (None, [])
            command, chunks = await store.snapshot("c1", 0)
            assert command is not None and command.command_id == "c1" and chunks == []
            for n in range(1, 5):
                await store.add_response(_chunk("c1", n, {"n": n}, is_final=n == 4))
            command, chunks = await store.snapshot("c1", 1, 2)
            assert command is not None and command.status is CommandStatus.PENDING
            assert [(c.sequence_number, c.response_payload) for c in chunks] == [
                (2, {"n": 2}),
                (3, {"n": 3}),
            ]
            _, rest = await store.snapshot("c1", 1)
            assert [(c.sequence_number, c.is_final) for c in rest] == [
                (2, False),
                (3, False),
                (4, True),
            ]
            _, none_after = await store.snapshot("c1", 4)
            assert none_after == []
        finally:
            await db.close()

    _run(scenario())


def test_close_finishes_the_writes_already_asked_for(open_engine: OpenEngine) -> None:
    async def scenario() -> None:
        db = open_engine()
        await db.open()
        users = UserStore(db)
        actor = Actor(user_id=None, username="test", client_address=None)
        pending = [
            asyncio.ensure_future(
                users.create(
                    User(user_id=f"u{n}", username=f"user{n}", role=Role.ENGINEER), "h", "t", actor
                )
            )
            for n in range(20)
        ]
        await asyncio.sleep(0)  # let them queue
        await db.close()
        assert [await p for p in pending] == [True] * 20
        with pytest.raises(RuntimeError, match="closed"):
            await users.create(
                User(user_id="late", username="late", role=Role.ENGINEER), "h", "t", actor
            )

    _run(scenario())
    assert _run(_count_once(open_engine, "users")) == 20  # all in, seen by a new opening


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


def test_the_private_aiosqlite_api_the_store_uses_still_works(tmp_path: Path) -> None:
    """Issue #9 item 9: ``run_in_thread`` is the one use of aiosqlite's private
    ``Connection._execute`` / ``Connection._conn``. If an aiosqlite upgrade renames or
    changes them, this fails, naming what changed, before anything subtler can."""
    import threading

    import aiosqlite

    from app.store.database import check_aiosqlite, run_in_thread

    async def scenario() -> None:
        conn = await aiosqlite.connect(str(tmp_path / "t.db"), isolation_level=None)
        try:
            assert callable(getattr(conn, "_execute", None)), "aiosqlite lost Connection._execute"
            assert hasattr(conn, "_conn"), "aiosqlite lost Connection._conn"
            check_aiosqlite(conn)  # the check a connection gets when the store opens it

            def probe(raw: sqlite3.Connection) -> tuple[int, bool, int]:
                raw.execute("CREATE TABLE t (x)")
                raw.execute("INSERT INTO t VALUES (1)")
                value = raw.execute("SELECT x FROM t").fetchone()[0]
                return threading.get_ident(), isinstance(raw, sqlite3.Connection), value

            loop_thread = threading.get_ident()
            thread, is_raw, value = await run_in_thread(conn, probe)
            # Whole in the connection's own thread (not the loop's, not a pool's), on the
            # raw sqlite3 connection: that thread is aiosqlite's Connection itself.
            assert thread != loop_thread
            assert thread == conn._thread.ident
            assert is_raw and value == 1
            # Public and private paths see the same connection.
            async with conn.execute("SELECT count(*) FROM t") as cur:
                assert await cur.fetchone() == (1,)
        finally:
            await conn.close()

    asyncio.run(scenario())


def test_an_aiosqlite_without_the_private_api_is_refused_at_open(tmp_path: Path) -> None:
    from app.store.database import check_aiosqlite

    class Changed:  # what a future aiosqlite without _execute would look like to us
        _conn = None

    with pytest.raises(RuntimeError, match=r"aiosqlite .* lacks Connection\._execute"):
        check_aiosqlite(Changed())  # type: ignore[arg-type]


def test_a_cached_read_is_served_from_memory_until_any_write(open_engine: OpenEngine) -> None:
    async def scenario() -> list[int]:
        db = open_engine()
        await db.open()
        reads: list[int] = []

        def count_users(conn: Conn) -> int:
            reads.append(1)
            return int(conn.execute("SELECT count(*) FROM users").fetchone()[0])

        try:
            seen = [await db.read_cached("users", count_users) for _ in range(3)]
            assert len(reads) == 1  # one real read, two from memory
            await UserStore(db).create(
                User(user_id="u1", username="alice", role=Role.ENGINEER),
                "h",
                "t",
                Actor(user_id=None, username="test", client_address=None),
            )
            seen.append(await db.read_cached("users", count_users))
            assert len(reads) == 2  # the write made the cached answer stale
            # A write that lands while a read is under way: that answer is never reused.
            slow_read = asyncio.create_task(db.read_cached("users again", count_users))
            await db.write(lambda c: c.execute("DELETE FROM users"))
            await slow_read
            seen.append(await db.read_cached("users again", count_users))
            assert len(reads) == 4
            return seen
        finally:
            await db.close()

    assert _run(scenario()) == [0, 0, 0, 1, 0]


def _vehicle(n: int, vin: str, **extra: Any) -> Vehicle:
    return Vehicle(
        vehicle_id=f"v{n}",
        vin=vin,
        make=extra.pop("make", "VW"),
        model="Golf",
        year=2020,
        connection_status=ConnectionStatus.CONNECTED,
        simulator_profile=SimulatorProfile.HEALTHY,
        last_seen_at=None,
        **extra,
    )


def _command(n: int, params: dict[str, Any], at: str) -> Command:
    return Command(
        command_id=f"c{n}",
        vehicle_id="v1",
        user_id="u1",
        command_name="ReadDTC",
        command_params=params,
        status=CommandStatus.PENDING,
        error_code=None,
        error_message=None,
        submitted_at=at,
        completed_at=None,
    )


def test_every_store_answers_alike_on_either_engine(open_engine: OpenEngine) -> None:
    """The statements whose SQL the dialects spell differently or that map a unique key to
    a domain answer (ON CONFLICT, the JSON field, LIKE with ESCAPE and any case, the
    insertion order,
    ``IS NOT`` and an open LIMIT), each once, with the answers the services rely on."""

    async def scenario() -> None:
        db = open_engine()
        await db.open()
        try:
            users, vehicles = UserStore(db), VehicleStore(db)
            commands, accounts = CommandStore(db), ServiceAccountStore(db)
            alice = User(user_id="u1", username="alice", role=Role.ENGINEER)
            assert await users.add(alice, "h", "2026-01-01T00:00:00", ACTOR) is None
            bob = User(user_id="u0", username="bob", role=Role.ADMIN)
            assert await users.add(bob, "h", "2026-01-01T00:00:00", ACTOR) is None
            # The same name in another case, and a look-alike: refused, naming the owner.
            assert (
                await users.add(
                    User(user_id="u2", username="ALICE", role=Role.ENGINEER), "h", "t", ACTOR
                )
                == "alice"
            )
            # Equal creation times: the order of insertion decides (not the id).
            assert await users.names_by_age() == [("u1", "alice"), ("u0", "bob")]

            assert await vehicles.insert(_vehicle(1, "WVWZZZ1KZAW000001", make="V_W"), "t", ACTOR)
            assert await vehicles.insert(_vehicle(2, "WVWZZZ1KZAW000002", make="VXW"), "t", None)
            assert not await vehicles.insert(_vehicle(3, "WVWZZZ1KZAW000001"), "t", ACTOR)
            found, total = await vehicles.find(VehicleFilter(search="v_w"))  # "_" is literal
            # ... and the case is not: SQLite's LIKE, PostgreSQL's ILIKE.
            assert ([v.vehicle_id for v in found], total) == (["v1"], 1)

            await commands.insert(_command(1, {"ecuAddress": "0x10"}, "t1"), ACTOR)
            await commands.insert(_command(2, {"ecuAddress": "0x0010"}, "t2"), ACTOR)
            await commands.insert(_command(3, {"ecuAddress": "0x0018"}, "t3"), ACTOR)
            hits, total = await commands.find(CommandFilter(params=(("ecuAddress", "0x0010"),)))
            # Both stored spellings of one address, newest first, read back in today's.
            assert [c.command_id for c in hits] == ["c2", "c1"] and total == 2
            assert {c.command_params["ecuAddress"] for c in hits} == {"0x0010"}
            for seq in (1, 2, 3):
                await commands.add_response(_chunk("c1", seq, {"n": seq}, is_final=seq == 3))
            assert [c.sequence_number for c in await commands.responses("c1")] == [1, 2, 3]
            assert [c.sequence_number for c in await commands.responses("c1", 1, 1)] == [2]
            assert (await commands.responses("c1"))[-1].is_final is True
            ended = await commands.interrupt_active("t9", "stopped")
            assert ended == [("c1", "ReadDTC"), ("c2", "ReadDTC"), ("c3", "ReadDTC")]
            assert await commands.purge_ended_before("t99", 2) == 2
            assert [c.command_id for c in (await commands.find(CommandFilter()))[0]] == ["c3"]

            for sid in ("s1", "s2"):
                await users.create_session(sid, alice, "rh", "t", "2099", ACTOR)
            ended_sessions = await users.set_password(
                "u1", "h2", "t", ACTOR, AuditAction.USER_PASSWORD_RESET, keep_session="s1"
            )
            assert ended_sessions == ["s2"]
            assert await users.set_password(
                "u1", "h3", "t", ACTOR, AuditAction.USER_PASSWORD_RESET
            ) == ["s1"]
            assert await users.purge_dead_sessions("t", 10) == 2

            robot = ServiceAccount(
                account_id="a1", client_id="robot", role=Role.ENGINEER, certificate_name="cn"
            )
            assert await accounts.add(robot, "h", "t", ACTOR) is None
            assert await accounts.add(robot, "h", "t", ACTOR) == "robot"  # the name is taken
            other = ServiceAccount(
                account_id="a2", client_id="robot2", role=Role.ENGINEER, certificate_name="cn"
            )
            with pytest.raises(CertificateTaken):
                await accounts.add(other, "h", "t", ACTOR)
            assert (await accounts.by_certificate("cn")) == robot
            assert await can_write(db, 5.0) is True
            assert await db.ping(5.0) is True
        finally:
            await db.close()

    _run(scenario())


def test_placeholders_become_numbered_outside_quotes_only() -> None:
    sql = "SELECT '?', \"a?\" FROM t WHERE x = ? AND y LIKE ? ESCAPE '\\' AND z = 'it''s ?'"
    assert POSTGRES.numbered(sql) == (
        "SELECT '?', \"a?\" FROM t WHERE x = $1 AND y LIKE $2 ESCAPE '\\' AND z = 'it''s ?'"
    )


def test_a_postgresql_url_without_the_driver_is_a_startup_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on an edge box installed without the ``postgres`` extra: asyncpg cannot import.
    monkeypatch.setitem(sys.modules, "asyncpg", None)
    monkeypatch.delitem(sys.modules, "app.store.postgres", raising=False)
    with pytest.raises(StartupError, match=r"pip install 'sovd-command-service\[postgres\]'"):
        open_database(tmp_path / "sovd.db", "postgresql://sovd:pw@db/sovd")
    assert isinstance(open_database(tmp_path / "sovd.db", None), Database)  # SQLite needs none


def test_a_durable_write_is_flushed_at_commit_and_a_routine_one_need_not_be(
    open_engine: OpenEngine, engine_kind: str
) -> None:
    # SQLite: synchronous FULL (2) against NORMAL (1); PostgreSQL: synchronous_commit.
    setting = {"sqlite": "PRAGMA synchronous", "postgres": "SHOW synchronous_commit"}
    flushed = {"sqlite": (2, 1), "postgres": ("on", "off")}

    async def scenario() -> tuple[Any, Any]:
        db = open_engine()
        await db.open()
        try:

            def seen(conn: Conn) -> Any:
                return conn.execute(setting[engine_kind]).fetchone()[0]

            return await db.write(seen, durable=True), await db.write(seen)
        finally:
            await db.close()

    assert _run(scenario()) == flushed[engine_kind]


def test_links_reset_for_the_lanes_taken_only(open_engine: OpenEngine) -> None:
    """On a cluster a node that takes lanes marks only their DoIP vehicles' links down
    (the other nodes' links stay as they are); at a single node's start, every one."""

    def doip(n: int) -> Vehicle:
        target = DoipTargetSpec(
            host="127.0.0.1",
            port=13400,
            logical_address="0x0001",
            tester_address="0x0E00",
            ecu_addresses=("0x0010",),
            always_on=False,
        )
        return _vehicle(n, f"WVWZZZ1KZAW00000{n}", transport=Transport.DOIP, doip=target)

    async def scenario() -> list[int]:
        db = open_engine()
        await db.open()
        try:
            vehicles = VehicleStore(db)
            for n in (1, 2, 3):
                assert await vehicles.insert(doip(n), "t", ACTOR)
            await vehicles.insert(_vehicle(4, "WVWZZZ1KZAW000004"), "t", ACTOR)  # simulated
            return [
                await vehicles.count_connected(),
                await vehicles.reset_links(["v1", "v4"]),  # v4: simulated, left alone
                await vehicles.reset_links([]),
                await vehicles.reset_links(),
            ]
        finally:
            await db.close()

    assert _run(scenario()) == [4, 3, 3, 1]
