"""The ECU description files on disk, below the library (``app.services.descriptions``):
names and checks, atomic private writes, the parsed-summary cache, and the loader process
that parses with odxtools off the event loop."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import importlib.metadata
import io
import logging
import multiprocessing
import os
import re
import secrets
import warnings
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import msgspec

from app.datadir import PRIVATE_FILE, make_private_dir
from app.descriptions.intake import PdxLimits, PdxRejected, check_pdx
from app.descriptions.summary import DescriptionContents, summarize
from app.errors import BadRequest, PayloadTooLarge, ServiceError

if TYPE_CHECKING:
    from odxtools.database import Database


log = logging.getLogger(__name__)

DIRECTORY: Final = "descriptions"
CACHE_DIR: Final = ".cache"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.pdx$"
NAME_RULE: Final = (
    "a file name of 1 to 96 letters, digits, dots, dashes or underscores (not starting with"
    " a dot or dash), ending in .pdx"
)
NAME_RE = re.compile(NAME_PATTERN)
TEMP_PREFIX = ".upload-"
# Stop a loader process this long after asking it to end.
_CHILD_STOP_S = 2.0


@functools.cache  # the installed distribution's metadata, read once per process
def _cache_version() -> str:
    """Cached summaries are valid for this code and this odxtools only."""
    return f"2/odxtools-{importlib.metadata.version('odxtools')}"


class _Cached(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    contents: DescriptionContents


def check_name(name: str) -> None:
    if not NAME_RE.fullmatch(name):
        raise PdxRejected(f"name {name[:120]!r} is not a file name as taken here: {NAME_RULE}")


def inspect(data: bytes, limits: PdxLimits) -> str:
    """The intake checks on ``data``; its sha256. Raises PdxRejected."""
    check_pdx(io.BytesIO(data), len(data), limits)
    return hashlib.sha256(data).hexdigest()


def parse(data: bytes) -> DescriptionContents:
    """odxtools' reading of checked bytes (``load_pdx_file`` without the path); its own
    error is the message of the PdxRejected."""
    # Imported here: only the loader process (and the CLI) ever imports odxtools.
    from odxtools.database import Database

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # odxtools warns on mere oddities
            database = Database()
            database.add_pdx_file(io.BytesIO(data))
            database.refresh()
            contents = summarize(database)
    except Exception as exc:  # whatever odxtools raises on a bad document
        message = f"{type(exc).__name__}: {exc}".strip()
        raise PdxRejected(f"odxtools cannot load it: {message[:500]}") from None
    if not contents.base_variants:
        raise PdxRejected("it describes no ECU: no diag layer container has a base variant")
    return contents


def parse_provided(data: bytes) -> DescriptionContents:
    """``parse`` of a description the service brings itself (the demo's, built the same
    every time), once per process: each start in a fresh data directory would parse the
    same bytes again (every test app does). Only the summary is kept (the containers,
    small and frozen), at most two of them; a refusal is not kept. ``load_database``
    shares the Database of the two brought last."""
    contents = _parsed_once(data)
    if data not in _provided:
        _provided.append(data)
    return contents


@functools.lru_cache(maxsize=2)
def _parsed_once(data: bytes) -> DescriptionContents:
    return parse(data)


# The bytes of the descriptions the service brought (``parse_provided``), newest last.
_provided: deque[bytes] = deque(maxlen=2)


def read_checked(path: Path, limits: PdxLimits) -> tuple[bytes, str]:
    """A stored or given file's bytes, checked (its size before it is read); its sha256."""
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise PdxRejected(
            f"the file is {size} bytes, larger than SOVD_PDX_MAX_BYTES ({limits.max_bytes})",
            too_large=True,
        )
    data = path.read_bytes()
    return data, inspect(data, limits)


def conflict(
    name: str, contents: DescriptionContents, others: Mapping[str, DescriptionContents]
) -> str | None:
    """Why ``name`` cannot join ``others``: an ECU (base variant) another file provides."""
    for other, theirs in others.items():
        if other == name:
            continue
        shared = sorted(set(contents.base_variants) & set(theirs.base_variants))
        if shared:
            return (
                f"ECU (base variant) {', '.join(shared)} is already provided by {other};"
                " remove that file first"
            )
    return None


def as_service_error(exc: PdxRejected) -> ServiceError:
    return PayloadTooLarge(exc.message) if exc.too_large else BadRequest(exc.message)


class SharedFiles(Protocol):
    """A cluster's shared library (``app.services.description_sync``): told of each file
    the library adds (before it is in the directory) or removes, under the library's
    write lock."""

    async def store(self, name: str, sha256: str, data: bytes) -> None:
        """Share the file; Conflict if a file of that name is shared already."""

    async def drop(self, name: str, sha256: str | None) -> None:
        """The file is no longer shared."""


# -- on disk -------------------------------------------------------------------------------


def directory_of(data_dir: Path) -> Path:
    return data_dir / DIRECTORY


def stored_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix == ".pdx" and p.is_file())


def write_private(path: Path, data: bytes) -> None:
    """``data`` into ``path`` atomically: a 0600 temporary file beside it, fsynced, renamed,
    and the directory fsynced."""
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> None:
    """Uploads a crash left half-written: never loaded, removed at start."""
    if directory.is_dir():
        for temp in directory.glob(f"{TEMP_PREFIX}*.tmp"):
            with contextlib.suppress(OSError):
                temp.unlink()


