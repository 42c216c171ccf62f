"""The SQLite engine (the default): two aiosqlite connections, one for writes and one
for reads. How operations run and writes are group-committed: ``app.store.engine``.

Durability: WAL with ``synchronous=NORMAL`` for routine writes (they survive a process
crash; a power loss may drop the newest of them). A batch holding a ``durable=True``
operation, such as accepting a command, commits with ``synchronous=FULL``, so it is
fsynced before any of its callers hear back. A FULL commit also makes every earlier WAL
frame durable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import aiosqlite

from app.datadir import PRIVATE_FILE, make_private, make_private_dir
from app.errors import StartupError, StorageUnavailable
from app.store.dialects import SQLITE
from app.store.engine import STORAGE_RETRY_AFTER_S, Engine, Outcomes
from app.store.migrations import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
# SQLite's primary result codes that say the storage cannot take writes: disk full, I/O
# error, file gone read-only or unopenable. Such a write answers 503 storage-unavailable.
_CODES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)


def storage_failure(exc: BaseException) -> StorageUnavailable | None:
    """``exc`` as StorageUnavailable if it, or an error it was raised while handling (a
    failed ROLLBACK after a full disk), says the storage cannot write; else None."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, StorageUnavailable):
            return seen
        code = getattr(seen, "sqlite_errorcode", None)
        if isinstance(seen, sqlite3.Error) and isinstance(code, int) and code & 0xFF in _CODES:
            error = StorageUnavailable(
                f"the database cannot store anything now ({seen}); nothing was changed",
                retry_after=STORAGE_RETRY_AFTER_S,
            )
            error.__cause__ = seen
            return error
        seen = seen.__context__
    return None


def _rollback_if_open(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            log.exception("could not roll back a failed write transaction")


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous=NORMAL")


def _create_private(path: Path) -> None:
    """Create an empty database file 0600 before SQLite does (SQLite would make it 0644
    less the umask). SQLite gives the -wal and -shm files the database file's mode, so
    they are private too. An existing file of ours loses any group or other access."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        make_private(path)
    else:
        os.close(fd)  # SQLite takes an empty file for a new database


def _quick_check(conn: sqlite3.Connection) -> None:
    # Reads every page once (no index cross-checks): a corrupt file fails the start here,
    # in one clear line, instead of in some request later.
    rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    if rows != [("ok",)]:
        problems = "; ".join(str(row[0]) for row in rows)
        raise sqlite3.DatabaseError(f"integrity check failed ({problems})")


def _write_batch(
    conn: sqlite3.Connection, fns: list[Callable[[sqlite3.Connection], Any]], durable: bool
) -> list[tuple[bool, Any]]:
    """Run each function in its own savepoint inside one transaction: (ok, result) each."""
    outcomes: list[tuple[bool, Any]] = []
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT op")
                try:
                    result = fn(conn)
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    outcomes.append((False, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((True, result))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return outcomes
    finally:
        if durable:
            conn.execute("PRAGMA synchronous=NORMAL")


def _in_read_tx(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    # A read transaction gives one consistent snapshot across several SELECTs.
    conn.execute("BEGIN")
    try:
        return fn(conn)
    finally:
        conn.execute("COMMIT")


class Database(Engine):
    """The SQLite engine: the file at ``path``, one connection for writes, one for reads."""

    dialect = SQLITE

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None

    async def _connect(self) -> None:
        """Open (or create) the database private to its owner, check that it reads whole,
        migrate it. A database that cannot be read raises StartupError in one line."""
        make_private_dir(self.path.parent)
        _create_private(self.path)
        try:
            self._writer = await self._open_connection()
            await self._run(self._writer, _quick_check)
            await self._run(self._writer, migrate)
            self._reader = await self._open_connection()
        except sqlite3.DatabaseError as exc:
            raise StartupError(
                f"the database {self.path} cannot be used: {exc}; if it is corrupt, restore "
                "it from a backup or move it (with its -wal and -shm files) away to start "
                "with an empty one; otherwise check that this user may read and write it"
            ) from None
        for suffix in ("-wal", "-shm"):  # left by an older run, perhaps with looser modes
            make_private(self.path.with_name(self.path.name + suffix))

    async def _open_connection(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        try:
            check_aiosqlite(conn)
            await self._run(conn, _configure)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _disconnect(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def _write_batch(self, fns: list[Callable[[Any], Any]], durable: bool) -> Outcomes:
        if self._writer is None:
            raise RuntimeError("database is closed")
        return await self._run(self._writer, lambda c: _write_batch(c, fns, durable))

    async def _after_failed_batch(self) -> None:
        # SQLite ends a transaction whose COMMIT hit a full disk; make sure, or every
        # later BEGIN would fail.
        if self._writer is not None:
            await self._run(self._writer, _rollback_if_open)

    async def _read(self, fn: Callable[[Any], T], snapshot: bool) -> T:
        if self._reader is None:
            raise RuntimeError("database is closed")
        if not snapshot:
            return await self._run(self._reader, fn)
        return await self._run(self._reader, lambda conn: _in_read_tx(conn, fn))

    def storage_failure(self, exc: BaseException) -> StorageUnavailable | None:
        return storage_failure(exc)

    async def ping(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                row = await self.read(lambda c: c.execute("SELECT 1").fetchone())
        except (TimeoutError, sqlite3.Error, RuntimeError, StorageUnavailable):
            return False
        return bool(row == (1,))

    @staticmethod
    async def _run(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await run_in_thread(conn, fn)


# aiosqlite's private parts this module relies on, checked when a connection opens.
_PRIVATE: Final = ("_execute", "_conn")


def check_aiosqlite(conn: aiosqlite.Connection) -> None:
    """Fail at once, naming the version, if this aiosqlite lacks what ``run_in_thread``
    uses (rather than at the first query, or subtly)."""
    missing = [name for name in _PRIVATE if not hasattr(conn, name)]
    if missing or not callable(getattr(conn, "_execute", None)):
        raise RuntimeError(
            f"aiosqlite {aiosqlite.__version__} lacks Connection.{', '.join(missing) or '_execute'}"
            " (private API used by app.store.database.run_in_thread): pin the version in"
            " constraints.txt or adapt run_in_thread"
        )


async def run_in_thread(conn: aiosqlite.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``fn(raw sqlite3 connection)`` whole in ``conn``'s own thread: one hop.

    The one place that uses aiosqlite's private API: ``Connection._execute`` queues a
    callable for the connection's thread (the public API offers one statement per hop,
    and no call that runs a function there) and ``Connection._conn`` is the raw
    connection, valid inside that thread only. Kept because the public path costs: the
    pipeline's typical write through public calls ran at 0.43x the one-hop rate
    (``python -m bench store_hops``: 2,406 against 5,644 writes/s, 2026-12-07).
    tests/test_store.py checks both against the installed aiosqlite.
    """
    execute = cast(Callable[..., Any], conn._execute)
    return cast(T, await execute(lambda: fn(conn._conn)))
