"""The service's name and version, as installed (one place: the CLI, OpenAPI and SOVD's
version-info all say the same)."""

from __future__ import annotations

import functools
import importlib.metadata
from typing import Final

PACKAGE: Final = "sovd-command-service"


@functools.cache  # the installed distribution's metadata, read once per process
def version() -> str:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:  # run from a tree never installed
        return "0+unknown"
