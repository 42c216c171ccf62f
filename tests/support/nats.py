"""A real NATS server (Debian's ``nats-server``) on loopback for the bus tests.

``nats_server`` (session-scoped; tests/conftest.py loads this module as a plugin) starts
one on a free port in a temporary folder and stops it after the session; a test that
stops and restarts its own server (an outage) uses ``NatsServer`` directly. Without the
binary the tests skip, saying what to install; in CI they fail (``unavailable``).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import DEADLINE_S, unavailable

BINARY = "nats-server"


class NatsServer:
    """One ``nats-server`` process; ``stop`` and ``start`` again keep its port."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0  # -1 to nats-server: any free port, read back from its ports file
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> NatsServer:
        binary = shutil.which(BINARY)
        if binary is None:
            unavailable(f"{BINARY} is not installed (apt-get install nats-server)")
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "nats-server.log").open("ab")
        self._proc = subprocess.Popen(
            [
                binary,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port or -1),
                "--ports_file_dir",
                str(self.folder),
            ],
            cwd=self.folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        if not self.port:
            self.port = self._read_port()
        self._wait_ready()
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(DEADLINE_S)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def _read_port(self) -> int:
        """The port nats-server chose, from the ports file it writes once listening."""
        assert self._proc is not None
        ports = self.folder / f"{BINARY}_{self._proc.pid}.ports"
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self._check_alive()
            if ports.exists():
                try:
                    client = json.loads(ports.read_text())["nats"][0]
                except (ValueError, KeyError, IndexError):
                    pass  # written but not whole yet
                else:
                    return int(client.rsplit(":", 1)[1])
            time.sleep(0.01)
        raise AssertionError(f"{BINARY} wrote no ports file within {DEADLINE_S:g} s")

    def _wait_ready(self) -> None:
        """Until a client connection gets the server's INFO line."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    if conn.recv(5) == b"INFO ":
                        return
            except OSError:
                pass
            time.sleep(0.01)
        raise AssertionError(f"{BINARY} did not answer on port {self.port} in {DEADLINE_S:g} s")

    def _check_alive(self) -> None:
        assert self._proc is not None
        if self._proc.poll() is not None:
            log = (self.folder / "nats-server.log").read_text(errors="replace")
            raise AssertionError(f"{BINARY} exited ({self._proc.returncode}):\n{log}")


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    try:
        yield server
    finally:
        server.stop()
