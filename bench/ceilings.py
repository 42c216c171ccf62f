"""Ceilings: bare Starlette + Hypercorn apps doing the same protocol work as the service,
with nothing of ours in them (no auth, no database, no vehicle, no telemetry).

    python -m bench.ceilings fleet      # GET /api/v1/vehicles: a constant 50-vehicle page
    python -m bench.ceilings pipeline   # login, POST a command -> 201, its WebSocket stream

A benchmark drives the service and its ceiling alternately with the same client and the
same settings, and reports the ratio: absolute figures move 3x between machines of the
same kind, the ratio to a ceiling measured in the same run does not. The port comes from
SOVD_PORT, like the service's, so ``bench.server.BenchServer`` starts either.

The pipeline twin answers exactly what a client of the service sees for a healthy
ReadDTC: 201 with the command, then on the WebSocket ``in_progress``, three ``response``
events (two DTCs and a summary) and ``completed``, then close 1000.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import secrets
import signal
import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

FLEET_SIZE = 50
_counter = itertools.count(1)
# The ECUs a vehicle created without a list gets (the demo description's four), so the
# page carries as many bytes as the service's (written here: nothing of ours is imported).
_ECUS = [
    {"name": "engine", "address": "0x0010"},
    {"name": "transmission", "address": "0x0018"},
    {"name": "abs", "address": "0x0028"},
    {"name": "body", "address": "0x0040"},
]
# The service's constant response headers (its security headers): the same bytes on the
# wire, none of the work that decides them.
_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cache-control": "no-store",
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _vehicle(n: int) -> dict[str, Any]:
    return {
        "vehicle_id": str(uuid.UUID(int=n)),
        "vin": f"WVWZZZ1KZAW{n:06d}",
        "make": "Bench",
        "model": "Load",
        "year": 2024,
        "connection_status": "connected",
        "simulator_profile": "healthy",
        "last_seen_at": None,
        "transport": "simulator",
        "doip": None,
        "ecus": _ECUS,
    }


FLEET_PAGE: dict[str, Any] = {
    "items": [_vehicle(n) for n in range(1, FLEET_SIZE + 1)],
    "total": 60,
    "limit": FLEET_SIZE,
    "offset": 0,
}


async def health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def vehicles(request: Request) -> Response:
    # Serialised on every request, as the service serialises its page.
    return JSONResponse(FLEET_PAGE, headers=_HEADERS)


async def login(request: Request) -> Response:
    await request.json()
    return JSONResponse(
        {
            "access_token": secrets.token_urlsafe(32),
            "refresh_token": secrets.token_urlsafe(32),
            "token_type": "bearer",
            "expires_in": 900,
        }
    )


async def create_vehicle(request: Request) -> Response:
    body = await request.json()
    return JSONResponse({**_vehicle(next(_counter)), "vin": body.get("vin")}, status_code=201)


async def submit(request: Request) -> Response:
    body = await request.json()
    command_id = str(uuid.uuid4())
    command = {
        "command_id": command_id,
        "vehicle_id": body["vehicle_id"],
        "user_id": str(uuid.UUID(int=1)),
        "command_name": body["command_name"],
        "command_params": body["command_params"],
        "status": "pending",
        "error_code": None,
        "error_message": None,
        "submitted_at": _now(),
        "completed_at": None,
    }
    return JSONResponse(
        command, status_code=201, headers={"Location": f"/api/v1/commands/{command_id}"}
    )


def _stream(command_id: str) -> list[dict[str, Any]]:
    dtcs = (("P0171", "System Too Lean (Bank 1)"), ("P0420", "Catalyst Efficiency Low"))
    events: list[dict[str, Any]] = [
        {"event": "status", "command_id": command_id, "status": "in_progress", "at": _now()}
    ]
    payloads: list[dict[str, Any]] = [
        {"ecuAddress": "0x10", "dtcCode": code, "status": "confirmed", "description": text}
        for code, text in dtcs
    ]
    payloads.append({"status": "complete", "totalDtcs": len(dtcs)})
    for sequence, payload in enumerate(payloads, start=1):
        events.append(
            {
                "event": "response",
                "command_id": command_id,
                "sequence_number": sequence,
                "is_final": sequence == len(payloads),
                "response_payload": payload,
                "received_at": _now(),
            }
        )
    events.append(
        {"event": "status", "command_id": command_id, "status": "completed", "at": _now()}
    )
    return events


async def stream(websocket: WebSocket) -> None:
    await websocket.accept()
    for event in _stream(websocket.path_params["command_id"]):
        await websocket.send_text(json.dumps(event, separators=(",", ":")))
    await websocket.close(1000)


HEALTH = [Route("/health/ready", health, methods=["GET"])]
APPS: dict[str, list[Route | WebSocketRoute]] = {
    "fleet": [*HEALTH, Route("/api/v1/vehicles", vehicles, methods=["GET"])],
    "pipeline": [
        *HEALTH,
        Route("/api/v1/auth/login", login, methods=["POST"]),
        Route("/api/v1/vehicles", create_vehicle, methods=["POST"]),
        Route("/api/v1/commands", submit, methods=["POST"]),
        WebSocketRoute("/ws/responses/{command_id}", stream),
    ],
}


async def _serve(app: Starlette, port: int) -> None:
    config = HypercornConfig()
    config.bind = [f"127.0.0.1:{port}"]
    config.accesslog = None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in APPS:
        print(f"usage: python -m bench.ceilings {{{'|'.join(APPS)}}}", file=sys.stderr)
        return 2
    port = int(os.environ.get("SOVD_PORT", "8000"))
    asyncio.run(_serve(Starlette(routes=APPS[argv[0]]), port))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
