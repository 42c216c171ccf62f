"""A SOVD data read of a described ECU against the same read as a raw command (issue #20):
``python -m bench described_read``.

One service with the demo fleet's DoIP vehicle behind the ECU emulator
(``SOVD_DEMO_EMULATOR=1``); the demo PDX (``app.vehicles.pdx``), which the service
stores as it seeds the demo fleet (uploaded if it is not there), and the vehicle's engine
bound to its ``ENGINE``. The same clients then loop, alternately
for ``seconds`` each, over:

- ``described``: ``GET /sovd/vehicles/{vin}/v1/components/engine/data/EngineRpm`` (the
  description finds the service, odxtools encodes and decodes it, a DiagService command
  carries it);
- ``raw``: ``POST /api/v1/commands`` ReadDataByID 0x010C to the same ECU, then its response
  WebSocket read to the terminal event (the raw command's whole round trip).

The headline is described / raw in reads per second (the issue's bar: at least 0.8);
beside it the server's resident memory before the description is used (its file stored:
odxtools imported to build it) and once it is in use (its odxtools database loaded in the
service process by the first bound read).
Both go through one vehicle's lane, so the figure is the path's cost per read, not the
machine's parallelism.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import websockets

from app.vehicles.pdx import build_demo_pdx
from bench.server import BenchServer

DOIP_VIN = "WAUZZZ8V0KDP00007"  # the demo fleet's DoIP vehicle (app.services.vehicles)
READ_PATH = "/components/engine/data/EngineRpm"


@dataclass
class _Count:
    reads: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.samples) < 3:
            self.samples.append(what)


def _has_engine(server: BenchServer, admin: dict[str, str]) -> bool:
    """Whether a ready description provides the demo's ENGINE container."""
    listed = server.http.get("/api/v1/descriptions", headers=admin)
    listed.raise_for_status()
    return any(
        c["name"] == "ENGINE"
        for d in listed.json()["items"]
        if d["state"] == "ready"
        for c in d["containers"]
    )


def _wait_loaded(server: BenchServer) -> None:
    deadline = time.monotonic() + 60
    while server.http.get("/health/ready").json().get("descriptions_loading"):
        if time.monotonic() > deadline:
            raise RuntimeError("the demo PDX did not load")
        time.sleep(0.05)


def prepare(server: BenchServer) -> tuple[str, str]:
    """The demo PDX in the library (the service stores it as it seeds the demo fleet;
    uploaded if it is not there), the DoIP vehicle's engine bound to it; its id and an
    engineer token."""
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    _wait_loaded(server)  # the seeded demo.pdx may still be loading
    if not _has_engine(server, admin):
        r = server.http.post(
            "/api/v1/descriptions",
            params={"name": "bench-demo.pdx"},
            content=build_demo_pdx(),
            headers={**admin, "Content-Type": "application/zip"},
        )
        r.raise_for_status()
        _wait_loaded(server)
    fleet = server.http.get("/api/v1/vehicles", headers=admin, params={"limit": 200})
    fleet.raise_for_status()
    (vehicle_id,) = [v["vehicle_id"] for v in fleet.json()["items"] if v["vin"] == DOIP_VIN]
    bound = server.http.patch(
        f"/api/v1/vehicles/{vehicle_id}",
        headers=admin,
        json={"ecus": [{"description": "ENGINE", "address": "0x0010"}]},
    )
    bound.raise_for_status()
    return vehicle_id, server.token()


async def _described(client: httpx.AsyncClient, count: _Count) -> None:
    r = await client.get(f"/sovd/vehicles/{DOIP_VIN}/v1{READ_PATH}")
    if r.status_code == 200 and "EngineRpm" in r.json().get("data", {}):
        count.reads += 1
    else:
        count.error(f"GET {r.status_code}: {r.text[:120]}")


async def _raw(
    client: httpx.AsyncClient, ws_base: str, token: str, vid: str, count: _Count
) -> None:
    r = await client.post(
        "/api/v1/commands",
        json={
            "vehicle_id": vid,
            "command_name": "ReadDataByID",
            "command_params": {"ecuAddress": "0x0010", "dataId": "0x010C"},
        },
    )
    if r.status_code != 201:
        count.error(f"POST {r.status_code}: {r.text[:120]}")
        return
    status = None
    async with websockets.connect(
        f"{ws_base}/ws/responses/{r.json()['command_id']}?token={token}", open_timeout=30
    ) as ws:
        async for message in ws:
            event = json.loads(message)
            if event["event"] in ("status", "error") and event.get("status") != "in_progress":
                status = event.get("status")
    if status == "completed":
        count.reads += 1
    else:
        count.error(f"raw read ended {status}")


async def _loop(
    server: BenchServer, kind: str, vid: str, token: str, clients: int, seconds: float
) -> tuple[float, _Count]:
    count = _Count()
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=60) as client:

        async def one_client(until: float) -> None:
            while time.perf_counter() < until:
                if kind == "described":
                    await _described(client, count)
                else:
                    await _raw(client, server.ws_url, token, vid, count)

        warm_until = time.perf_counter() + min(1.0, seconds / 4)
        await asyncio.gather(*(one_client(warm_until) for _ in range(clients)))
        count.reads = count.errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(one_client(started + seconds) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return count.reads / elapsed, count


def measure(rounds: int, clients: int, seconds: float, cpus: set[int] | None) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"described": [], "raw": []}
    with BenchServer(cpus=cpus, env={"SOVD_DEMO_EMULATOR": "1"}) as server:
        before_kib = server.rss_kib()
        vid, token = prepare(server)
        for n in range(rounds):
            for kind in ("described", "raw") if n % 2 == 0 else ("raw", "described"):
                rate, count = asyncio.run(_loop(server, kind, vid, token, clients, seconds))
                rates[kind].append(rate)
                if count.errors:
                    raise RuntimeError(f"{count.errors} {kind} reads failed: {count.samples}")
        # The demo PDX's odxtools database is in the process since the first bound read.
        loaded_kib = server.rss_kib()
    described, raw = statistics.median(rates["described"]), statistics.median(rates["raw"])
    return {
        "ratio": round(described / raw, 3),
        "described_reads_per_s": round(described, 1),
        "raw_reads_per_s": round(raw, 1),
        "clients": clients,
        "rss_mib_before_description": round(before_kib / 1024, 1),
        "rss_mib_description_in_use": round(loaded_kib / 1024, 1),
    }
