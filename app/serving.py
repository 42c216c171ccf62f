"""Serving (``python -m app`` and ``python -m app serve``): reads nothing itself (the
configuration comes from ``app.cli``), binds the listening socket, builds the app and
serves it with Hypercorn.

SIGTERM or SIGINT starts a graceful stop: the pipeline drains (up to
SOVD_SHUTDOWN_GRACE_S, logging every few seconds which commands it waits for), response
streams are closed with 1001 "service stopping", then Hypercorn stops. A second SIGTERM
or SIGINT gives up the grace: what is left ends as interrupted at once. A start that
cannot go on (the port is taken, the data directory is locked by another instance, the
database is unreadable) logs one line saying why and exits with status 1; the port is
bound before the database is touched.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import logging
import signal
from typing import TYPE_CHECKING

from hypercorn.utils import LifespanFailureError

from app import logs, server, tls
from app.config import Config
from app.errors import StartupError

if TYPE_CHECKING:
    from app.lifecycle import Lifecycle

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


async def _say_ready(lifecycle: Lifecycle, url: str) -> None:
    """One line with the address to open, once the service has started (not before: a
    start that fails must not have printed an address)."""
    try:
        await lifecycle.started.wait()
        # What start-up made (modules, routes, odxtools' parts) lives as long as the
        # process: out of the collector's reach, so the full collections that a loaded
        # pipeline triggers do not walk it again (the service process only; tests that
        # start many apps in one process keep collecting them). Measured in
        # docs/performance.md: without it the pipeline's p95 went from 165 to 221 ms.
        gc.freeze()
        log.info(
            "ready: open the console at %s",
            url,
            extra={"event": "ready", "url": url, "frozen_objects": gc.get_freeze_count()},
        )
    except asyncio.CancelledError:
        raise
    except Exception:  # never let a log line take the service down
        log.exception("could not say the service is ready")


async def run(config: Config) -> None:
    tls.check_files(config)  # HTTPS: a bad certificate or key stops the start here
    # The app is imported once the files are good: a start they stop says so in 0.2 s,
    # not after the 0.6 s of CPU that importing the app and what it uses takes.
    from app.main import create_app

    app = create_app(config)
    lifecycle: Lifecycle = app.state.lifecycle
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        if not stop.is_set():
            stop.set()
            return
        # A second signal: the operator will not wait for the grace.
        log.warning(
            "%s again: stopping at once; unfinished commands end as interrupted",
            sig.name,
            extra={"event": "shutdown_now"},
        )
        if lifecycle.services is not None:
            lifecycle.services.pipeline.hurry()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)

    async def shutdown_trigger() -> None:
        await stop.wait()
        log.info("stopping", extra={"event": "shutdown"})
        await lifecycle.drain(config.shutdown_grace_s)

    hc = server.hypercorn_config(config)
    try:
        sockets = server.listen(hc, connection_limits(config))
    except OSError as exc:
        raise StartupError(listen_failure(config, exc)) from None
    scheme, host, port = server.listening(sockets)
    ready = asyncio.create_task(_say_ready(lifecycle, f"{scheme}://{host}:{port}/"))
    try:
        await server.serve(app, hc, sockets, shutdown_trigger)
    except LifespanFailureError:
        # The start failed inside the app's lifespan; the reason is the original error
        # (Hypercorn's carries only its formatted traceback).
        if lifecycle.startup_error is not None:
            raise lifecycle.startup_error from None
        raise
    finally:
        ready.cancel()
        await asyncio.gather(ready, return_exceptions=True)
        for sock in [*sockets.insecure_sockets, *sockets.secure_sockets]:
            sock.close()


def listen_failure(config: Config, exc: OSError) -> str:
    """One line: the address, the variables that set it, and what to do."""
    where = f"cannot listen on {config.host}:{config.port} (SOVD_HOST:SOVD_PORT)"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"{where}: the port is already in use (another instance?); stop what holds it"
            " or set SOVD_PORT to a free port"
        )
    if exc.errno == errno.EACCES:
        return f"{where}: permission denied; set SOVD_PORT to 1024 or above"
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}; set SOVD_HOST to an address of this host and SOVD_PORT"


def serve(config: Config) -> int:
    logs.configure(config.log_level)
    try:
        asyncio.run(run(config))
    except StartupError as exc:
        # One line, no traceback: what is wrong and what to do is in the message.
        log.error("cannot start: %s", exc, extra={"event": "startup_failed"})
        return 1
    log.info("stopped", extra={"event": "stopped"})
    return 0
