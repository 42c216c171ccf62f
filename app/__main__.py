"""``python -m app``: read the configuration, build the app, serve it with Hypercorn.

SIGTERM or SIGINT starts a graceful stop: the pipeline drains (up to
SOVD_SHUTDOWN_GRACE_S), response streams are closed with 1001, then Hypercorn stops.
A start that cannot go on (the data directory is locked by another instance, the database
is unreadable) logs one line saying why and exits with status 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from hypercorn.utils import LifespanFailureError

from app import logs, server
from app.config import Config, ConfigError
from app.errors import StartupError
from app.main import Lifecycle, create_app

log = logging.getLogger("app")


def connection_limits(config: Config) -> server.ConnectionLimits:
    total, fd_limit = server.effective_max_connections(config.max_connections)
    if fd_limit is not None:
        log.warning(
            "SOVD_MAX_CONNECTIONS lowered from %d to %d: this process may open only %d "
            "files (ulimit -n)",
            config.max_connections,
            total,
            fd_limit,
            extra={"event": "connection_limit"},
        )
    return server.ConnectionLimits(
        total=total,
        per_client=config.max_connections_per_client,
        exempt=config.trusted_proxies,
    )


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

    hc = server.hypercorn_config(config)
    try:
        sockets = server.listen(hc, connection_limits(config))
    except OSError as exc:
        raise StartupError(f"cannot listen on {config.host}:{config.port}: {exc}") from None
    try:
        await server.serve(app, hc, sockets, shutdown_trigger)
    except LifespanFailureError:
        # The start failed inside the app's lifespan; the reason is the original error
        # (Hypercorn's carries only its formatted traceback).
        if lifecycle.startup_error is not None:
            raise lifecycle.startup_error from None
        raise
    finally:
        for sock in sockets.insecure_sockets:
            sock.close()


def main() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(config.log_level)
    try:
        asyncio.run(run(config))
    except StartupError as exc:
        # One line, no traceback: what is wrong and what to do is in the message.
        log.error("cannot start: %s", exc, extra={"event": "startup_failed"})
        return 1
    log.info("stopped", extra={"event": "stopped"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
