"""The PostgreSQL engine (``SOVD_DATABASE_URL=postgresql://...``), on asyncpg.

The stores' operations are plain functions that run whole in their connection's thread
(``app.store.engine``): SQLite's shape, kept so that one operation is one thread hop on
the default engine. Here each connection gets a thread of its own with a private event
loop, where the asyncpg connection lives; an operation runs in that thread and each of
its statements is one ``run_until_complete`` of an asyncpg call (``PgConn``). The
service's own loop only awaits the operation, as with SQLite.

Durability: a batch holding a ``durable`` write commits with ``synchronous_commit=on``
(flushed before its callers hear back, whatever the server's default); any other batch
with ``synchronous_commit=off`` for that transaction (a server crash may lose its last few
hundred milliseconds, never half of a transaction): SQLite's NORMAL/FULL split.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import asyncpg

from app.errors import StartupError, StorageUnavailable
from app.store.dialects import POSTGRES
from app.store.engine import STORAGE_RETRY_AFTER_S, Engine, Outcomes
from app.store.leases import Leases
from app.store.migrations import MIGRATIONS, PYTHON_STEPS, refuse_newer
from app.store.pg_connection import DatabaseUnreachable, PgConn, Worker
from app.store.sql import Conn

T = TypeVar("T")
log = logging.getLogger(__name__)

# Any number, the same on every node: migrations run under this advisory lock, so two
# nodes starting at once on a new database do not both migrate it.
_MIGRATION_LOCK: Final = 0x50564D49  # "SOVD migrations"
_SERVICE_LOCK: Final = 0x50564453  # held by the writer connection: see ``_claim``


class DatabaseInUse(RuntimeError):
    """Another service process holds this database (one process per database for now)."""


def _claim(conn: PgConn) -> None:
    """Hold the service's advisory lock for as long as this connection lives, or raise
    DatabaseInUse. Until issue #23 shares the work between nodes (one lane owner per
    vehicle), a second process on the database would end the first one's running
    commands as interrupted when it starts, and serve from its own caches and limits."""
    if not conn.execute("SELECT pg_try_advisory_lock(?)", (_SERVICE_LOCK,)).fetchone()[0]:
        raise DatabaseInUse(
            "another service process is using this database; run one process per"
            " PostgreSQL database (several nodes are a later part of issue #23)"
        )


def _write_batch(conn: PgConn, fns: list[Callable[[Any], Any]], durable: bool) -> Outcomes:
    """Run the functions in one transaction: (ok, result) each, as if each had run in
    its own savepoint (one failing rolls back alone).

    Each statement is a round trip to the server, so savepoints are not paid for up
    front (SAVEPOINT and RELEASE would be two of the about four round trips of a typical
    write): the batch runs first without them. Only if a function fails is that
    transaction rolled back and the whole batch run again, each function in its own
    savepoint; every outcome is then the rerun's, the one committed. So a write function
    may run twice, its first run rolled back: its effects must be the database's only
    (``Engine.write``). A batch of one needs no rerun: its failure is its outcome."""
    # Said in each transaction, whatever the server's default: on (flushed before the
    # commit returns) for a durable batch, off for the others.
    begin = f"BEGIN; SET LOCAL synchronous_commit = {'on' if durable else 'off'}"
    conn.script(begin)
    results: list[Any] = []
    conn.hold_inserts()  # the batch's audit rows and chunks go together at its end
    try:
        for fn in fns:
            results.append(fn(conn))
        conn.send_held()
    except Exception as exc:
        conn.drop_held()
        _rollback(conn)
        if len(fns) == 1:
            return [(False, exc)]
        if conn.raw.is_closed():
            raise  # the connection is gone: the whole batch failed with it
        return _with_savepoints(conn, fns, begin)
    except BaseException:
        conn.drop_held()
        _rollback(conn)
        raise
    try:
        conn.script("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return [(True, result) for result in results]


def _with_savepoints(conn: PgConn, fns: list[Callable[[Any], Any]], begin: str) -> Outcomes:
    """The batch again, each function in its own savepoint (the savepoint's statements
    joined to the transaction's control statements: one round trip between functions)."""
    outcomes: Outcomes = []
    conn.script(f"{begin}; SAVEPOINT op")
    try:
        for fn in fns:
            try:
                result = fn(conn)
            except Exception as exc:
                # The savepoint stays after ROLLBACK TO: the next function runs in it.
                conn.script("ROLLBACK TO SAVEPOINT op")
                outcomes.append((False, exc))
            else:
                conn.script("RELEASE SAVEPOINT op; SAVEPOINT op")
                outcomes.append((True, result))
        conn.script("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return outcomes


def _rollback(conn: PgConn) -> None:
    if not conn.raw.is_closed() and conn.raw.is_in_transaction():
        conn.script("ROLLBACK")


def _in_read_tx(conn: PgConn, fn: Callable[[Any], T]) -> T:
    # REPEATABLE READ: one snapshot across the operation's SELECTs, as SQLite's read
    # transaction gives.
    conn.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return fn(conn)
    finally:
        if not conn.raw.is_closed():  # lost: nothing to end (and fn's error says why)
            conn.script("ROLLBACK")  # read only: nothing to keep


def migrate(conn: PgConn) -> int:
    """Bring the schema up to date: the migrations not yet applied, in one transaction
    (PostgreSQL's DDL is transactional) under the migrations' advisory lock."""
    conn.script("BEGIN")
    try:
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_MIGRATION_LOCK,))
        conn.script("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = 0 if row is None else int(row[0])
        refuse_newer(version)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            conn.script(POSTGRES.migration(number, script))
            then = PYTHON_STEPS.get(number)
            if then is not None:
                then(conn)
            conn.execute("UPDATE schema_version SET version = ?", (number,))
        conn.script("COMMIT")
    except BaseException:
        if not conn.raw.is_closed():
            conn.script("ROLLBACK")
        raise
    return len(MIGRATIONS)


def _where(url: str) -> str:
    """The database a URL names, without its user or password (for messages)."""
    parts = urlsplit(url)
    host = parts.hostname or "the default host"
    port = f":{parts.port}" if parts.port else ""
    return f"{host}{port}{parts.path or ''}"


async def read_once(url: str, fn: Callable[[Conn], T]) -> T:
    """``fn`` in one read transaction on a connection of its own: the command line's
    read-only access (no migration, no claim: it works beside the running service).
    StartupError, naming the database, if it cannot be read."""
    worker = Worker(url, "pg-read-once")
    try:
        return await worker.run(lambda conn: _in_read_tx(conn, fn))
    except DatabaseUnreachable as exc:
        raise StartupError(
            f"cannot read the PostgreSQL database {_where(url)} (SOVD_DATABASE_URL): {exc}"
        ) from None
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StartupError(
            f"cannot read the PostgreSQL database {_where(url)} (SOVD_DATABASE_URL):"
            f" {type(exc).__name__}: {exc}"
        ) from None
    finally:
        await worker.close()


class PostgresDatabase(Engine):
    """The PostgreSQL engine: one connection for writes, one for reads, each in its own
    thread."""

    dialect = POSTGRES

    def __init__(self, url: str, *, shared: bool = False) -> None:
        super().__init__()
        self.shared = shared  # a cluster: no service lock, no read cache, lane leases
        self._url = url  # carries the password: never logged or put in a message
        self.where = _where(url)
        self._writer: Worker | None = None
        self._reader: Worker | None = None

    async def _connect(self) -> None:
        # One process per database unless it is shared (then lane leases share the work).
        claim = None if self.shared else _claim
        self._writer = Worker(self._url, "pg-writer", on_connect=claim)
        self._reader = Worker(self._url, "pg-reader")
        try:
            await self._writer.run(migrate)
            await self._reader.run(lambda conn: None)
        except DatabaseInUse as exc:
            raise StartupError(f"the PostgreSQL database {self.where}: {exc}") from None
        except DatabaseUnreachable as exc:
            raise StartupError(
                f"the PostgreSQL database {self.where} (SOVD_DATABASE_URL) cannot be used: {exc}"
            ) from None
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StartupError(
                f"the PostgreSQL database {self.where} (SOVD_DATABASE_URL) cannot be used:"
                f" {type(exc).__name__}: {exc}"
            ) from None

    def leases(self) -> Leases | None:
        if not self.shared:
            return None
        from app.store.pg_leases import PgLeases  # it builds on this module

        return PgLeases(self._url)

    async def _disconnect(self) -> None:
        for worker in (self._reader, self._writer):
            if worker is not None:
                await worker.close()
        self._reader = self._writer = None

    async def _write_batch(self, fns: list[Callable[[Any], Any]], durable: bool) -> Outcomes:
        if self._writer is None:
            raise RuntimeError("database is closed")
        return await self._writer.run(lambda conn: _write_batch(conn, fns, durable))

    async def _after_failed_batch(self) -> None:
        """Nothing: ``_write_batch`` rolled back, and a lost connection is replaced on
        the next run."""

    async def _read(self, fn: Callable[[Conn], T], snapshot: bool) -> T:
        if self._reader is None:
            raise RuntimeError("database is closed")
        if not snapshot:
            return await self._reader.run(fn, again_if_lost=True)
        return await self._reader.run(lambda conn: _in_read_tx(conn, fn), again_if_lost=True)

    def storage_failure(self, exc: BaseException) -> StorageUnavailable | None:
        # The server gone or unreachable, out of disk or connections, or read-only (a
        # standby): the storage cannot take writes now. A bad statement is not one.
        refusing = (
            DatabaseUnreachable,
            DatabaseInUse,  # lost the connection, and another process took the database
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.InsufficientResourcesError,
            asyncpg.ReadOnlySQLTransactionError,
            asyncpg.CannotConnectNowError,
            asyncpg.AdminShutdownError,
        )
        seen: BaseException | None = exc
        while seen is not None:
            if isinstance(seen, StorageUnavailable):
                return seen
            if isinstance(seen, refusing):
                error = StorageUnavailable(
                    f"the database cannot be used now ({type(seen).__name__}); nothing was changed",
                    retry_after=STORAGE_RETRY_AFTER_S,
                )
                error.__cause__ = seen
                return error
            seen = seen.__context__
        return None

    async def ping(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                row = await self.read(lambda c: c.execute("SELECT 1").fetchone())
        except (
            TimeoutError,
            OSError,
            RuntimeError,
            StorageUnavailable,
            asyncpg.PostgresError,
            asyncpg.InterfaceError,
        ):
            return False
        return row is not None and row[0] == 1
