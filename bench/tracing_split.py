"""Where tracing's cost goes, in process: CPU per ``GET /api/v1/vehicles`` called directly
on the ASGI app (no HTTP server, no sockets), in four settings.

    python -m bench.tracing_split [--requests 3000] [--repeat 1]

- ``off``: telemetry off (the floor).
- ``on``: metrics on, tracing off (what every deployment pays).
- ``unsampled``: tracing on with ``OTEL_TRACES_SAMPLER=always_off``: the sampling is
  decided, the request goes around the instrumentation, nothing is recorded.
- ``ratio_10``: tracing at ``parentbased_traceidratio`` 0.1 (head sampling): one request
  in ten recorded and exported as below.
- ``traced``: every request sampled and exported over OTLP/HTTP to a receiver in this
  process (on the other core), which decodes and counts the spans.

Each setting runs in a fresh process pinned to one core (OpenTelemetry's globals are per
process), warms up, then times the requests with ``time.process_time``. ``--repeat N``
runs the settings N times in turn and reports each one's median (one run of a few
thousand requests moves by 10 us or more on a shared machine). The differences
between rows are the parts: ``unsampled - on`` the instrumentation's request path,
``traced - unsampled`` the recorded span and its export.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench.http_overhead import span_receiver

MODES = ("off", "on", "unsampled", "ratio_10", "traced")
PATH = "/api/v1/vehicles"
SAMPLERS = {
    "unsampled": "always_off",
    "ratio_10": "parentbased_traceidratio",
    "traced": "parentbased_always_on",
}


def env_for(mode: str, traces_url: str, data_dir: str, password: str) -> dict[str, str]:
    env = {
        "SOVD_DB_PATH": os.path.join(data_dir, "sovd.db"),
        "SOVD_DEMO_DATA": "1",
        "SOVD_ENGINEER_PASSWORD": password,
        "SOVD_ADMIN_PASSWORD": password + "-admin",
        "SOVD_SIM_LATENCY_MS": "0",
        "SOVD_COMMAND_RATE_PER_MIN": "0",
        "SOVD_METRICS_ENABLED": "false" if mode == "off" else "true",
    }
    if mode in ("unsampled", "ratio_10", "traced"):
        env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = traces_url
        env["OTEL_TRACES_SAMPLER"] = SAMPLERS[mode]
        if mode == "ratio_10":
            env["OTEL_TRACES_SAMPLER_ARG"] = "0.1"
    return env


async def call(app: Any, method: str, headers: list[tuple[bytes, bytes]], body: bytes) -> Any:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": PATH if method == "GET" else "/api/v1/auth/login",
        "raw_path": b"",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    out: list[Any] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        out.append(message)

    await app(scope, receive, send)
    return out


def service_app(mode: str, traces_url: str, prefix: str) -> tuple[Any, str]:
    """The service's app for ``mode`` (on a fresh data directory named by ``prefix``) and
    the engineer's password. The process's environment is its configuration, as for the
    service: the OpenTelemetry SDK reads its own variables (the sampler) from there; the
    access log is written as in production, to a file (not the terminal)."""
    from app import logs
    from app.config import Config
    from app.main import create_app

    data_dir = tempfile.mkdtemp(prefix=prefix)
    password = secrets.token_urlsafe(12)
    os.environ.update(env_for(mode, traces_url, data_dir, password))
    app = create_app(Config.from_env(os.environ))
    handler = logging.FileHandler(os.path.join(data_dir, "log"))
    handler.setFormatter(logs.JsonFormatter())
    logging.getLogger().handlers[:] = [handler]
    logging.getLogger().setLevel(logging.INFO)
    return app, password


async def signed_in(app: Any, password: str) -> list[tuple[bytes, bytes]]:
    """The engineer logged in on ``app``: the headers of their requests."""
    login = json.dumps({"username": "engineer", "password": password}).encode()
    answer = await call(app, "POST", [(b"content-type", b"application/json")], login)
    token = json.loads(answer[1]["body"])["access_token"]
    return [(b"authorization", f"Bearer {token}".encode())]


def _child(mode: str, requests: int, warm_up: int, traces_url: str) -> None:
    os.sched_setaffinity(0, {0})
    app, password = service_app(mode, traces_url, "sovd-split-")

    async def run() -> float:
        async with app.router.lifespan_context(app):
            headers = await signed_in(app, password)
            for _ in range(warm_up):
                await call(app, "GET", headers, b"")
            assert (await call(app, "GET", headers, b""))[0]["status"] == 200
            before = time.process_time()
            for _ in range(requests):
                await call(app, "GET", headers, b"")
            return (time.process_time() - before) / requests * 1e6

    print(json.dumps({"mode": mode, "cpu_us": asyncio.run(run())}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warm-up", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--traces-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child, args.requests, args.warm_up, args.traces_url)
        return 0
    pinned = len(os.sched_getaffinity(0)) > 1
    runs: dict[str, list[float]] = {mode: [] for mode in MODES}
    with span_receiver({1} if pinned else None) as receiver:
        for mode in [m for _ in range(max(1, args.repeat)) for m in MODES]:
            before = receiver.spans
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.tracing_split",
                    "--child",
                    mode,
                    "--requests",
                    str(args.requests),
                    "--warm-up",
                    str(args.warm_up),
                    "--traces-url",
                    receiver.url,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            runs[mode].append(json.loads(done.stdout.strip().splitlines()[-1])["cpu_us"])
            spans = receiver.spans - before
            if mode == "traced":
                # One server span per request, the warm-up and the log-in included.
                assert spans >= args.requests + args.warm_up, f"{spans} spans received"
            print(
                f"{mode:<10} {runs[mode][-1]:8.1f} us CPU per request   (spans received: {spans})"
            )
    cpu = {mode: statistics.median(values) for mode, values in runs.items()}
    if args.repeat > 1:
        print(f"\nmedians of {args.repeat} runs each:")
        for mode in MODES:
            print(f"{mode:<10} {cpu[mode]:8.1f} us CPU per request")
    print()
    print(f"metrics (on - off)                       {cpu['on'] - cpu['off']:8.1f} us")
    print(f"the sampling decision (unsampled - on)   {cpu['unsampled'] - cpu['on']:8.1f} us")
    print(f"head sampling at 0.1 (ratio_10 - on)     {cpu['ratio_10'] - cpu['on']:8.1f} us")
    print(
        f"a recorded, exported span (traced - unsampled) {cpu['traced'] - cpu['unsampled']:8.1f} us"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
