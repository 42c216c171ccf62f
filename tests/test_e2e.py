"""The real server process, started with ``python -m app``, driven over the network."""

from __future__ import annotations

import json
import re
import signal
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from tests.support.harness import DEADLINE_S, ENGINEER_PASSWORD, wait_until
from tests.support.process import (
    Process,
    end_after_restart,
    run_app,
    server_env,
    submit_command,
    vehicle_with_profile,
)

pytestmark = pytest.mark.socket


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    proc = Process(server_env(tmp_path))
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def test_quick_start_flow_over_the_network(process: Process) -> None:
    token = process.token()
    cid = submit_command(process, token, vehicle_with_profile(process, token, "healthy"))
    url = process.base_url.replace("http", "ws") + f"/ws/responses/{cid}?token={token}"
    events = []
    with connect(url, open_timeout=DEADLINE_S) as ws:
        for message in ws:
            events.append(json.loads(message))
        assert ws.close_code == 1000
    assert [e["event"] for e in events] == ["status", "response", "response", "response", "status"]
    assert events[-1]["status"] == "completed"
    assert process.stop(signal.SIGTERM) == 0
    records = process.log_records()
    assert any(r.get("event") == "stopped" for r in records)
    # At INFO a command is one structured line, its end, naming the request that
    # submitted it (whose own access line and the stream's lines are at DEBUG).
    (end,) = [r for r in records if r.get("command_id") == cid]
    assert end["event"] == "command_end" and end["level"] == "info"
    assert (end["status"], end["command_name"], end["user"]) == ("completed", "ReadDTC", "engineer")
    assert end["request_id"] and end["duration_ms"] >= 0
    assert {"time", "message", "vehicle_id", "error_code"} <= set(end)
    assert not [
        r for r in records if r.get("event") == "request" and r["path"] == "/api/v1/commands"
    ]
    # Other requests keep their one line each, with what an operator needs.
    login = next(
        r for r in records if r.get("event") == "request" and r["path"] == "/api/v1/auth/login"
    )
    assert (login["method"], login["status"], login["level"]) == ("POST", 200, "info")
    assert login["request_id"] and login["duration_ms"] >= 0
    assert {"time", "level", "message", "route", "user"} <= set(login)
    # Never a token or a password: the WebSocket's ?token= and the login body stay out.
    assert all(token not in line for line in process.lines)
    assert all(ENGINEER_PASSWORD not in line for line in process.lines)


def test_sigterm_drains_running_commands_and_exits_0(tmp_path: Path) -> None:
    proc = Process(server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="60", SOVD_SHUTDOWN_GRACE_S="0.5"))
    try:
        token = proc.token()
        cid = submit_command(proc, token, vehicle_with_profile(proc, token, "timeout"))
        url = proc.base_url.replace("http", "ws") + f"/ws/responses/{cid}?token={token}"
        with connect(url, open_timeout=DEADLINE_S) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            signalled = time.monotonic()
            proc.proc.send_signal(signal.SIGTERM)
            for _ in ws:
                pass
            assert ws.close_code == 1001
        assert proc.proc.wait(DEADLINE_S) == 0
        # Grace 0.5 s for the running command, then the socket close and the shutdown.
        assert time.monotonic() - signalled < 0.5 + 5
    finally:
        proc.stop(signal.SIGKILL)
    assert end_after_restart(server_env(tmp_path), cid) == ("failed", "interrupted")


def test_kill_9_loses_no_acknowledged_command_and_leaves_none_running(tmp_path: Path) -> None:
    proc = Process(server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="60"))
    token = proc.token()
    stuck = vehicle_with_profile(proc, token, "timeout")
    healthy = vehicle_with_profile(proc, token, "healthy")
    acknowledged = [submit_command(proc, token, stuck) for _ in range(3)]  # 1 running, 2 queued
    done = submit_command(proc, token, healthy)
    headers = {"Authorization": f"Bearer {token}"}
    wait_until(
        lambda: (
            proc.http.get(f"/api/v1/commands/{done}", headers=headers).json()["status"]
            == "completed"
        ),
        "the healthy command to complete",
    )
    wait_until(
        lambda: (
            proc.http.get(f"/api/v1/commands/{acknowledged[0]}", headers=headers).json()["status"]
            == "in_progress"
        ),
        "the stuck command to run",
    )
    assert proc.stop(signal.SIGKILL) == -signal.SIGKILL

    again = Process(server_env(tmp_path))
    try:
        token = again.token()
        headers = {"Authorization": f"Bearer {token}"}
        listed = again.http.get("/api/v1/commands", headers=headers).json()
        by_id = {c["command_id"]: c for c in listed["items"]}
        assert set(by_id) == {*acknowledged, done}
        for cid in acknowledged:
            assert (by_id[cid]["status"], by_id[cid]["error_code"]) == ("failed", "interrupted")
        assert by_id[done]["status"] == "completed"
        assert any(r.get("event") == "recovery" for r in again.log_records())
        # And the restarted server works.
        cid = submit_command(again, token, vehicle_with_profile(again, token, "healthy"))
        wait_until(
            lambda: (
                again.http.get(f"/api/v1/commands/{cid}", headers=headers).json()["status"]
                == "completed"
            ),
            "a new command to complete",
        )
    finally:
        again.stop()


def test_first_start_generates_passwords_once_and_a_private_key_file(tmp_path: Path) -> None:
    env = server_env(tmp_path)
    del env["SOVD_ENGINEER_PASSWORD"], env["SOVD_ADMIN_PASSWORD"]
    first = Process(env)
    try:
        generated = {}
        for record in first.log_records():
            if record.get("event") == "initial_user_password":
                match = re.search(r"user (\w+) .*: (\S+)$", record["message"])
                assert match
                generated[match.group(1)] = match.group(2)
        assert set(generated) == {"admin", "engineer"}
        assert first.token(generated["engineer"])
    finally:
        assert first.stop() == 0
    key = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    second = Process(env)
    try:
        assert second.token(generated["engineer"])  # same key file, same users
        assert not any(r.get("event") == "initial_user_password" for r in second.log_records())
    finally:
        second.stop()


def test_a_bad_setting_stops_the_start_with_a_clear_message(tmp_path: Path) -> None:
    result = run_app(server_env(tmp_path, SOVD_PORT="http"))
    assert result.returncode == 2
    assert "SOVD_PORT" in result.stderr


def test_the_start_says_where_the_console_is_once_ready(process: Process) -> None:
    ready = wait_until(
        lambda: [r for r in process.log_records() if r.get("event") == "ready"], "ready line"
    )
    assert len(ready) == 1 and ready[0]["url"] == f"{process.base_url}/"
    page = process.http.get(ready[0]["url"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
