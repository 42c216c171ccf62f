"""The real server process (``python -m app``) for the subprocess tests: start it with an
environment (``server_env``), read its log lines, log in, stop it by a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from app.vehicles.pdx.demo import DEMO_PDX_NAME
from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import ADMIN_PASSWORD, DEADLINE_S, ENGINEER_PASSWORD, TLS, wait_until

ROOT = Path(__file__).resolve().parents[2]


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
        self.http = httpx.Client(base_url=self.base_url, timeout=DEADLINE_S, verify=TLS)

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

    def wait_for_the_demo_description(self) -> None:
        """On a new database the service builds the demo description in the background
        (the demo vehicles' ECUs are bound to it): wait until it is in, for a test that
        reads described data at once (as ``harness.wait_for_the_demo_description``)."""

        def in_or_others() -> bool:
            loading = self.http.get("/health/ready").json().get("descriptions_loading", [])
            return DEMO_PDX_NAME not in loading or len(loading) > 1

        wait_until(in_or_others, "the demo description to be in the library")

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
            "SOVD_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "SOVD_SIM_LATENCY_MS": "0",
            "SOVD_SIM_SEED": "1",
            "SOVD_COMMAND_TIMEOUT_S": "1",
            "SOVD_SHUTDOWN_GRACE_S": "2",
            # Cheap argon2 parameters, as the in-process harness: each production hash or
            # login costs 0.2 s on two cores. tests/test_password_hashing.py checks the
            # production profile; a test that wants it passes it in ``extra``.
            "SOVD_PASSWORD_HASH_PROFILE": "fast",
        }
    )
    env.update(extra)
    return env


def cluster_env(folder: Path, database_url: str, bus_url: str, **extra: str) -> dict[str, str]:
    """``server_env`` of one node of a cluster: on ``database_url`` and ``bus_url``."""
    return server_env(folder, SOVD_DATABASE_URL=database_url, SOVD_BUS_URL=bus_url, **extra)


def admin_headers(proc: Process) -> dict[str, str]:
    """The admin's bearer header, logged in on ``proc``."""
    r = proc.http.post("/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def vehicle_with_profile(proc: Process, token: str, profile: str) -> str:
    items = proc.http.get(
        "/api/v1/vehicles",
        headers={"Authorization": f"Bearer {token}"},
        params={"status": "connected"},
    ).json()["items"]
    return str(next(v["vehicle_id"] for v in items if v["simulator_profile"] == profile))


def submit_command(proc: Process, token: str, vehicle_id: str) -> str:
    return submit_read_dtc(proc.http, token, vehicle_id)
