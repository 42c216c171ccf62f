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

Readiness is 503 while the database refuses writes (a full disk, an I/O error): a write
that failed so marks it, and while marked each readiness check tries a write of its own,
so readiness returns as soon as the storage takes writes again, even with no traffic.
"""

from __future__ import annotations

from typing import Literal

from app.api.contract import Call, Out
from app.errors import NotReady
from app.store.health import can_write

DB_TIMEOUT_S = 1.0
BUS_TIMEOUT_S = 1.0


class Health(Out, frozen=True, kw_only=True):
    status: Literal["ok"]


class Readiness(Out, frozen=True, kw_only=True):
    status: Literal["ok"]
    bus: str  # "in-process", or "nats" (SOVD_BUS_URL)
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
    if not await s.db.ping(DB_TIMEOUT_S):
        raise NotReady(f"the database did not answer within {DB_TIMEOUT_S:g} s")
    if not s.db.writable and not await can_write(s.db, DB_TIMEOUT_S):
        raise NotReady("the database cannot store anything (disk full or failing)")
    if not await s.bus.ready(BUS_TIMEOUT_S):
        raise NotReady(f"the bus ({s.bus.name}) did not answer within {BUS_TIMEOUT_S:g} s")
    return Readiness(
        status="ok",
        bus=s.bus.name,
        descriptions_loading=s.descriptions.loading(),
        lanes_owned=None if s.lanes is None else s.lanes.owned,
    )
