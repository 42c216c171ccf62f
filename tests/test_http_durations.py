"""http.server.request.duration aggregated by the service (otel.http_durations, issue #24):
the same points the SDK's explicit-bucket aggregation makes, for each reader in its own
temporality."""

from __future__ import annotations

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricsData,
)
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View

from otel import names
from otel.http_durations import CARDINALITY_LIMIT, OVERFLOW_ATTRIBUTES, HttpDurations

pytestmark = pytest.mark.fast

SCOPE = "sovd-command-service"
SDK_TWIN = "sdk.twin"  # the same values through the SDK's own histogram
BOUNDS = names.HTTP_DURATION_BUCKETS
DELTA = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA}


def _provider(*readers: InMemoryMetricReader) -> MeterProvider:
    return MeterProvider(
        metric_readers=list(readers),
        views=[
            View(
                instrument_name=SDK_TWIN,
                aggregation=ExplicitBucketHistogramAggregation(BOUNDS),
            )
        ],
    )


def _durations() -> HttpDurations:
    return HttpDurations(
        names.HTTP_DURATION, "Duration of HTTP server requests", "s", BOUNDS, SCOPE
    )


def _points(
    data: MetricsData, name: str
) -> dict[tuple[tuple[str, object], ...], HistogramDataPoint]:
    found: dict[tuple[tuple[str, object], ...], HistogramDataPoint] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == SCOPE
            for metric in scope.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        assert isinstance(point, HistogramDataPoint)
                        found[tuple(sorted((point.attributes or {}).items()))] = point
    return found


def _collect(reader: InMemoryMetricReader) -> MetricsData:
    data = reader.get_metrics_data()
    assert data is not None
    return data


def test_points_are_the_ones_the_sdk_aggregation_makes() -> None:
    reader = InMemoryMetricReader()
    meter = _provider(reader).get_meter(SCOPE)
    meter.create_counter("requests").add(0)  # the service's counters exist from the start
    twin = meter.create_histogram(SDK_TWIN, unit="s")
    durations = _durations()
    consumer = durations.consumer()
    get = {"http.request.method": "GET", "http.route": "/a", "http.response.status_code": 200}
    post = {"http.request.method": "POST", "http.route": "/b", "http.response.status_code": 404}
    # Every boundary itself, values between them, zero and past the last one.
    values = [0.0, *BOUNDS, *(b * 1.5 for b in BOUNDS), 0.0001, 42.0]
    for i, value in enumerate(values):
        attrs = get if i % 3 else post
        twin.record(value, attrs)
        durations.record(
            (str(attrs["http.request.method"]), str(attrs["http.route"]), 200 if i % 3 else 404),
            attrs,
            value,
        )

    data = durations.merged(_collect(reader), consumer)

    ours, sdk = _points(data, names.HTTP_DURATION), _points(data, SDK_TWIN)
    assert len(ours) == 2 and ours.keys() == sdk.keys()
    for key, point in ours.items():
        expected = sdk[key]
        assert point.count == expected.count
        assert point.sum == pytest.approx(expected.sum)
        assert list(point.bucket_counts) == list(expected.bucket_counts)
        assert list(point.explicit_bounds) == list(expected.explicit_bounds)
        assert (point.min, point.max) == (expected.min, expected.max)
    assert sum(p.count for p in ours.values()) == len(values)
    metric = next(
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == names.HTTP_DURATION
    )
    assert (metric.unit, metric.data.aggregation_temporality) == (
        "s",
        AggregationTemporality.CUMULATIVE,
    )


def test_a_delta_reader_starts_over_and_a_cumulative_one_counts_on() -> None:
    cumulative, delta = InMemoryMetricReader(), InMemoryMetricReader(preferred_temporality=DELTA)
    meter = _provider(cumulative, delta).get_meter(SCOPE)
    meter.create_counter("requests").add(0)  # in the first collection only, for delta
    # Observed at every collection, as the service's active requests are: a collection
    # is never empty (the SDK hands a reader nothing at all otherwise).
    meter.create_observable_up_down_counter("active", callbacks=[lambda options: [Observation(0)]])
    durations = _durations()
    to_cumulative, to_delta = durations.consumer(), durations.consumer()
    key = ("GET", "/a", 200)
    attrs = {"http.request.method": "GET", "http.route": "/a", "http.response.status_code": 200}
    for value in (0.5, 0.001, 3.0):
        durations.record(key, attrs, value)
    first_c = _points(durations.merged(_collect(cumulative), to_cumulative), names.HTTP_DURATION)
    first_d = _points(durations.merged(_collect(delta), to_delta), names.HTTP_DURATION)
    for value in (0.02, 0.03):
        durations.record(key, attrs, value)
    second_c = _points(durations.merged(_collect(cumulative), to_cumulative), names.HTTP_DURATION)
    second_d = _points(durations.merged(_collect(delta), to_delta), names.HTTP_DURATION)
    nothing_new = _points(durations.merged(_collect(delta), to_delta), names.HTTP_DURATION)

    (c1,), (c2,), (d1,), (d2,) = (p.values() for p in (first_c, second_c, first_d, second_d))
    assert (c1.count, c2.count) == (3, 5)
    assert (c2.min, c2.max) == (0.001, 3.0)
    assert c2.start_time_unix_nano == c1.start_time_unix_nano
    assert (d1.count, d2.count) == (3, 2)
    assert (d2.min, d2.max) == (0.02, 0.03)
    assert d2.sum == pytest.approx(0.05)
    assert d2.start_time_unix_nano == d1.time_unix_nano  # it starts where the last ended
    assert nothing_new == {}  # no requests in the interval: no point


def test_series_past_the_sdk_limit_fold_into_its_overflow_series() -> None:
    reader = InMemoryMetricReader()
    _provider(reader).get_meter(SCOPE).create_counter("requests").add(0)
    durations = _durations()
    consumer = durations.consumer()
    extra = 25
    for status in range(CARDINALITY_LIMIT + extra):
        attrs = {
            "http.request.method": "GET",
            "http.route": "/a",
            "http.response.status_code": status,
        }
        durations.record(("GET", "/a", status), attrs, 0.01)

    points = _points(durations.merged(_collect(reader), consumer), names.HTTP_DURATION)

    assert len(points) == CARDINALITY_LIMIT
    overflow = points[tuple(OVERFLOW_ATTRIBUTES.items())]
    assert overflow.count == extra + 1  # the SDK keeps limit - 1 series and the overflow
    assert sum(p.count for p in points.values()) == CARDINALITY_LIMIT + extra


def test_it_takes_the_place_of_an_sdk_metric_of_its_name() -> None:
    reader = InMemoryMetricReader()
    meter = _provider(reader).get_meter(SCOPE)
    meter.create_counter("requests").add(0)
    stray = meter.create_histogram(names.HTTP_DURATION, unit="s")
    durations = _durations()
    consumer = durations.consumer()
    attrs = {"http.request.method": "GET", "http.route": "/a", "http.response.status_code": 200}
    for _ in range(5):
        stray.record(0.01, attrs)
    durations.record(("GET", "/a", 200), attrs, 0.01)

    data = durations.merged(_collect(reader), consumer)

    named = [
        m
        for r in data.resource_metrics
        for s in r.scope_metrics
        for m in s.metrics
        if m.name == names.HTTP_DURATION
    ]
    assert len(named) == 1
    assert [p.count for p in named[0].data.data_points] == [1]
