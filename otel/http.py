"""HTTP server metrics after the OTel stable HTTP semantic conventions.

Why not opentelemetry-instrumentation-asgi: it creates a span per request (about
100 us, enough to halve a small request's throughput) and in its stable-semconv mode it
does not set ``http.route``. ``HttpServerMetrics`` records the same two instruments,
``http.server.request.duration`` and ``http.server.active_requests``, with the route
template the app resolves (never the raw path, so ids cannot explode cardinality). It is
called from the app's one request middleware rather than adding an ASGI layer of its
own: each layer costs a coroutine frame and a send wrapper per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from otel import names
from otel.http_durations import SeriesKey
from otel.metrics import ActiveKey, Metrics

RouteResolver = Callable[[Mapping[str, Any]], str | None]
_Started = tuple[ActiveKey, float]  # (method, scheme), perf_counter at start


class HttpServerMetrics:
    def __init__(
        self,
        metrics: Metrics,
        route_of: RouteResolver,
        excluded_prefixes: tuple[str, ...] = ("/metrics", "/health/"),
    ) -> None:
        self._metrics = metrics
        self._route_of = route_of
        self._excluded = excluded_prefixes
        # One attribute dict per (method, route, status), made once: the duration's
        # attributes (names.HTTP_DURATION_ATTRIBUTES: no url.scheme).
        self._attrs: dict[SeriesKey, dict[str, str | int]] = {}

    def start(self, scope: Mapping[str, Any]) -> _Started | None:
        """A request begins; None if it is not measured (/metrics, /health/*)."""
        if scope["path"].startswith(self._excluded):
            return None
        key = (_method(scope["method"]), scope.get("scheme", "http"))
        self._metrics.http_started(key)
        return key, time.perf_counter()

    def finish(self, started: _Started, scope: Mapping[str, Any], status: int) -> None:
        key, at = started
        elapsed = time.perf_counter() - at
        route = self._route_of(scope) or names.UNMATCHED_ROUTE
        attrs_key = (key[0], route, status)
        attrs = self._attrs.get(attrs_key)
        if attrs is None:
            attrs = self._attrs[attrs_key] = {
                "http.request.method": key[0],
                "http.route": route,
                "http.response.status_code": status,
            }
        self._metrics.http_request(key, elapsed, attrs_key, attrs)


_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)


def _method(raw: str) -> str:
    # The conventions fold unknown methods into _OTHER to bound cardinality.
    return raw if raw in _KNOWN_METHODS else "_OTHER"
