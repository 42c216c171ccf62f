"""GET /metrics: the Prometheus scrape, optionally behind a bearer token."""

from __future__ import annotations

import hmac
import time
from typing import Final

from starlette.types import Message, Receive, Scope, Send

from app.api.error_bodies import error_response
from app.telemetry import Exposition

METRICS_PATH: Final = "/metrics"


class MetricsRoute:
    """An ASGI endpoint (so Starlette serves it as a Route, with no redirect)."""

    def __init__(self, exposition: Exposition, token: str | None) -> None:
        self._exposition = exposition
        self._expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._expected is not None and not self._authorized(scope):
            response = error_response(
                scope,
                401,
                "unauthorized",
                "/metrics needs Authorization: Bearer <metrics token>",
                {"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
            await response(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_timed(message: Message) -> None:
            if message["type"] == "http.response.start":
                # The exposition is rendered before its first byte goes out; say how long
                # that took (W3C Server-Timing), so the cost is visible apart from queueing.
                render_ms = (time.perf_counter() - started) * 1000
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"server-timing", f"render;dur={render_ms:.3f}".encode()),
                ]
            await send(message)

        await self._exposition(scope, receive, send_timed)

    def _authorized(self, scope: Scope) -> bool:
        assert self._expected is not None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                return hmac.compare_digest(value, self._expected)
        return False
