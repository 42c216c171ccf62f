"""The MeterProvider: resource, readers (Prometheus always, OTLP when configured), views.

Each provider has its own ``CollectorRegistry``, never the process-global one, so several
apps (or tests) in one process cannot collide, and it is never installed as the global
OpenTelemetry provider for the same reason.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import (
    MetricExportResult,
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry

from otel import names
from otel.exemplars import ExemplarPrometheusReader
from otel.http_durations import HttpDurations
from otel.metrics import MetricLabels, Metrics
from otel.outage import METRICS_FLUSH_S, SETTLE_S, ExportHealth
from otel.scrape import ASGIApp, metrics_app


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    # The service's name unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names it
    # (those the SDK reads itself).
    default_service_name: str = "sovd-command-service"
    service_version: str = ""
    otlp_endpoint: str | None = None  # base URL; /v1/metrics is appended
    otlp_metrics_endpoint: str | None = None  # full URL, wins over otlp_endpoint
    otlp_export_interval_ms: int = 60000
    # Tracing is on: histograms keep the trace id of a sampled recording as an exemplar.
    exemplars: bool = False

    @property
    def otlp_url(self) -> str | None:
        if self.otlp_metrics_endpoint:
            return self.otlp_metrics_endpoint
        if self.otlp_endpoint:
            return self.otlp_endpoint.rstrip("/") + "/v1/metrics"
        return None


@dataclass(frozen=True, slots=True)
class Instrumentation:
    """What the service holds: the recording calls (``metrics``, the app's ``Telemetry``),
    the registry and its exposition for ``GET /metrics``, a shutdown."""

    metrics: Metrics
    registry: CollectorRegistry
    provider: MeterProvider
    exposition: ASGIApp
    # The OTLP exporter's health (None: no OTLP push).
    otlp_health: ExportHealth | None = field(default=None)

    def shutdown(self) -> None:
        """Stop; the OTLP reader's last export gets at most ``METRICS_FLUSH_S`` (a missing
        collector then costs that, not the exporter's retries)."""
        deadline = time.monotonic() + METRICS_FLUSH_S
        try:
            self.provider.shutdown(timeout_millis=(METRICS_FLUSH_S - SETTLE_S) * 1000)
        finally:
            if self.otlp_health is not None:
                self.otlp_health.close(deadline)


class WatchedMetricExporter(OTLPMetricExporter):
    """The OTLP/HTTP metric exporter, telling ``ExportHealth`` how each export ended."""

    def __init__(
        self, endpoint: str, health: ExportHealth, durations: HttpDurations | None = None
    ) -> None:
        super().__init__(endpoint=endpoint)
        self._export_health = health
        # The HTTP durations the service aggregates itself, merged into each export.
        self._durations = durations
        self._consumer = durations.consumer() if durations is not None else 0
        self._closed = threading.Event()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float | None = 10000, **kwargs: Any
    ) -> MetricExportResult:
        if self._closed.is_set():  # the reader's last collection after a cut-short flush
            return MetricExportResult.FAILURE
        if self._durations is not None:
            metrics_data = self._durations.merged(metrics_data, self._consumer)
        with self._export_health.exporting():
            result = super().export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        self._export_health.exported(result is MetricExportResult.SUCCESS)
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._closed.set()
        super().shutdown(timeout_millis=timeout_millis, **kwargs)


# The service's meter (the instrumentation scope of its metrics).
METER_NAME = "sovd-command-service"
HTTP_DURATION_DESCRIPTION = "Duration of HTTP server requests"

# What the SDK names a service nobody named (the specification's default).
UNNAMED_SERVICE = "unknown_service"


def make_resource(settings: TelemetrySettings) -> Resource:
    """The service's resource, the same for its metrics and its traces: the SDK's, which
    reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES itself (app.config only checks
    them), with the service's version and, unless they name it, the service's name."""
    version = {"service.version": settings.service_version} if settings.service_version else {}
    resource = Resource.create(version)
    if str(resource.attributes.get("service.name", "")).startswith(UNNAMED_SERVICE):
        resource = resource.merge(Resource({"service.name": settings.default_service_name}))
    return resource


def build_instrumentation(settings: TelemetrySettings, labels: MetricLabels) -> Instrumentation:
    resource = make_resource(settings)
    registry = CollectorRegistry(auto_describe=True)
    # HTTP durations: aggregated by the service, merged into what each reader collects
    # (otel.http_durations: the SDK's record() would cost most of metrics' share).
    durations = HttpDurations(
        names.HTTP_DURATION,
        HTTP_DURATION_DESCRIPTION,
        "s",
        names.HTTP_DURATION_BUCKETS,
        METER_NAME,
    )
    readers: list[MetricReader] = [
        # The OpenTelemetry Prometheus reader, plus the exemplars it leaves out (shown
        # in the OpenMetrics format only). Scope labels would add three constant labels
        # to every series; they say nothing here.
        ExemplarPrometheusReader(registry, names.EXEMPLAR_HISTOGRAMS, durations),
    ]
    health: ExportHealth | None = None
    if settings.otlp_url:
        # The exporter logs through its module's logger: one warning per outage there.
        health = ExportHealth("metrics", [OTLPMetricExporter.__module__])
        health.attach()
        readers.append(
            PeriodicExportingMetricReader(
                WatchedMetricExporter(settings.otlp_url, health, durations),
                export_interval_millis=settings.otlp_export_interval_ms,
            )
        )
    views = [
        View(
            instrument_name=names.COMMAND_DURATION,
            aggregation=ExplicitBucketHistogramAggregation(names.COMMAND_DURATION_BUCKETS),
        ),
        View(
            instrument_name=names.VEHICLE_REQUEST_DURATION,
            aggregation=ExplicitBucketHistogramAggregation(names.VEHICLE_REQUEST_BUCKETS),
        ),
    ]
    # Without traces an exemplar could never link anywhere: skip their per-record cost.
    # With them, a recording made while a sampled span is current keeps its trace id.
    provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        views=views,
        exemplar_filter=TraceBasedExemplarFilter()
        if settings.exemplars
        else AlwaysOffExemplarFilter(),
    )
    metrics = Metrics(provider.get_meter(METER_NAME), labels, durations)
    return Instrumentation(metrics, registry, provider, metrics_app(registry), health)
