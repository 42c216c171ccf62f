"""The NATS bus's cost on one node: the pipeline with ``SOVD_BUS_URL`` (a local
``nats-server``) against the same service on the in-process bus, alternately, with the
same clients. Every stream follows a command of its own node, so NATS carries each event
out and nothing back (``no_echo``): what is measured is what the bus adds to a node."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

DEADLINE_S = 10.0


@contextmanager
def nats_server() -> Iterator[str]:
    """A ``nats-server`` on a free loopback port (Debian's package); its URL."""
    binary = shutil.which("nats-server")
    if binary is None:
        raise SystemExit("the bus scenario needs nats-server (apt-get install nats-server)")
    with tempfile.TemporaryDirectory(prefix="sovd-bench-nats-") as folder:
        proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir", folder],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield _url(proc, Path(folder) / f"nats-server_{proc.pid}.ports")
        finally:
            proc.terminate()
            proc.wait(DEADLINE_S)


def _url(proc: subprocess.Popen[bytes], ports: Path) -> str:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"nats-server exited ({proc.returncode})")
        try:
            return str(json.loads(ports.read_text())["nats"][0])
        except (OSError, ValueError, KeyError, IndexError):
            time.sleep(0.01)  # not written (whole) yet
    raise SystemExit(f"nats-server wrote no ports file within {DEADLINE_S:g} s")
