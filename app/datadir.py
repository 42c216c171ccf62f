"""The data directory: created private to the owner, and locked by one process at a time.

Two processes on one database would each run crash recovery on the other's live
commands, so the service holds an exclusive ``flock`` on ``<data dir>/sovd.lock`` for as
long as it runs, taken before anything touches the database. The lock file holds the
holder's pid, so a second start can say who has it. The kernel drops the lock when the
holder exits, even after ``kill -9``; the file itself stays (deleting it could let two
processes lock two different files of the same name). The lock is for writers: the CLI's
read-only commands (``users list``, ``users check``) open the database read-only and take
none, so they work while the service runs.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from app.errors import StartupError

LOCK_NAME = "sovd.lock"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) with the directory itself 0700 whatever the
    umask. An existing directory is left as it is: it may be shared on purpose (say the
    current directory), so only a directory this call creates is made private."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode is filtered through the umask


def make_private(path: Path) -> None:
    """Take group and other permissions off an existing file of ours (0600 or stricter)."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        return
    if mode & 0o077:
        os.chmod(path, mode & PRIVATE_DIR)


class DataDirLocked(StartupError):
    """Another process holds the data directory."""


class DataDirLock:
    """An exclusive lock on the data directory, held from ``acquire`` to ``release``."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise DataDirLocked naming the holder's pid."""
        if self._fd is not None:
            return
        make_private_dir(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise DataDirLocked(
                f"{self.path} is locked by another running instance (pid {holder}) using "
                "the same database; stop it, or give this one another SOVD_DB_PATH"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.fchmod(fd, PRIVATE_FILE)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.ftruncate(fd, 0)  # no stale pid for the next reader
        finally:
            os.close(fd)  # closing drops the flock


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"
