"""The command pipeline under load: simulated engineers submitting and streaming.

Each engineer loops: POST a ReadDTC to its own healthy vehicle, open the response
WebSocket, read until the server closes it after the terminal event. Round trip is POST
sent to terminal event received. Every stream is checked: sequence numbers 1..3 exactly
once, then ``completed``.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import websockets
from websockets.asyncio.client import ClientConnection

from bench.server import BenchServer

CHUNKS_PER_COMMAND = 3  # two stored DTCs and the summary
VIN_CHARS = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"


@dataclass
class PipelineStats:
    completed: int = 0
    errors: int = 0
    lost: int = 0
    duplicated: int = 0
    round_trips: list[float] = field(default_factory=list)
    started: float = 0.0
    finished: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def error(self, what: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(what)

    @property
    def seconds(self) -> float:
        return self.finished - self.started

    def percentile_ms(self, p: int) -> float:
        """The round trips' ``p``th percentile (1-99), in milliseconds."""
        rt = sorted(self.round_trips) or [0.0]
        # Inclusive: never above the largest round trip (the default, exclusive, method
        # goes past it for high percentiles of a few dozen samples, as in a smoke run).
        q = statistics.quantiles(rt, n=100, method="inclusive") if len(rt) > 1 else [rt[0]] * 99
        return round(q[p - 1] * 1000, 2)

    def summary(self) -> dict[str, float | int | list[str]]:
        rt = sorted(self.round_trips) or [0.0]
        return {
            "commands": self.completed,
            "seconds": round(self.seconds, 2),
            "commands_per_s": round(self.completed / self.seconds, 1) if self.seconds else 0,
            "rtt_p50_ms": self.percentile_ms(50),
            "rtt_p95_ms": self.percentile_ms(95),
            "rtt_p99_ms": self.percentile_ms(99),
            "rtt_max_ms": round(rt[-1] * 1000, 2),
            "errors": self.errors,
            "lost_events": self.lost,
            "duplicated_events": self.duplicated,
            "error_samples": self.error_samples,
        }


def make_vins(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(VIN_CHARS) for _ in range(17)) for _ in range(count)]


def create_fleet(server: BenchServer, count: int) -> list[str]:
    """Register ``count`` healthy vehicles; return their ids."""
    admin = {"Authorization": f"Bearer {server.token('admin')}"}
    ids = []
    for vin in make_vins(count):
        r = server.http.post(
            "/api/v1/vehicles",
            headers=admin,
            json={"vin": vin, "make": "Bench", "model": "Load", "year": 2024},
        )
        r.raise_for_status()
        ids.append(r.json()["vehicle_id"])
    return ids


