"""``python -m app``: read the configuration, build the app, serve it with Hypercorn.

SIGTERM or SIGINT starts a graceful stop: the pipeline drains (up to
SOVD_SHUTDOWN_GRACE_S), response streams are closed with 1001, then Hypercorn stops.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hypercorn.asyncio import serve
from hypercorn.config import Config as HypercornConfig

from app import logs
from app.config import Config, ConfigError
from app.main import Lifecycle, create_app

log = logging.getLogger("app")


def hypercorn_config(config: Config) -> HypercornConfig:
    hc = HypercornConfig()
    hc.bind = [f"{config.host}:{config.port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # Hypercorn waits this long for connections after we have drained and closed ours.
    hc.graceful_timeout = 5.0
    return hc


async def run(config: Config) -> None:
    app = create_app(config)
    lifecycle: Lifecycle = app.state.lifecycle
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("stopping", extra={"event": "shutdown"})
        await lifecycle.drain(config.shutdown_grace_s)

    await serve(
        app,  # type: ignore[arg-type]  # Starlette and Hypercorn type ASGI apart
        hypercorn_config(config),
        shutdown_trigger=shutdown_trigger,
    )


def main() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    asyncio.run(run(config))
    log.info("stopped", extra={"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
