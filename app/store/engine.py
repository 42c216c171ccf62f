"""The database as the stores see it, whichever engine is behind it (``open_database``).

Each store operation is one plain function of a ``Conn`` that runs whole inside the
connection's own thread, so an operation is one thread hop instead of one per statement,
and operations can never interleave.

Writes are group-committed: operations that arrive while a transaction is being written
wait and then go together, each as if in its own savepoint (one failing rolls back alone), in
one transaction with one commit. Under load this turns many small commits, and many
fsyncs, into a few; idle, an operation is committed at once. ``durable=True`` (accepting a
command) means the batch is on disk before any of its callers hear back; other writes may
be lost to a power cut (each engine says how).

The engines: SQLite (``app.store.database``, the default) and PostgreSQL
(``app.store.postgres``, when ``SOVD_DATABASE_URL`` is set). Both subclass ``Engine``,
which holds what they share: the queue of writes, the committer, the read cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from app.errors import StartupError, StorageUnavailable
from app.store.dialects import Dialect
from app.store.leases import Leases
from app.store.sql import Conn

T = TypeVar("T")
log = logging.getLogger(__name__)

MAX_BATCH = 512
MAX_CACHED_READS = 256
STORAGE_RETRY_AFTER_S = 5

# (ok, result or exception) per function of a batch, in order.
Outcomes = list[tuple[bool, Any]]


@dataclass(slots=True)
class _Write:
    fn: Callable[[Any], Any]
    durable: bool
    future: asyncio.Future[Any] = field(repr=False)


class Engine(ABC):
    """Group-committed writes, snapshot reads and the read cache; the subclass connects,
    migrates and runs functions in its connections' threads."""

    dialect: Dialect

    def __init__(self) -> None:
        self._pending: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._committer: asyncio.Task[None] | None = None
        self._closing = False
        self._writable = True  # False from a write the storage refused to the next commit
        # Bumped by every write batch before its callers hear back: a cached read made
        # at an older version is stale (see read_cached).
        self._version = 0
        # key -> (version, answer, monotonic time its read began)
        self._cache: OrderedDict[Hashable, tuple[int, Any, float]] = OrderedDict()
        # A shared database (a cluster): how long an answer may be kept although other
        # nodes may have written since (SOVD_CLUSTER_READ_CACHE_S; 0: never kept).
        self.shared_cache_s = 0.0
        self.monotonic: Callable[[], float] = time.monotonic  # a test's clock may replace it

    # -- what each engine does ----------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None:
        """Open the connections and migrate; StartupError (one line) if unusable."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close whatever ``_connect`` opened (also after it failed half-way)."""

    @abstractmethod
    async def _write_batch(self, fns: list[Callable[[Any], Any]], durable: bool) -> Outcomes:
        """Run each function as if in its own savepoint of one write transaction (one
        failing rolls back alone): (ok, result or exception) each."""

    @abstractmethod
    async def _after_failed_batch(self) -> None:
        """Leave the writer ready for the next batch after its transaction failed."""

    @abstractmethod
    async def _read(self, fn: Callable[[Any], T], snapshot: bool) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot), or without one
        (``snapshot`` False: ``fn`` runs a single statement)."""

    @abstractmethod
    def storage_failure(self, exc: BaseException) -> StorageUnavailable | None:
        """``exc`` as StorageUnavailable if it says the storage cannot write now."""

    @abstractmethod
    async def ping(self, timeout_s: float) -> bool:
        """Whether the database answers a read within ``timeout_s``."""

    # -- shared -------------------------------------------------------------------------

    # True when other nodes write to the same database (a cluster, #23): then nothing is
    # answered from this node's read cache, which only sees this node's writes.
    shared = False

    def leases(self) -> Leases | None:
        """Leases on vehicles' lanes, for a cluster; None: this engine has none (SQLite:
        one process runs every lane)."""
        return None

    @property
    def writable(self) -> bool:
        """False while the storage refuses writes (disk full, I/O error, server gone):
        set by a failed write, cleared by the next successful commit (for readiness)."""
        return self._writable

    async def open(self) -> None:
        try:
            await self._connect()
        except BaseException:
            await self._disconnect()
            raise
        self._committer = asyncio.create_task(
            self._commit_loop(), name=f"{self.dialect.name}-committer"
        )

    async def close(self) -> None:
        """Finish the writes already asked for, then close the connections."""
        if self._committer is not None:
            self._closing = True
            self._wakeup.set()
            await asyncio.gather(self._committer, return_exceptions=True)
            self._committer = None
        await self._disconnect()

    async def write(self, fn: Callable[[Conn], T], *, durable: bool = False) -> T:
        """Run ``fn`` atomically in a write transaction; ``durable`` means on disk before
        this returns. Raises what ``fn`` raised (its changes rolled back). ``fn`` may be
        run twice, the first run rolled back (PostgreSQL, when another write of its batch
        failed: ``app.store.postgres``), so it must change nothing but the database."""
        if self._committer is None or self._closing:
            raise RuntimeError("database is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append(_Write(fn, durable, future))
        self._wakeup.set()
        # Shielded: once queued, the write happens even if the caller stops waiting.
        return await asyncio.shield(future)

    async def read(self, fn: Callable[[Conn], T], *, single_statement: bool = False) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot). Raises what ``fn``
        raised, or StorageUnavailable when the storage cannot be read (as ``write``).

        ``single_statement``: ``fn`` runs one SELECT, which is a consistent snapshot by
        itself, so no transaction is opened around it. On PostgreSQL that saves two round
        trips (BEGIN, ROLLBACK), about 170 us of this process's CPU per read (measured on
        the 2-core machine), which the hottest reads (a session's principal on every
        request, a command, a vehicle, a command's chunks) take."""
        try:
            return await self._read(fn, not single_statement)
        except Exception as exc:
            failure = self.storage_failure(exc)
            if failure is None:
                raise
            raise failure from exc

    async def read_cached(self, key: Hashable, fn: Callable[[Conn], T]) -> T:
        """``read(fn)``, answered from memory while nothing has been written since the
        answer was read. ``key`` names what ``fn`` reads (same key, same query); the
        answer must be immutable. Sound because this process is the database's only
        writer (the data-directory lock; PostgreSQL without a bus: one node per
        database) and every write goes through ``write``, which moves the version before
        its caller hears back.

        On a shared database (``shared``: a cluster) other nodes' writes do not move this
        node's version: an answer is kept for ``shared_cache_s`` at most from when its
        read began (this node's own writes still end it at once), so another node's
        write shows within that long; 0 reads every time."""
        if self.shared and self.shared_cache_s <= 0:
            return await self.read(fn)
        version, began = self._version, self.monotonic()
        cached = self._cache.get(key)
        if (
            cached is not None
            and cached[0] == version
            and (not self.shared or began - cached[2] < self.shared_cache_s)
        ):
            self._cache.move_to_end(key)
            value: T = cached[1]
            return value
        value = await self.read(fn)
        self._cache[key] = (version, value, began)  # tagged as of when the read began
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED_READS:
            self._cache.popitem(last=False)
        return value

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
            log.exception("the %s committer stopped", self.dialect.name)
            raise
        finally:
            for write in self._pending:
                if not write.future.done():
                    write.future.set_exception(RuntimeError("database is closed"))
            self._pending.clear()

    async def _commit(self, batch: list[_Write]) -> None:
        fns = [w.fn for w in batch]
        durable = any(w.durable for w in batch)
        try:
            try:
                outcomes = await self._write_batch(fns, durable)
            finally:
                self._version += 1  # whatever happened, a cached read may now be stale
        except asyncio.CancelledError:
            for write in batch:
                if not write.future.done():
                    write.future.set_exception(RuntimeError("database is closing"))
            raise
        except Exception as exc:  # the transaction itself failed: nobody's write is in
            failure = self._failure(exc)
            await self._after_failed_batch()
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
        failure = self.storage_failure(exc)
        if failure is None:
            return exc
        self._writable = False
        return failure


