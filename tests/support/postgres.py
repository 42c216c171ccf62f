"""A real PostgreSQL server for the tests (Debian's ``postgresql`` package): ``initdb`` and
``postgres`` in a temporary folder on a free loopback port, once per session, and a fresh
database per test (``postgres_url``).

PostgreSQL refuses to run as root: as root the server runs as the ``postgres`` system user
(``setpriv``) in a folder that user owns. Missing binaries skip locally and fail in CI
(``harness.unavailable``). The server trades durability for speed (``fsync=off``): the
tests check behaviour, not crash safety.

``open_engine`` runs a test on both engines (``engine_kind``): an SQLite file in
``tmp_path``, then a fresh PostgreSQL database.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.store.database import Database
from app.store.engine import Engine
from app.store.postgres import PostgresDatabase
from tests.support.harness import free_port, unavailable

READY_DEADLINE_S = 30.0
SYSTEM_USER = "postgres"
SUPERUSER = "postgres"  # the cluster's superuser (initdb -U), trusted on loopback only
_PSQL = ("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")
_INITDB = ("--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
# Speed over crash safety (the tests check behaviour); room for many test databases.
_SETTINGS = ("-c", "fsync=off", "-c", "full_page_writes=off", "-c", "max_connections=200")


def _bin_dir() -> Path | None:
    """The newest installed server's binaries (Debian keeps them off PATH)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=_version)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def _version(path: str) -> int:
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


@dataclass
class PostgresServer:
    bin_dir: Path
    port: int
    folder: Path
    proc: subprocess.Popen[bytes] | None = None
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        done = subprocess.run(
            [str(self.bin_dir / "psql"), *_PSQL, "-d", self.url(database), "-c", sql],
            capture_output=True,
            text=True,
            timeout=READY_DEADLINE_S,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip()

    def fresh_database(self) -> str:
        """A new empty database's URL (a copy of template1's files)."""
        name = f"t{os.getpid()}_{next(self._names)}"
        self.psql(f"CREATE DATABASE {name} STRATEGY FILE_COPY")  # faster for a small one
        return self.url(name)

    def start(self) -> None:
        as_user = _as_system_user()
        data = self.folder / "data"
        subprocess.run(
            [*as_user, str(self.bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, *_INITDB],
            capture_output=True,
            check=True,
            timeout=120,
        )
        log = open(self.folder / "server.log", "wb")  # noqa: SIM115 - the server's lifetime
        self.proc = subprocess.Popen(
            [
                *as_user,
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                *self._listen(),
                *_SETTINGS,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self._wait_ready()

    def _listen(self) -> tuple[str, ...]:
        """TCP on loopback at our port; the Unix socket in our folder (not /run)."""
        return ("-p", str(self.port), "-h", "127.0.0.1", "-k", str(self.folder))

    def _wait_ready(self) -> None:
        """Poll until the server answers a query, or fail after the deadline with its log."""
        deadline = time.monotonic() + READY_DEADLINE_S
        assert self.proc is not None
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self._log_tail()}")
            try:
                if self.psql("SELECT 1") == "1":
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres not ready in {READY_DEADLINE_S}s: {self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        path = self.folder / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no log)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.folder, ignore_errors=True)


def _as_system_user() -> list[str]:
    """The command prefix that drops root to the ``postgres`` user (nothing if not root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups"]


def start_server() -> PostgresServer:
    bin_dir = _bin_dir()
    if bin_dir is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="sovd-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            shutil.rmtree(folder)
            unavailable(f"no {SYSTEM_USER} user to run PostgreSQL as (apt-get install postgresql)")
        os.chown(folder, user.pw_uid, user.pw_gid)
    server = PostgresServer(bin_dir, free_port(), folder)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session, started on first use."""
    server = start_server()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.fresh_database()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.socket)])
def engine_kind(request: pytest.FixtureRequest) -> str:
    """The engine a store test runs on: each test that asks for it (or ``open_engine``)
    runs twice, on SQLite in its module's tier and on PostgreSQL in the socket tier (it
    needs the server)."""
    kind: str = request.param
    return kind


OpenEngine = Callable[[], Engine]


@pytest.fixture
def open_engine(engine_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> OpenEngine:
    """A factory of the test's engine (``engine_kind``), not opened; each call the same
    database (a reopen sees what was written)."""
    if engine_kind == "sqlite":
        return lambda: Database(tmp_path / "sovd.db")
    url: str = request.getfixturevalue("postgres_url")
    return lambda: PostgresDatabase(url)
