"""The library of ECU descriptions: PDX files under ``<data dir>/descriptions/``.

Files are checked (``app.descriptions.intake``) and parsed with odxtools before they
are stored; a refused file leaves nothing behind. Stored files are written atomically
(a private temporary file, fsynced, renamed) with mode 0600, like the database.

odxtools parsing is CPU-bound Python (about 1 ms per service, 10 s for a file of 10,000
services), so it runs in a child process (``spawn``: never a fork of this threaded
process): in a thread it held the GIL often enough to delay the event loop by up to
150 ms; in a process the loop stays within a few ms. What the service keeps of a parsed
file is its summary (``app.descriptions.summary``), cached under
``descriptions/.cache/<sha256>.json``: a restart with unchanged files reads each one
(sha256 and the intake checks, milliseconds) and parses nothing.

One file per ECU: a file whose base variant another file already provides is refused;
shared protocol and comparam layers are fine.

Encoding and decoding (``DiagService`` commands) need odxtools' whole ``Database`` in this
process: a ready file's is loaded on first use (``codec``), in a worker thread, once per
file, and kept until the file is removed. Only files that an ECU is used with are ever
loaded here; binding an ECU needs only the summary (container names, logical address).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.metadata
import io
import logging
import multiprocessing
import os
import re
import secrets
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from app.datadir import PRIVATE_FILE, make_private_dir
from app.descriptions.intake import PdxLimits, PdxRejected, check_pdx
from app.descriptions.summary import Description, DescriptionContents, summarize
from app.errors import BadRequest, Conflict, NotFound, PayloadTooLarge, ServiceError

if TYPE_CHECKING:
    from odxtools.database import Database

    from app.descriptions.codec import LayerCodec

log = logging.getLogger(__name__)

DIRECTORY: Final = "descriptions"
CACHE_DIR: Final = ".cache"
NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\.pdx$"
NAME_RULE: Final = (
    "a file name of 1 to 96 letters, digits, dots, dashes or underscores (not starting with"
    " a dot or dash), ending in .pdx"
)
_NAME = re.compile(NAME_PATTERN)
_TEMP_PREFIX = ".upload-"
# Stop a loader process this long after asking it to end.
_CHILD_STOP_S = 2.0

State = Literal["loading", "ready", "failed"]


def _cache_version() -> str:
    """Cached summaries are valid for this code and this odxtools only."""
    return f"2/odxtools-{importlib.metadata.version('odxtools')}"


class _Cached(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    contents: DescriptionContents


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
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
    temp = path.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
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
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(directory: Path) -> None:
    """Uploads a crash left half-written: never loaded, removed at start."""
    if directory.is_dir():
        for temp in directory.glob(f"{_TEMP_PREFIX}*.tmp"):
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


async def _parse_in_child(
    jobs: list[tuple[str, Path]], children: set[multiprocessing.process.BaseProcess]
) -> list[tuple[str, DescriptionContents | str]]:
    """Parse ``jobs`` in one new process; a process that dies fails what it had left."""
    if not jobs:
        return []
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=_child_main,
        args=([(name, str(path)) for name, path in jobs], sender),
        name="sovd-pdx-loader",
        daemon=True,
    )
    process.start()
    sender.close()
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
    parses, about 1 ms a service)."""
    from odxtools.database import Database as OdxDatabase

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        database = OdxDatabase()
        database.add_pdx_file(io.BytesIO(path.read_bytes()))
        database.refresh()
    return database


@dataclass(frozen=True, slots=True)
class ContainerRef:
    """A diag layer container of a ready file: what binding an ECU to it needs."""

    name: str  # its short name as the description spells it (FLXC1000)
    file: str  # the PDX file that provides it
    logical_address: str | None  # its base variant's (0x0010), None if it gives none


# -- the library -------------------------------------------------------------------------


@dataclass(slots=True)
class _Entry:
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


