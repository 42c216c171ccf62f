"""``python -m bench``: run the benchmark scenarios and print one results table.

    python -m bench                       # every scenario at full size (make bench)
    python -m bench pipeline http         # some of them
    python -m bench --smoke               # tiny sizes: checks the harness, not the speed

Each scenario starts the real service (``python -m app``, fresh database, simulator
latency 0, no faults) and drives it over real HTTP and WebSocket connections from this
process. The server runs on one core and this process on the other. Figures also go to
a JSON file (bench/results/<time>.json unless --json says otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import websockets

from bench import described_read, descriptions, http_overhead, store_hops, tracing_cost
from bench import tls as tls_bench
from bench.bus import nats_server
from bench.load import http_load
from bench.pipeline import create_fleet, login_all, print_progress, run_pipeline, stream_bytes
from bench.server import BenchServer, ceiling

SERVER_CPUS, CLIENT_CPUS = {0}, {1}
Result = dict[str, Any]
_STARTED = time.perf_counter()


def _progress(what: str) -> None:
    """What is running and for how long, so a person knows the run is alive."""
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {what}", file=sys.stderr, flush=True)


def _pin() -> tuple[set[int] | None, set[int] | None]:
    if len(os.sched_getaffinity(0)) < 2:
        return None, None
    os.sched_setaffinity(0, CLIENT_CPUS)
    return SERVER_CPUS, CLIENT_CPUS


def _server(**env: str) -> BenchServer:
    return BenchServer(cpus=_pin()[0], env=env)


def _compression(args: argparse.Namespace) -> str | None:
    return None if args.ws_compression == "none" else "deflate"


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def _ratio(ours: float, ceiling: float) -> float:
    return round(ours / ceiling, 3) if ceiling else 0.0


def scenario_pipeline(args: argparse.Namespace) -> Result:
    """Ours and the pipeline twin (bench.ceilings), alternately, with the same clients."""
    with _server() as ours, BenchServer(cpus=_pin()[0], argv=ceiling("pipeline")) as twin:
        fleets = {ours.name: create_fleet(ours, args.vehicles), twin.name: create_fleet(twin, 1)}
        return _alternate(args, ours, twin, fleets, "ceiling")


def scenario_pipeline_postgres(args: argparse.Namespace) -> Result:
    """Ours on PostgreSQL (``--database-url``, an empty database) against ours on SQLite,
    alternately, with the same clients (issue #23: PostgreSQL >= 0.7x SQLite)."""
    if not args.database_url:
        return {"skipped": "needs --database-url postgresql://... (an empty database)"}
    with (
        _server(SOVD_DATABASE_URL=args.database_url) as on_postgres,
        _server() as on_sqlite,
    ):
        on_postgres.name, on_sqlite.name = "postgresql", "sqlite"
        fleets = {
            on_postgres.name: create_fleet(on_postgres, args.vehicles),
            on_sqlite.name: create_fleet(on_sqlite, args.vehicles),
        }
        return _alternate(args, on_postgres, on_sqlite, fleets, "sqlite")


def _alternate(
    args: argparse.Namespace,
    ours: BenchServer,
    other: BenchServer,
    fleets: dict[str, list[str]],
    label: str,
) -> Result:
    """The pipeline on ``ours`` and on ``other`` (figures prefixed ``label``), in
    alternating rounds with the same clients; ratios of the medians."""
    rates: dict[str, list[float]] = {ours.name: [], other.name: []}
    cpu_ms: dict[str, list[float]] = {ours.name: [], other.name: []}
    p95_ms: dict[str, list[float]] = {ours.name: [], other.name: []}
    last: dict[str, Result] = {}
    for n in range(args.rounds):
        for server in (ours, other) if n % 2 == 0 else (other, ours):
            _progress(f"pipeline round {n + 1}/{args.rounds}: {server.name}")
            # Logins hash passwords: done before the CPU count starts.
            tokens = login_all(server, args.clients)
            cpu_before = server.cpu_seconds()
            stats = asyncio.run(
                run_pipeline(
                    server,
                    fleets[server.name],
                    args.clients,
                    seconds=args.seconds,
                    tokens=tokens,
                    on_progress=print_progress(f"pipeline {server.name}"),
                    compression=_compression(args),
                )
            )
            print(file=sys.stderr)
            used = server.cpu_seconds() - cpu_before
            summary = stats.summary()
            if stats.errors or stats.lost or stats.duplicated:
                last[server.name] = summary
                break
            rates[server.name].append(stats.completed / stats.seconds)
            cpu_ms[server.name].append(used / max(stats.completed, 1) * 1000)
            p95_ms[server.name].append(stats.percentile_ms(95))
            last[server.name] = summary
    mine, ceil = _median(rates[ours.name]), _median(rates[other.name])
    summary = last[ours.name]
    return {
        "ratio": _ratio(mine, ceil),
        "commands_per_s": round(mine, 1),
        f"{label}_commands_per_s": round(ceil, 1),
        "cpu_ms_per_command": round(_median(cpu_ms[ours.name]), 3),
        f"{label}_cpu_ms_per_command": round(_median(cpu_ms[other.name]), 3),
        "rounds": args.rounds,
        "clients": args.clients,
        "ws_compression": args.ws_compression,
        "commands": summary["commands"],
        "rtt_p50_ms": summary["rtt_p50_ms"],
        "rtt_p95_ms": summary["rtt_p95_ms"],
        # The p95 comparison: each side's median over its rounds, as for the rates.
        "rtt_p95_median_ms": round(_median(p95_ms[ours.name]), 2),
        f"{label}_rtt_p95_median_ms": round(_median(p95_ms[other.name]), 2),
        "p95_ratio": _ratio(_median(p95_ms[ours.name]), _median(p95_ms[other.name])),
        "rtt_p99_ms": summary["rtt_p99_ms"],
        "rtt_max_ms": summary["rtt_max_ms"],
        "errors": summary["errors"] + last[other.name]["errors"],
        "lost_events": summary["lost_events"],
        "duplicated_events": summary["duplicated_events"],
        "error_samples": _samples(summary) + _samples(last[other.name]),
    }


def _samples(summary: Result) -> list[str]:
    samples = summary["error_samples"]
    return list(samples) if isinstance(samples, list) else []


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
    with _server() as ours, BenchServer(cpus=_pin()[0], argv=ceiling("fleet")) as bare:
        create_fleet(ours, 60 - 6)  # with the six demo vehicles: a fleet of 60
        # Some history so the command list has a full page to show.
        # (A full page of 50 is all the history page needs; the smoke run stops there.)
        issued = 60 if args.smoke else 200
        asyncio.run(run_pipeline(ours, create_fleet_ids(ours), 10, commands=issued))
        headers = {"Authorization": f"Bearer {ours.token()}"}
        fleet = "/api/v1/vehicles?limit=50"
        targets = {ours.name: (ours, headers), bare.name: (bare, {})}
        for server, hdrs in targets.values():
            page = server.http.get(fleet, headers=hdrs).json()
            assert len(page["items"]) == 50, f"{server.name} {fleet}: {len(page['items'])} items"
            warm_up = min(2.0, args.http_seconds)
            http_load(server.base_url + fleet, hdrs, seconds=warm_up, cpus=_pin()[1])
        rps: dict[str, list[float]] = {ours.name: [], bare.name: []}
        last: dict[str, Any] = {}
        for n in range(args.rounds):
            order = list(targets) if n % 2 == 0 else list(reversed(targets))
            for name in order:
                server, hdrs = targets[name]
                _progress(f"http round {n + 1}/{args.rounds}: {name} {fleet}")
                load = http_load(
                    server.base_url + fleet, hdrs, seconds=args.http_seconds, cpus=_pin()[1]
                )
                print(f"  {name}: {load.rps:.0f} req/s", file=sys.stderr)
                rps[name].append(load.rps)
                last[name] = load
        mine, ceil = _median(rps[ours.name]), _median(rps[bare.name])
        result: Result = {
            "vehicles_ratio": _ratio(mine, ceil),
            "vehicles": {**_load_figures(last[ours.name]), "requests_per_s": round(mine)},
            "ceiling": {**_load_figures(last[bare.name]), "requests_per_s": round(ceil)},
        }
        history = "/api/v1/commands?limit=50"
        page = ours.http.get(history, headers=headers).json()
        assert len(page["items"]) == 50, f"{history} returned {len(page['items'])} items"
        _progress(f"http: {history}")
        load = http_load(
            ours.base_url + history, headers, seconds=args.http_seconds, cpus=_pin()[1]
        )
        result["commands"] = _load_figures(load)
        return result


def create_fleet_ids(server: BenchServer) -> list[str]:
    headers = {"Authorization": f"Bearer {server.token()}"}
    items = server.http.get(
        "/api/v1/vehicles", headers=headers, params={"status": "connected", "limit": 200}
    ).json()["items"]
    return [v["vehicle_id"] for v in items if v["simulator_profile"] == "healthy"]


def scenario_scrape(args: argparse.Namespace) -> Result:
    with _server() as server:
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
    with _server(SOVD_COMMAND_TIMEOUT_S="600", SOVD_SHUTDOWN_GRACE_S="0") as server:
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
        time.sleep(0.5)
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
            await asyncio.sleep(1)
            rss = server.rss_kib()
            await asyncio.gather(*(ws.close() for ws in sockets))
            print(file=sys.stderr)
            return connect_s, rss

        connect_s, rss_after = asyncio.run(hold())
        per_socket = (rss_after - rss_before) / args.sockets
        _progress(f"websockets: bytes on the wire of a ReadDTC stream ({compression})")
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


def scenario_soak(args: argparse.Namespace) -> Result:
    with _server() as server:
        vehicles = create_fleet(server, args.vehicles)
        checkpoints = [args.soak_commands * q // 4 for q in (1, 2, 3, 4)]
        samples: dict[int, int] = {}
        show = print_progress("soak")

        def progress(stats: Any) -> None:
            show(stats)
            for mark in checkpoints:
                if mark not in samples and stats.completed >= mark:
                    samples[mark] = server.rss_kib()

        stats = asyncio.run(
            run_pipeline(
                server,
                vehicles,
                args.clients,
                commands=args.soak_commands,
                on_progress=progress,
                compression=_compression(args),
            )
        )
        print(file=sys.stderr)
        samples.setdefault(checkpoints[-1], server.rss_kib())
        for mark in checkpoints:  # a checkpoint passed between progress ticks
            samples.setdefault(mark, samples[checkpoints[-1]])
        rss = [samples[mark] for mark in checkpoints]
        growth = (rss[3] - rss[1]) / rss[1] * 100
        return {
            "commands": stats.completed,
            "errors": stats.errors,
            "lost_events": stats.lost,
            "duplicated_events": stats.duplicated,
            "rss_kib_25_50_75_100": rss,
            "growth_50_to_100_pct": round(growth, 2),
        }


def scenario_overhead(args: argparse.Namespace) -> Result:
    """Telemetry on against off (bench.http_overhead), alternately, medians."""
    rps: dict[bool, list[float]] = {True: [], False: []}
    for n in range(args.rounds):
        for enabled in (True, False) if n % 2 == 0 else (False, True):
            _progress(
                f"overhead round {n + 1}/{args.rounds}: telemetry {'on' if enabled else 'off'}"
            )
            result, _ = http_overhead.measure(enabled, args.http_seconds, 32)
            assert result.errors == 0, f"{result.errors} errors"
            rps[enabled].append(result.rps)
    on, off = _median(rps[True]), _median(rps[False])
    return {
        "ratio": _ratio(on, off),
        "on_requests_per_s": round(on),
        "off_requests_per_s": round(off),
    }


def scenario_descriptions(args: argparse.Namespace) -> Result:
    """Start-up with six PDX files of 200+ services against none (bench.descriptions)."""
    _progress("descriptions: building the PDX files")
    files, dids = (1, 10) if args.smoke else (descriptions.FILES, descriptions.DIDS_PER_ECU)
    return descriptions.measure(args.rounds, files, dids, _pin()[0])


def scenario_described_read(args: argparse.Namespace) -> Result:
    """A SOVD read of a described ECU against the raw ReadDataByID (bench.described_read)."""
    clients = 2 if args.smoke else 8
    return described_read.measure(args.rounds, clients, args.http_seconds, _pin()[0])


def scenario_store_hops(args: argparse.Namespace) -> Result:
    """A store write in one hop against aiosqlite's public API (bench.store_hops)."""
    return store_hops.measure(args.rounds, 0.3 if args.smoke else args.seconds / 4)


def scenario_tracing(args: argparse.Namespace) -> Result:
    """Tracing's cost at each setting, against telemetry off (bench.tracing_cost)."""
    server_cpus, client_cpus = _pin()
    return tracing_cost.measure(
        args.rounds,
        args.http_seconds,
        server_cpus,
        client_cpus,
        progress=_progress,
        smoke=args.smoke,
    )


def scenario_bus(args: argparse.Namespace) -> Result:
    """The pipeline on the NATS bus against the in-process bus (bench.bus), alternately."""
    with nats_server() as url, _server(SOVD_BUS_URL=url) as nats, _server() as local:
        sides = {"nats": nats, "in-process": local}
        fleets = {name: create_fleet(server, args.vehicles) for name, server in sides.items()}
        rates: dict[str, list[float]] = {name: [] for name in sides}
        cpu_ms: dict[str, list[float]] = {name: [] for name in sides}
        faults = {"errors": 0, "lost_events": 0, "duplicated_events": 0}
        for n in range(args.rounds):
            for name in list(sides) if n % 2 == 0 else list(reversed(sides)):
                server = sides[name]
                _progress(f"bus round {n + 1}/{args.rounds}: {name}")
                tokens = login_all(server, args.clients)
                cpu_before = server.cpu_seconds()
                stats = asyncio.run(
                    run_pipeline(
                        server,
                        fleets[name],
                        args.clients,
                        seconds=args.seconds,
                        tokens=tokens,
                        on_progress=print_progress(f"bus {name}"),
                        compression=_compression(args),
                    )
                )
                print(file=sys.stderr)
                used = server.cpu_seconds() - cpu_before
                faults["errors"] += stats.errors
                faults["lost_events"] += stats.lost
                faults["duplicated_events"] += stats.duplicated
                rates[name].append(stats.completed / stats.seconds)
                cpu_ms[name].append(used / max(stats.completed, 1) * 1000)
        mine, ceil = _median(rates["nats"]), _median(rates["in-process"])
        return {
            "ratio": _ratio(mine, ceil),
            "commands_per_s": round(mine, 1),
            "in_process_commands_per_s": round(ceil, 1),
            "cpu_ms_per_command": round(_median(cpu_ms["nats"]), 3),
            "in_process_cpu_ms_per_command": round(_median(cpu_ms["in-process"]), 3),
            "rounds": args.rounds,
            "clients": args.clients,
            **faults,
        }


SCENARIOS: dict[str, Callable[[argparse.Namespace], Result]] = {
    "pipeline": scenario_pipeline,
    "pipeline_postgres": scenario_pipeline_postgres,
    "http": scenario_http,
    "overhead": scenario_overhead,
    "scrape": scenario_scrape,
    "websockets": scenario_websockets,
    "soak": scenario_soak,
    "descriptions": scenario_descriptions,
    "described_read": scenario_described_read,
    "store_hops": scenario_store_hops,
    "tls": lambda args: tls_bench.scenario(args, _pin),  # the fleet page, HTTPS / HTTP
    "tracing": scenario_tracing,
    "bus": scenario_bus,  # the NATS bus against the in-process one (needs nats-server)
}

BARS = {
    "pipeline": "ratio >= 0.9 (commands/s against the bare twin), p95_ratio <= 1.2,"
    " 0 errors, 0 lost or duplicated",
    "pipeline_postgres": "ratio >= 0.7 (commands/s on PostgreSQL against SQLite; issue #23)",
    "http": "vehicles_ratio >= 0.95 (fleet page against a bare page of the same bytes)",
    "overhead": "ratio >= 0.95 (telemetry on against off)",
    "scrape": "render_p95_ms <= 10",
    "websockets": "rss_per_socket_kib <= 50 (per client kind)",
    "soak": "growth_50_to_100_pct < 5",
    "tracing": "ratio_10.ratio_to_off >= 0.90, every.ratio_to_off >= 0.62, every_to_plain >= 1",
}


def table(results: dict[str, Result]) -> str:
    lines = [f"{'scenario':<12} {'figure':<38} {'value':>14}", "-" * 66]
    for name, result in results.items():
        for key, value in _flatten(result):
            if key == "error_samples":
                continue
            lines.append(f"{name:<12} {key:<38} {value!s:>14}")
            name = ""
    lines.append("")
    lines += [f"bar {name}: {bar}" for name, bar in BARS.items() if name in results]
    return "\n".join(lines)


def _flatten(result: Result, prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in result.items():
        if isinstance(value, dict):
            rows += _flatten(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("scenarios", nargs="*", metavar="scenario", help=", ".join(SCENARIOS))
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--vehicles", type=int, default=60)
    parser.add_argument("--seconds", type=float, default=20, help="pipeline and scrape")
    parser.add_argument("--http-seconds", type=float, default=10)
    parser.add_argument("--sockets", type=int, default=1000)
    parser.add_argument("--soak-commands", type=int, default=20000)
    parser.add_argument(
        "--ws-compression",
        choices=["deflate", "none"],
        default="deflate",
        help="what the pipeline's WebSocket clients offer (browsers offer deflate)",
    )
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds of ours and the ceiling"
    )
    parser.add_argument("--quick", action="store_true", help="every ratio in about two minutes")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes for a harness check")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--database-url",
        help="pipeline_postgres: an empty PostgreSQL database (postgresql://...)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.clients, args.vehicles, args.seconds, args.http_seconds = 4, 4, 2, 1
        args.sockets, args.soak_commands, args.rounds = 20, 80, 1
    elif args.quick:
        args.seconds, args.http_seconds, args.rounds = 6, 4, 2
        args.sockets, args.soak_commands = 200, 2000
    names = args.scenarios or (["pipeline", "http", "overhead"] if args.quick else list(SCENARIOS))
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    results: dict[str, Result] = {}
    for name in names:
        _progress(f"== {name}")
        results[name] = SCENARIOS[name](args)
    machine = {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "smoke": args.smoke,
    }
    print(table(results))
    print(f"\nmachine: {machine['cores']} cores, Python {machine['python']}")
    path = args.json or Path(__file__).parent / "results" / f"{machine['when']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"machine": machine, "results": results}, indent=2) + "\n")
    print(f"figures written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
