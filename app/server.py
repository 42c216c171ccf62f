"""Hypercorn, set up for an exposed service: connection limits, request deadlines, no
server banner, no cleartext HTTP/2 unless asked for.

Connection limits are enforced where connections are accepted. The listening socket is a
``GuardedListener``: asyncio's event loop calls its ``accept()``, which refuses a
connection past the limits at once (a fixed 503 written without reading anything, then
close: no task, no buffer, no protocol object). Accepted connections are
``_Connection`` sockets that give their place back when the event loop closes them.
Refusals are logged one line per interval with a count.

The total is kept below the process's open-file limit (less a reserve for the database,
logs and outgoing telemetry), so the service does not run out of descriptors, which is
when asyncio logs a traceback for every failed accept() (``app.logs.FloodFilter`` bounds
that too, should it still happen).

Deadlines: Hypercorn's keep-alive timer runs from a connection's start (and from the end
of each response) until a whole request head has arrived, so, set to the smaller of 5 s
and SOVD_REQUEST_TIMEOUT_S, it bounds the head, a WebSocket upgrade included;
``RequestContextMiddleware`` bounds the body to SOVD_REQUEST_TIMEOUT_S after the head.
(The same timer is why a connection its client has closed keeps its place until then:
Hypercorn closes its end when the timer ends.)
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import os
import resource
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.config import Sockets
from hypercorn.utils import wrap_app

from app import hypercorn_patches, tls
from app.config import Config
from app.logs import Sampler

log = logging.getLogger(__name__)

KEEP_ALIVE_S = 5.0  # idle time allowed before (and while sending) a request head
FD_RESERVE = 64  # descriptors kept back from connections: database, logs, telemetry
REFUSAL_LOG_INTERVAL_S = 10.0
GRACEFUL_TIMEOUT_S = 5.0
# The largest message a WebSocket client may send, counted after inflating: a response
# stream needs nothing from its client (Hypercorn's default is 16 MiB). Larger: 1009.
WS_MAX_MESSAGE_BYTES = 4096


def _refusal() -> bytes:
    body = (
        b'{"error_code":"overloaded","message":"too many open connections; '
        b'try again shortly","request_id":""}'
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        "x-content-type-options: nosniff\r\n"
        f"content-length: {len(body)}\r\n"
        "retry-after: 1\r\n"
        "connection: close\r\n\r\n"
    )
    return head.encode() + body


REFUSAL = _refusal()

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    total: int
    per_client: int  # 0: no limit per client address
    exempt: tuple[Network, ...] = ()  # e.g. a trusted proxy: many clients, one address


class ConnectionGate:
    """Counts open connections, overall and per client address."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self._by_client: dict[str, int] = {}

    def admit(self, host: str) -> str | None:
        """Count a new connection from ``host``, or say why it is refused."""
        limits = self.limits
        if self.open >= limits.total:
            return f"{self.open} connections are open, the limit (SOVD_MAX_CONNECTIONS)"
        held = self._by_client.get(host, 0)
        if limits.per_client and held >= limits.per_client and not self._exempt(host):
            return (
                f"{held} connections are open from one client address, the limit "
                "(SOVD_MAX_CONNECTIONS_PER_CLIENT)"
            )
        self.open += 1
        self._by_client[host] = held + 1
        return None

    def release(self, host: str) -> None:
        self.open -= 1
        left = self._by_client[host] - 1
        if left:
            self._by_client[host] = left
        else:
            del self._by_client[host]

    def _exempt(self, host: str) -> bool:
        if not self.limits.exempt:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.limits.exempt)


class RefusalLog:
    """At most one line per interval about refused connections, with their count."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S) -> None:
        self._sampler = Sampler(interval_s)
        self.refused = 0

    def note(self, reason: str) -> None:
        self.refused += 1
        held = self._sampler.allow()
        if held is not None:
            log.warning(
                "refused a connection: %s (%d more refused since the last such line)",
                reason,
                held,
                extra={"event": "connection_refused", "refused_total": self.refused},
            )


class _Connection(socket.socket):
    """An accepted connection that gives its place back when it is closed (the event
    loop closes the socket when the transport ends, whatever ended it)."""

    _on_close: Callable[[], None] | None = None

    def close(self) -> None:
        on_close, self._on_close = self._on_close, None
        if on_close is not None:
            on_close()
        super().close()


class GuardedListener(socket.socket):
    """A listening socket whose ``accept()`` refuses connections past the limits."""

    gate: ConnectionGate
    refusals: RefusalLog

    def accept(self) -> tuple[socket.socket, Any]:
        while True:  # BlockingIOError from _accept ends the event loop's accept round
            # _accept is the plain accept(2) that socket.socket.accept wraps (typeshed
            # leaves it out): a descriptor, so a refusal creates no socket object.
            fd, address = self._accept()  # type: ignore[attr-defined]
            host = address[0] if isinstance(address, tuple) else str(address)
            refused = self.gate.admit(host)
            if refused is None:
                conn = _Connection(self.family, self.type, self.proto, fileno=fd)
                conn._on_close = functools.partial(self.gate.release, host)
                return conn, address
            _refuse(fd)
            self.refusals.note(refused)


def _refuse(fd: int) -> None:
    try:
        os.set_blocking(fd, False)
        os.write(fd, REFUSAL)  # a fresh socket's send buffer takes it whole
        # Closing with unread bytes makes the kernel send a reset instead of a FIN, and a
        # client then often sees ECONNRESET, not our 503: read what has already arrived
        # (one non-blocking read, no waiting) so the 503 gets through.
        os.read(fd, 65536)
    except OSError:
        pass
    finally:
        os.close(fd)


def effective_max_connections(wanted: int) -> tuple[int, int | None]:
    """``wanted``, or fewer if the open-file limit is too low even after raising the
    soft limit towards the hard one: (the limit, the open-file limit when it decided)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < need:
        raised = need if hard == resource.RLIM_INFINITY else min(need, hard)
        if raised > soft:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
            except (ValueError, OSError):
                pass
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted, None
    return max(1, soft - FD_RESERVE), soft


