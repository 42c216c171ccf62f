"""Exemplars on ``/metrics``: the OpenTelemetry Prometheus reader, plus the exemplars it
drops.

opentelemetry-exporter-prometheus turns the SDK's histogram points into
prometheus_client families but leaves each point's exemplars out. This reader keeps the
newest exemplar of each bucket of the named histograms from every collection (the SDK
hands each one over once, then resets its reservoir) and puts it on the bucket's sample,
with ``trace_id`` and ``span_id`` as its labels. prometheus_client writes exemplars in
the OpenMetrics format only, so the plain text exposition is unchanged.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData
from opentelemetry.trace import format_span_id, format_trace_id
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Exemplar

from otel.http_durations import HttpDurations

# (family name, the series' labels without le, le) -> its bucket's newest exemplar
_Key = tuple[str, tuple[tuple[str, str], ...], str]
BUCKET_SUFFIX = "_bucket"


def _le(bounds: Sequence[float], value: float) -> str:
    """The ``le`` label of the bucket ``value`` falls in, written as the exporter writes
    it (``f"{bound}"``). The SDK counts a value equal to a bound in that bound's bucket."""
    index = bisect_left(bounds, value)
    return f"{bounds[index]}" if index < len(bounds) else "+Inf"


class ExemplarPrometheusReader(PrometheusMetricReader):
    """Registers, on ``registry``, the OpenTelemetry exporter's families with the
    exemplars of the histograms in ``histograms`` (instrument name -> family name), and
    the HTTP durations of ``durations`` (aggregated by the service) merged into each
    collection."""

    def __init__(
        self,
        registry: CollectorRegistry,
        histograms: Mapping[str, str],
        durations: HttpDurations | None = None,
    ) -> None:
        self._histograms = dict(histograms)
        self._durations = durations
        self._consumer = durations.consumer() if durations is not None else 0
        self._exemplars: dict[_Key, Exemplar] = {}
        self._lock = threading.Lock()  # collections may run in the OTLP exporter's thread
        # The exporter's collector lives on a registry of its own; ``registry`` gets the
        # one below, which adds the exemplars to what it yields.
        self._families = CollectorRegistry(auto_describe=False)
        super().__init__(registry=self._families, scope_info_enabled=False)
        registry.register(_WithExemplars(self))

    # The SDK's extension point for readers: ``MetricReader._receive_metrics`` is abstract,
    # every reader (the Prometheus one included) implements it, despite its underscore.
    # tests/test_private_apis.py fails if an upgrade stops calling it so.
    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if metrics_data is not None:
            if self._durations is not None:
                metrics_data = self._durations.merged(metrics_data, self._consumer)
            self._keep(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)

    def _keep(self, metrics_data: MetricsData) -> None:
        for resource_metrics in metrics_data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    family = self._histograms.get(metric.name)
                    if family is None:
                        continue
                    for point in metric.data.data_points:
                        if isinstance(point, HistogramDataPoint) and point.exemplars:
                            self._keep_point(family, point)

    def _keep_point(self, family: str, point: HistogramDataPoint) -> None:
        labels = tuple(sorted((str(k), str(v)) for k, v in (point.attributes or {}).items()))
        with self._lock:
            for exemplar in point.exemplars:
                if exemplar.trace_id is None or exemplar.span_id is None:
                    continue
                key = (family, labels, _le(point.explicit_bounds, exemplar.value))
                self._exemplars[key] = Exemplar(
                    {
                        "trace_id": format_trace_id(exemplar.trace_id),
                        "span_id": format_span_id(exemplar.span_id),
                    },
                    exemplar.value,
                    exemplar.time_unix_nano / 1e9,
                )

    def families(self) -> list[Metric]:
        """The exporter's families (a collection runs first), exemplars attached."""
        families = list(self._families.collect())
        with self._lock:
            exemplars = dict(self._exemplars)
        if exemplars:
            for family in families:
                if family.type == "histogram" and family.name in self._histograms.values():
                    _attach(family, exemplars)
        return families


class _WithExemplars:
    """The collector ``registry`` holds (prometheus_client's collector protocol)."""

    def __init__(self, reader: ExemplarPrometheusReader) -> None:
        self._reader = reader

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check up front: the exporter's families vary

    def collect(self) -> Iterable[Metric]:
        return self._reader.families()


def _attach(family: Metric, exemplars: Mapping[_Key, Exemplar]) -> None:
    bucket = family.name + BUCKET_SUFFIX
    for i, sample in enumerate(family.samples):
        if sample.name != bucket:
            continue
        le = sample.labels.get("le", "")
        labels = tuple(sorted((k, v) for k, v in sample.labels.items() if k != "le"))
        exemplar = exemplars.get((family.name, labels, le))
        if exemplar is not None:
            family.samples[i] = sample._replace(exemplar=exemplar)
