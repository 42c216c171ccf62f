"""The SQLite database: two aiosqlite connections, one for writes and one for reads.

Each store operation is one plain function of a ``sqlite3.Connection`` that runs whole
inside the connection's own thread (``write``/``read``), so a transaction is one thread
hop instead of one per statement, and transactions can never interleave: the writer's
thread runs them one after another.

Durability: WAL with ``synchronous=NORMAL`` for routine writes (they survive a process
crash; a power loss may drop the newest of them), and ``durable=True`` writes, such as
accepting a command, run with ``synchronous=FULL`` so they are fsynced before the call
returns. A FULL commit also makes every earlier WAL frame durable.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from app.store.migrations import migrate

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA synchronous=NORMAL")


def _in_write_tx(
    conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T], durable: bool
) -> T:
    if durable:
        conn.execute("PRAGMA synchronous=FULL")
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result
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

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await self._connect()
            await self._run(self._writer, migrate)
            self._reader = await self._connect()
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(str(self.path), isolation_level=None)
        try:
            await self._run(conn, _configure)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None

    async def write(self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False) -> T:
        """Run ``fn`` in one write transaction; ``durable`` fsyncs it before returning."""
        if self._writer is None:
            raise RuntimeError("database is closed")
        return await self._run(self._writer, lambda conn: _in_write_tx(conn, fn, durable))

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
        # aiosqlite's Connection._execute runs a callable in the connection's thread; the
        # public API only offers one statement per hop. The raw connection is
        # ``conn._conn``, valid inside that thread only.
        execute = cast(Callable[..., Any], conn._execute)
        return cast(T, await execute(lambda: fn(conn._conn)))
