"""What the description library knows of one file (``Entry``: its state, loading, ready
or failed, and what the API lists of it), and the upload's intake before anything is
stored (``stage``: checked, written aside, parsed in the loader process, its ECUs not
another file's)."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.datadir import make_private_dir
from app.descriptions.intake import PdxLimits, PdxRejected
from app.descriptions.summary import Description, DescriptionContents
from app.errors import BadRequest
from app.services.description_files import (
    TEMP_PREFIX,
    ContainerRef,
    as_service_error,
    conflict,
    inspect,
    parse_in_child,
    write_private,
)

State = Literal["loading", "ready", "failed"]


# -- the library -------------------------------------------------------------------------


@dataclass(slots=True)
class Entry:
    name: str
    size_bytes: int
    state: State = "loading"
    sha256: str | None = None
    error: str | None = None
    contents: DescriptionContents | None = None

    def record(self) -> Description:
        return Description(
            name=self.name,
            sha256=self.sha256,
            size_bytes=self.size_bytes,
            state=self.state,
            error=self.error,
            containers=[] if self.contents is None else list(self.contents.containers),
        )


async def stage(
    directory: Path,
    name: str,
    data: bytes,
    limits: PdxLimits,
    children: set[multiprocessing.process.BaseProcess],
    ready: dict[str, DescriptionContents],
) -> tuple[Path, str, DescriptionContents]:
    """An uploaded file checked, written to a private temporary file beside where it
    goes, and parsed: (that file, its sha256, its summary). 400/413 with nothing left
    behind if it is refused, or if it provides an ECU a ``ready`` file provides."""
    try:
        sha256 = await asyncio.to_thread(inspect, data, limits)
    except PdxRejected as exc:
        raise as_service_error(exc) from None
    make_private_dir(directory)
    temp = directory / f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
    await asyncio.to_thread(write_private, temp, data)
    try:
        [(_, result)] = await parse_in_child([(name, temp)], children)
        if isinstance(result, str):
            raise BadRequest(result)
        why = conflict(name, result, ready)
        if why is not None:
            raise BadRequest(why)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    return temp, sha256, result


def find_container(ready: dict[str, DescriptionContents], name: str) -> ContainerRef | None:
    """The container named ``name`` (any case) with an ECU among the ``ready`` files."""
    wanted = name.lower()
    for file, contents in sorted(ready.items()):
        for container in contents.containers:
            if container.name.lower() == wanted and container.base_variants:
                address = container.base_variants[0].logical_address
                return ContainerRef(container.name, file, address)
    return None


def container_names(ready: dict[str, DescriptionContents]) -> list[str]:
    """Every container with an ECU (a base variant) among the ``ready`` files, by name."""
    return sorted(
        c.name for contents in ready.values() for c in contents.containers if c.base_variants
    )
