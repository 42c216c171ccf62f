"""What tracing costs at each setting (issue #24): authenticated ``GET /api/v1/vehicles``
with wrk (32 connections), the settings alternating in one run, medians compared.

- ``off``: telemetry off (the floor every ratio is taken against);
- ``metrics``: metrics on, tracing off;
- ``ratio_10``: metrics and tracing, ``OTEL_TRACES_SAMPLER=parentbased_traceidratio``,
  ``OTEL_TRACES_SAMPLER_ARG=0.1`` (head sampling, as collectors are usually run);
- ``every``: metrics and tracing, every request sampled (``parentbased_always_on``);
- ``plain``: metrics on and plain OpenTelemetry ASGI tracing around the same app
  (``bench.plain_tracing``), every request sampled: the yardstick for ``every``.

Each traced setting exports over OTLP/HTTP to a sink of its own on the load generator's
core, which decodes every export and counts its spans; the counts are checked against
the requests once the servers stopped (they flush then). The servers run side by side
on one core, each loaded in turn; rounds rotate which setting goes first.
"""

from __future__ import annotations

import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Any

from bench.http_overhead import SpanReceiver, span_receiver
from bench.load import http_load
from bench.plain_tracing import URL_VARIABLE
from bench.server import BenchServer

PATH = "/api/v1/vehicles"
CONNECTIONS = 32
OFF, METRICS, RATIO, EVERY, PLAIN = "off", "metrics", "ratio_10", "every", "plain"
SETTINGS = (OFF, METRICS, RATIO, EVERY, PLAIN)
TRACED = (RATIO, EVERY, PLAIN)
PLAIN_ARGV = ("-m", "bench.plain_tracing")
SEMCONV = "OTEL_SEMCONV_STABILITY_OPT_IN"
BARS = {RATIO: 0.90, EVERY: 0.62}  # ratio to off; and every >= plain


