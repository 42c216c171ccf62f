"""A PostgreSQL server of its own for a benchmark (Debian's ``postgresql`` package):
``initdb`` and ``postgres`` in a temporary folder on a free loopback port, one database
made as docs/operations.md says (UTF8, ``C`` collation).

tests/support/postgres.py does the same for the tests; bench/ does not import tests/
(their helpers bring pytest). Unlike the tests' server this one keeps PostgreSQL's
durability settings as they come (fsync on): it is measured, not only used. As root, the
server runs as the ``postgres`` system user, as PostgreSQL requires.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.server import free_port

READY_DEADLINE_S = 30.0
SYSTEM_USER = "postgres"
DATABASE = "sovd"


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    if on_path is None:
        raise SystemExit("this scenario needs PostgreSQL (apt-get install postgresql)")
    return Path(on_path).parent


def _as_system_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups"]


@contextmanager
def postgres_server() -> Iterator[str]:
    """A running server with an empty database ``sovd``; its URL (user ``postgres``,
    trusted on loopback only)."""
    bin_dir = _bin_dir()
    folder = Path(tempfile.mkdtemp(prefix="sovd-bench-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam(SYSTEM_USER)
        os.chown(folder, user.pw_uid, user.pw_gid)
    as_user, port = _as_system_user(), free_port()
    url = f"postgresql://postgres@127.0.0.1:{port}"
    proc: subprocess.Popen[bytes] | None = None
    try:
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(folder / "data"),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            capture_output=True,
            check=True,
            timeout=120,
        )
        with open(folder / "server.log", "wb") as log:
            proc = subprocess.Popen(
                [
                    *as_user,
                    str(bin_dir / "postgres"),
                    "-D",
                    str(folder / "data"),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    "-k",
                    str(folder),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        _psql(bin_dir, f"{url}/postgres", f"CREATE DATABASE {DATABASE} TEMPLATE template0", proc)
        yield f"{url}/{DATABASE}"
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # fast shutdown
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _psql(bin_dir: Path, url: str, sql: str, proc: subprocess.Popen[bytes]) -> None:
    """Run ``sql`` once the server answers (it is starting)."""
    deadline = time.monotonic() + READY_DEADLINE_S
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"postgres exited at start ({proc.returncode})")
        done = subprocess.run(
            [str(bin_dir / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            capture_output=True,
            text=True,
            timeout=READY_DEADLINE_S,
            check=False,
        )
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"postgres not ready in {READY_DEADLINE_S:g} s: {done.stderr}")
        time.sleep(0.05)
