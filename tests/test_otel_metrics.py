"""/metrics on real data: the exact names, labels and deltas operators rely on."""

from __future__ import annotations

import gzip
import socket
import struct
from contextlib import ExitStack
from pathlib import Path

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om_parse
from websockets.sync.client import connect

from tests.support.harness import DEADLINE_S, Server, auth, make_config, running, wait_until
from tests.support.scrape import parse, scrape, total, value

pytestmark = pytest.mark.socket

STATUSES = ("completed", "failed", "timeout", "cancelled", "refused")
COMMANDS = (
    "ReadDTC",
    "ClearDTC",
    "ReadDataByID",
    "DiagnosticSessionControl",
    "RoutineControl",
    "DiagService",
)


def test_every_custom_metric_is_there_from_the_first_scrape(server: Server) -> None:
    samples = scrape(server.http)
    executed = {lbls for (name, lbls) in samples if name == "commands_executed_total"}
    # Every command by every status, at 0: 6 x 5 series, no more (docs/telemetry.md).
    assert len(executed) == len(COMMANDS) * len(STATUSES)
    for command in COMMANDS:
        for status in STATUSES:
            assert value(samples, "commands_executed_total", command=command, status=status) == 0
    assert value(samples, "sovd_command_timeout_total") == 0
    assert value(samples, "sovd_response_chunks_total") == 0
    assert value(samples, "websocket_connections_active") == 0
    assert value(samples, "sovd_commands_in_flight") == 0
    assert value(samples, "vehicle_connections_active") == 5  # the demo fleet's connected ones
    assert total(samples, "sovd_authentication_failures_total") == 0
    info = [lbls for (name, lbls) in samples if name == "target_info"]
    assert len(info) == 1 and ("service_name", "sovd-command-service") in info[0]


def test_scripted_scenario_moves_each_metric_by_exactly_its_delta(tmp_path: Path) -> None:
    with running(make_config(tmp_path, command_timeout_s=1.0)) as srv:
        token = srv.token()
        before = scrape(srv.http)
        for profile in ("healthy", "unreachable", "malformed"):
            srv.wait_status(
                token, srv.submit(token, srv.vehicle(token, profile)["vehicle_id"])["command_id"]
            )
        stuck = srv.submit(token, srv.vehicle(token, "timeout")["vehicle_id"])["command_id"]
        url = f"{srv.ws_url}/ws/responses/{stuck}?token={token}"
        with ExitStack() as stack:
            for _ in range(3):
                stack.enter_context(connect(url, open_timeout=DEADLINE_S))
            wait_until(
                lambda: value(scrape(srv.http), "websocket_connections_active") == 3,
                "the WebSocket gauge to show 3",
            )
        wait_until(
            lambda: value(scrape(srv.http), "websocket_connections_active") == 0,
            "the WebSocket gauge to return to 0",
        )
        srv.wait_status(token, stuck)
        admin = srv.admin_token()
        vehicle = srv.vehicle(admin)
        url = f"/api/v1/vehicles/{vehicle['vehicle_id']}"
        srv.http.patch(url, headers=auth(admin), json={"connection_status": "disconnected"})
        down = scrape(srv.http)
        srv.http.patch(url, headers=auth(admin), json={"connection_status": "connected"})
        after = scrape(srv.http)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("commands_executed_total", command="ReadDTC", status="completed") == 1
    assert delta("commands_executed_total", command="ReadDTC", status="timeout") == 1
    assert delta("commands_executed_total", command="ReadDTC", status="failed") == 2
    assert delta("sovd_command_timeout_total") == 1
    assert delta("sovd_response_chunks_total") == 3
    assert total(after, "command_execution_duration_seconds_count") == 4
    assert (
        value(after, "command_execution_duration_seconds_count", command="ReadDTC", status="failed")
        == 2
    )
    timeout_sum = value(
        after, "command_execution_duration_seconds_sum", command="ReadDTC", status="timeout"
    )
    assert 1.0 <= timeout_sum < 1.0 + DEADLINE_S
    assert (
        value(
            after,
            "command_execution_duration_seconds_bucket",
            command="ReadDTC",
            status="timeout",
            le="0.5",
        )
        == 0
    )
    assert (
        value(
            after,
            "command_execution_duration_seconds_bucket",
            command="ReadDTC",
            status="timeout",
            le="+Inf",
        )
        == 1
    )
    connected = value(before, "vehicle_connections_active")
    assert value(down, "vehicle_connections_active") == connected - 1
    assert value(after, "vehicle_connections_active") == connected
    assert value(after, "websocket_connections_active") == 0
    assert value(after, "sovd_commands_in_flight") == 0


