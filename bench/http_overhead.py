"""Telemetry overhead: authenticated GET /api/v1/vehicles with metrics on, then off.

    python -m bench.http_overhead [--seconds 10] [--rounds 5]

Starts the service (a fresh database with the demo fleet) with SOVD_METRICS_ENABLED=true
and =false, drives it with wrk (or the Python load generator), and prints requests/s of
both, their ratio (on / off), and the server's CPU time per request. The server is
pinned to one core and the load generator to the other; rounds alternate which setting
goes first, and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

from bench.load import LoadResult, http_load
from bench.server import BenchServer

PATH = "/api/v1/vehicles"
SERVER_CPUS, CLIENT_CPUS = {0}, {1}


def measure(enabled: bool, seconds: float, connections: int) -> tuple[LoadResult, float]:
    """Throughput, and the server's CPU time per request in microseconds."""
    pinned = len(os.sched_getaffinity(0)) > 1
    cpus, client_cpus = (SERVER_CPUS, CLIENT_CPUS) if pinned else (None, None)
    env = {"SOVD_METRICS_ENABLED": "true" if enabled else "false"}
    with BenchServer(cpus=cpus, env=env) as server:
        headers = {"Authorization": f"Bearer {server.token()}"}
        url = server.base_url + PATH
        warm_up = min(2.0, seconds)
        http_load(url, headers, seconds=warm_up, connections=connections, cpus=client_cpus)
        cpu_before = server.cpu_seconds()
        result = http_load(url, headers, seconds=seconds, connections=connections, cpus=client_cpus)
        cpu_us = (server.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
        if enabled:
            assert server.http.get("/metrics").status_code == 200
        return result, cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    rps: dict[bool, list[float]] = {True: [], False: []}
    cpu: dict[bool, list[float]] = {True: [], False: []}
    for n in range(args.rounds):
        for enabled in (True, False) if n % 2 == 0 else (False, True):
            result, cpu_us = measure(enabled, args.seconds, args.connections)
            if result.errors:
                print(f"errors: {result.errors}", file=sys.stderr)
                return 1
            rps[enabled].append(result.rps)
            cpu[enabled].append(cpu_us)
            state = "on " if enabled else "off"
            print(
                f"round {n + 1}: telemetry {state} {result.rps:8.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, server CPU {cpu_us:.0f} us/request ({result.tool})",
                flush=True,
            )
    on_rps, off_rps = statistics.median(rps[True]), statistics.median(rps[False])
    ratio = on_rps / off_rps
    print()
    print(f"{'GET ' + PATH + ' (median)':<34}{'req/s':>10}{'CPU us/req':>12}")
    print(f"{'telemetry on':<34}{on_rps:>10.0f}{statistics.median(cpu[True]):>12.0f}")
    print(f"{'telemetry off':<34}{off_rps:>10.0f}{statistics.median(cpu[False]):>12.0f}")
    print(f"{'ratio on/off':<34}{ratio:>10.3f}   (bar: >= 0.95)")
    # Each round's pair ran back to back, so its ratio is blind to drift between rounds
    # (another load on the machine slows both halves of a round alike).
    paired = [on / off for on, off in zip(rps[True], rps[False], strict=True)]
    print(
        f"{'ratio per round':<34}{statistics.median(paired):>10.3f}"
        f"   (median; {min(paired):.3f}-{max(paired):.3f})"
    )
    cpu_ratio = statistics.median(cpu[False]) / statistics.median(cpu[True])
    print(f"{'CPU per request off/on':<34}{cpu_ratio:>10.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "rps": {"on": rps[True], "off": rps[False]},
                    "ratio": ratio,
                    "paired_ratios": paired,
                    "cpu_ratio": cpu_ratio,
                    "cpu_us": {"on": cpu[True], "off": cpu[False]},
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
