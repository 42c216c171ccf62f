"""The command pipeline's scenarios: ours against the bare twin, on PostgreSQL against
SQLite, on the NATS bus against the in-process one, and the soak (memory over many
commands)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from functools import partial
from typing import Any

from bench.bus import nats_server
from bench.common import (
    Result,
    log_progress,
    median,
    pin,
    ratio_of,
    servers,
    start_server,
    ws_compression,
)
from bench.pipeline import create_fleet, login_all, print_progress, run_pipeline
from bench.server import BenchServer, ceiling


def scenario_pipeline(args: argparse.Namespace) -> Result:
    """Ours and the pipeline twin (bench.ceilings), alternately, with the same clients."""
    twin_start = partial(BenchServer, cpus=pin()[0], argv=ceiling("pipeline"))
    with servers(start_server, twin_start) as (ours, twin):
        fleets = {ours.name: create_fleet(ours, args.vehicles), twin.name: create_fleet(twin, 1)}
        return alternate_pipeline(args, ours, twin, fleets, "ceiling")


def scenario_pipeline_postgres(args: argparse.Namespace) -> Result:
    """Ours on PostgreSQL (``--database-url``, an empty database) against ours on SQLite,
    alternately, with the same clients (issue #23: PostgreSQL >= 0.7x SQLite)."""
    if not args.database_url:
        return {"skipped": "needs --database-url postgresql://... (an empty database)"}
    with (
        start_server(SOVD_DATABASE_URL=args.database_url) as on_postgres,
        start_server() as on_sqlite,
    ):
        on_postgres.name, on_sqlite.name = "postgresql", "sqlite"
        fleets = {
            on_postgres.name: create_fleet(on_postgres, args.vehicles),
            on_sqlite.name: create_fleet(on_sqlite, args.vehicles),
        }
        return alternate_pipeline(args, on_postgres, on_sqlite, fleets, "sqlite")


def alternate_pipeline(
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
            log_progress(f"pipeline round {n + 1}/{args.rounds}: {server.name}")
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
                    compression=ws_compression(args),
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
    mine, ceil = median(rates[ours.name]), median(rates[other.name])
    summary = last[ours.name]
    # A round with errors ends the run there: the other side may not have run at all.
    others = last.get(other.name, {"errors": 0, "error_samples": []})
    return {
        "ratio": ratio_of(mine, ceil),
        "commands_per_s": round(mine, 1),
        f"{label}_commands_per_s": round(ceil, 1),
        "cpu_ms_per_command": round(median(cpu_ms[ours.name]), 3),
        f"{label}_cpu_ms_per_command": round(median(cpu_ms[other.name]), 3),
        "rounds": args.rounds,
        "clients": args.clients,
        "ws_compression": args.ws_compression,
        "commands": summary["commands"],
        "rtt_p50_ms": summary["rtt_p50_ms"],
        "rtt_p95_ms": summary["rtt_p95_ms"],
        # The p95 comparison: each side's median over its rounds, as for the rates.
        "rtt_p95_median_ms": round(median(p95_ms[ours.name]), 2),
        f"{label}_rtt_p95_median_ms": round(median(p95_ms[other.name]), 2),
        "p95_ratio": ratio_of(median(p95_ms[ours.name]), median(p95_ms[other.name])),
        "rtt_p99_ms": summary["rtt_p99_ms"],
        "rtt_max_ms": summary["rtt_max_ms"],
        "errors": summary["errors"] + others["errors"],
        "lost_events": summary["lost_events"],
        "duplicated_events": summary["duplicated_events"],
        "error_samples": _samples(summary) + _samples(others),
    }


def _samples(summary: Result) -> list[str]:
    samples = summary["error_samples"]
    return list(samples) if isinstance(samples, list) else []


def scenario_bus(args: argparse.Namespace) -> Result:
    """The pipeline on the NATS bus against the in-process bus (bench.bus), alternately."""
    with nats_server() as url, start_server(SOVD_BUS_URL=url) as nats, start_server() as local:
        nats.name, local.name = "nats", "in-process"
        fleets = {server.name: create_fleet(server, args.vehicles) for server in (nats, local)}
        return alternate_pipeline(args, nats, local, fleets, "in_process")


def scenario_soak(args: argparse.Namespace) -> Result:
    with start_server() as server:
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
                compression=ws_compression(args),
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
