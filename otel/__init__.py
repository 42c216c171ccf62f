"""Telemetry for the service: OpenTelemetry meters exported to Prometheus (and OTLP).

Knows nothing of ``app``: the service hands it a ``TelemetrySettings`` and the label
values it will use (``MetricLabels``), then calls the named recording methods of
``Metrics`` (the app sees them as its ``app.telemetry.Telemetry`` protocol).
"""

from otel.http import HttpServerMetrics
from otel.metrics import MetricLabels, Metrics
from otel.provider import Instrumentation, TelemetrySettings, build_instrumentation
from otel.scrape import metrics_app

__all__ = [
    "HttpServerMetrics",
    "Instrumentation",
    "MetricLabels",
    "Metrics",
    "TelemetrySettings",
    "build_instrumentation",
    "metrics_app",
]
