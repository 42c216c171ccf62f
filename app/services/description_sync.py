"""A cluster's ECU descriptions: one library, shared by every node (``DescriptionSync``).

On a single node the PDX files live in its data directory only (``app.services.
descriptions``). On a cluster (PostgreSQL and NATS) each file added through any node is
also stored in the database (``app.store.description_blobs``), in the same step the
upload is accepted: a name another node took first is a 409 there, decided by the
table's unique name. Every node keeps a copy of each shared file in its own data
directory and loads it from there, so the loading, the summary cache and the codecs are
a single node's.

How a node's directory follows the shared library:

- at start, before anything is loaded (``catch_up``): shared files it lacks are written,
  files removed elsewhere while it was down are removed, and files only it has (added
  with ``python -m app descriptions add`` while it was stopped, or kept from before the
  node joined a cluster) are shared;
- at once when another node says a file was added or removed (the notice
  ``descriptions_changed``, over the bus);
- every ``SOVD_DESCRIPTION_SYNC_S`` seconds (a listing of names and digests, no bytes),
  which catches up on a notice lost while the bus was down.

What the node shared or took from the library is remembered in ``descriptions/.shared.
json`` (name -> sha256): a file listed there and no longer in the database was removed
through another node; a file not listed there is the node's own (it is shared at start).
A local file whose name the library holds with other bytes is moved to ``descriptions/
.replaced/`` (never loaded, never lost) and the shared one is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Final

import msgspec

from app.bus import Bus, DescriptionsChanged, Notice
from app.clock import Clock
from app.datadir import make_private_dir
from app.descriptions.intake import PdxRejected
from app.errors import Conflict
from app.services.description_files import read_checked, stored_files, unlink_synced, write_private
from app.services.descriptions import DescriptionLibrary
from app.store.description_blobs import DescriptionBlobStore, NameTaken

log = logging.getLogger(__name__)

MANIFEST: Final = ".shared.json"
REPLACED: Final = ".replaced"


class DescriptionSync:
    """The library's ``shared`` (``SharedFiles``): what it adds and removes goes to the
    database and to the other nodes; what they add and remove comes here."""

    def __init__(
        self,
        library: DescriptionLibrary,
        blobs: DescriptionBlobStore,
        bus: Bus,
        clock: Clock,
        period_s: float,
    ) -> None:
        self._library = library
        self._blobs = blobs
        self._bus = bus
        self._clock = clock
        self._period_s = period_s
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False  # the last pass failed (logged once until one succeeds)
        self._manifest: dict[str, str] = {}
        library.shared = self
        bus.on_notice(self.heard)

    @property
    def _directory(self) -> Path:
        return self._library.directory

    # -- what the library tells the others (``SharedFiles``) ---------------------------

    async def store(self, name: str, sha256: str, data: bytes) -> None:
        try:
            await self._blobs.add(name, sha256, data, self._clock.timestamp())
        except NameTaken:
            raise Conflict(f"a description named {name} exists; remove it first") from None
        self._remember(name, sha256)
        self._bus.broadcast(DescriptionsChanged(change="added", name=name, sha256=sha256))

    async def drop(self, name: str, sha256: str | None) -> None:
        await self._blobs.remove(name)
        self._forget(name)
        self._bus.broadcast(DescriptionsChanged(change="removed", name=name, sha256=sha256 or ""))

    # -- what the others tell this node ------------------------------------------------

    def heard(self, notice: Notice) -> None:
        if isinstance(notice, DescriptionsChanged):
            log.debug(
                "description %s %s through another node",
                notice.name,
                notice.change,
                extra={"event": "description_elsewhere", "description": notice.name},
            )
            self._wake.set()

    def start(self) -> None:
        """The background follower (after the library has started)."""
        self._task = asyncio.create_task(self._follow(), name="descriptions-sync")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _follow(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._period_s):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.follow()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database away, say: the next pass tries again
                if not self._failing:
                    log.warning(
                        "cannot compare the descriptions with the shared library: %s: %s",
                        type(exc).__name__,
                        exc,
                        extra={"event": "description_sync_failed"},
                    )
                self._failing = True
            else:
                self._failing = False

    async def follow(self) -> None:
        """One pass: the library in line with the shared one (files added or removed
        through other nodes). Holds the library's write lock, so no upload here runs
        meanwhile."""
        library = self._library
        async with library.writing:
            shared = {f.name: f.sha256 for f in await self._blobs.listing()}
            for have in library.all():
                if have.state == "loading":
                    continue  # being read (at start, or adopted): compared at the next pass
                theirs = shared.get(have.name)
                if theirs is not None and have.sha256 == theirs:
                    continue  # the same file
                if have.name not in self._manifest:
                    continue  # this node's own, not shared (the demo's, being built)
                await library.forget(have.name)  # removed, or replaced, elsewhere
                self._forget(have.name)
            known = {d.name for d in library.all()}
            for name in sorted(set(shared) - known):
                found = await self._blobs.content(name)
                if found is not None and await library.adopt(name, *found):
                    self._remember(name, found[0])
                    log.info(
                        "description %s added through another node",
                        name,
                        extra={"event": "description_shared", "description": name},
                    )

    # -- at start ----------------------------------------------------------------------

    async def catch_up(self) -> None:
        """Before the library starts: its directory in line with the shared library."""
        make_private_dir(self._directory)
        self._manifest = await asyncio.to_thread(_read_manifest, self._directory / MANIFEST)
        shared = {f.name: f.sha256 for f in await self._blobs.listing()}
        for path in await asyncio.to_thread(stored_files, self._directory):
            mine = await asyncio.to_thread(_digest, path)
            theirs = shared.get(path.name)
            if theirs == mine:
                self._remember(path.name, mine)
            elif theirs is None and path.name in self._manifest:
                await asyncio.to_thread(unlink_synced, path)  # removed elsewhere meanwhile
                self._forget(path.name)
                log.info(
                    "description %s was removed through another node",
                    path.name,
                    extra={"event": "description_removed", "description": path.name},
                )
            elif theirs is None:
                await self._share_own(path)
            else:
                await asyncio.to_thread(_set_aside, path, mine)
                self._forget(path.name)
        present = {p.name for p in stored_files(self._directory)}
        for name in sorted(set(shared) - present):
            found = await self._blobs.content(name)
            if found is not None:
                await asyncio.to_thread(write_private, self._directory / name, found[1])
                self._remember(name, found[0])

    async def _share_own(self, path: Path) -> None:
        """A file only this node has, shared if it passes the intake checks (else it stays
        this node's, and fails to load as it would on a single node)."""
        try:
            data, sha256 = await asyncio.to_thread(read_checked, path, self._library.limits)
        except (PdxRejected, OSError):
            return
        try:
            await self.store(path.name, sha256, data)
        except Conflict:  # another node shared one of that name just now: the next pass
            return
        log.info(
            "description %s (this node's own) is shared now",
            path.name,
            extra={"event": "description_shared", "description": path.name},
        )

    # -- the manifest ------------------------------------------------------------------

    def _remember(self, name: str, sha256: str) -> None:
        if self._manifest.get(name) != sha256:
            self._manifest[name] = sha256
            self._save()

    def _forget(self, name: str) -> None:
        if self._manifest.pop(name, None) is not None:
            self._save()

    def _save(self) -> None:
        # Small (a name and a digest per file) and rare: written where it changes. Best
        # effort: the file is shared or removed already; a manifest behind only makes the
        # next start take a file this node had from the library for one of its own.
        try:
            write_private(self._directory / MANIFEST, msgspec.json.encode(self._manifest))
        except OSError as exc:
            log.warning(
                "cannot write %s: %s",
                MANIFEST,
                exc,
                extra={"event": "description_sync_failed"},
            )


def _read_manifest(path: Path) -> dict[str, str]:
    try:
        return msgspec.json.decode(path.read_bytes(), type=dict[str, str])
    except (OSError, msgspec.DecodeError):
        return {}  # none (a new node): every local file is this node's own


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _set_aside(path: Path, sha256: str) -> None:
    """A local file whose name the shared library holds with other bytes: kept, unloaded."""
    aside = path.parent / REPLACED
    make_private_dir(aside)
    os.replace(path, aside / f"{sha256[:16]}-{path.name}")
    log.warning(
        "description %s differs from the shared file of that name: the shared one is used,"
        " this node's is kept in %s",
        path.name,
        aside,
        extra={"event": "description_set_aside", "description": path.name},
    )
