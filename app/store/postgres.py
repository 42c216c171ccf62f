"""The PostgreSQL engine (``SOVD_DATABASE_URL=postgresql://...``), on asyncpg.

The stores' operations are plain functions that run whole in their connection's thread
(``app.store.engine``): SQLite's shape, kept so that one operation is one thread hop on
the default engine. Here each connection gets a thread of its own with a private event
loop, where the asyncpg connection lives; an operation runs in that thread and each of
its statements is one ``run_until_complete`` of an asyncpg call (``_PgConn``). The
service's own loop only awaits the operation, as with SQLite.

Durability: a batch holding a ``durable`` write commits with ``synchronous_commit=on``
(flushed before its callers hear back, whatever the server's default); any other batch
with ``synchronous_commit=off`` for that transaction (a server crash may lose its last few
hundred milliseconds, never half of a transaction): SQLite's NORMAL/FULL split.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

import asyncpg

from app.errors import StartupError, StorageUnavailable
from app.store.dialects import POSTGRES
from app.store.engine import STORAGE_RETRY_AFTER_S, Engine, Outcomes
from app.store.leases import Leases
from app.store.migrations import MIGRATIONS, PYTHON_STEPS, refuse_newer
from app.store.sql import Conn, IntegrityError

T = TypeVar("T")
log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
# A statement that takes longer fails (TimeoutError) instead of holding its connection
# thread, and every operation queued behind it, indefinitely.
STATEMENT_TIMEOUT_S: Final = 30.0
# Any number, the same on every node: migrations run under this advisory lock, so two
# nodes starting at once on a new database do not both migrate it.
_MIGRATION_LOCK: Final = 0x50564D49  # "SOVD migrations"
_SERVICE_LOCK: Final = 0x50564453  # held by the writer connection: see ``_claim``
_QUERIES: Final = ("SELECT", "WITH", "VALUES", "SHOW")  # statements that return rows


@lru_cache(maxsize=1024)  # the statements are a fixed set of strings
def _statement(sql: str) -> tuple[str, bool]:
    """``sql`` as PostgreSQL takes it, and whether it returns rows (fetched) or a row
    count (executed)."""
    upper = sql.lstrip().upper()
    return POSTGRES.numbered(sql), upper.startswith(_QUERIES) or " RETURNING " in upper


def _rowcount(status: str) -> int:
    """The row count of a command tag (``UPDATE 3``, ``INSERT 0 1``), -1 without one."""
    last = status.rsplit(" ", 1)[-1]
    return int(last) if last.isdigit() else -1


class _PgCursor:
    """The DB-API cursor calls the stores use, over one asyncpg connection."""

    def __init__(self, conn: _PgConn) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.rowcount = -1
        self.row_factory: Any = None  # asyncpg's records are read by name already

    def execute(self, sql: str, parameters: Any = (), /) -> _PgCursor:
        if isinstance(parameters, Mapping):  # SQLite would take them; PostgreSQL not
            raise TypeError("named parameters are SQLite's only: write ? placeholders")
        self._rows, self.rowcount = self._conn.run_statement(sql, tuple(parameters))
        return self

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return list(self._rows)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _PgConn:
    """A ``Conn`` (app.store.sql) on an asyncpg connection, used from its own thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        self._loop = loop
        self.raw = conn

    def wait(self, call: Coroutine[Any, Any, T]) -> T:
        try:
            return self._loop.run_until_complete(call)
        except asyncpg.IntegrityConstraintViolationError as exc:
            # The stores' one constraint error, whichever engine (app.store.sql).
            raise IntegrityError(f"{type(exc).__name__}: {exc}") from exc

    def run_statement(self, sql: str, args: tuple[Any, ...]) -> tuple[list[Any], int]:
        sql, returns_rows = _statement(sql)
        if returns_rows:
            rows = self.wait(self.raw.fetch(sql, *args))
            return rows, len(rows)
        return [], _rowcount(self.wait(self.raw.execute(sql, *args)))

    def execute(self, sql: str, parameters: Any = (), /) -> _PgCursor:
        return _PgCursor(self).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        self.wait(self.raw.executemany(POSTGRES.numbered(sql), [tuple(p) for p in parameters]))

    def cursor(self) -> _PgCursor:
        return _PgCursor(self)

    def script(self, sql: str) -> None:
        """Several statements without parameters (migrations, transaction control)."""
        self.wait(self.raw.execute(sql))


class DatabaseUnreachable(Exception):
    """No connection could be made: the server down or refusing, the database missing."""


class DatabaseInUse(RuntimeError):
    """Another service process holds this database (one process per database for now)."""


