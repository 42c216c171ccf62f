"""What the log says for an operator (issue #14): every command's end (id, vehicle,
status, error code, duration), storage errors, and /health/* only at DEBUG."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from tests.support.harness import Server, auth

pytestmark = pytest.mark.fast


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[Any]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


def test_a_command_end_is_logged_with_its_outcome(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = server.token()
    vehicle = server.vehicle(token, "unreachable", "connected")["vehicle_id"]
    cid = server.submit(token, vehicle)["command_id"]
    ended = server.wait_status(token, cid)
    (line,) = [r for r in _records(caplog, "command_end") if r.command_id == cid]
    assert (line.vehicle_id, line.status, line.error_code) == (
        vehicle,
        ended["status"],
        ended["error_code"],
    )
    assert line.error_code == "vehicle-unreachable"
    assert isinstance(line.duration_ms, float) and line.duration_ms >= 0
    assert line.getMessage() == f"command {cid} ended failed"


def test_health_probes_log_at_debug_and_the_api_at_info(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.access")
    server.http.get("/health/live")
    server.http.get("/health/ready")
    server.http.get("/api/v1/auth/me")
    levels = {r.path: r.levelno for r in _records(caplog, "request")}
    assert levels == {
        "/health/live": logging.DEBUG,
        "/health/ready": logging.DEBUG,
        "/api/v1/auth/me": logging.INFO,
    }


def test_a_storage_error_is_logged(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    admin = server.admin_token()
    writer = server.services.db._writer  # the database's own connection: refuse writes
    assert writer is not None
    server.run(writer.execute("PRAGMA query_only = 1"))
    try:
        r = server.http.post(
            "/api/v1/users",
            headers=auth(admin),
            json={"username": "someone", "password": "password-123", "role": "engineer"},
        )
    finally:
        server.run(writer.execute("PRAGMA query_only = 0"))
    assert r.status_code == 503, r.text
    (line,) = _records(caplog, "storage_error")
    assert line.levelno == logging.WARNING
    assert line.path == "/api/v1/users"
    assert line.request_id == r.headers["x-request-id"]