def read_cache(directory: Path, sha256: str) -> DescriptionContents | None:
    try:
        raw = (directory / CACHE_DIR / f"{sha256}.json").read_bytes()
        cached = msgspec.json.decode(raw, type=_Cached)
    except (OSError, msgspec.DecodeError):
        return None
    return cached.contents if cached.version == _cache_version() else None


def write_cache(directory: Path, sha256: str, contents: DescriptionContents) -> None:
    """Best effort: a cache that cannot be written only costs a parse at the next start."""
    try:
        make_private_dir(directory / CACHE_DIR)
        blob = msgspec.json.encode(_Cached(version=_cache_version(), contents=contents))
        write_private(directory / CACHE_DIR / f"{sha256}.json", blob)
    except OSError as exc:
        log.warning("cannot cache the summary of %s: %s", sha256, exc)


def drop_cache(directory: Path, sha256: str) -> None:
    with contextlib.suppress(OSError):
        (directory / CACHE_DIR / f"{sha256}.json").unlink()


# -- the loader process ----------------------------------------------------------------


def _child_main(jobs: list[tuple[str, str]], conn: Connection) -> None:
    """A loader process: parse each (name, path) and send (name, contents or message)."""
    for name, path in jobs:
        try:
            result: DescriptionContents | str = parse(Path(path).read_bytes())
        except PdxRejected as exc:
            result = exc.message
        except Exception as exc:  # an unreadable file: said, never a dead loader
            result = f"cannot read it: {type(exc).__name__}: {exc}"
        conn.send((name, result))
    conn.close()


def _loader_context() -> multiprocessing.context.ForkServerContext:
    """Loader processes are forks of one fork server per process, started on first use
    with odxtools imported: never a fork of this threaded process, and a loader's start
    costs a fork, not a new interpreter importing odxtools (~0.5 s of CPU, ``spawn``)."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, "odxtools.database"])
    return context


async def _start(process: multiprocessing.process.BaseProcess, sender: Connection) -> None:
    """``process.start()`` in a thread (the first start waits for the fork server's
    imports, ~0.5 s), then this process's copy of ``sender`` closed. Cancelled meanwhile,
    the start still ends (its thread cannot be stopped; ``sender`` is closed only once it
    has been handed over) and the process it made is stopped before the cancellation goes
    on: no loader outlives a cancelled upload untracked."""
    starting = asyncio.ensure_future(asyncio.to_thread(process.start))
    try:
        await asyncio.shield(starting)
    except BaseException:
        await asyncio.wait([starting])
        if not starting.cancelled() and starting.exception() is None:
            process.terminate()
            await asyncio.to_thread(process.join, _CHILD_STOP_S)
        raise
    finally:
        sender.close()


async def parse_in_child(
    jobs: list[tuple[str, Path]], children: set[multiprocessing.process.BaseProcess]
) -> list[tuple[str, DescriptionContents | str]]:
    """Parse ``jobs`` in one new process; a process that dies fails what it had left."""
    if not jobs:
        return []
    context = _loader_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=([(name, str(path)) for name, path in jobs], sender),
        name="sovd-pdx-loader",
        daemon=True,
    )
    try:
        await _start(process, sender)
    except BaseException:
        receiver.close()
        raise
    children.add(process)
    results: list[tuple[str, DescriptionContents | str]] = []
    try:
        while len(results) < len(jobs):
            try:
                results.append(await asyncio.to_thread(receiver.recv))
            except EOFError:
                await asyncio.to_thread(process.join, _CHILD_STOP_S)
                why = f"the loader process ended (exit code {process.exitcode})"
                done = {name for name, _ in results}
                results.extend((name, why) for name, _ in jobs if name not in done)
    finally:
        # Stop the child first, then close our end: a worker thread may still be blocked
        # in recv() on it (found in review: closing first risks the fd being reused).
        if process.is_alive():
            process.terminate()
        await asyncio.to_thread(process.join, _CHILD_STOP_S)
        receiver.close()
        children.discard(process)
    return results


def load_database(path: Path) -> Database:
    """odxtools' Database of a stored file (in a worker thread: it holds the GIL while it
    parses, about 1 ms a service). The file of a description the service brought is
    loaded once per process and that Database shared (it is only read: codecs look its
    layers up), as ``parse_provided`` parses it once: every test app's first command to
    a demo ECU loaded the same file again (84 times, 6 s of CPU, in the fast tier)."""
    data = path.read_bytes()
    if data in _provided:  # at most two comparisons, by length first
        return _provided_database(data)
    return _database(data)


@functools.lru_cache(maxsize=2)
def _provided_database(data: bytes) -> Database:
    return _database(data)


def _database(data: bytes) -> Database:
    from odxtools.database import Database as OdxDatabase

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        database = OdxDatabase()
        database.add_pdx_file(io.BytesIO(data))
        database.refresh()
    return database


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A diag layer container of a ready file: what binding an ECU to it needs."""

    name: str  # its short name as the description spells it (FLXC1000)
    file: str  # the PDX file that provides it
    logical_address: str | None  # its base variant's (0x0010), None if it gives none


def write_new(path: Path, data: bytes) -> None:
    """``data`` into a new file ``path`` (0600, fsynced): FileExistsError rather than
    replace a file that appeared meanwhile."""
    temp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    write_private(temp, data)
    try:
        os.link(temp, path)  # never replaces
    finally:
        temp.unlink()
    fsync_dir(path.parent)


def unlink_synced(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fsync_dir(path.parent)
