"""A PostgreSQL connection as the stores use one: ``PgConn`` (the DB-API calls of
``app.store.sql.Conn`` over asyncpg, each statement one ``run_until_complete`` in the
connection's own thread) and ``Worker`` (that thread, its event loop and its connection,
reconnecting after a lost one). ``app.store.postgres`` builds the engine on them;
``app.store.pg_leases`` the lane leases."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any, Final, TypeVar

import asyncpg

from app.store.dialects import POSTGRES
from app.store.sql import IntegrityError

T = TypeVar("T")
log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S: Final = 10.0
# A statement that takes longer fails (TimeoutError) instead of holding its connection
# thread, and every operation queued behind it, indefinitely.
STATEMENT_TIMEOUT_S: Final = 30.0
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


# The server ends this session soon after this node's host is gone (power off, a network
# partition), not after the kernel's two hours: its session advisory locks (the lanes this
# node owns, app.store.pg_leases) are then free for another node within about 15 s.
DEAD_PEER_SETTINGS: Final = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
    "tcp_user_timeout": "10000",  # ms: unacknowledged data (a write into the void)
}


class PgCursor:
    """The DB-API cursor calls the stores use, over one asyncpg connection."""

    def __init__(self, conn: PgConn) -> None:
        self._conn = conn
        self._rows: list[Any] = []
        self.rowcount = -1
        self.row_factory: Any = None  # asyncpg's records are read by name already

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
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


class PgConn:
    """A ``Conn`` (app.store.sql) on an asyncpg connection, used from its own thread only."""

    def __init__(self, loop: asyncio.AbstractEventLoop, conn: asyncpg.Connection) -> None:
        self._loop = loop
        self.raw = conn
        # INSERTs held for the end of a write batch (``app.store.sql.insert_later``),
        # by statement; None: none are held, each runs at once.
        self._later: dict[str, list[tuple[Any, ...]]] | None = None

    def hold_inserts(self) -> None:
        """From now, hold what ``execute_later`` is given until ``send_held``."""
        self._later = {}

    def execute_later(self, sql: str, parameters: Sequence[Any], /) -> None:
        if self._later is None:
            self.execute(sql, parameters)
        else:
            self._later.setdefault(sql, []).append(tuple(parameters))

    def send_held(self) -> None:
        """Send the held INSERTs, one round trip per statement (asyncpg pipelines an
        executemany's rows); stop holding, even if one fails."""
        held, self._later = self._later, None
        for sql, rows in (held or {}).items():
            self.executemany(sql, rows)

    def drop_held(self) -> None:
        self._later = None

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

    def execute(self, sql: str, parameters: Any = (), /) -> PgCursor:
        return PgCursor(self).execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> None:
        self.wait(self.raw.executemany(_statement(sql)[0], [tuple(p) for p in parameters]))

    def cursor(self) -> PgCursor:
        return PgCursor(self)

    def script(self, sql: str) -> None:
        """Several statements without parameters (migrations, transaction control)."""
        self.wait(self.raw.execute(sql))


class DatabaseUnreachable(Exception):
    """No connection could be made: the server down or refusing, the database missing."""


class Worker:
    """One thread with its own event loop and one asyncpg connection in it;
    ``on_connect`` runs on each new connection (in that thread)."""

    def __init__(
        self, url: str, name: str, on_connect: Callable[[PgConn], None] | None = None
    ) -> None:
        self._url = url
        self._on_connect = on_connect
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: PgConn | None = None

    def _connection(self) -> PgConn:
        """The live connection, reconnecting if the last one was lost (a restarted
        server); runs in the worker's thread."""
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        if self._conn is None or self._conn.raw.is_closed():
            try:
                raw = self._loop.run_until_complete(
                    asyncpg.connect(
                        self._url,
                        timeout=CONNECT_TIMEOUT_S,
                        command_timeout=STATEMENT_TIMEOUT_S,
                        server_settings=DEAD_PEER_SETTINGS,
                    )
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                raise DatabaseUnreachable(f"{type(exc).__name__}: {exc}") from exc
            conn = PgConn(self._loop, raw)
            if self._on_connect is not None:
                try:
                    self._on_connect(conn)
                except BaseException:
                    self._loop.run_until_complete(raw.close(timeout=5))
                    raise
            self._conn = conn
        return self._conn

    async def run(self, fn: Callable[[PgConn], T], *, again_if_lost: bool = False) -> T:
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
