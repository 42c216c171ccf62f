"""Telemetry for the service: OpenTelemetry meters exported to Prometheus (and OTLP) and, when
on, traces over OTLP; metrics, http, http_durations, tracing, span_encoding, provider,
scrape, outage.

Knows nothing of ``app``: the service hands it a ``TelemetrySettings`` and the label
values it will use (``MetricLabels``), then calls the named recording methods of
``Metrics`` (the app sees them as its ``app.telemetry.Telemetry`` protocol) and, with
tracing on, of ``Tracing`` (``app.telemetry.Tracing``).
"""

from otel.http import HttpServerMetrics
from otel.metrics import MetricLabels, Metrics
from otel.provider import (
    Instrumentation,
    TelemetrySettings,
    build_instrumentation,
    make_resource,
)
from otel.scrape import metrics_app
from otel.tracing import Tracing, TracingSettings, build_tracing, log_fields

__all__ = [
    "HttpServerMetrics",
    "Instrumentation",
    "MetricLabels",
    "Metrics",
    "TelemetrySettings",
    "Tracing",
    "TracingSettings",
    "build_instrumentation",
    "build_tracing",
    "log_fields",
    "make_resource",
    "metrics_app",
]
