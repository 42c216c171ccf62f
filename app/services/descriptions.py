"""The library of ECU descriptions: PDX files under ``<data dir>/descriptions/``.

Files are checked (``app.descriptions.intake``) and parsed with odxtools before they
are stored; a refused file leaves nothing behind. Stored files are written atomically
(a private temporary file, fsynced, renamed) with mode 0600, like the database.

odxtools parsing is CPU-bound Python (about 1 ms per service, 10 s for a file of 10,000
services), so it runs in a child process (a fork of a fork server started once with
odxtools imported, ``description_files``: never a fork of this threaded process): in a
thread it held the GIL often enough to delay the event loop by up to 150 ms; in a
process the loop stays within a few ms. What the service keeps of a parsed file is its
summary (``app.descriptions.summary``), cached under
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
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from app.datadir import make_private_dir
from app.descriptions.intake import PdxLimits, PdxRejected
from app.descriptions.summary import Description, DescriptionContents
from app.errors import BadRequest, Conflict, NotFound
from app.services.description_codecs import Databases
from app.services.description_entries import Entry, container_names, find_container, stage
from app.services.description_files import (
    NAME_RE,
    ContainerRef,
    SharedFiles,
    check_name,
    conflict,
    directory_of,
    drop_cache,
    fsync_dir,
    parse_in_child,
    parse_provided,
    read_cache,
    read_checked,
    remove_stale_temporaries,
    stored_files,
    unlink_synced,
    write_cache,
    write_new,
)

if TYPE_CHECKING:
    from app.descriptions.codec import LayerCodec

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DescriptionLibrary:
    """The descriptions on disk and their state (loading, ready, failed)."""

    data_dir: Path
    limits: PdxLimits
    _entries: dict[str, Entry] = field(default_factory=dict)
    _write: asyncio.Lock = field(default_factory=asyncio.Lock)
    _children: set[multiprocessing.process.BaseProcess] = field(default_factory=set)
    _task: asyncio.Task[None] | None = None
    # odxtools databases loaded in this process (see ``codec``).
    _databases: Databases = field(default_factory=Databases)
    # Descriptions the service brings itself (``provide``): name -> what builds it.
    _provided: dict[str, Callable[[], bytes]] = field(default_factory=dict)
    # A cluster: the library every node shares (app.services.description_sync); else None.
    shared: SharedFiles | None = None
    _adopted: set[asyncio.Task[None]] = field(default_factory=set)  # loading adopted files

    @property
    def directory(self) -> Path:
        return directory_of(self.data_dir)

    @property
    def writing(self) -> asyncio.Lock:
        """Held while the files change (``adopt`` and ``forget`` want it held)."""
        return self._write

    def start(self) -> None:
        """Register what is on disk (and what ``provide`` registered) as loading and load
        it in the background."""
        make_private_dir(self.directory)
        remove_stale_temporaries(self.directory)
        for path in stored_files(self.directory):
            if path.name not in self._entries:
                self._entries[path.name] = Entry(path.name, path.stat().st_size)
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
        self._entries[name] = Entry(name, 0)
        self._provided[name] = build
        return True

    async def aclose(self) -> None:
        for process in list(self._children):
            # Only a live one: the fork server reaps a loader as it ends, and its pid may
            # belong to another process by now.
            if process.is_alive():
                process.terminate()
        for task in list(self._adopted):
            task.cancel()
        await asyncio.gather(*self._adopted, return_exceptions=True)
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
        return find_container(self._ready(), name)

    def container_names(self) -> list[str]:
        """Every ready container with an ECU (a base variant), by name."""
        return container_names(self._ready())

    async def codec(self, container: str) -> LayerCodec | None:
        """The codec of ``container``'s base variant (any case); None if no ready file
        provides it (``app.services.description_codecs``: loaded on first use, kept)."""
        found = self.container(container)
        return None if found is None else await self._databases.codec(self.directory, found)

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

    async def _read_stored(self, entry: Entry) -> DescriptionContents | str | None:
        """A stored file checked (its sha256 noted) and its cached summary: the summary,
        why it cannot load, or None (it is to be parsed)."""
        try:
            _, sha256 = await asyncio.to_thread(
                read_checked, self.directory / entry.name, self.limits
            )
        except (PdxRejected, OSError) as exc:
            return str(exc)
        entry.sha256 = sha256
        return await asyncio.to_thread(read_cache, self.directory, sha256)

    async def _load_stored_files(self) -> None:
        jobs: list[tuple[str, Path]] = []
        for name in sorted(self._entries):
            entry = self._entries[name]
            if name in self._provided:
                continue  # built below, once the stored files are in
            known = await self._read_stored(entry)
            if known is not None:
                self._finish(entry, known)
            else:
                jobs.append((name, self.directory / name))
        if not jobs:  # every stored file is known: the service's own ones now
            await self._store_all_provided()
        for name, result in await parse_in_child(jobs, self._children):
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

    async def _store_provided(self, entry: Entry, build: Callable[[], bytes]) -> None:
        """A description the service brings (``provide``), built and parsed in a worker
        thread (a small file; the demo's builds in a second, once per process), then
        stored and ready, or dropped (a stored file provides one of its ECUs, or a file
        of its name appeared)."""
        del self._provided[entry.name]
        why: str | None = None
        try:
            data = await asyncio.to_thread(build)
            contents = await asyncio.to_thread(parse_provided, data)
        except PdxRejected as exc:
            why = exc.message
        else:
            sha256 = hashlib.sha256(data).hexdigest()
            # Checked and written in one hold of the write lock, as ``remove`` deletes: a
            # removal waiting for the lock would otherwise come between the two.
            async with self._write:
                if self._entries.get(entry.name) is not entry:
                    why = "removed while it was built"
                else:
                    why = conflict(entry.name, contents, self._ready())
                if why is None:
                    why = await self._write_provided(entry.name, sha256, data)
            if why is None:
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

    async def _write_provided(self, name: str, sha256: str, data: bytes) -> str | None:
        """A description the service brings into the directory (and, on a cluster, into
        the shared library first); why not, or None."""
        try:
            if self.shared is not None:
                await self.shared.store(name, sha256, data)
        except Conflict:
            return f"a file named {name} is in the shared library; that one is used"
        try:
            await asyncio.to_thread(write_new, self.directory / name, data)
        except FileExistsError:
            if self.shared is not None:
                await self.shared.drop(name, sha256)
            return f"a file named {name} appeared; it is left as it is"
        return None

    def _finish(self, entry: Entry, result: DescriptionContents | str) -> None:
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
            temp, sha256, result = await stage(
                self.directory, name, data, self.limits, self._children, self._ready()
            )
            try:
                if self.shared is not None:  # a cluster: 409 if another node took the name
                    await self.shared.store(name, sha256, data)
                try:
                    await asyncio.to_thread(os.replace, temp, self.directory / name)
                    await asyncio.to_thread(fsync_dir, self.directory)
                except BaseException:
                    if self.shared is not None:
                        await self.shared.drop(name, sha256)
                    raise
            except BaseException:
                with contextlib.suppress(OSError):
                    temp.unlink()
                raise
            await asyncio.to_thread(write_cache, self.directory, sha256, result)
            entry = Entry(name, len(data), "ready", sha256, None, result)
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
            if entry is None or not NAME_RE.fullmatch(name):
                raise NotFound(f"no description named {name[:120]}")
            if self.shared is not None:  # a cluster: gone from the shared library first
                await self.shared.drop(name, entry.sha256)
            await self._drop(entry)
            log.info(
                "description %s removed",
                name,
                extra={"event": "description_removed", "description": name},
            )

    async def _drop(self, entry: Entry) -> None:
        await asyncio.to_thread(unlink_synced, self.directory / entry.name)
        del self._entries[entry.name]
        # Forgotten, not cancelled: callers awaiting it get the database they asked
        # for (the thread cannot be stopped anyway); the next use finds no container.
        self._databases.drop(entry.name)
        if entry.sha256 is not None and all(
            e.sha256 != entry.sha256 for e in self._entries.values()
        ):
            await asyncio.to_thread(drop_cache, self.directory, entry.sha256)

    # -- a cluster's shared files (app.services.description_sync), ``writing`` held -------

    async def adopt(self, name: str, sha256: str, data: bytes) -> bool:
        """A file another node shared: into the directory (never over a file), then
        loaded in the background as a stored file is. Whether it was written."""
        if name in self._entries:
            return False
        try:
            await asyncio.to_thread(write_new, self.directory / name, data)
        except FileExistsError:
            return False
        entry = self._entries[name] = Entry(name, len(data), sha256=sha256)
        task = asyncio.create_task(self._load_adopted(entry), name=f"description-{name}")
        self._adopted.add(task)
        task.add_done_callback(self._adopted.discard)
        return True

    async def forget(self, name: str) -> None:
        """A file another node removed from the shared library: gone here too."""
        entry = self._entries.get(name)
        if entry is not None:
            await self._drop(entry)
            log.info(
                "description %s removed through another node",
                name,
                extra={"event": "description_removed", "description": name},
            )

    async def _load_adopted(self, entry: Entry) -> None:
        result: DescriptionContents | str | None
        try:
            result = await self._read_stored(entry)
            if result is None:
                path = self.directory / entry.name
                [(_, result)] = await parse_in_child([(entry.name, path)], self._children)
                if isinstance(result, DescriptionContents) and entry.sha256 is not None:
                    await asyncio.to_thread(write_cache, self.directory, entry.sha256, result)
        except Exception as exc:  # never ``loading`` for ever
            result = f"loading failed: {type(exc).__name__}: {exc}"
        if entry.state == "loading":
            self._finish(entry, result)
