"""The command line of ``python -m app`` (issue #14), through real subprocesses: --help and
--version without serving, and ``users ...`` on the database directly, refused while the
service runs, passwords from stdin (never argv)."""

from __future__ import annotations

import importlib.metadata
import signal
import sqlite3
from pathlib import Path

import pytest

from tests.support.harness import ENGINEER_PASSWORD
from tests.support.process import Process, run_app, server_env

pytestmark = pytest.mark.socket

ADMIN = "admin-password-1"


_app = run_app


def _env(tmp_path: Path) -> dict[str, str]:
    return server_env(tmp_path, SOVD_PASSWORD_HASH_PROFILE="fast")


def _login(proc: Process, username: str, password: str) -> int:
    r = proc.http.post("/api/v1/auth/login", json={"username": username, "password": password})
    return r.status_code


def test_help_and_version_answer_without_serving(tmp_path: Path) -> None:
    env = _env(tmp_path)
    helped = _app(env, "--help")
    assert helped.returncode == 0
    assert "usage: python -m app" in helped.stdout and "users" in helped.stdout
    users = _app(env, "users", "--help")
    for action in ("list", "create", "reset-password", "disable"):
        assert action in users.stdout
    version = _app(env, "--version")
    assert version.returncode == 0
    assert version.stdout.strip() == (
        f"python -m app {importlib.metadata.version('sovd-command-service')}"
    )
    assert not (tmp_path / "data").exists()  # nothing was started
    assert _app(env, "bogus").returncode == 2


def test_users_commands_refuse_while_the_service_runs(tmp_path: Path) -> None:
    env = _env(tmp_path)
    proc = Process(env)
    try:
        result = _app(env, "users", "reset-password", "admin", stdin="locked-out-1\n")
        assert result.returncode == 1
        assert "stop the service or use the API" in result.stderr
        assert str(proc.proc.pid) in result.stderr
        assert _login(proc, "admin", ADMIN) == 200  # unchanged
    finally:
        proc.stop(signal.SIGTERM)


def test_read_only_commands_work_while_the_service_runs(tmp_path: Path) -> None:
    """Issue #25: ``users list`` (and ``users check``, ``descriptions list``) only read, on
    a read-only connection without the data directory's lock: they answer while the
    service runs, and see what it has committed."""
    env = _env(tmp_path)
    proc = Process(env)
    try:
        admin = proc.http.post(
            "/api/v1/auth/login", json={"username": "admin", "password": ADMIN}
        ).json()["access_token"]
        made = proc.http.post(
            "/api/v1/users",
            headers={"Authorization": f"Bearer {admin}"},
            json={"username": "night-shift", "password": "night-shift-1", "role": "engineer"},
        )
        assert made.status_code == 201, made.text
        listed = _app(env, "users", "list")
        assert listed.returncode == 0, listed.stderr
        rows = {line.split()[0]: line.split()[1:3] for line in listed.stdout.splitlines()[1:]}
        assert rows == {
            "admin": ["admin", "enabled"],
            "engineer": ["engineer", "enabled"],
            "night-shift": ["engineer", "enabled"],
        }
        assert _app(env, "users", "check").returncode == 0
        described = _app(env, "descriptions", "list")
        assert described.returncode == 0, described.stderr
        # Writers still wait for the service to stop; the service carries on.
        refused = _app(env, "users", "disable", "night-shift")
        assert refused.returncode == 1 and "stop the service" in refused.stderr
        assert _login(proc, "night-shift", "night-shift-1") == 200
        lock = (tmp_path / "data" / "sovd.lock").read_text().strip()
        assert lock == str(proc.proc.pid)  # the service's lock, untouched
    finally:
        proc.stop(signal.SIGTERM)


def test_a_locked_out_operator_recovers_with_the_users_commands(tmp_path: Path) -> None:
    env = _env(tmp_path)
    Process(env).stop(signal.SIGTERM)  # creates the database, then stops
    listed = _app(env, "users", "list")
    assert listed.returncode == 0, listed.stderr
    assert "admin" in listed.stdout and "engineer" in listed.stdout

    reset = _app(env, "users", "reset-password", "ADMIN", stdin="recovered-pass-1\n")
    assert reset.returncode == 0, reset.stderr
    created = _app(env, "users", "create", "ops", "--role", "admin", stdin="ops-password-1\n")
    assert created.returncode == 0, created.stderr
    disabled = _app(env, "users", "disable", "engineer")
    assert disabled.returncode == 0, disabled.stderr
    assert "disabled" in _app(env, "users", "list").stdout

    weak = _app(env, "users", "reset-password", "ops", stdin="ops\n")
    assert weak.returncode == 1
    assert "8 to 256 characters and differs from the username" in weak.stderr
    assert _app(env, "users", "reset-password", "nobody", stdin="whatever-1\n").returncode == 1
    empty = _app(env, "users", "reset-password", "ops", stdin="")
    assert empty.returncode == 1 and "no password on stdin" in empty.stderr

    with sqlite3.connect(tmp_path / "data" / "sovd.db") as conn:
        actions = [
            row[0]
            for row in conn.execute(
                "SELECT action FROM audit_log WHERE username LIKE 'cli:%' ORDER BY audit_id"
            )
        ]
    assert actions == ["user.password_reset", "user.create", "user.update"]

    proc = Process(env)  # SOVD_ADMIN_PASSWORD still set: ignored, and said so
    try:
        assert _login(proc, "admin", "recovered-pass-1") == 200
        assert _login(proc, "admin", ADMIN) == 401
        assert _login(proc, "ops", "ops-password-1") == 200
        assert _login(proc, "engineer", ENGINEER_PASSWORD) == 401
        ignored = [r for r in proc.log_records() if r.get("event") == "initial_password_ignored"]
        assert len(ignored) == 1
        assert "SOVD_ADMIN_PASSWORD and SOVD_ENGINEER_PASSWORD ignored" in ignored[0]["message"]
        assert ADMIN not in ignored[0]["message"]
    finally:
        proc.stop(signal.SIGTERM)


@pytest.mark.parametrize("action", ["list", "disable"])
def test_users_commands_need_an_existing_database(tmp_path: Path, action: str) -> None:
    args = ["users", action] + (["engineer"] if action == "disable" else [])
    result = _app(_env(tmp_path), *args)
    assert result.returncode == 1
    assert "no database at" in result.stderr and "SOVD_DB_PATH" in result.stderr
    assert not (tmp_path / "data" / "sovd.db").exists()
