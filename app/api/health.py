"""/health/*: liveness (the process answers) and readiness (database, bus and workers).

The bus (``bus``: ``in-process``, or ``nats`` with ``SOVD_BUS_URL``) is ready when NATS
answers a round trip: a node cut off from NATS still runs its commands, but streams of
commands run elsewhere and revocations from other nodes do not reach it, so a load
balancer should send clients elsewhere.

On a cluster (PostgreSQL and NATS) it says how many vehicles' lanes this node runs
(``lanes_owned``; null on a single node, which runs them all): a node with none still
answers every call, forwarding each to the lane's owner.

Readiness also lists the ECU descriptions still loading (``descriptions_loading``): the
service answers while they load, so they never make it 503.

Readiness names the database (``database``: ``sqlite``, or ``postgresql`` with
``SOVD_DATABASE_URL``) and the bus it checked. Both are asked at once, and a 503 names
every one that is down ("the database (postgresql) did not answer ...; the bus (nats)
did not answer ..."), so an operator sees a shared outage as such.

Readiness is 503 while the database refuses writes (a full disk, an I/O error): a write
that failed so marks it, and while marked each readiness check tries a write of its own,
so readiness returns as soon as the storage takes writes again, even with no traffic.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from app.api.contract import Call, Out
from app.errors import NotReady
from app.services.registry import Services
from app.store.health import can_write
from app.vocabulary import BusKind, DatabaseKind

DB_TIMEOUT_S = 1.0
BUS_TIMEOUT_S = 1.0


class Health(Out, frozen=True, kw_only=True):
    status: Literal["ok"]


class Readiness(Out, frozen=True, kw_only=True):
    status: Literal["ok"]
    database: DatabaseKind
    bus: BusKind
    descriptions_loading: list[str]  # PDX files not parsed yet (the service answers)
    # A cluster: the vehicles' lanes this node runs now; None on a single node (all).
    lanes_owned: int | None


_OK = Health(status="ok")


async def live(call: Call[None, None]) -> Health:
    return _OK


async def ready(call: Call[None, None]) -> Readiness:
    s = call.services
    if not s.pipeline.running:
        raise NotReady("the command workers are stopped (shutting down)")
    database, bus = await asyncio.gather(_database_down(s), _bus_down(s))
    down = [why for why in (database, bus) if why is not None]
    if down:
        raise NotReady("; ".join(down))
    return Readiness(
        status="ok",
        database=s.db.dialect.name,
        bus=s.bus.name,
        descriptions_loading=s.descriptions.loading(),
        lanes_owned=None if s.lanes is None else s.lanes.owned,
    )


async def _database_down(s: Services) -> str | None:
    """Why the database is not ready, or None."""
    name = s.db.dialect.name
    if not await s.db.ping(DB_TIMEOUT_S):
        return f"the database ({name}) did not answer within {DB_TIMEOUT_S:g} s"
    if not s.db.writable and not await can_write(s.db, DB_TIMEOUT_S):
        return f"the database ({name}) cannot store anything (disk full or failing)"
    return None


async def _bus_down(s: Services) -> str | None:
    if not await s.bus.ready(BUS_TIMEOUT_S):
        return f"the bus ({s.bus.name}) did not answer within {BUS_TIMEOUT_S:g} s"
    return None
