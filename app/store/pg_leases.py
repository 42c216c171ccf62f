"""Leases as PostgreSQL session advisory locks on a connection of their own
(``app.store.leases``): a lock lives as long as the connection, so a node's leases end
with the node (its connection closes or times out) and another node's
``pg_try_advisory_lock`` then succeeds.

The connection is apart from the writer's and the reader's: a slow write batch never
delays a lease, and the writer may reconnect without losing them. When this connection
is lost every lease is gone: the next ``take`` or ``check`` says so (``LeaseLost``) once,
and the connection made meanwhile holds nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import asyncpg

from app.errors import StorageUnavailable
from app.store.engine import STORAGE_RETRY_AFTER_S
from app.store.leases import LANE_NAMESPACE, LeaseLost, lease_key
from app.store.pg_connection import DatabaseUnreachable, PgConn, Worker

T = TypeVar("T")


class PgLeases:
    def __init__(self, url: str) -> None:
        self._url = url
        self._worker: Worker | None = None
        self._connections = 0  # connections made (the worker reconnects when one is lost)
        self._seen = 0  # the connection count this node's leases were taken on

    def _connected(self, conn: PgConn) -> None:
        self._connections += 1

    async def open(self) -> None:
        self._worker = Worker(self._url, "pg-leases", on_connect=self._connected)
        await self._worker.run(lambda conn: None)
        self._seen = self._connections

    async def close(self) -> None:
        if self._worker is not None:
            await self._worker.close()  # the session ends: every lock is released
            self._worker = None

    async def _run(self, fn: Callable[[PgConn], T]) -> T:
        """``fn`` on the lease connection; once more on a new one if it was found lost
        (``fn`` then sees the connection count moved). StorageUnavailable if the server
        cannot be reached."""
        if self._worker is None:
            raise RuntimeError("leases are closed")
        try:
            return await self._worker.run(fn, again_if_lost=True)
        except (DatabaseUnreachable, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StorageUnavailable(
                f"the lane leases cannot be used now ({type(exc).__name__})",
                retry_after=STORAGE_RETRY_AFTER_S,
            ) from exc

    async def take(self, vehicle_ids: Sequence[str]) -> list[str]:
        keys = {lease_key(v): v for v in vehicle_ids}

        def run(conn: PgConn) -> list[int] | None:
            if self._connections != self._seen:
                return None  # a new connection: the old one's leases are gone
            rows = conn.execute(
                "SELECT k FROM unnest(?::int4[]) AS k WHERE pg_try_advisory_lock(?, k)",
                (list(keys), LANE_NAMESPACE),
            ).fetchall()
            return [int(r[0]) for r in rows]

        taken = await self._run(run)
        if taken is None:
            self._seen = self._connections
            raise LeaseLost("the lease connection was lost: every lane lease with it")
        return [keys[k] for k in taken]

    async def check(self) -> None:
        await self._run(lambda conn: conn.execute("SELECT 1").fetchone())
        if self._connections != self._seen:
            self._seen = self._connections
            raise LeaseLost("the lease connection was lost: every lane lease with it")