def open_database(db_path: Path, url: str | None, *, shared: bool = False) -> Engine:
    """The engine the configuration names: PostgreSQL at ``url`` (SOVD_DATABASE_URL),
    else the SQLite file ``db_path``. Not opened yet. ``shared``: several nodes use the
    PostgreSQL database at once (a cluster: SOVD_BUS_URL set too), each running the
    lanes it holds the lease of, instead of one process holding the whole database."""
    if url is None:
        from app.store.database import Database

        return Database(db_path)
    try:
        from app.store.postgres import PostgresDatabase
    except ImportError as exc:
        raise _no_driver(exc) from None
    return PostgresDatabase(url, shared=shared)


async def read_once(url: str, fn: Callable[[Conn], T]) -> T:
    """``fn`` in one read transaction of the PostgreSQL database at ``url``, beside a
    running service (the command line's read-only access; SQLite's is in app.cli)."""
    try:
        from app.store import postgres
    except ImportError as exc:
        raise _no_driver(exc) from None
    return await postgres.read_once(url, fn)


def _no_driver(exc: ImportError) -> StartupError:
    # asyncpg is the ``postgres`` extra: an edge box on SQLite does not install it.
    return StartupError(
        f"SOVD_DATABASE_URL names a PostgreSQL database but its driver cannot be imported"
        f" ({exc}): pip install 'sovd-command-service[postgres]'"
    )
