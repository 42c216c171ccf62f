"""The odxtools ``Database`` of each ready description, loaded in this process on first
use (in a worker thread: odxtools holds the GIL while it parses, about 1 ms a service) and
kept until its file is removed: what ``DescriptionLibrary.codec`` encodes and decodes
with. Only files an ECU is used with are ever loaded here."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import Conflict, ServiceError
from app.services.description_files import ContainerRef, load_database

if TYPE_CHECKING:
    from odxtools.database import Database

    from app.descriptions.codec import LayerCodec


class Databases:
    def __init__(self) -> None:
        self._loaded: dict[str, asyncio.Task[Database]] = {}  # by file name

    async def codec(self, directory: Path, found: ContainerRef) -> LayerCodec:
        """The codec of ``found``'s base variant; its file's Database loaded on first use.
        Conflict if the file went, ServiceError if odxtools cannot load it here."""
        from app.descriptions.codec import LayerCodec
        from app.descriptions.parameters import CodecError

        task = self._loaded.get(found.file)
        if task is None:
            task = asyncio.ensure_future(asyncio.to_thread(load_database, directory / found.file))
            self._loaded[found.file] = task
        try:
            database = await asyncio.shield(task)
            return LayerCodec.of_container(database, found.name)
        except FileNotFoundError:
            self.drop(found.file)
            raise Conflict(
                f"description {found.file} was removed; add it again to use {found.name}"
            ) from None
        except (CodecError, OSError, ValueError) as exc:
            self.drop(found.file)
            raise ServiceError(f"description {found.file} cannot be used: {exc}") from None
        except Exception as exc:  # odxtools' own error, should the file change under us
            self.drop(found.file)
            raise ServiceError(
                f"description {found.file} cannot be used: {type(exc).__name__}: {exc}"
            ) from None

    def drop(self, file: str) -> None:
        """Forget ``file``'s Database (removed, or failed to load)."""
        self._loaded.pop(file, None)
