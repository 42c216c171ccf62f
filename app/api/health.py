"""/health/*: liveness (the process answers) and readiness (database and workers).

Readiness is 503 while the database refuses writes (a full disk, an I/O error): a write
that failed so marks it, and while marked each readiness check tries a write of its own,
so readiness returns as soon as the storage takes writes again, even with no traffic.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import json_response, services
from app.errors import NotReady
from app.store.health import can_write

DB_TIMEOUT_S = 1.0


async def live(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    s = services(request)
    if not s.pipeline.running:
        raise NotReady("the command workers are stopped (shutting down)")
    if not await s.db.ping(DB_TIMEOUT_S):
        raise NotReady(f"the database did not answer within {DB_TIMEOUT_S:g} s")
    if not s.db.writable and not await can_write(s.db, DB_TIMEOUT_S):
        raise NotReady("the database cannot store anything (disk full or failing)")
    return json_response({"status": "ok"})
