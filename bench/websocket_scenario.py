"""The WebSocket scenario: the memory of many idle streams and the bytes of a typical one,
with and without permessage-deflate."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import websockets

from bench.common import Result, log_progress, start_server
from bench.pipeline import create_fleet, stream_bytes


def scenario_websockets(args: argparse.Namespace) -> Result:
    # Browsers and most clients offer permessage-deflate (the service accepts it without
    # context takeover, SOVD_WS_COMPRESSION=deflate): measured both ways, the memory of
    # idle sockets and the bytes of a typical stream.
    return {
        "deflate": _websockets(args, compression="deflate"),
        "no_compression": _websockets(args, compression=None),
    }


def _websockets(args: argparse.Namespace, compression: str | None) -> Result:
    # Commands to `timeout` vehicles run until their (long) deadline: sockets stay open.
    # No grace at the end: those commands hang by design, nothing is worth waiting for.
    with start_server(SOVD_COMMAND_TIMEOUT_S="600", SOVD_SHUTDOWN_GRACE_S="0") as server:
        token = server.token()
        headers = {"Authorization": f"Bearer {token}"}
        admin = {"Authorization": f"Bearer {server.token('admin')}"}
        running = []
        *hanging, healthy = create_fleet(server, 11)
        for vehicle_id in hanging:
            server.http.patch(
                f"/api/v1/vehicles/{vehicle_id}",
                headers=admin,
                json={"simulator_profile": "timeout"},
            ).raise_for_status()
            r = server.http.post(
                "/api/v1/commands",
                headers=headers,
                json={
                    "vehicle_id": vehicle_id,
                    "command_name": "ReadDTC",
                    "command_params": {"ecuAddress": "0x10"},
                },
            )
            running.append(r.json()["command_id"])
        # Settle times for the memory figures; a smoke run only checks they come out (each
        # socket's first frame already shows its command running).
        settle_before_s, settle_after_s = (0.0, 0.0) if args.smoke else (0.5, 1.0)
        time.sleep(settle_before_s)
        rss_before = server.rss_kib()

        async def hold() -> tuple[float, int]:
            sockets = []
            began = time.perf_counter()
            for n in range(args.sockets):
                url = f"{server.ws_url}/ws/responses/{running[n % len(running)]}?token={token}"
                ws = await websockets.connect(url, open_timeout=30, compression=compression)
                # The replayed in_progress event proves the stream is live.
                assert json.loads(await ws.recv())["status"] == "in_progress"
                sockets.append(ws)
                if (n + 1) % 100 == 0:
                    print(f"\r  websockets: {n + 1} open", end="", file=sys.stderr, flush=True)
            connect_s = time.perf_counter() - began
            await asyncio.sleep(settle_after_s)
            rss = server.rss_kib()
            await asyncio.gather(*(ws.close() for ws in sockets))
            print(file=sys.stderr)
            return connect_s, rss

        connect_s, rss_after = asyncio.run(hold())
        per_socket = (rss_after - rss_before) / args.sockets
        log_progress(f"websockets: bytes on the wire of a ReadDTC stream ({compression})")
        streams = 4 if args.smoke else 20
        wire = asyncio.run(stream_bytes(server, healthy, token, compression, streams))
        return {
            "sockets": args.sockets,
            "connects_per_s": round(args.sockets / connect_s, 1),
            "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "rss_per_socket_kib": round(per_socket, 2),
            **wire,
        }
