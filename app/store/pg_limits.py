"""The shared limits (``app.store.limits``) in PostgreSQL's ``limit_windows`` table, on
a connection of their own.

A check-and-count is one upsert: the row's events still in the window, plus the new one,
written only if they were fewer than the limit (``ON CONFLICT DO UPDATE ... WHERE``: the
row is locked and the condition read on its latest version, so concurrent checks from
any node are counted one after the other). One round trip when it passes, two when it is
refused (the window is read back for the Retry-After).

The connection commits with ``synchronous_commit=off``: a count is not waited on to reach
the disk (a crash of the database server may forget the last few hundred milliseconds
of counts; nothing else is lost). It is apart from the writer's: a slow write batch
never delays a limit check.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Final, TypeVar

import asyncpg

from app.errors import StorageUnavailable
from app.store.engine import STORAGE_RETRY_AFTER_S
from app.store.limits import LIMIT_NAMESPACE, Decide, Window, lock_key
from app.store.pg_connection import DatabaseUnreachable, PgConn, Worker

T = TypeVar("T")

# Rows whose window has emptied are deleted at most this often, by the node that passes.
SWEEP_EVERY_S: Final = 60.0

_ACQUIRE: Final = """
INSERT INTO limit_windows AS w (kind, key, events, expires_at)
VALUES ($1, $2, ARRAY[$3::float8], $3::float8 + $4::float8)
ON CONFLICT (kind, key) DO UPDATE SET
    events = ARRAY(
        SELECT e FROM unnest(w.events) AS e WHERE e > $3::float8 - $4::float8 ORDER BY e
    ) || $3::float8,
    expires_at = GREATEST(w.expires_at, $3::float8 + $4::float8)
WHERE (SELECT count(*) FROM unnest(w.events) AS e WHERE e > $3::float8 - $4::float8) < $5
RETURNING 1
"""
_READ_ONE: Final = "SELECT events FROM limit_windows WHERE kind = $1 AND key = $2"
_GIVE_BACK: Final = """
UPDATE limit_windows SET events = array_remove(events, $3::float8)
WHERE kind = $1 AND key = $2
"""
# FOR UPDATE: a give-back (another node's, not under the advisory locks) that commits
# between this read and the write back waits for the write, then removes its event from
# what was written, instead of being overwritten by the older read.
_READ: Final = """
SELECT w.kind, w.key, w.events FROM limit_windows AS w
JOIN unnest($1::text[], $2::text[]) AS asked(kind, key) USING (kind, key)
FOR UPDATE OF w
"""
_WRITE: Final = """
INSERT INTO limit_windows (kind, key, events, expires_at) VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, key) DO UPDATE SET
    events = EXCLUDED.events,
    expires_at = GREATEST(limit_windows.expires_at, EXCLUDED.expires_at)
"""
_LOCK: Final = "SELECT pg_advisory_xact_lock($1, $2)"
_SWEEP: Final = "DELETE FROM limit_windows WHERE expires_at < $1"


class PgLimits:
    def __init__(self, url: str) -> None:
        self._worker = Worker(url, "pg-limits", on_connect=_session)
        self._swept_at = 0.0  # time.monotonic() of this node's last sweep

    async def close(self) -> None:
        await self._worker.close()

    async def _run(self, fn: Callable[[PgConn], T]) -> T:
        try:
            return await self._worker.run(fn)
        except (DatabaseUnreachable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageUnavailable(
                f"the shared limits cannot be checked now ({type(exc).__name__})",
                retry_after=STORAGE_RETRY_AFTER_S,
            ) from exc

    def _sweep(self, conn: PgConn, now: float) -> None:
        """Now and then, the rows whose window has emptied go (after the operation)."""
        tick = time.monotonic()
        if tick - self._swept_at >= SWEEP_EVERY_S:
            self._swept_at = tick
            conn.wait(conn.raw.execute(_SWEEP, now))

    async def acquire(
        self, window: Window, limit: int, window_s: float, now: float
    ) -> tuple[float, ...] | None:
        kind, key = window

        def run(conn: PgConn) -> tuple[float, ...] | None:
            counted = conn.wait(conn.raw.fetchval(_ACQUIRE, kind, key, now, window_s, limit))
            if counted is not None:
                self._sweep(conn, now)
                return None
            events = conn.wait(conn.raw.fetchval(_READ_ONE, kind, key)) or []
            return tuple(float(e) for e in events)

        return await self._run(run)

    async def give_back(self, window: Window, at: float) -> None:
        kind, key = window
        await self._run(lambda conn: conn.wait(conn.raw.execute(_GIVE_BACK, kind, key, at)))

    async def update(
        self, locks: Sequence[Window], windows: Sequence[Window], decide: Decide[T], now: float
    ) -> T:
        # Every node takes the locks in the order of their keys: no two wait on each other.
        keys = sorted({lock_key(w) for w in locks})

        def run(conn: PgConn) -> T:
            raw = conn.raw
            conn.script("BEGIN")
            try:
                for key in keys:
                    conn.wait(raw.execute(_LOCK, LIMIT_NAMESPACE, key))
                rows = conn.wait(raw.fetch(_READ, [w[0] for w in windows], [w[1] for w in windows]))
                found = {(r["kind"], r["key"]): tuple(float(e) for e in r["events"]) for r in rows}
                result, written = decide({w: found.get(w, ()) for w in windows})
                if written:
                    changed = [
                        (w[0], w[1], list(e.events), e.expires_at) for w, e in written.items()
                    ]
                    conn.wait(raw.executemany(_WRITE, changed))
                conn.script("COMMIT")
            except BaseException:
                if not raw.is_closed():
                    conn.script("ROLLBACK")
                raise
            self._sweep(conn, now)  # logins alone (no command rate) must sweep too
            return result

        return await self._run(run)


def _session(conn: PgConn) -> None:
    conn.script("SET synchronous_commit = off")
