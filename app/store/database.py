"""The SQLite database: two aiosqlite connections, one for writes and one for reads.

Each store operation is one plain function of a ``sqlite3.Connection`` that runs whole
inside the connection's own thread, so an operation is one thread hop instead of one per
statement, and operations can never interleave.

Writes are group-committed: operations that arrive while a transaction is being written
wait and then go together, each in its own savepoint (one failing rolls back alone), in
one transaction with one commit. Under load this turns many small commits, and many
fsyncs, into a few; idle, an operation is committed at once.

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
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import aiosqlite

from app.datadir import PRIVATE_FILE, make_private, make_private_dir
from app.errors import StartupError, StorageUnavailable
from app.store.migrations import migrate

T = TypeVar("T")
log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
MAX_BATCH = 512
MAX_CACHED_READS = 256
# SQLite's primary result codes that say the storage cannot take writes: disk full, I/O
# error, file gone read-only or unopenable. Such a write answers 503 storage-unavailable.
_CODES = frozenset(
    {sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN}
)
STORAGE_RETRY_AFTER_S = 5


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


@dataclass(slots=True)
class _Write:
    fn: Callable[[sqlite3.Connection], Any]
    durable: bool
    future: asyncio.Future[Any] = field(repr=False)


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


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._pending: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._writable = True  # False from a write the storage refused to the next commit
        # Bumped by every write batch before its callers hear back: a cached read made
        # at an older version is stale (see read_cached).
        self._version = 0
        self._cache: OrderedDict[Hashable, tuple[int, Any]] = OrderedDict()

    @property
    def writable(self) -> bool:
        """False while the storage refuses writes (disk full, I/O error): set by a failed
        write, cleared by the next successful commit (for readiness)."""
        return self._writable

    async def open(self) -> None:
        """Open (or create) the database private to its owner, check that it reads whole,
        migrate it. A database that cannot be read raises StartupError in one line."""
        make_private_dir(self.path.parent)
        _create_private(self.path)
        try:
            self._writer = await self._connect()
            await self._run(self._writer, _quick_check)
            await self._run(self._writer, migrate)
            self._reader = await self._connect()
        except sqlite3.DatabaseError as exc:
            await self.close()
            raise StartupError(
                f"the database {self.path} cannot be used: {exc}; if it is corrupt, restore "
                "it from a backup or move it (with its -wal and -shm files) away to start "
                "with an empty one; otherwise check that this user may read and write it"
            ) from None
        except BaseException:
            await self.close()
            raise
        for suffix in ("-wal", "-shm"):  # left by an older run, perhaps with looser modes
            make_private(self.path.with_name(self.path.name + suffix))
        self._committer = asyncio.create_task(self._commit_loop(), name="sqlite-committer")

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        try:
            check_aiosqlite(conn)
            await self._run(conn, _configure)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        """Finish the writes already asked for, then close both connections."""
        if self._committer is not None:
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        """Run ``fn`` atomically in a write transaction; ``durable`` means fsynced before
        this returns. Raises what ``fn`` raised (its changes rolled back)."""
        if self._writer is None or self._committer is None or self._closing:
            raise RuntimeError("database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(fn, durable, future))
        self._wakeup.set()
        # Shielded: once queued, the write happens even if the caller stops waiting.
        return await asyncio.shield(future)

    async def _commit_loop(self) -> None:
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._pending:
                    batch = self._pending[:MAX_BATCH]
                    del self._pending[:MAX_BATCH]
                    await self._commit(batch)
                if self._closing:
                    return
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - _commit settles every error itself
            log.exception("the SQLite committer stopped")
            raise
        finally:
            for write in self._pending:
                if not write.future.done():
                    write.future.set_exception(RuntimeError("database is closed"))
            self._pending.clear()

    async def _commit(self, batch: list[_Write]) -> None:
        assert self._writer is not None
        fns = [w.fn for w in batch]
        durable = any(w.durable for w in batch)
        try:
            try:
                outcomes = await self._run(self._writer, lambda c: _write_batch(c, fns, durable))
            finally:
                self._version += 1  # whatever happened, a cached read may now be stale
        except asyncio.CancelledError:
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(RuntimeError("database is closing"))
            raise
        except Exception as exc:  # the transaction itself failed: nobody's write is in
            failure = self._failure(exc)
            # SQLite ends a transaction whose COMMIT hit a full disk; make sure, or every
            # later BEGIN would fail.
            await self._run(self._writer, _rollback_if_open)
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(failure)
            return
        self._writable = True
        for write, (ok, value) in zip(batch, outcomes, strict=True):
            if write.future.done():
                continue
            if ok:
                write.future.set_result(value)
            else:
                write.future.set_exception(self._failure(value))

    def _failure(self, exc: BaseException) -> BaseException:
        """What a failed write raises: StorageUnavailable (noted for readiness) when the
        storage refused it, else the error itself."""
        failure = storage_failure(exc)
        if failure is None:
            return exc
        self._writable = False
        return failure

    async def read_cached(self, key: Hashable, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``read(fn)``, answered from memory while nothing has been written since the
        answer was read. ``key`` names what ``fn`` reads (same key, same query); the
        answer must be immutable. Sound because this process is the database's only
        writer (the data-directory lock) and every write goes through ``write``, which
        moves the version before its caller hears back."""
        version = self._version
        cached = self._cache.get(key)
        if cached is not None and cached[0] == version:
            self._cache.move_to_end(key)
            value: T = cached[1]
            return value
        value = await self.read(fn)
        self._cache[key] = (version, value)  # tagged with the version it was read at
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED_READS:
            self._cache.popitem(last=False)
        return value

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        if self._reader is None:
            raise RuntimeError("database is closed")
        return await self._run(self._reader, lambda conn: _in_read_tx(conn, fn))

    async def ping(self, timeout_s: float) -> bool:
        try:
            async with asyncio.timeout(timeout_s):
                row = await self.read(lambda c: c.execute("SELECT 1").fetchone())
        except (TimeoutError, sqlite3.Error, RuntimeError):
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