class ServerConfig(HypercornConfig):
    """Hypercorn's configuration, plus whether cleartext HTTP/2 (h2c) is spoken; its SSL
    context records each connection's client certificate (``app.tls``)."""

    h2c: bool = True

    def create_ssl_context(self) -> ssl.SSLContext | None:
        context = super().create_ssl_context()  # TLS 1.2 at least, ALPN, no compression
        if context is not None:
            context.sslobject_class = tls.PeerRecordingSSLObject
        return context


def hypercorn_config(config: Config) -> ServerConfig:
    hc = ServerConfig()
    hc.bind = [f"{config.host}:{config.port}"]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    # Hypercorn waits this long for connections after we have drained and closed ours.
    hc.graceful_timeout = GRACEFUL_TIMEOUT_S
    hc.include_server_header = False  # no "server: hypercorn-h11" banner
    # The keep-alive timer also bounds the time to send a request head (see above).
    hc.keep_alive_timeout = min(KEEP_ALIVE_S, config.request_timeout_s)
    hc.h2c = config.http2_cleartext
    if config.tls_cert is not None and config.tls_key is not None:
        # HTTPS (issue #26; ``app.tls.check_files`` has checked the files): HTTP/2 offered
        # by ALPN; with a client CA, a client certificate is asked for (optional: people
        # still sign in with passwords) and verified against it.
        hc.certfile, hc.keyfile = str(config.tls_cert), str(config.tls_key)
        hc.alpn_protocols = ["h2", "http/1.1"]
        if config.tls_client_ca is not None:
            hc.ca_certs = str(config.tls_client_ca)
            hc.verify_mode = ssl.CERT_OPTIONAL
    elif not hc.h2c:
        hc.alpn_protocols = ["http/1.1"]  # (only offered over TLS, which is not set up)
    hc.websocket_max_message_size = WS_MAX_MESSAGE_BYTES
    # What Hypercorn has no setting for, applied here and not on import (each checked
    # against the versions app.hypercorn_patches names).
    hypercorn_patches.apply(config.ws_compression, WS_MAX_MESSAGE_BYTES)
    return hc


def listen(hc: HypercornConfig, limits: ConnectionLimits) -> Sockets:
    """Bind as Hypercorn would, with each listening socket guarded by ``limits``."""
    created = hc.create_sockets()
    gate = ConnectionGate(limits)
    refusals = RefusalLog()
    guarded: list[socket.socket] = []
    # Under TLS Hypercorn's sockets are its secure ones (it wraps them in its SSL context).
    secure = bool(created.secure_sockets)
    for plain in created.secure_sockets if secure else created.insecure_sockets:
        listener = GuardedListener(fileno=plain.detach())
        listener.gate = gate
        listener.refusals = refusals
        guarded.append(listener)
    if secure:
        return Sockets(secure_sockets=guarded, insecure_sockets=[], quic_sockets=[])
    return Sockets(secure_sockets=[], insecure_sockets=guarded, quic_sockets=[])


def listening(sockets: Sockets) -> tuple[str, str, int]:
    """The scheme, address and port the service listens on."""
    if sockets.secure_sockets:
        host, port = sockets.secure_sockets[0].getsockname()[:2]
        return "https", host, port
    host, port = sockets.insecure_sockets[0].getsockname()[:2]
    return "http", host, port


async def serve(
    app: Any,
    hc: HypercornConfig,
    sockets: Sockets,
    shutdown_trigger: Callable[[], Awaitable[None]],
) -> None:
    """Hypercorn's ``serve``, on sockets of our own (``serve`` itself cannot take any):
    ``worker_serve``, the function ``hypercorn.asyncio.serve`` calls, with ``sockets``
    (checked against Hypercorn 0.18.0; tests/test_hypercorn_patches.py pins its
    parameters and tests/test_slow_clients.py that our guarded sockets are the ones
    served)."""
    await worker_serve(
        wrap_app(app, hc.wsgi_max_body_size, "asgi"),
        hc,
        sockets=sockets,
        shutdown_trigger=shutdown_trigger,
    )
