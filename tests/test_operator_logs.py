"""What the log says for an operator (issue #14): every command's end (id, vehicle,
status, error code, duration), storage errors, and /health/* and /metrics only at DEBUG
(issue #25: in the real process's output too)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Server, auth, wait_until
from tests.support.process import Process, server_env

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
    # The line follows the stored end (the status can be read a moment before it).
    (line,) = wait_until(
        lambda: [r for r in _records(caplog, "command_end") if r.command_id == cid],
        "the command_end line",
    )
    assert (line.vehicle_id, line.status, line.error_code) == (
        vehicle,
        ended["status"],
        ended["error_code"],
    )
    assert line.error_code == "vehicle-unreachable"
    assert isinstance(line.duration_ms, float) and line.duration_ms >= 0
    assert line.getMessage() == f"command {cid} ended failed"


@pytest.mark.socket
def test_a_command_is_one_line_at_info_naming_its_submit(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue #22 item 7: submitted and streamed to its end, a command writes one INFO line,
    ``command_end``, with the submit's request id and user; the submit's access line and
    the stream's accept and close lines are at DEBUG."""
    caplog.set_level(logging.DEBUG)
    token = server.token()
    vehicle = server.vehicle(token)["vehicle_id"]
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": vehicle,
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    assert r.status_code == 201, r.text
    cid = r.json()["command_id"]
    events, code = server.stream(cid, token)
    assert (events[-1]["status"], code) == ("completed", 1000)
    wait_until(lambda: _records(caplog, "command_end"), "the command_end line")
    wait_until(lambda: _records(caplog, "ws_closed"), "the stream's close line")
    submit = [r for r in _records(caplog, "request") if r.path == "/api/v1/commands"]
    streams = [r for r in caplog.records if getattr(r, "command_id", None) == cid]
    lines = {(r.event, r.levelname) for r in [*submit, *streams]}
    assert lines == {
        ("request", "DEBUG"),
        ("ws_accept", "DEBUG"),
        ("ws_closed", "DEBUG"),
        ("command_end", "INFO"),
    }
    (end,) = _records(caplog, "command_end")
    assert (end.command_id, end.request_id, end.user) == (
        cid,
        r.headers["x-request-id"],
        "engineer",
    )
    assert (end.command_name, end.vehicle_id, end.status) == ("ReadDTC", vehicle, "completed")
    assert submit[0].request_id == end.request_id


def test_a_refused_submit_keeps_its_line_at_info(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    token = server.token()
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={"vehicle_id": "no-such-vehicle", "command_name": "ReadDTC", "command_params": {}},
    )
    assert r.status_code >= 400
    (line,) = [x for x in _records(caplog, "request") if x.path == "/api/v1/commands"]
    assert (line.levelno, line.status) == (logging.INFO, r.status_code)


def test_probes_and_scrapes_log_at_debug_and_the_api_at_info(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.access")
    server.http.get("/health/live")
    server.http.get("/health/ready")
    server.http.get("/metrics")
    server.http.get("/api/v1/auth/me")
    levels = {r.path: r.levelno for r in _records(caplog, "request")}
    assert levels == {
        "/health/live": logging.DEBUG,
        "/health/ready": logging.DEBUG,
        "/metrics": logging.DEBUG,
        "/api/v1/auth/me": logging.INFO,
    }


@pytest.mark.socket
def test_the_real_log_at_info_has_no_scrape_or_probe_lines(tmp_path: Path) -> None:
    """Issue #25: ``python -m app`` at its default level, scraped and probed as Prometheus
    and Docker do: its stdout has no line for them, but one for each API request and for
    a scrape refused for a wrong token (a misconfiguration must show)."""
    proc = Process(
        server_env(tmp_path, SOVD_METRICS_TOKEN="scrape-token-1", SOVD_PASSWORD_HASH_PROFILE="fast")
    )
    try:
        scrape = {"Authorization": "Bearer scrape-token-1"}
        for _ in range(3):
            assert proc.http.get("/metrics", headers=scrape).status_code == 200
            assert proc.http.get("/health/live").status_code == 200
            assert proc.http.get("/health/ready").status_code == 200
        assert (
            proc.http.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
        )
        assert proc.http.get("/api/v1/auth/me").status_code == 401
        # The last request's line is written when it ends: wait for it, then read them all.
        requests = wait_until(
            lambda: (
                [
                    r
                    for r in proc.log_records()
                    if r.get("event") == "request" and r["path"] == "/api/v1/auth/me"
                ]
                and [r for r in proc.log_records() if r.get("event") == "request"]
            ),
            "the API request's log line",
        )
        ready = [r for r in proc.log_records() if r.get("event") == "ready"]
    finally:
        proc.stop()
    # Start-up's objects are frozen out of the collector's reach (docs/performance.md).
    assert len(ready) == 1 and ready[0]["frozen_objects"] > 10_000, ready
    assert [(r["path"], r["status"], r["level"]) for r in requests] == [
        ("/metrics", 401, "info"),
        ("/api/v1/auth/me", 401, "info"),
    ]


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
