"""Issue #23 item 1: the store on PostgreSQL (SOVD_DATABASE_URL), on a real server
(tests/support/postgres.py). What both engines share runs on both in tests/test_store.py;
here is what only PostgreSQL has: its schema version, migration 2 in its own words, its
start-up errors, a lost connection, the real app end to end on it and its command line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.errors import StartupError, StorageUnavailable
from app.models import Actor, User
from app.store.dialects import POSTGRES
from app.store.health import can_write
from app.store.migrations import MIGRATIONS
from app.store.pg_connection import DEAD_PEER_SETTINGS, PgConn, Worker
from app.store.postgres import PostgresDatabase
from app.store.users import UserStore
from app.vocabulary import Role
from tests.support.harness import auth, in_process, make_config
from tests.support.postgres import PostgresServer
from tests.support.process import run_app, server_env

pytestmark = pytest.mark.socket

ACTOR = Actor(user_id=None, username="test", client_address=None)


def _database_of(url: str) -> str:
    return url.rsplit("/", 1)[1]


def test_a_new_database_is_migrated_once(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    async def open_and_close() -> None:
        db = PostgresDatabase(postgres_url)
        await db.open()
        await db.close()

    asyncio.run(open_and_close())
    name = _database_of(postgres_url)
    assert postgres_server.psql("SELECT version FROM schema_version", name) == str(len(MIGRATIONS))
    tables = postgres_server.psql(
        "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables"
        " WHERE schemaname = 'public'",
        name,
    )
    assert tables == (
        "audit_log,command_responses,commands,description_files,limit_windows,schema_version,"
        "sessions,users,vehicles"
    )
    # Migration 9's BLOB is PostgreSQL's BYTEA.
    content = postgres_server.psql(
        "SELECT data_type FROM information_schema.columns"
        " WHERE table_name = 'description_files' AND column_name = 'content'",
        name,
    )
    assert content == "bytea"
    asyncio.run(open_and_close())  # reopening migrates nothing again
    assert postgres_server.psql("SELECT count(*) FROM schema_version", name) == "1"


def test_a_newer_schema_is_refused(postgres_server: PostgresServer, postgres_url: str) -> None:
    name = _database_of(postgres_url)
    postgres_server.psql(
        "CREATE TABLE schema_version (version INTEGER NOT NULL);"
        f" INSERT INTO schema_version VALUES ({len(MIGRATIONS) + 1})",
        name,
    )
    with pytest.raises(StartupError, match="newer than this service knows"):
        asyncio.run(PostgresDatabase(postgres_url).open())


def test_migrating_a_version_1_database_keeps_commands_and_allows_cancelled(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Migration 2 alters the CHECK in place on PostgreSQL (``PostgresDialect``)."""
    name = _database_of(postgres_url)
    postgres_server.psql(
        f"{POSTGRES.migration(1, MIGRATIONS[0])}"
        " CREATE TABLE schema_version (version INTEGER NOT NULL);"
        " INSERT INTO schema_version VALUES (1);"
        " INSERT INTO users VALUES ('u1', 'alice', 'h', 'engineer', 0, 't');"
        " INSERT INTO vehicles VALUES ('v1', 'WVWZZZ1KZAW000001', 'VW', 'Golf', 2020,"
        " 'connected', 'healthy', NULL, 't');"
        " INSERT INTO commands (command_id, vehicle_id, user_id, command_name, command_params,"
        " status, submitted_at) VALUES ('c1', 'v1', 'u1', 'ReadDTC', '{}', 'completed', 't');"
        " INSERT INTO command_responses VALUES ('c1', 1, '{}', 1, 't');",
        name,
    )
    with pytest.raises(RuntimeError, match="commands_status_check"):  # version 1 refuses it
        postgres_server.psql("UPDATE commands SET status = 'cancelled'", name)

    async def scenario() -> tuple[int, str, str]:
        db = PostgresDatabase(postgres_url)
        await db.open()
        try:
            await db.write(lambda c: c.execute("UPDATE commands SET status = 'cancelled'"))
            return await db.read(
                lambda c: (
                    c.execute("SELECT count(*) FROM command_responses").fetchone()[0],
                    c.execute("SELECT status FROM commands").fetchone()[0],
                    c.execute("SELECT username_key FROM users").fetchone()[0],
                )
            )
        finally:
            await db.close()

    # The answers kept, the new status allowed, migration 3's Python step run.
    assert asyncio.run(scenario()) == (1, "cancelled", "alice")
    assert postgres_server.psql("SELECT version FROM schema_version", name) == str(len(MIGRATIONS))