def _env(setting: str, sink: SpanReceiver | None, smoke: bool) -> dict[str, str]:
    env = {"SOVD_METRICS_ENABLED": "false" if setting == OFF else "true"}
    if smoke:  # five starts side by side: the demo users' hashing is most of each
        env["SOVD_PASSWORD_HASH_PROFILE"] = "fast"
    if sink is None:
        return env
    # The stable HTTP conventions, as the Dockerfile sets them, for ours and plain alike.
    env[SEMCONV] = "http"
    if setting == PLAIN:
        return env | {URL_VARIABLE: sink.url}
    sampler = "parentbased_traceidratio" if setting == RATIO else "parentbased_always_on"
    env |= {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": sink.url, "OTEL_TRACES_SAMPLER": sampler}
    if setting == RATIO:
        env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    return env


def measure(
    rounds: int,
    seconds: float,
    server_cpus: set[int] | None,
    client_cpus: set[int] | None,
    progress: Any = None,
    smoke: bool = False,
) -> dict[str, Any]:
    """The figures; ``smoke``: no warm-up and cheap password hashing (a harness check)."""
    rps: dict[str, list[float]] = {s: [] for s in SETTINGS}
    cpu_us: dict[str, list[float]] = {s: [] for s in SETTINGS}
    requests = dict.fromkeys(SETTINGS, 0)
    with ExitStack() as sinks_stack:
        sinks = {s: sinks_stack.enter_context(span_receiver(client_cpus)) for s in TRACED}
        # A smoke run starts its servers on both cores (its figures mean nothing).
        servers = _start(None if smoke else server_cpus, sinks, smoke)
        try:
            headers = {s: {"Authorization": f"Bearer {servers[s].token()}"} for s in SETTINGS}
            requests = dict.fromkeys(SETTINGS, 1)  # the log-in (the probes make no span)
            for setting in () if smoke else SETTINGS:  # the first requests are slow
                warm = http_load(
                    servers[setting].base_url + PATH,
                    headers[setting],
                    seconds=min(2.0, seconds),
                    connections=CONNECTIONS,
                    cpus=client_cpus,
                )
                requests[setting] += warm.requests
            for n in range(rounds):
                order = SETTINGS[n % len(SETTINGS) :] + SETTINGS[: n % len(SETTINGS)]
                for setting in order:
                    if progress is not None:
                        progress(f"tracing round {n + 1}/{rounds}: {setting}")
                    srv = servers[setting]
                    before = srv.cpu_seconds()
                    load = http_load(
                        srv.base_url + PATH,
                        headers[setting],
                        seconds=seconds,
                        connections=CONNECTIONS,
                        cpus=client_cpus,
                    )
                    assert load.errors == 0, f"{setting}: {load.errors} errors"
                    used = srv.cpu_seconds() - before
                    rps[setting].append(load.rps)
                    cpu_us[setting].append(used / max(load.requests, 1) * 1e6)
                    requests[setting] += load.requests
                    print(
                        f"  {setting:<9} {load.rps:8.0f} req/s  {cpu_us[setting][-1]:6.0f} us CPU"
                        f"/request ({load.tool})",
                        file=sys.stderr,
                        flush=True,
                    )
        finally:
            with ThreadPoolExecutor(len(servers)) as pool:
                list(pool.map(BenchServer.close, servers.values()))
        # The servers stopped: their batch processors exported what they held.
        spans = {s: sinks[s].spans for s in TRACED}
        # The sampled fraction by the server spans of the route under load: start-up's
        # own work (the demo fleet's writes, each a root of its own), the readiness polls
        # and the sign-in are sampled too, and showed at smoke size (0.159 of 559 requests
        # on a loaded machine, 2026-12-08, when all server spans were counted).
        sampled = sinks[RATIO].server_spans[PATH] / max(requests[RATIO], 1)
    return _figures(rps, cpu_us, requests, spans, sampled, rounds, seconds)


def _start(
    cpus: set[int] | None, sinks: dict[str, SpanReceiver], smoke: bool
) -> dict[str, BenchServer]:
    """The five servers, started side by side (each start mostly waits on imports)."""

    def start(setting: str) -> BenchServer:
        argv = PLAIN_ARGV if setting == PLAIN else ("-m", "app")
        return BenchServer(cpus=cpus, argv=argv, env=_env(setting, sinks.get(setting), smoke))

    with ThreadPoolExecutor(len(SETTINGS)) as pool:
        futures = {setting: pool.submit(start, setting) for setting in SETTINGS}
    servers = {s: f.result() for s, f in futures.items() if f.exception() is None}
    failures = [f.exception() for f in futures.values() if f.exception() is not None]
    if failures:
        for server in servers.values():
            server.close()
        raise failures[0]  # type: ignore[misc]
    return servers


def _figures(
    rps: dict[str, list[float]],
    cpu_us: dict[str, list[float]],
    requests: dict[str, int],
    spans: dict[str, int],
    sampled: float,
    rounds: int,
    seconds: float,
) -> dict[str, Any]:
    median = {s: statistics.median(rps[s]) for s in SETTINGS}
    off = median[OFF]
    # Each server span of ours is one request; plain adds a send span per response part.
    every_ok = spans[EVERY] >= requests[EVERY]
    assert every_ok, f"every request traced: {spans[EVERY]} spans for {requests[EVERY]} requests"
    counted = max(requests[RATIO], 1)
    # Head sampling is a coin per trace: over the few hundred requests of a smoke run (or a
    # loaded machine) a tenth spreads wide. Four binomial standard deviations, at least 0.05.
    margin = max(0.05, 4 * (0.1 * 0.9 / counted) ** 0.5)
    assert abs(sampled - 0.1) <= margin, (
        f"ratio 0.1 sampled {sampled:.3f} of {counted} requests (allowed 0.1 +- {margin:.3f})"
    )
    cpu_off = statistics.median(cpu_us[OFF])
    result: dict[str, Any] = {
        s: {
            "requests_per_s": round(median[s]),
            "ratio_to_off": round(median[s] / off, 3) if off else 0.0,
            # Each round's runs went back to back: blind to drift between rounds.
            "paired_ratio_to_off": round(
                statistics.median(x / o for x, o in zip(rps[s], rps[OFF], strict=True)), 3
            ),
            "cpu_us_per_request": round(statistics.median(cpu_us[s])),
            # The throughput a CPU-bound server would have, from its CPU per request:
            # steadier than req/s when other work shares the machine.
            "cpu_ratio_to_off": round(cpu_off / statistics.median(cpu_us[s]), 3),
        }
        for s in SETTINGS
    }
    result[RATIO]["sampled_fraction"] = round(sampled, 4)
    result[EVERY]["spans_per_request"] = round(spans[EVERY] / max(requests[EVERY], 1), 3)
    result[PLAIN]["spans_per_request"] = round(spans[PLAIN] / max(requests[PLAIN], 1), 3)
    result["every_to_plain"] = round(median[EVERY] / median[PLAIN], 3) if median[PLAIN] else 0.0
    result["every_to_plain_cpu"] = round(
        statistics.median(cpu_us[PLAIN]) / statistics.median(cpu_us[EVERY]), 3
    )
    result["rounds"] = rounds
    result["seconds_per_setting"] = seconds
    result["connections"] = CONNECTIONS
    return result