@dataclass(slots=True)
class DescriptionLibrary:
    """The descriptions on disk and their state (loading, ready, failed)."""

    data_dir: Path
    limits: PdxLimits
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _write: asyncio.Lock = field(default_factory=asyncio.Lock)
    _children: set[multiprocessing.process.BaseProcess] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    # odxtools databases loaded in this process, by file name (see ``codec``).
    _databases: dict[str, asyncio.Task[Database]] = field(default_factory=dict)
    # Descriptions the service brings itself (``provide``): name -> what builds it.
    _provided: dict[str, Callable[[], bytes]] = field(default_factory=dict)

    @property
    def directory(self) -> Path:
        return directory_of(self.data_dir)

    def start(self) -> None:
        """Register what is on disk (and what ``provide`` registered) as loading and load
        it in the background."""
        make_private_dir(self.directory)
        remove_stale_temporaries(self.directory)
        for path in stored_files(self.directory):
            if path.name not in self._entries:
                self._entries[path.name] = _Entry(path.name, path.stat().st_size)
        if any(e.state == "loading" for e in self._entries.values()):
            self._task = asyncio.create_task(self._load_stored(), name="descriptions-load")

    def provide(self, name: str, build: Callable[[], bytes]) -> bool:
        """Before ``start``: a description the service brings itself (the demo's, when it
        seeds the demo vehicles), ``build`` returning its bytes. Unless a file of that
        name is there (a user's, or the one written before: left as it is, and loaded as
        any stored file), it is ``loading`` from now on, and once the stored files are
        loaded the background load builds and parses it, stores it as an upload is
        stored (0600, atomically, its summary cached; never over a file) and makes it
        ready, unless a stored file already provides one of its ECUs (then it is
        dropped, said in the log). Whether it was registered."""
        if (self.directory / name).exists() or name in self._entries:
            return False
        self._entries[name] = _Entry(name, 0)
        self._provided[name] = build
        return True

    async def aclose(self) -> None:
        for process in list(self._children):
            process.terminate()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def all(self) -> list[Description]:
        return [self._entries[name].record() for name in sorted(self._entries)]

    def loading(self) -> list[str]:
        return sorted(e.name for e in self._entries.values() if e.state == "loading")

    def _ready(self) -> dict[str, DescriptionContents]:
        return {
            e.name: e.contents
            for e in self._entries.values()
            if e.state == "ready" and e.contents is not None
        }

    def container(self, name: str) -> ContainerRef | None:
        """The ready container named ``name`` (any case), or None."""
        wanted = name.lower()
        for file, contents in sorted(self._ready().items()):
            for container in contents.containers:
                if container.name.lower() == wanted and container.base_variants:
                    address = container.base_variants[0].logical_address
                    return ContainerRef(container.name, file, address)
        return None

    def container_names(self) -> list[str]:
        """Every ready container with an ECU (a base variant), by name."""
        return sorted(
            c.name
            for contents in self._ready().values()
            for c in contents.containers
            if c.base_variants
        )

    async def codec(self, container: str) -> LayerCodec | None:
        """The codec of ``container``'s base variant (any case); None if no ready file
        provides it. Its file's Database is loaded on first use (a worker thread) and
        kept; ServiceError if odxtools cannot load it here."""
        from app.descriptions.codec import CodecError, LayerCodec

        found = self.container(container)
        if found is None:
            return None
        task = self._databases.get(found.file)
        if task is None:
            path = self.directory / found.file
            task = asyncio.ensure_future(asyncio.to_thread(load_database, path))
            self._databases[found.file] = task
        try:
            database = await asyncio.shield(task)
            return LayerCodec.of_container(database, found.name)
        except FileNotFoundError:
            self._databases.pop(found.file, None)
            raise Conflict(
                f"description {found.file} was removed; add it again to use {found.name}"
            ) from None
        except (CodecError, OSError, ValueError) as exc:
            self._databases.pop(found.file, None)
            raise ServiceError(f"description {found.file} cannot be used: {exc}") from None
        except Exception as exc:  # odxtools' own error, should the file change under us
            self._databases.pop(found.file, None)
            raise ServiceError(
                f"description {found.file} cannot be used: {type(exc).__name__}: {exc}"
            ) from None

    async def _load_stored(self) -> None:
        """Load the stored files; whatever goes wrong, none stays ``loading`` for ever."""
        try:
            await self._load_stored_files()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # spawning the loader failed, say
            log.exception("loading the stored descriptions failed")
            for entry in list(self._entries.values()):
                if entry.state == "loading":
                    self._finish(entry, f"loading failed: {type(exc).__name__}: {exc}")

    async def _load_stored_files(self) -> None:
        jobs: list[tuple[str, Path]] = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            if name in self._provided:
                continue  # built below, once the stored files are in
            try:
                _, sha256 = await asyncio.to_thread(
                    read_checked, self.directory / name, self.limits
                )
            except (PdxRejected, OSError) as exc:
                self._finish(entry, str(exc))
                continue
            entry.sha256 = sha256
            cached = await asyncio.to_thread(read_cache, self.directory, sha256)
            if cached is not None:
                self._finish(entry, cached)
            else:
                jobs.append((name, self.directory / name))
        if not jobs:  # every stored file is known: the service's own ones now
            await self._store_all_provided()
        for name, result in await _parse_in_child(jobs, self._children):
            entry_now = self._entries.get(name)
            if entry_now is None or entry_now.state != "loading":
                continue  # removed while it loaded
            if isinstance(result, DescriptionContents) and entry_now.sha256 is not None:
                await asyncio.to_thread(write_cache, self.directory, entry_now.sha256, result)
            self._finish(entry_now, result)
        # The service's own descriptions after every stored file: a stored file (a
        # user's) wins an ECU both provide.
        await self._store_all_provided()

    async def _store_all_provided(self) -> None:
        for name, build in list(self._provided.items()):
            entry_now = self._entries.get(name)
            if entry_now is not None and entry_now.state == "loading":
                await self._store_provided(entry_now, build)

    async def _store_provided(self, entry: _Entry, build: Callable[[], bytes]) -> None:
        """A description the service brings (``provide``), built and parsed in a worker
        thread (a small file; the demo's builds in a second, once per process), then
        stored and ready, or dropped (a stored file provides one of its ECUs, or a file
        of its name appeared)."""
        del self._provided[entry.name]
        why: str | None = None
        try:
            data = await asyncio.to_thread(build)
            contents = await asyncio.to_thread(parse, data)
        except PdxRejected as exc:
            why = exc.message
        else:
            why = conflict(entry.name, contents, self._ready())
            if self._entries.get(entry.name) is not entry:
                why = "removed while it was built"
            if why is None:
                async with self._write:
                    try:
                        await asyncio.to_thread(_write_new, self.directory / entry.name, data)
                    except FileExistsError:
                        why = f"a file named {entry.name} appeared; it is left as it is"
            if why is None:
                sha256 = hashlib.sha256(data).hexdigest()
                await asyncio.to_thread(write_cache, self.directory, sha256, contents)
                entry.sha256, entry.size_bytes = sha256, len(data)
                self._finish(entry, contents)
                return
        if self._entries.get(entry.name) is entry:
            del self._entries[entry.name]
        log.warning(
            "description %s (the service's own) not stored: %s",
            entry.name,
            why,
            extra={"event": "description_not_provided", "description": entry.name},
        )

    def _finish(self, entry: _Entry, result: DescriptionContents | str) -> None:
        if self._entries.get(entry.name) is not entry:
            return
        if isinstance(result, DescriptionContents):
            why = conflict(entry.name, result, self._ready())
            if why is None:
                entry.state, entry.contents = "ready", result
                log.info(
                    "description %s loaded",
                    entry.name,
                    extra={"event": "description_loaded", "description": entry.name},
                )
                return
            result = why
        entry.state, entry.error = "failed", result
        log.warning(
            "description %s not loaded: %s",
            entry.name,
            result,
            extra={"event": "description_failed", "description": entry.name},
        )

    async def add(self, name: str, data: bytes) -> Description:
        """Check, parse, store and list a new file, or raise 400/409/413 with nothing
        stored."""
        async with self._write:
            try:
                check_name(name)
            except PdxRejected as exc:
                raise BadRequest(exc.message) from None
            if name in self._entries or (self.directory / name).exists():
                raise Conflict(f"a description named {name} exists; remove it first")
            loading = self.loading()
            if loading:
                # One file per ECU is checked against the ready ones: while stored files
                # still load, a second file for one of their ECUs would get in (found in
                # review), and which one wins would depend on load order at each start.
                raise Conflict(
                    f"descriptions are still loading ({', '.join(loading)}); add this one"
                    " once they are ready (GET /health/ready lists them)"
                )
            try:
                sha256 = await asyncio.to_thread(inspect, data, self.limits)
            except PdxRejected as exc:
                raise as_service_error(exc) from None
            make_private_dir(self.directory)
            temp = self.directory / f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp"
            await asyncio.to_thread(write_private, temp, data)
            try:
                [(_, result)] = await _parse_in_child([(name, temp)], self._children)
                if isinstance(result, str):
                    raise BadRequest(result)
                why = conflict(name, result, self._ready())
                if why is not None:
                    raise BadRequest(why)
                await asyncio.to_thread(os.replace, temp, self.directory / name)
                await asyncio.to_thread(_fsync_dir, self.directory)
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise
            await asyncio.to_thread(write_cache, self.directory, sha256, result)
            entry = _Entry(name, len(data), "ready", sha256, None, result)
            self._entries[name] = entry
            log.info(
                "description %s added",
                name,
                extra={"event": "description_added", "description": name, "sha256": sha256},
            )
            return entry.record()

    async def remove(self, name: str) -> None:
        async with self._write:
            entry = self._entries.get(name)
            path = self.directory / name
            if entry is None or not _NAME.fullmatch(name):
                raise NotFound(f"no description named {name[:120]}")
            await asyncio.to_thread(_unlink, path)
            del self._entries[name]
            # Forgotten, not cancelled: callers awaiting it get the database they asked
            # for (the thread cannot be stopped anyway); the next use finds no container.
            self._databases.pop(name, None)
            if entry.sha256 is not None and all(
                e.sha256 != entry.sha256 for e in self._entries.values()
            ):
                await asyncio.to_thread(drop_cache, self.directory, entry.sha256)
            log.info(
                "description %s removed",
                name,
                extra={"event": "description_removed", "description": name},
            )


def _write_new(path: Path, data: bytes) -> None:
    """``data`` into a new file ``path`` (0600, fsynced): FileExistsError rather than
    replace a file that appeared meanwhile."""
    temp = path.with_name(f"{_TEMP_PREFIX}{secrets.token_hex(8)}.tmp")
    write_private(temp, data)
    try:
        os.link(temp, path)  # never replaces
    finally:
        temp.unlink()
    _fsync_dir(path.parent)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    _fsync_dir(path.parent)
