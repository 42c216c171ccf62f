"""The HTTP scenarios: the fleet page against a bare page of the same bytes, the history
page, a scrape of /metrics under load, and telemetry on against off."""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from functools import partial
from typing import Any

import httpx

from bench import http_overhead
from bench.common import Result, log_progress, median, pin, ratio_of, servers, start_server
from bench.load import http_load
from bench.pipeline import create_fleet, login_all, run_pipeline
from bench.server import BenchServer, ceiling

FLEET_PAGE = "/api/v1/vehicles?limit=50"
Target = tuple[BenchServer, dict[str, str]]  # a server, and the headers its requests carry


def alternate_pages(
    args: argparse.Namespace, targets: dict[str, Target], path: str, label: str
) -> tuple[dict[str, list[float]], dict[str, Any], int]:
    """``path`` (a full page of 50) under wrk on each target after a warm-up, in
    alternating rounds with the same settings: each target's rates, its last load, and
    the errors of every round."""
    for server, headers in targets.values():
        page = server.http.get(path, headers=headers).json()
        assert len(page["items"]) == 50, f"{server.name} {path}: {len(page['items'])} items"
        if not args.smoke:  # a smoke run's figures mean nothing: no warm-up to steady them
            warm_up = min(2.0, args.http_seconds)
            http_load(server.base_url + path, headers, seconds=warm_up, cpus=pin()[1])
    rps: dict[str, list[float]] = {name: [] for name in targets}
    last: dict[str, Any] = {}
    errors = 0
    for n in range(args.rounds):
        for name in list(targets) if n % 2 == 0 else list(reversed(targets)):
            server, headers = targets[name]
            log_progress(f"{label} round {n + 1}/{args.rounds}: {name} {path}")
            load = http_load(
                server.base_url + path, headers, seconds=args.http_seconds, cpus=pin()[1]
            )
            print(f"  {name}: {load.rps:.0f} req/s", file=sys.stderr)
            rps[name].append(load.rps)
            last[name] = load
            errors += load.errors
    return rps, last, errors


def _load_figures(load: Any) -> Result:
    return {
        "tool": load.tool,
        "requests_per_s": round(load.rps),
        "p50_ms": load.p50_ms,
        "p90_ms": load.p95_ms if load.tool == "wrk" else None,
        "p95_ms": None if load.tool == "wrk" else load.p95_ms,
        "p99_ms": load.p99_ms,
        "errors": load.errors,
    }


def scenario_http(args: argparse.Namespace) -> Result:
    """The fleet page against its ceiling (alternately, same wrk settings), and the
    command history page on its own."""
    bare_start = partial(BenchServer, cpus=pin()[0], argv=ceiling("fleet"))
    with servers(start_server, bare_start) as (ours, bare):
        create_fleet(ours, 60 - 6)  # with the six demo vehicles: a fleet of 60
        # Some history so the command list has a full page to show.
        # (A full page of 50 is all the history page needs; the smoke run stops there.)
        issued = 60 if args.smoke else 200
        asyncio.run(run_pipeline(ours, create_fleet_ids(ours), 10, commands=issued))
        headers = {"Authorization": f"Bearer {ours.token()}"}
        fleet = FLEET_PAGE
        targets = {ours.name: (ours, headers), bare.name: (bare, {})}
        rps, last, _ = alternate_pages(args, targets, fleet, "http")
        mine, ceil = median(rps[ours.name]), median(rps[bare.name])
        result: Result = {
            "vehicles_ratio": ratio_of(mine, ceil),
            "vehicles": {**_load_figures(last[ours.name]), "requests_per_s": round(mine)},
            "ceiling": {**_load_figures(last[bare.name]), "requests_per_s": round(ceil)},
        }
        history = "/api/v1/commands?limit=50"
        page = ours.http.get(history, headers=headers).json()
        assert len(page["items"]) == 50, f"{history} returned {len(page['items'])} items"
        log_progress(f"http: {history}")
        load = http_load(ours.base_url + history, headers, seconds=args.http_seconds, cpus=pin()[1])
        result["commands"] = _load_figures(load)
        return result


def create_fleet_ids(server: BenchServer) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token()}"}
    items = server.http.get(
        "/api/v1/vehicles", headers=headers, params={"status": "connected", "limit": 200}
    ).json()["items"]
    return [v["vehicle_id"] for v in items if v["simulator_profile"] == "healthy"]


def scenario_scrape(args: argparse.Namespace) -> Result:
    with start_server() as server:
        vehicles = create_fleet(server, args.vehicles)
        timings: list[float] = []  # render time, from the server's Server-Timing header
        latencies: list[float] = []  # as the scraper sees it, queueing on a busy loop included
        size = 0

        async def scrape_while_loaded() -> None:
            nonlocal size
            tokens = login_all(server, args.clients)
            load = asyncio.create_task(
                run_pipeline(server, vehicles, args.clients, seconds=args.seconds, tokens=tokens)
            )
            async with httpx.AsyncClient(base_url=server.base_url) as client:
                while not load.done():
                    began = time.perf_counter()
                    r = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
                    latencies.append(time.perf_counter() - began)
                    render = r.headers["server-timing"].partition("dur=")[2]
                    timings.append(float(render) / 1000)
                    size = len(r.content)
                    await asyncio.sleep(0.1)
            stats = await load
            assert stats.errors == 0, stats.error_samples

        asyncio.run(scrape_while_loaded())
        q = statistics.quantiles(timings, n=100) if len(timings) > 1 else timings * 99
        lat = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        return {
            "scrapes": len(timings),
            "render_p50_ms": round(q[49] * 1000, 2),
            "render_p95_ms": round(q[94] * 1000, 2),
            "response_p50_ms": round(lat[49] * 1000, 2),
            "response_p95_ms": round(lat[94] * 1000, 2),
            "exposition_bytes": size,
        }


def scenario_overhead(args: argparse.Namespace) -> Result:
    """Telemetry on against off (bench.http_overhead), alternately, medians."""
    rps: dict[bool, list[float]] = {True: [], False: []}
    for n in range(args.rounds):
        for enabled in (True, False) if n % 2 == 0 else (False, True):
            log_progress(
                f"overhead round {n + 1}/{args.rounds}: telemetry {'on' if enabled else 'off'}"
            )
            result, _ = http_overhead.measure(enabled, args.http_seconds, 32)
            assert result.errors == 0, f"{result.errors} errors"
            rps[enabled].append(result.rps)
    on, off = median(rps[True]), median(rps[False])
    return {
        "ratio": ratio_of(on, off),
        "on_requests_per_s": round(on),
        "off_requests_per_s": round(off),
    }
