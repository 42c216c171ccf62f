"""Start and stop of the real process (issue #14): a busy port fails in one line before
the database is touched; ``make run`` leaves no orphan under SIGTERM; shutdown says what
it waits for, and a second signal ends it at once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.harness import DEADLINE_S, wait_until
from tests.support.process import (
    ROOT,
    Process,
    end_after_restart,
    run_app,
    server_env,
    submit_command,
    vehicle_with_profile,
)

pytestmark = pytest.mark.socket


def test_a_busy_port_fails_in_one_line_before_the_database_is_touched(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        env = server_env(tmp_path, SOVD_PORT=str(port))
        del env["SOVD_ADMIN_PASSWORD"], env["SOVD_ENGINEER_PASSWORD"]  # would be generated
        result = run_app(env)
    assert result.returncode == 1
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    record = json.loads(lines[0])
    assert record["event"] == "startup_failed"
    assert f"127.0.0.1:{port} (SOVD_HOST:SOVD_PORT)" in record["message"]
    assert "already in use" in record["message"]
    assert "set SOVD_PORT" in record["message"]
    assert not (tmp_path / "data" / "sovd.db").exists()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie of ours is gone too (it only waits for its parent to read its status).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except (OSError, IndexError):
        return True


def test_make_run_under_sigterm_leaves_no_orphan(tmp_path: Path) -> None:
    env = server_env(tmp_path, SOVD_PORT="0", SOVD_PASSWORD_HASH_PROFILE="fast")
    # -o: treat the install stamp as up to date, so make only runs the service.
    make = subprocess.Popen(
        ["make", "--no-print-directory", "-o", ".venv/.installed-stamp", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = tmp_path / "data" / "sovd.lock"
    try:
        pid = int(
            wait_until(
                lambda: lock.exists() and lock.read_text().strip(), "the service to take its lock"
            )
        )
        make.send_signal(signal.SIGTERM)  # as a supervisor stopping `make run` does
        make.wait(DEADLINE_S)
        wait_until(lambda: _gone(pid), f"the service (pid {pid}) to end with make")
    finally:
        if make.poll() is None:
            make.kill()
        pid_text = lock.read_text().strip() if lock.exists() else ""
        if pid_text.isdigit() and not _gone(int(pid_text)):
            os.kill(int(pid_text), signal.SIGKILL)


def test_shutdown_says_what_it_waits_for_and_a_second_signal_ends_it(tmp_path: Path) -> None:
    proc = Process(server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="120", SOVD_SHUTDOWN_GRACE_S="60"))
    try:
        token = proc.token()
        vehicle = vehicle_with_profile(proc, token, "timeout")
        cid = submit_command(proc, token, vehicle)
        headers = {"Authorization": f"Bearer {token}"}
        wait_until(
            lambda: (
                proc.http.get(f"/api/v1/commands/{cid}", headers=headers).json()["status"]
                == "in_progress"
            ),
            "the hung command to run",
        )
        proc.proc.send_signal(signal.SIGTERM)
        waiting = wait_until(
            lambda: next(
                (r for r in proc.log_records() if r.get("event") == "shutdown_waiting"), None
            ),
            "the shutdown to say what it waits for",
        )
        assert cid in waiting["message"] and vehicle in waiting["message"]
        assert waiting["commands"] == 1
        assert 55 < waiting["seconds_left"] <= 60
        assert proc.proc.poll() is None  # still in its grace
        second = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(DEADLINE_S) == 0
        assert time.monotonic() - second < 8  # not the 60 s grace
        events = [r.get("event") for r in proc.log_records()]
        assert "shutdown_now" in events and "shutdown_unfinished" in events
    finally:
        proc.stop(signal.SIGKILL)
    assert end_after_restart(server_env(tmp_path), cid) == ("failed", "interrupted")