def test_a_database_that_cannot_be_reached_is_a_startup_error_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:{postgres_server.port}/no_such_database"
    with pytest.raises(StartupError) as caught:
        asyncio.run(PostgresDatabase(url).open())
    message = str(caught.value)
    assert "SOVD_DATABASE_URL" in message and "no_such_database" in message
    assert "s3cret-pw" not in message


def test_a_lost_connection_fails_that_write_as_unavailable_and_the_next_reconnects(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    name = _database_of(postgres_url)
    users_created = 0

    async def create(store: UserStore) -> bool:
        nonlocal users_created
        users_created += 1
        n = users_created
        return await store.create(
            User(user_id=f"u{n}", username=f"user{n}", role=Role.ENGINEER), "h", "t", ACTOR
        )

    async def scenario() -> None:
        db = PostgresDatabase(postgres_url)
        await db.open()
        try:
            store = UserStore(db)
            assert await create(store) is True
            # The server ends every session on this database (as a restart would).
            ended = postgres_server.psql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                f" WHERE datname = '{name}' AND pid <> pg_backend_pid()"
            )
            assert ended == "2"  # the writer's and the reader's
            with pytest.raises(StorageUnavailable):
                await create(store)
            assert db.writable is False
            assert await can_write(db, 5.0) is True  # a new connection, a real commit
            assert db.writable is True
            assert await create(store) is True
            assert await db.ping(5.0) is True  # the reader reconnects too
            assert [u.username for u in await store.all()] == ["user1", "user3"]
        finally:
            await db.close()

    asyncio.run(scenario())


def test_the_app_runs_on_postgresql_end_to_end(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    """The real app (in process, over the ASGI transport) with SOVD_DATABASE_URL: log in,
    register a vehicle, run a command, read it back from the history and its answer."""
    config = make_config(tmp_path, database_url=postgres_url, demo_data=False)
    with in_process(config) as srv:
        admin = srv.admin_token()
        body = {"vin": "WVWZZZ1KZAW000777", "make": "VW", "model": "Golf", "year": 2021}
        r = srv.http.post("/api/v1/vehicles", headers=auth(admin), json=body)
        assert r.status_code == 201, r.text
        vehicle_id = r.json()["vehicle_id"]
        again = srv.http.post("/api/v1/vehicles", headers=auth(admin), json=body)
        assert again.status_code == 409, again.text  # the unique VIN, as on SQLite
        token = srv.token()
        command_id = srv.submit(token, vehicle_id)["command_id"]
        done = srv.wait_status(token, command_id)
        assert done["status"] == "completed"
        history = srv.http.get(
            "/api/v1/commands", headers=auth(token), params={"vehicle_id": vehicle_id}
        ).json()
        assert [c["command_id"] for c in history["items"]] == [command_id]
        assert history["total"] == 1
        chunks = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(token))
        assert [c["sequence_number"] for c in chunks.json()["items"]] == [1, 2, 3]
        ready = srv.http.get("/health/ready")
        assert ready.status_code == 200, ready.text
    # Everything went to PostgreSQL; no SQLite file was made.
    name = _database_of(postgres_url)
    assert postgres_server.psql("SELECT count(*) FROM commands", name) == "1"
    assert postgres_server.psql("SELECT count(*) FROM command_responses", name) == "3"
    assert postgres_server.psql("SELECT vin FROM vehicles", name) == body["vin"]
    assert not config.db_path.exists()


