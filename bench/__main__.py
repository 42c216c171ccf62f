"""``python -m bench``: run the benchmark scenarios and print one results table.

    python -m bench                       # every scenario at full size (make bench)
    python -m bench pipeline http         # some of them
    python -m bench --smoke               # tiny sizes: checks the harness, not the speed

Each scenario starts the real service (``python -m app``, fresh database, simulator
latency 0, no faults) and drives it over real HTTP and WebSocket connections from this
process. The server runs on one core and this process on the other. Figures also go to
a JSON file (bench/results/<time>.json unless --json says otherwise). The scenarios live
by what they drive: bench/pipeline_scenarios.py, bench/http_scenarios.py,
bench/websocket_scenario.py, and one module each for the smaller ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import described_read, descriptions, store_hops, tracing_cost
from bench import tls as tls_bench
from bench.cluster import scenario_cluster
from bench.common import Result, log_progress, pin
from bench.http_scenarios import scenario_http, scenario_overhead, scenario_scrape
from bench.pipeline_scenarios import (
    scenario_bus,
    scenario_pipeline,
    scenario_pipeline_postgres,
    scenario_soak,
)
from bench.server import SMOKE_HASHING
from bench.websocket_scenario import scenario_websockets


def scenario_descriptions(args: argparse.Namespace) -> Result:
    """Start-up with six PDX files of 200+ services against none (bench.descriptions)."""
    log_progress("descriptions: building the PDX files")
    files, dids = (1, 10) if args.smoke else (descriptions.FILES, descriptions.DIDS_PER_ECU)
    return descriptions.measure(args.rounds, files, dids, pin()[0])


def scenario_described_read(args: argparse.Namespace) -> Result:
    """A SOVD read of a described ECU against the raw ReadDataByID (bench.described_read)."""
    clients = 2 if args.smoke else 8
    return described_read.measure(args.rounds, clients, args.http_seconds, pin()[0])


def scenario_store_hops(args: argparse.Namespace) -> Result:
    """A store write in one hop against aiosqlite's public API (bench.store_hops)."""
    return store_hops.measure(args.rounds, 0.3 if args.smoke else args.seconds / 4)


def scenario_tracing(args: argparse.Namespace) -> Result:
    """Tracing's cost at each setting, against telemetry off (bench.tracing_cost)."""
    server_cpus, client_cpus = pin()
    return tracing_cost.measure(
        args.rounds,
        args.http_seconds,
        server_cpus,
        client_cpus,
        progress=log_progress,
        smoke=args.smoke,
    )


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
    "tls": lambda args: tls_bench.scenario(args, pin),  # the fleet page, HTTPS / HTTP
    "tracing": scenario_tracing,
    "bus": scenario_bus,  # the NATS bus against the in-process one (needs nats-server)
    # PostgreSQL + NATS against SQLite + in-process (needs postgresql and nats-server)
    "cluster": scenario_cluster,
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
    "cluster": "pipeline_ratio >= 0.7 (commands/s), fleet_ratio >= 0.8 (fleet page req/s):"
    " PostgreSQL + NATS against SQLite + in-process on one node (issue #23)",
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
        os.environ[SMOKE_HASHING] = "fast"  # every server this run starts (bench.server)
        args.clients, args.vehicles, args.seconds, args.http_seconds = 4, 4, 1, 1
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
        log_progress(f"== {name}")
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
