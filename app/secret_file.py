"""The JWT signing key kept in the data directory when none is configured."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from app.datadir import make_private_dir


def load_or_create_secret(path: Path) -> str:
    """Read the key at ``path``, creating it (mode 0600, never overwritten) on first use."""
    make_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_existing(path)
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w") as handle:
        handle.write(secret + "\n")
    return secret


def _read_existing(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path} is readable by others (mode {mode:o}); chmod 600 it")
    secret = path.read_text().strip()
    if len(secret) < 32:
        raise ValueError(f"{path} holds a key shorter than 32 characters")
    return secret
