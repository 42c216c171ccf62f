"""OTLP/HTTP push: a receiver inside the test decodes what the service sends."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)

from otel.names import HTTP_DURATION_BUCKETS
from tests.support import otlp_traces
from tests.support.harness import in_process, make_config, running, wait_until
from tests.support.otlp_traces import OtlpReceiver, TraceReceiver, of_command
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket


class Receiver(OtlpReceiver[ExportMetricsServiceRequest]):
    def __init__(self) -> None:
        super().__init__(ExportMetricsServiceRequest, ExportMetricsServiceResponse)

    def latest(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        """Data points of the newest export, by metric name and attributes."""
        points: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
        requests = self.received()
        if not requests:
            return points
        for rm in requests[-1].resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    kind = metric.WhichOneof("data")
                    for dp in getattr(metric, kind).data_points:
                        attrs = frozenset((a.key, a.value.string_value) for a in dp.attributes)
                        if kind == "histogram":
                            number = float(dp.count)
                        else:
                            number = dp.as_double if dp.HasField("as_double") else float(dp.as_int)
                        points[(metric.name, attrs)] = number
        return points


traces = otlp_traces.traces  # the trace receiver fixture


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as rec:
        yield rec


def test_custom_metrics_are_pushed_over_otlp_http(tmp_path: Path, receiver: Receiver) -> None:
    config = make_config(tmp_path, otlp_endpoint=receiver.url, otlp_export_interval_ms=200)
    with running(config) as srv:
        token = srv.token()
        srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
        srv.wait_status(
            token, srv.submit(token, srv.vehicle(token, "unreachable")["vehicle_id"])["command_id"]
        )

        def arrived() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
            points = receiver.latest()
            done = points.get(
                ("commands_executed", frozenset({("command", "ReadDTC"), ("status", "failed")}))
            )
            return points if done == 1 else None

        points = wait_until(arrived, "an OTLP export with both commands")
        # Prometheus scraping keeps working at the same time.
        assert (
            value(
                scrape(srv.http), "commands_executed_total", command="ReadDTC", status="completed"
            )
            == 1
        )
    assert receiver.paths[-1] == "/v1/metrics"
    assert (
        points[("commands_executed", frozenset({("command", "ReadDTC"), ("status", "completed")}))]
        == 1
    )
    assert (
        points[("commands_executed", frozenset({("command", "ReadDTC"), ("status", "timeout")}))]
        == 0
    )
    assert (
        points[
            (
                "command_execution_duration",
                frozenset({("command", "ReadDTC"), ("status", "completed")}),
            )
        ]
        == 1
    )
    assert points[("sovd_response_chunks", frozenset())] == 3
    assert points[("vehicle_connections_active", frozenset())] == 5
    resource = {
        a.key: a.value.string_value
        for a in receiver.requests[-1].resource_metrics[0].resource.attributes
    }
    assert resource["service.name"] == "sovd-command-service"


def test_http_durations_are_pushed_over_otlp_as_scraped(tmp_path: Path, receiver: Receiver) -> None:
    """The service aggregates http.server.request.duration itself (issue #24): the OTLP
    push carries it as the SDK would, with the counts /metrics shows."""
    config = make_config(tmp_path, otlp_endpoint=receiver.url, otlp_export_interval_ms=200)
    route = "/api/v1/vehicles"
    with running(config) as srv:
        headers = {"Authorization": f"Bearer {srv.token()}"}
        for _ in range(7):
            assert srv.http.get(route, headers=headers).status_code == 200
        scraped = value(
            scrape(srv.http),
            "http_server_request_duration_seconds_count",
            http_request_method="GET",
            http_route=route,
            http_response_status_code="200",
        )

        def pushed() -> list[tuple[int, list[int], list[float]]] | None:
            found = [
                (dp.count, list(dp.bucket_counts), list(dp.explicit_bounds))
                for request in receiver.received()[-1:]
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
                if metric.name == "http.server.request.duration"
                for dp in metric.histogram.data_points
                if {a.key: a.value.string_value or a.value.int_value for a in dp.attributes}
                == {
                    "http.request.method": "GET",
                    "http.route": route,
                    "http.response.status_code": 200,
                }
            ]
            return found if found and found[0][0] == 7 else None

        ((count, buckets, bounds),) = wait_until(pushed, "an OTLP export with the 7 requests")
    assert scraped == 7
    assert sum(buckets) == count == 7
    assert bounds == list(HTTP_DURATION_BUCKETS)
    assert len(buckets) == len(bounds) + 1


def test_sampled_commands_are_exemplars_in_the_otlp_push(
    tmp_path: Path, receiver: Receiver, traces: TraceReceiver
) -> None:
    """Issue #13: with tracing on, the pushed duration histogram carries the trace id of
    a sampled command as an exemplar (as /metrics does in OpenMetrics)."""
    config = make_config(
        tmp_path,
        otlp_metrics_endpoint=f"{receiver.url}/v1/metrics",
        otlp_traces_endpoint=traces.traces_url,
        otlp_export_interval_ms=200,
    )
    with in_process(config) as srv:
        token = srv.token()
        command = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, command)

        def exemplars() -> list[bytes] | None:
            found = [
                exemplar.trace_id
                for request in receiver.received()
                for rm in request.resource_metrics
                for sm in rm.scope_metrics
                for metric in sm.metrics
                if metric.name == "command_execution_duration"
                for dp in metric.histogram.data_points
                for exemplar in dp.exemplars
            ]
            return found or None

        pushed = wait_until(exemplars, "an OTLP export with an exemplar")
    command_trace = {s.trace_id for s in of_command(traces.spans(), command)}
    assert len(command_trace) == 1
    assert {trace_id.hex() for trace_id in pushed} == command_trace
