"""The real server process, started with ``python -m app``, driven over the network."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.command_helpers import submit_read_dtc
from tests.conftest import DEADLINE_S, ENGINEER_PASSWORD, wait_until

ROOT = Path(__file__).resolve().parent.parent


class Process:
    """``python -m app`` with a given environment; its log lines are collected as they come."""

    def __init__(self, env: dict[str, str], preexec_fn: Callable[[], Any] | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec_fn,  # e.g. a lower open-file limit
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        found = wait_until(
            lambda: self._port() or self.proc.poll() is not None, "the server to listen"
        )
        if found is True:
            raise AssertionError("server exited:\n" + "\n".join(self.lines))
        self.base_url = f"http://127.0.0.1:{found}"
        self.http = httpx.Client(base_url=self.base_url, timeout=DEADLINE_S)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.lines.append(line.rstrip("\n"))

    def _port(self) -> int | None:
        for line in self.lines:
            match = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
        return None

    def log_records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines if line.startswith("{")]

    def token(self, password: str = ENGINEER_PASSWORD) -> str:
        r = self.http.post(
            "/api/v1/auth/login", json={"username": "engineer", "password": password}
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(DEADLINE_S * 2)
        self._reader.join(DEADLINE_S)
        return code


def run_app(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m app ARGS`` run to its exit (a start that must fail, a CLI command)."""
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
        check=False,
    )


def end_after_restart(env: dict[str, str], command_id: str) -> tuple[str, str | None]:
    """Start ``python -m app`` again on the same database and read how the command ended."""
    restarted = Process(env)
    try:
        token = restarted.token()
        r = restarted.http.get(
            f"/api/v1/commands/{command_id}", headers={"Authorization": f"Bearer {token}"}
        )
        return r.json()["status"], r.json()["error_code"]
    finally:
        restarted.stop()


def server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOVD_", "OTEL_"))}
    env.update(
        {
            "SOVD_PORT": "0",
            "SOVD_DB_PATH": str(tmp_path / "data" / "sovd.db"),
            "SOVD_DEMO_DATA": "1",
            "SOVD_ENGINEER_PASSWORD": ENGINEER_PASSWORD,
            "SOVD_ADMIN_PASSWORD": "admin-password-1",
            "SOVD_SIM_LATENCY_MS": "0",
            "SOVD_SIM_SEED": "1",
            "SOVD_COMMAND_TIMEOUT_S": "1",
            "SOVD_SHUTDOWN_GRACE_S": "2",
        }
    )
    env.update(extra)
    return env


@pytest.fixture
def process(tmp_path: Path) -> Iterator[Process]:
    proc = Process(server_env(tmp_path))
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def _vehicle(proc: Process, token: str, profile: str) -> str:
    items = proc.http.get(
        "/api/v1/vehicles",
        headers={"Authorization": f"Bearer {token}"},
        params={"status": "connected"},
    ).json()["items"]
    return str(next(v["vehicle_id"] for v in items if v["simulator_profile"] == profile))


def _submit(proc: Process, token: str, vehicle_id: str) -> str:
    return submit_read_dtc(proc.http, token, vehicle_id)


def test_quick_start_flow_over_the_network(process: Process) -> None:
    token = process.token()
    cid = _submit(process, token, _vehicle(process, token, "healthy"))
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
    # One structured line per request, with what an operator needs.
    requests = [r for r in records if r.get("event") == "request"]
    submit = next(r for r in requests if r["method"] == "POST" and r["path"] == "/api/v1/commands")
    assert submit["status"] == 201 and submit["user"] == "engineer"
    assert submit["route"] == "/api/v1/commands"
    assert submit["request_id"] and submit["duration_ms"] >= 0
    assert {"time", "level", "message"} <= set(submit)
    # Never a token or a password: the WebSocket's ?token= and the login body stay out.
    assert all(token not in line for line in process.lines)
    assert all(ENGINEER_PASSWORD not in line for line in process.lines)


def test_sigterm_drains_running_commands_and_exits_0(tmp_path: Path) -> None:
    proc = Process(server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="60", SOVD_SHUTDOWN_GRACE_S="0.5"))
    try:
        token = proc.token()
        cid = _submit(proc, token, _vehicle(proc, token, "timeout"))
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
    stuck = _vehicle(proc, token, "timeout")
    healthy = _vehicle(proc, token, "healthy")
    acknowledged = [_submit(proc, token, stuck) for _ in range(3)]  # 1 running, 2 queued
    done = _submit(proc, token, healthy)
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
        cid = _submit(again, token, _vehicle(again, token, "healthy"))
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
