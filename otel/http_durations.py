"""``http.server.request.duration``, aggregated by the service, not by the SDK (issue #24).

The SDK's histogram costs about 8 us per ``record()`` (a ``Measurement`` object, its
attributes cleaned, copied, filtered by the view and hashed, every time): most of what
metrics add to a small request, and a request makes one. The service's requests fall
into a few dozen series (method, route template, status) known by a tuple, so each
series' explicit-bucket histogram is kept here, as the SDK's
``ExplicitBucketHistogramAggregation`` keeps it (a count per bucket, a value equal to a
boundary counted in that boundary's bucket; count, sum, min, max), for about 1 us a
request. Each collection gets a ``Metric`` built from them with the SDK's public data
types, merged into the ``MetricsData`` the SDK collected for the service's meter: the
Prometheus reader (``otel.exemplars``) and the OTLP exporter (``otel.provider``) see the
instrument as if the SDK had aggregated it, under the same name, unit, buckets and
attributes.

Each consumer (a reader) counts in aggregations of its own, so each keeps its own
temporality: cumulative (Prometheus; OTLP by default) counts on from the start, delta
(OTLP with OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE delta or lowmemory) starts
over after each collection. Which one is read from the collection itself: the
temporality of the counters in it (the SDK's presets give counters and histograms the
same; the service's counters, made at 0, are in the first). HTTP durations carry no
exemplars (the exposition shows command durations' only).
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Final

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)

# (http.request.method, http.route, http.response.status_code)
SeriesKey = tuple[str, str, int]
Attributes = Mapping[str, str | int | bool]
# The SDK's limit of series per instrument, and the series it folds the rest into.
CARDINALITY_LIMIT: Final = 2000
OVERFLOW_ATTRIBUTES: Final = {"otel.metric.overflow": True}
_OVERFLOW: Final = ("", "", -1)


class _Series:
    __slots__ = ("attributes", "count", "counts", "max", "min", "sum")

    def __init__(self, attributes: Attributes, buckets: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")


class _Consumer:
    __slots__ = ("series", "since_ns", "temporality")

    def __init__(self, since_ns: int) -> None:
        self.series: dict[SeriesKey, _Series] = {}
        self.since_ns = since_ns  # the start of what ``series`` holds
        # Known from the first collection with a counter in it (a delta reader leaves
        # out the counters that did not change).
        self.temporality: AggregationTemporality | None = None


class HttpDurations:
    """The histogram ``name`` with ``bounds``, for the meter (scope) ``scope_name``."""

    def __init__(
        self, name: str, description: str, unit: str, bounds: Sequence[float], scope_name: str
    ) -> None:
        self.name = name
        self._description = description
        self._unit = unit
        self._bounds = tuple(bounds)
        self._scope_name = scope_name
        self._consumers: list[_Consumer] = []
        # Records come from the event loop, collections from a scrape or the OTLP
        # reader's thread.
        self._lock = threading.Lock()

    def consumer(self) -> int:
        """A reader that will collect this histogram (before any record: each one counts
        from its registration)."""
        with self._lock:
            self._consumers.append(_Consumer(time.time_ns()))
            return len(self._consumers) - 1

    def record(self, key: SeriesKey, attributes: Attributes, value: float) -> None:
        """One request of the series ``key`` (whose attributes are ``attributes``, never
        changed afterwards) took ``value`` seconds."""
        bucket = bisect_left(self._bounds, value)
        with self._lock:
            for consumer in self._consumers:
                series = consumer.series.get(key)
                if series is None:
                    series = self._new_series(consumer, key, attributes)
                series.counts[bucket] += 1
                series.count += 1
                series.sum += value
                if value < series.min:
                    series.min = value
                if value > series.max:
                    series.max = value

    def _new_series(self, consumer: _Consumer, key: SeriesKey, attributes: Attributes) -> _Series:
        if len(consumer.series) >= CARDINALITY_LIMIT - 1:
            key, attributes = _OVERFLOW, OVERFLOW_ATTRIBUTES
            series = consumer.series.get(key)
            if series is not None:
                return series
        series = consumer.series[key] = _Series(attributes, len(self._bounds) + 1)
        return series

    def merged(self, data: MetricsData, consumer: int) -> MetricsData:
        """``data`` (a collection of the SDK's) with this histogram, as ``consumer`` sees
        it now, in the service meter's scope (in place of any the SDK made)."""
        resources = []
        for resource in data.resource_metrics:
            scopes = []
            for scope in resource.scope_metrics:
                if scope.scope.name == self._scope_name:
                    scope = self._with_histogram(scope, consumer)
                scopes.append(scope)
            resources.append(ResourceMetrics(resource.resource, scopes, resource.schema_url))
        return MetricsData(resources)

    def _with_histogram(self, scope: ScopeMetrics, consumer: int) -> ScopeMetrics:
        metrics = [m for m in scope.metrics if m.name != self.name]
        histogram = self._collect(consumer, _temporality(metrics))
        if histogram is not None:
            metrics.append(histogram)
        return ScopeMetrics(scope.scope, metrics, scope.schema_url)

    def _collect(self, index: int, seen: AggregationTemporality | None) -> Metric | None:
        now = time.time_ns()
        with self._lock:
            consumer = self._consumers[index]
            if consumer.temporality is None:
                consumer.temporality = seen
            temporality = consumer.temporality or AggregationTemporality.CUMULATIVE
            since = consumer.since_ns
            series = list(consumer.series.values())
            points = [
                HistogramDataPoint(
                    attributes=dict(s.attributes),
                    start_time_unix_nano=since,
                    time_unix_nano=now,
                    count=s.count,
                    sum=s.sum,
                    bucket_counts=list(s.counts),
                    explicit_bounds=self._bounds,
                    min=s.min,
                    max=s.max,
                )
                for s in series
            ]
            if temporality is AggregationTemporality.DELTA:
                consumer.series = {}
                consumer.since_ns = now
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self._description,
            unit=self._unit,
            data=Histogram(data_points=points, aggregation_temporality=temporality),
        )


def _temporality(metrics: Sequence[Metric]) -> AggregationTemporality | None:
    """The temporality this reader gives histograms: that of its monotonic sums (the
    counters), which the SDK's presets always give the same one; None without any."""
    for metric in metrics:
        if isinstance(metric.data, Sum) and metric.data.is_monotonic:
            return metric.data.aggregation_temporality
    return None
