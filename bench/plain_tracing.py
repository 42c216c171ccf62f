"""The service with plain OpenTelemetry ASGI tracing, the way its documentation sets it
up: the app built with tracing off, wrapped in ``OpenTelemetryMiddleware`` (its defaults:
every request sampled, its ``receive``/``send`` spans), a ``TracerProvider`` with a
``BatchSpanProcessor`` and the official OTLP/HTTP span exporter. The yardstick the
tracing scenario holds the service's own tracing against ("never behind").

    BENCH_PLAIN_TRACES_URL=http://127.0.0.1:4318/v1/traces python -m bench.plain_tracing

Everything else as ``python -m app`` reads it (SOVD_PORT, metrics on or off, ...); the
OTEL_* variables are left out of the service's configuration, so its own tracing stays
off. SIGTERM stops it; the spans still buffered are exported before it exits.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from app import logs, server
from app.config import Config
from app.lifecycle import Lifecycle
from app.main import create_app

URL_VARIABLE = "BENCH_PLAIN_TRACES_URL"


async def _run(config: Config, provider: TracerProvider) -> None:
    inner = create_app(config)
    lifecycle: Lifecycle = inner.state.lifecycle
    app = OpenTelemetryMiddleware(inner, tracer_provider=provider)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        await lifecycle.drain(config.shutdown_grace_s)

    hc = server.hypercorn_config(config)
    limits = server.ConnectionLimits(config.max_connections, config.max_connections_per_client)
    sockets = server.listen(hc, limits)
    try:
        await server.serve(app, hc, sockets, shutdown_trigger)
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()


def main() -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    config = Config.from_env(env)
    logs.configure(config.log_level)
    provider = TracerProvider(resource=Resource.create({"service.name": "plain-asgi-tracing"}))
    exporter = OTLPSpanExporter(endpoint=os.environ[URL_VARIABLE])
    provider.add_span_processor(BatchSpanProcessor(exporter))
    try:
        asyncio.run(_run(config, provider))
    finally:
        provider.shutdown()  # the batch processor exports what it still holds
    return 0


if __name__ == "__main__":
    sys.exit(main())