async def _one_command(
    client: httpx.AsyncClient,
    ws_base: str,
    token: str,
    vehicle_id: str,
    stats: PipelineStats,
    compression: str | None,
) -> None:
    began = time.perf_counter()
    r = await client.post(
        "/api/v1/commands",
        json={
            "vehicle_id": vehicle_id,
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    if r.status_code != 201:
        stats.error(f"POST {r.status_code}: {r.text[:120]}")
        return
    command_id = r.json()["command_id"]
    sequences: list[int] = []
    terminal = None
    async with websockets.connect(
        f"{ws_base}/ws/responses/{command_id}?token={token}",
        open_timeout=30,
        max_queue=64,
        compression=compression,
    ) as ws:
        async for message in ws:
            event = json.loads(message)
            if event["event"] == "response":
                sequences.append(event["sequence_number"])
            elif event["event"] == "error" or event.get("status") == "completed":
                terminal = event
        code = ws.close_code
    elapsed = time.perf_counter() - began
    if terminal is None or terminal.get("status") != "completed" or code != 1000:
        stats.error(f"stream of {command_id} ended with {terminal} / close {code}")
        return
    unique = set(sequences)
    stats.duplicated += len(sequences) - len(unique)
    stats.lost += len(set(range(1, CHUNKS_PER_COMMAND + 1)) - unique)
    stats.completed += 1
    stats.round_trips.append(elapsed)


async def run_pipeline(
    server: BenchServer,
    vehicles: list[str],
    clients: int,
    *,
    seconds: float | None = None,
    commands: int | None = None,
    tokens: list[str] | None = None,
    on_progress: Callable[[PipelineStats], None] | None = None,
    compression: str | None = "deflate",
) -> PipelineStats:
    """Drive the pipeline with ``clients`` engineers, for ``seconds`` or ``commands``."""
    assert seconds or commands
    stats = PipelineStats()
    tokens = tokens or login_all(server, clients)
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    stats.started = time.perf_counter()
    deadline = stats.started + seconds if seconds else float("inf")

    def more() -> bool:
        nonlocal issued
        if time.perf_counter() >= deadline or (commands is not None and issued >= commands):
            return False
        issued += 1
        return True

    async def engineer(n: int) -> None:
        headers = {"Authorization": f"Bearer {tokens[n]}"}
        async with httpx.AsyncClient(
            base_url=server.base_url, headers=headers, timeout=60, limits=limits
        ) as client:
            vehicle_id = vehicles[n % len(vehicles)]
            while more():
                try:
                    await _one_command(
                        client, server.ws_url, tokens[n], vehicle_id, stats, compression
                    )
                except Exception as exc:  # counted and shown, never hidden
                    stats.error(f"{type(exc).__name__}: {exc}")

    async def progress() -> None:
        while True:
            await asyncio.sleep(1)
            if on_progress:
                on_progress(stats)

    reporter = asyncio.create_task(progress())
    try:
        await asyncio.gather(*(engineer(n) for n in range(clients)))
    finally:
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
    stats.finished = time.perf_counter()
    return stats


def login_all(server: BenchServer, clients: int) -> list[str]:
    """One session per engineer (logins hash passwords: keep them out of timed parts)."""
    return [server.token() for _ in range(clients)]


def print_progress(label: str) -> Callable[[PipelineStats], None]:
    def show(stats: PipelineStats) -> None:
        elapsed = time.perf_counter() - stats.started
        rate = stats.completed / elapsed if elapsed else 0
        print(
            f"\r  {label}: {stats.completed} commands, {rate:.0f}/s, errors {stats.errors}",
            end="",
            file=sys.stderr,
            flush=True,
        )

    return show


class _CountingConnection(ClientConnection):
    """A client connection that counts the bytes arriving on its socket."""

    received = 0

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        super().data_received(data)


async def stream_bytes(
    server: BenchServer, vehicle_id: str, token: str, compression: str | None, streams: int = 20
) -> dict[str, float]:
    """Bytes on the wire of a typical stream (a ReadDTC: in_progress, three responses,
    completed, close), received by the client, averaged over ``streams`` commands: the
    whole socket (the 101 answer included), the WebSocket frames alone, and the JSON text
    they carry."""
    wire, frames, text = [], [], []
    async with httpx.AsyncClient(
        base_url=server.base_url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for _ in range(streams):
            r = await client.post(
                "/api/v1/commands",
                json={
                    "vehicle_id": vehicle_id,
                    "command_name": "ReadDTC",
                    "command_params": {"ecuAddress": "0x10"},
                },
            )
            r.raise_for_status()
            carried = 0
            async with websockets.connect(
                f"{server.ws_url}/ws/responses/{r.json()['command_id']}?token={token}",
                compression=compression,
                create_connection=_CountingConnection,
            ) as ws:
                assert isinstance(ws, _CountingConnection)
                async for message in ws:
                    carried += len(message.encode() if isinstance(message, str) else message)
                assert ws.close_code == 1000, ws.close_code
                assert ws.response is not None
                head = len(
                    b"HTTP/1.1 101 Switching Protocols\r\n" + ws.response.headers.serialize()
                )
            wire.append(ws.received)
            frames.append(ws.received - head)
            text.append(carried)
    return {
        "bytes_per_stream": round(statistics.mean(wire), 1),
        "frame_bytes_per_stream": round(statistics.mean(frames), 1),
        "json_bytes_per_stream": round(statistics.mean(text), 1),
    }
