"""Telemetry for the service: OpenTelemetry meters exported to Prometheus (and OTLP).

Knows nothing of ``app``: the service hands it a ``TelemetrySettings`` and calls the
named recording methods of ``Metrics``.
"""

from otel.http import HttpServerMetrics
from otel.metrics import Metrics
from otel.provider import Telemetry, TelemetrySettings, build_telemetry
from otel.scrape import metrics_app

__all__ = [
    "HttpServerMetrics",
    "Metrics",
    "Telemetry",
    "TelemetrySettings",
    "build_telemetry",
    "metrics_app",
]
