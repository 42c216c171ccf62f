"""The outermost layer every request passes: request id, security headers, access log,
and a last-resort 500 in the contract's shape (never a stack trace)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import logs
from app.api.error_bodies import REQUEST_ID_KEY, USER_KEY, error_response
from app.api.metrics import METRICS_PATH
from app.api.ws_closes import UNKNOWN_PATH
from app.errors import RequestTimeout
from app.telemetry import HttpRecorder

log = logging.getLogger("app.access")

# Made-up request ids: a random per-process prefix and a counter, unique and far cheaper
# than a uuid4 per request (os.urandom is a system call).
_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count(1)
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

CSP = b"content-security-policy"
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (CSP, b"default-src 'none'; frame-ancestors 'none'"),
)
NO_STORE = (b"cache-control", b"no-store")
HEALTH_PREFIX = "/health/"


def _quiet(path: str, status: int) -> bool:
    """Probes (/health/*) and scrapes (/metrics) come every few seconds: their lines only at
    DEBUG. A refused scrape (a wrong metrics token) or a failed probe keeps INFO, so a
    misconfiguration shows in the default log."""
    return (path.startswith(HEALTH_PREFIX) or path == METRICS_PATH) and status < 400


def _unknown_path_closer(scope: Scope, send: Send) -> Send:
    """Starlette refuses a WebSocket no route matches by closing before the accept, which
    a client sees as a bare 403 on the handshake. Every route of ours accepts first, so a
    close before any accept is that refusal: answer it with an accept and a documented
    close code and reason instead."""
    accepted = False

    async def send_or_explain(message: Message) -> None:
        nonlocal accepted
        if message["type"] == "websocket.accept":
            accepted = True
        elif message["type"] == "websocket.close" and not accepted:
            accepted = True
            log.info(
                "stream refused: unknown path",
                extra={
                    "event": "ws_rejected",
                    "path": scope["path"][:256],
                    "code": UNKNOWN_PATH.code,
                    "reason": UNKNOWN_PATH.reason,
                    "request_id": scope.get(REQUEST_ID_KEY, ""),
                },
            )
            await send({"type": "websocket.accept"})
            message = {
                "type": "websocket.close",
                "code": UNKNOWN_PATH.code,
                "reason": UNKNOWN_PATH.reason,
            }
        await send(message)

    return send_or_explain


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate: str = value.decode("latin-1")
            if _SANE_ID.fullmatch(candidate):
                return candidate
            break
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            return int(value) if value.isdigit() else None
        if name == b"transfer-encoding":
            return None
    return 0


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        drain_limit: int = 64 * 1024,
        http_metrics: HttpRecorder | None = None,
        route_of: Callable[[Mapping[str, Any]], str | None] | None = None,
        body_timeout_s: float | None = None,
    ) -> None:
        self.route_of = route_of
        # The whole body must have arrived this long after the head (not per read: a
        # client trickling a byte at a time would otherwise hold the connection forever);
        # past it, 408 and the connection closes.
        self.body_timeout_s = body_timeout_s
        self.app = app
        # HTTP server metrics ride on this layer instead of adding one of their own.
        self.http_metrics = http_metrics
        # A body the handler did not read (it answered early, say 401) is read and dropped
        # up to this size so the connection stays usable; past it, the connection closes.
        self.drain_limit = drain_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope)
        scope[REQUEST_ID_KEY] = rid
        if scope["type"] == "websocket":
            await self.app(scope, receive, _unknown_path_closer(scope, send))
            return

        started = time.perf_counter()
        measured = self.http_metrics.start(scope) if self.http_metrics is not None else None
        status = 500
        response_started = False
        declared = _declared_length(scope)
        body_done = declared == 0
        extra = [(b"x-request-id", rid.encode()), *SECURITY_HEADERS]
        if scope["path"].startswith(("/api/", "/sovd/")):
            extra.append(NO_STORE)

        deadline = (
            asyncio.get_running_loop().time() + self.body_timeout_s
            if self.body_timeout_s is not None and not body_done
            else None
        )

        async def receive_tracked() -> Message:
            nonlocal body_done
            if body_done or deadline is None:
                message = await receive()
            else:
                try:
                    async with asyncio.timeout_at(deadline):
                        message = await receive()
                except TimeoutError:
                    raise RequestTimeout(
                        f"the request body did not arrive within {self.body_timeout_s:g} s"
                    ) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                own = list(message.get("headers", ()))
                # A response that set its own policy (the console's pages) keeps it; every
                # other response gets the API's, which allows nothing.
                keeps_csp = any(name.lower() == CSP for name, _ in own)
                headers = [*own, *(h for h in extra if not (keeps_csp and h[0] == CSP))]
                if not body_done and not await self._drain(declared, receive_tracked):
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        request_log = logs.RequestLog(rid, lambda: scope.get(USER_KEY))
        log_token = logs.begin_request(request_log)
        try:
            await self.app(scope, receive_tracked, send_with_headers)
        except Exception:
            log.exception("unhandled error", extra={"request_id": rid})
            if response_started:
                raise
            status = 500
            response = error_response(
                scope, 500, "sovd-server-failure", "the service failed to handle the request"
            )
            await response(scope, receive, send_with_headers)
        finally:
            if measured is not None:
                assert self.http_metrics is not None
                self.http_metrics.finish(measured, scope, status)
            logs.end_request(log_token)
            # A request that accepted a command is named by the command's end line.
            routine = request_log.started_command and status < 400
            level = logging.DEBUG if routine or _quiet(scope["path"], status) else logging.INFO
            if log.isEnabledFor(level):
                log.log(
                    level,
                    "request",
                    extra={
                        "event": "request",
                        "request_id": rid,
                        "method": scope["method"],
                        "path": scope["path"],  # never the query: it may carry a token
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                        "route": self.route_of(scope) if self.route_of else None,
                        "user": scope.get(USER_KEY),
                    },
                )

    async def _drain(self, declared: int | None, receive: Receive) -> bool:
        """Read and drop an unread request body; False if it is too large to bother or
        does not arrive in time."""
        if declared is None or declared > self.drain_limit:
            return False
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return bool(message["type"] == "http.request")
        except RequestTimeout:
            return False