def test_abnormal_websocket_close_brings_the_gauge_back(tmp_path: Path) -> None:
    with running(make_config(tmp_path, command_timeout_s=30)) as srv:
        token = srv.token()
        stuck = srv.submit(token, srv.vehicle(token, "timeout")["vehicle_id"])["command_id"]
        ws = connect(
            f"{srv.ws_url}/ws/responses/{stuck}?token={token}", open_timeout=DEADLINE_S, legacy=True
        )
        wait_until(
            lambda: value(scrape(srv.http), "websocket_connections_active") == 1,
            "the socket to be counted",
        )
        # Drop the TCP connection without a close frame (RST).
        ws.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.socket.close()
        wait_until(
            lambda: value(scrape(srv.http), "websocket_connections_active") == 0,
            "the gauge to drop after the reset",
        )


def test_interrupted_commands_count_as_failed(tmp_path: Path) -> None:
    config = make_config(tmp_path, command_timeout_s=30, shutdown_grace_s=0)
    with running(config) as srv:
        token = srv.token()
        stuck = srv.submit(token, srv.vehicle(token, "timeout")["vehicle_id"])["command_id"]
        srv.wait_status(token, stuck, "in_progress")
        srv.run(srv.app.state.lifecycle.drain(0))
        samples = scrape(srv.http)
        assert value(samples, "commands_executed_total", command="ReadDTC", status="failed") == 1
        assert value(samples, "commands_executed_total", command="ReadDTC", status="timeout") == 0
        assert value(samples, "sovd_commands_in_flight") == 0


def test_auth_failures_are_counted_by_reason(server: Server) -> None:
    server.http.post("/api/v1/auth/login", json={"username": "engineer", "password": "bad-pass"})
    server.http.get("/api/v1/vehicles")
    server.http.get("/api/v1/vehicles", headers=auth("garbage"))
    samples = scrape(server.http)
    assert value(samples, "sovd_authentication_failures_total", reason="bad_credentials") == 1
    assert value(samples, "sovd_authentication_failures_total", reason="missing_token") == 1
    assert value(samples, "sovd_authentication_failures_total", reason="invalid_token") == 1


def test_http_metrics_use_route_templates_and_skip_metrics_and_health(server: Server) -> None:
    token = server.token()
    cid = server.submit(token, server.vehicle(token)["vehicle_id"])["command_id"]
    for _ in range(2):
        server.http.get(f"/api/v1/commands/{cid}", headers=auth(token))
    server.http.get("/api/v1/commands/not-a-uuid", headers=auth(token))
    server.http.get("/no/such/path/1")
    server.http.get("/no/such/path/2")
    server.http.get("/health/live")
    server.http.get("/health/ready")
    server.http.get("/metrics")
    samples = scrape(server.http)
    name = "http_server_request_duration_seconds_count"
    route = "/api/v1/commands/{command_id}"
    assert (
        value(
            samples,
            name,
            http_route=route,
            http_request_method="GET",
            http_response_status_code="200",
        )
        == 2
    )
    assert value(samples, name, http_route=route, http_response_status_code="404") == 1
    assert value(samples, name, http_route="unmatched") == 2
    assert (
        value(
            samples,
            name,
            http_route="/api/v1/commands",
            http_request_method="POST",
            http_response_status_code="201",
        )
        == 1
    )
    routes = {dict(lbls).get("http_route") for (n, lbls) in samples if n == name}
    assert not any(r and (r.startswith(("/health", "/metrics")) or cid in r) for r in routes)
    assert total(samples, "http_server_active_requests") == 0


