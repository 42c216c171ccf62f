"""``GET /metrics``: the Prometheus exposition of one registry, as an ASGI app.

prometheus_client renders it: Prometheus text by default, OpenMetrics when the Accept
header asks, gzip when accepted.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, make_asgi_app

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


def metrics_app(registry: CollectorRegistry) -> ASGIApp:
    app: ASGIApp = make_asgi_app(registry)
    return app