def test_the_users_command_line_works_on_the_database_the_url_names(
    postgres_server: PostgresServer, postgres_url: str, tmp_path: Path
) -> None:
    env = server_env(tmp_path, SOVD_DATABASE_URL=postgres_url)
    created = run_app(env, "users", "create", "carol", stdin="carol-password-1\n")
    assert created.returncode == 0, created.stderr
    name = _database_of(postgres_url)
    assert postgres_server.psql("SELECT username FROM users", name) == "carol"
    assert not (tmp_path / "data" / "sovd.db").exists()
    # With the service running on the database (from another data directory): reading
    # works beside it, a change is refused naming why.
    with in_process(make_config(tmp_path / "node", database_url=postgres_url)):
        listed = run_app(env, "users", "list")
        assert listed.returncode == 0, listed.stderr
        names = [line.split()[0] for line in listed.stdout.splitlines()[1:]]
        assert names == ["carol"]  # (not a new database: the service added no users)
        refused = run_app(env, "users", "disable", "carol")
        assert refused.returncode == 1
        assert "another service process is using this database" in refused.stderr
    assert postgres_server.psql("SELECT disabled FROM users WHERE username = 'carol'", name) == "0"


def test_a_second_service_on_the_same_database_is_refused_at_start(postgres_url: str) -> None:
    """One process per PostgreSQL database until the lanes are shared (#23 items 2-4): a
    second one would end the first one's running commands as interrupted at its start."""

    async def scenario() -> str:
        first = PostgresDatabase(postgres_url)
        await first.open()
        try:
            with pytest.raises(StartupError) as caught:
                await PostgresDatabase(postgres_url).open()
        finally:
            await first.close()
        after = PostgresDatabase(postgres_url)  # the first one gone: free again
        await after.open()
        await after.close()
        return str(caught.value)

    message = asyncio.run(scenario())
    assert "another service process is using this database" in message
    assert _database_of(postgres_url) in message


def test_a_database_that_refuses_connections_answers_unavailable_until_it_takes_them_again(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    """Reads too: a read that cannot connect is StorageUnavailable (503), not a 500."""
    name = _database_of(postgres_url)

    async def scenario() -> None:
        db = PostgresDatabase(postgres_url)
        await db.open()
        try:
            postgres_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
            postgres_server.psql(
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
            )
            with pytest.raises(StorageUnavailable, match="DatabaseUnreachable"):
                await UserStore(db).all()
            with pytest.raises(StorageUnavailable):
                await db.write(db.dialect.touch)
            assert (await db.ping(5.0), db.writable) == (False, False)
            postgres_server.psql(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
            assert await db.ping(5.0) is True
            assert await can_write(db, 5.0) is True and db.writable is True
        finally:
            await db.close()

    asyncio.run(scenario())


def test_every_connection_asks_the_server_to_notice_a_lost_host_in_seconds(
    postgres_url: str,
) -> None:
    """A node's host lost (no FIN, no RST): the server must end its sessions soon, or the
    lane leases they hold stay taken for the kernel's two hours."""

    async def settings() -> dict[str, str]:
        worker = Worker(postgres_url, "test-keepalive")
        try:

            def show(conn: PgConn) -> dict[str, str]:
                names = list(DEAD_PEER_SETTINGS)
                return {name: str(conn.wait(conn.raw.fetchval(f"SHOW {name}"))) for name in names}

            return await worker.run(show)
        finally:
            await worker.close()

    got = asyncio.run(settings())
    # In force on the session (over a Unix socket the server would report 0: not the
    # case here, the test server listens on loopback TCP as a real one on the network).
    assert got == {
        "tcp_keepalives_idle": "5",
        "tcp_keepalives_interval": "2",
        "tcp_keepalives_count": "3",
        "tcp_user_timeout": "10000",
    }, got
