"""Telemetry overhead: authenticated GET /api/v1/vehicles with metrics on and off.

    python -m bench.http_overhead [--seconds 10] [--rounds 5]

Starts the service (a fresh database with the demo fleet) with SOVD_METRICS_ENABLED=true
and =false, drives it with wrk (or the Python load generator), and prints requests/s of
each, their ratio, and the server's CPU time per request. Tracing's cost at each setting
(10 % head sampling, every request, plain OpenTelemetry ASGI) is ``python -m bench
tracing`` (bench.tracing_cost), which uses the span receiver below. The server is
pinned to one core and the load generator to the other; rounds rotate which setting goes
first, and the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from bench.load import LoadResult, http_load
from bench.server import BenchServer

PATH = "/api/v1/vehicles"
SERVER_CPUS, CLIENT_CPUS = {0}, {1}
ON, OFF = "on", "off"
LABELS = {ON: "telemetry on", OFF: "telemetry off"}
BARS = {ON: 0.95}  # ratio to telemetry off


def _route(span: Span) -> str:
    """A server span's ``http.route`` ("" without one)."""
    return next((a.value.string_value for a in span.attributes if a.key == "http.route"), "")


class SpanReceiver:
    """An OTLP/HTTP endpoint that decodes every export (opentelemetry-proto) and counts
    its spans, answering 200 at once (a collector that keeps up); on the load generator's
    core. ``url`` is its traces URL."""

    def __init__(self) -> None:
        self.spans = 0
        # By route: one per traced request of it, what sampling is checked by (a server's
        # readiness polls and sign-in are server spans too, and many on a loaded machine).
        self.server_spans: Counter[str] = Counter()
        self._lock = threading.Lock()
        receiver = self

        class Sink(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans = [
                    span
                    for rs in request.resource_spans
                    for scope in rs.scope_spans
                    for span in scope.spans
                ]
                served = Counter(
                    _route(span) for span in spans if span.kind == Span.SpanKind.SPAN_KIND_SERVER
                )
                with receiver._lock:
                    receiver.spans += len(spans)
                    receiver.server_spans.update(served)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1/traces"

    def serve(self, cpus: set[int] | None) -> None:
        def run() -> None:
            if cpus is not None:
                os.sched_setaffinity(0, cpus)  # this thread only
            self._server.serve_forever()

        threading.Thread(target=run, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def span_receiver(cpus: set[int] | None) -> Iterator[SpanReceiver]:
    receiver = SpanReceiver()
    receiver.serve(cpus)
    try:
        yield receiver
    finally:
        receiver.close()


def measure(enabled: bool, seconds: float, connections: int) -> tuple[LoadResult, float]:
    """Metrics on or off (``python -m bench``'s overhead scenario)."""
    return measure_mode(ON if enabled else OFF, seconds, connections)


def measure_mode(mode: str, seconds: float, connections: int) -> tuple[LoadResult, float]:
    """Throughput, and the server's CPU time per request in microseconds."""
    pinned = len(os.sched_getaffinity(0)) > 1
    cpus, client_cpus = (SERVER_CPUS, CLIENT_CPUS) if pinned else (None, None)
    env = {"SOVD_METRICS_ENABLED": "false" if mode == OFF else "true"}
    with BenchServer(cpus=cpus, env=env) as server:
        headers = {"Authorization": f"Bearer {server.token()}"}
        url = server.base_url + PATH
        warm_up = min(2.0, seconds)
        http_load(url, headers, seconds=warm_up, connections=connections, cpus=client_cpus)
        cpu_before = server.cpu_seconds()
        result = http_load(url, headers, seconds=seconds, connections=connections, cpus=client_cpus)
        cpu_us = (server.cpu_seconds() - cpu_before) / max(result.requests, 1) * 1e6
        if mode != OFF:
            assert server.http.get("/metrics").status_code == 200
    return result, cpu_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    modes = (ON, OFF)
    rps: dict[str, list[float]] = {m: [] for m in modes}
    cpu: dict[str, list[float]] = {m: [] for m in modes}
    for n in range(args.rounds):
        # Each round starts with another setting, so none always runs on a cold machine.
        for mode in modes[n % 2 :] + modes[: n % 2]:
            result, cpu_us = measure_mode(mode, args.seconds, args.connections)
            if result.errors:
                print(f"errors: {result.errors}", file=sys.stderr)
                return 1
            rps[mode].append(result.rps)
            cpu[mode].append(cpu_us)
            print(
                f"round {n + 1}: {LABELS[mode]:<25} {result.rps:8.0f} req/s, "
                f"p50 {result.p50_ms:.2f} ms, server CPU {cpu_us:.0f} us/request"
                f" ({result.tool})",
                flush=True,
            )
    medians = {m: statistics.median(rps[m]) for m in modes}
    print()
    print(f"{'GET ' + PATH + ' (median)':<34}{'req/s':>10}{'CPU us/req':>12}")
    for mode in modes:
        print(f"{LABELS[mode]:<34}{medians[mode]:>10.0f}{statistics.median(cpu[mode]):>12.0f}")
    ratios: dict[str, float] = {}
    paired: dict[str, list[float]] = {}
    for mode in (ON,):
        ratios[mode] = medians[mode] / medians[OFF]
        print(f"{'ratio ' + mode + '/off':<34}{ratios[mode]:>10.3f}   (bar: >= {BARS[mode]:.2f})")
        # Each round's runs went back to back, so its ratio is blind to drift between
        # rounds (another load on the machine slows a whole round alike).
        paired[mode] = [x / off for x, off in zip(rps[mode], rps[OFF], strict=True)]
        print(
            f"{'ratio ' + mode + '/off per round':<34}{statistics.median(paired[mode]):>10.3f}"
            f"   (median; {min(paired[mode]):.3f}-{max(paired[mode]):.3f})"
        )
    cpu_ratio = statistics.median(cpu[OFF]) / statistics.median(cpu[ON])
    print(f"{'CPU per request off/on':<34}{cpu_ratio:>10.3f}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(
                {
                    "rps": rps,
                    "ratio": ratios[ON],
                    "paired_ratios": paired[ON],
                    "cpu_ratio": cpu_ratio,
                    "cpu_us": cpu,
                },
                handle,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