def test_openmetrics_and_gzip_are_negotiated(server: Server) -> None:
    r = server.http.get(
        "/metrics",
        headers={
            "Accept": "application/openmetrics-text; version=1.0.0",
            "Accept-Encoding": "identity",
        },
    )
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    families = {f.name for f in om_parse(r.text)}
    assert {"commands_executed", "websocket_connections_active"} <= families
    with server.http.stream("GET", "/metrics", headers={"Accept-Encoding": "gzip"}) as r:
        assert r.headers["content-encoding"] == "gzip"
        body = gzip.decompress(b"".join(r.iter_raw())).decode()
    assert value(parse(body), "commands_executed_total", command="ReadDTC", status="completed") == 0
    plain = server.http.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.headers["content-type"].startswith("text/plain")
    assert (
        value(parse(plain.text), "commands_executed_total", command="ReadDTC", status="completed")
        == 0
    )
    # No redirect: /metrics is a route of its own.
    assert plain.status_code == 200 and not plain.history


def test_metrics_token_protects_the_scrape(tmp_path: Path) -> None:
    with running(make_config(tmp_path, metrics_token="scrape-secret-123")) as srv:
        r = srv.http.get("/metrics")
        assert r.status_code == 401 and r.json()["error_code"] == "unauthorized"
        assert srv.http.get("/metrics", headers=auth("wrong")).status_code == 401
        samples = scrape(srv.http, Authorization="Bearer scrape-secret-123")
        assert value(samples, "vehicle_connections_active") == 5


def test_metrics_can_be_turned_off(tmp_path: Path) -> None:
    with running(make_config(tmp_path, metrics_enabled=False)) as srv:
        assert srv.http.get("/metrics").status_code == 404
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        assert srv.wait_status(token, cid)["status"] == "completed"


@pytest.mark.parametrize("attrs", ["deployment.environment=lab,site=bench%201"])
def test_resource_attributes_reach_target_info(
    tmp_path: Path, attrs: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Read by the OpenTelemetry SDK itself (app.config only checks them).
    monkeypatch.setenv("OTEL_SERVICE_NAME", "sovd-lab")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", attrs)
    config = make_config(tmp_path)
    with running(config) as srv:
        info = [dict(lbls) for (name, lbls) in scrape(srv.http) if name == "target_info"]
    assert len(info) == 1
    assert info[0]["service_name"] == "sovd-lab"
    assert info[0]["deployment_environment"] == "lab"
    assert info[0]["site"] == "bench 1"


def test_an_ecu_refusal_is_counted_apart_from_service_failures(server: Server) -> None:
    """Issue #25: a clear the body ECU refuses outside its extended session is
    ``status="refused"`` under its command; an unreachable vehicle is ``failed``."""
    token = server.token()
    before = scrape(server.http)
    healthy = server.vehicle(token, "healthy")["vehicle_id"]
    refused = server.submit(token, healthy, "ClearDTC", {"ecuAddress": "0x0040"})["command_id"]
    assert server.wait_status(token, refused)["error_code"] == "error-response"
    down = server.vehicle(token, "unreachable")["vehicle_id"]
    server.wait_status(token, server.submit(token, down, "ClearDTC")["command_id"])
    after = scrape(server.http)

    def delta(status: str) -> float:
        labels = {"command": "ClearDTC", "status": status}
        return value(after, "commands_executed_total", **labels) - value(
            before, "commands_executed_total", **labels
        )

    assert (delta("refused"), delta("failed"), delta("completed")) == (1, 1, 0)
    assert total(after, "commands_executed_total", command="ReadDTC") == 0
    assert (
        value(
            after, "command_execution_duration_seconds_count", command="ClearDTC", status="refused"
        )
        == 1
    )
