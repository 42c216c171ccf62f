"""Start ``python -m app`` on a fresh database for a benchmark, and read its memory."""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Final
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENGINEER_PASSWORD = secrets.token_urlsafe(12)
ADMIN_PASSWORD = secrets.token_urlsafe(12)


SERVICE = ("-m", "app")


def ceiling(name: str) -> tuple[str, ...]:
    """The command line of a ceiling app (``bench.ceilings``), for ``BenchServer(argv=)``."""
    return ("-m", "bench.ceilings", name)


# A smoke run checks the harness, not the speed: its servers hash passwords cheaply (the
# demo users at each start, every login), as the tests do.
SMOKE_HASHING: Final = "SOVD_PASSWORD_HASH_PROFILE"


class BenchServer:
    """The service (or, with ``argv``, a ceiling app) in its own process, on a free port,
    with a fresh database (or the one in ``data_dir``, which is kept)."""

    def __init__(
        self,
        cpus: set[int] | None = None,
        argv: tuple[str, ...] = SERVICE,
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.name = "service" if argv == SERVICE else argv[-1]
        self._dir = tempfile.TemporaryDirectory(prefix="sovd-bench-")
        data = data_dir or Path(self._dir.name)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("SOVD_", "OTEL_"))}
        if SMOKE_HASHING in os.environ:  # --smoke: cheap hashing (see bench.__main__)
            base[SMOKE_HASHING] = os.environ[SMOKE_HASHING]
        base.update(
            {
                "SOVD_PORT": "0",
                "SOVD_DB_PATH": str(data / "sovd.db"),
                "SOVD_DEMO_DATA": "1",
                "SOVD_ENGINEER_PASSWORD": ENGINEER_PASSWORD,
                "SOVD_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SOVD_SIM_LATENCY_MS": "0",
                "SOVD_SIM_SEED": "1",
                # One benchmark user plays many engineers; the per-user limit would cap it.
                "SOVD_COMMAND_RATE_PER_MIN": "0",
                # Every benchmark client comes from 127.0.0.1: no per-address cap.
                "SOVD_MAX_CONNECTIONS_PER_CLIENT": "0",
                # The websockets scenario holds its sockets as one user.
                "SOVD_WS_MAX_PER_USER": "100000",
                "SOVD_WS_MAX_CONNECTIONS": "100000",
                "SOVD_MAX_CONNECTIONS": "100000",
                # Same string hashing in every run, so two servers differ only in what
                # the benchmark changes (hash randomisation alone moves results a few %).
                "PYTHONHASHSEED": "0",
            }
        )
        base.update(env or {})
        # The service binds a port of its own choosing and logs it ("ready"), so nothing
        # can take the port between the choice and the bind (a free port picked here was
        # once taken meanwhile by a ceiling started beside it, which then answered the
        # service's log-in). The ceilings bind the free port they are given.
        service = argv == SERVICE
        port = 0 if service else free_port()
        base["SOVD_PORT"] = str(port)
        # The service logs (one JSON line per request) go to a file, as they would in
        # production, rather than through a pipe this process must drain.
        self.log_path = Path(self._dir.name) / "server.log"
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, *argv],
            cwd=ROOT,
            env=base,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        deadline = time.monotonic() + 30
        if service:
            port = self._logged_port(deadline)
        # ca_file: the service serves HTTPS (its env sets SOVD_TLS_*), this CA verifies it.
        secure = "s" if ca_file is not None else ""
        self.base_url = f"http{secure}://127.0.0.1:{port}"
        self.ws_url = f"ws{secure}://127.0.0.1:{port}"
        verify = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        self.http = httpx.Client(base_url=self.base_url, timeout=30, verify=verify)
        while not self._ready():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the service did not start; see {self.log_path}")
            time.sleep(0.05)

    def _logged_port(self, deadline: float) -> int:
        """The port in the service's "ready" log line, once it is written."""
        while True:
            for line in self.log_path.read_text().splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # not a log record, or one half written
                if isinstance(record, dict) and record.get("event") == "ready":
                    return int(urlsplit(record["url"]).port or 0)
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"the service did not start; see {self.log_path}")
            time.sleep(0.05)

    def _ready(self) -> bool:
        try:
            return self.http.get("/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    def token(self, username: str = "engineer") -> str:
        password = ENGINEER_PASSWORD if username == "engineer" else ADMIN_PASSWORD
        r = self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        r.raise_for_status()
        return str(r.json()["access_token"])

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process (all its threads) has used."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def rss_kib(self) -> int:
        """Resident memory of the server process, from /proc."""
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match
        return int(match.group(1))

    def close(self) -> None:
        if hasattr(self, "http"):
            self.http.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self._dir.cleanup()

    def __enter__(self) -> BenchServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
