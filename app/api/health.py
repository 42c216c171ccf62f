"""/health/*: liveness (the process answers) and readiness (database and workers)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import json_response, services
from app.errors import NotReady

DB_TIMEOUT_S = 1.0


async def live(request: Request) -> Response:
    return json_response({"status": "ok"})


async def ready(request: Request) -> Response:
    s = services(request)
    if not s.pipeline.running:
        raise NotReady("the command workers are stopped (shutting down)")
    if not await s.db.ping(DB_TIMEOUT_S):
        raise NotReady(f"the database did not answer within {DB_TIMEOUT_S:g} s")
    return json_response({"status": "ok"})