def _claim(conn: _PgConn) -> None:
    """Hold the service's advisory lock for as long as this connection lives, or raise
    DatabaseInUse. Until issue #23 shares the work between nodes (one lane owner per
    vehicle), a second process on the database would end the first one's running
    commands as interrupted when it starts, and serve from its own caches and limits."""
    if not conn.execute("SELECT pg_try_advisory_lock(?)", (_SERVICE_LOCK,)).fetchone()[0]:
        raise DatabaseInUse(
            "another service process is using this database; run one process per"
            " PostgreSQL database (several nodes are a later part of issue #23)"
        )


class _Worker:
    """One thread with its own event loop and one asyncpg connection in it;
    ``on_connect`` runs on each new connection (in that thread)."""

    def __init__(
        self, url: str, name: str, on_connect: Callable[[_PgConn], None] | None = None
    ) -> None:
        self._url = url
        self._on_connect = on_connect
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: _PgConn | None = None

    def _connection(self) -> _PgConn:
        """The live connection, reconnecting if the last one was lost (a restarted
        server); runs in the worker's thread."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._conn is None or self._conn.raw.is_closed():
            try:
                raw = self._loop.run_until_complete(
                    asyncpg.connect(
                        self._url, timeout=CONNECT_TIMEOUT_S, command_timeout=STATEMENT_TIMEOUT_S
                    )
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise DatabaseUnreachable(f"{type(exc).__name__}: {exc}") from exc
            conn = _PgConn(self._loop, raw)
            if self._on_connect is not None:
                try:
                    self._on_connect(conn)
                except BaseException:
                    self._loop.run_until_complete(raw.close(timeout=5))
                    raise
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[_PgConn], T], *, again_if_lost: bool = False) -> T:
        """``fn`` in this worker's thread. ``again_if_lost``: if the connection turns out
        to be lost (a restarted server), once more on a new one (for reads only: they
        change nothing, so running one twice is harmless)."""

        def call() -> T:
            conn = self._connection()
            try:
                return fn(conn)
            except Exception:
                if not (again_if_lost and conn.raw.is_closed()):
                    raise
            return fn(self._connection())

        return await asyncio.wrap_future(self._pool.submit(call))

    async def close(self) -> None:
        def shut() -> None:
            if self._conn is not None and self._loop is not None:
                self._loop.run_until_complete(self._conn.raw.close(timeout=5))
            if self._loop is not None:
                self._loop.close()
            self._conn = self._loop = None

        try:
            await asyncio.wrap_future(self._pool.submit(shut))
        except Exception:
            log.warning("could not close a PostgreSQL connection cleanly", exc_info=True)
        finally:
            self._pool.shutdown(wait=False)


def _write_batch(conn: _PgConn, fns: list[Callable[[Any], Any]], durable: bool) -> Outcomes:
    """Run each function in its own savepoint inside one transaction: (ok, result) each.
    A batch of one needs no savepoint (its failure rolls the transaction back): each
    statement is a round trip to the server, so the common idle case saves two."""
    # Said in each transaction, whatever the server's default: on (flushed before the
    # commit returns) for a durable batch, off for the others.
    begin = f"BEGIN; SET LOCAL synchronous_commit = {'on' if durable else 'off'}"
    if len(fns) == 1:
        conn.script(begin)
        try:
            result = fns[0](conn)
        except Exception as exc:
            _rollback(conn)
            return [(False, exc)]
        except BaseException:
            _rollback(conn)
            raise
        conn.script("COMMIT")
        return [(True, result)]
    outcomes: Outcomes = []
    conn.script(begin)
    try:
        for fn in fns:
            conn.script("SAVEPOINT op")
            try:
                result = fn(conn)
            except Exception as exc:
                conn.script("ROLLBACK TO SAVEPOINT op; RELEASE SAVEPOINT op")
                outcomes.append((False, exc))
            else:
                conn.script("RELEASE SAVEPOINT op")
                outcomes.append((True, result))
        conn.script("COMMIT")
    except BaseException:
        _rollback(conn)
        raise
    return outcomes


def _rollback(conn: _PgConn) -> None:
    if not conn.raw.is_closed() and conn.raw.is_in_transaction():
        conn.script("ROLLBACK")


def _in_read_tx(conn: _PgConn, fn: Callable[[Any], T]) -> T:
    # REPEATABLE READ: one snapshot across the operation's SELECTs, as SQLite's read
    # transaction gives.
    conn.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    try:
        return fn(conn)
    finally:
        if not conn.raw.is_closed():  # lost: nothing to end (and fn's error says why)
            conn.script("ROLLBACK")  # read only: nothing to keep


def migrate(conn: _PgConn) -> int:
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
    worker = _Worker(url, "pg-read-once")
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
        self._writer: _Worker | None = None
        self._reader: _Worker | None = None

    async def _connect(self) -> None:
        # One process per database unless it is shared (then lane leases share the work).
        claim = None if self.shared else _claim
        self._writer = _Worker(self._url, "pg-writer", on_connect=claim)
        self._reader = _Worker(self._url, "pg-reader")
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
