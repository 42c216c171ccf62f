"""The ECU description files a cluster shares (``description_files``, migration 9): each
PDX file's bytes under its unique name, its sha256, size and when it was added.

Only a cluster uses the table (``app.services.description_sync``: every node keeps a copy
of each file in its own data directory and loads it from there); on a single node it
exists and stays empty. The name is the table's primary key, so when two nodes add a file
of one name at once the database decides: the second ``add`` raises ``NameTaken``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from app.store.engine import Engine
from app.store.sql import Conn, IntegrityError

_INSERT: Final = (
    "INSERT INTO description_files (name, sha256, size_bytes, content, added_at)"
    " VALUES (?, ?, ?, ?, ?)"
)


class NameTaken(Exception):
    """A shared description of that name exists already."""


@dataclass(frozen=True, slots=True)
class SharedFile:
    """A shared file as listed: everything but its bytes."""

    name: str
    sha256: str
    size_bytes: int
    added_at: str


class DescriptionBlobStore:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def add(self, name: str, sha256: str, data: bytes, added_at: str) -> None:
        """Store the file, durably (an accepted upload survives a crash of the database
        server); NameTaken if a file of that name is shared already."""

        def insert(conn: Conn) -> None:
            conn.execute(_INSERT, (name, sha256, len(data), data, added_at))

        try:
            await self._db.write(insert, durable=True)
        except IntegrityError:
            raise NameTaken(name) from None

    async def remove(self, name: str) -> bool:
        """Delete the file of that name; whether there was one."""

        def delete(conn: Conn) -> bool:
            cursor = conn.execute("DELETE FROM description_files WHERE name = ?", (name,))
            return cursor.rowcount > 0

        return await self._db.write(delete, durable=True)

    async def listing(self) -> list[SharedFile]:
        """Every shared file by name, without the bytes (a cheap read: a node compares
        it with what it has)."""

        def read(conn: Conn) -> list[SharedFile]:
            rows = conn.execute(
                "SELECT name, sha256, size_bytes, added_at FROM description_files ORDER BY name"
            ).fetchall()
            return [SharedFile(r[0], r[1], int(r[2]), r[3]) for r in rows]

        return await self._db.read(read, single_statement=True)

    async def content(self, name: str) -> tuple[str, bytes] | None:
        """The file's sha256 and bytes, or None if no file of that name is shared."""

        def read(conn: Conn) -> tuple[str, bytes] | None:
            row = conn.execute(
                "SELECT sha256, content FROM description_files WHERE name = ?", (name,)
            ).fetchone()
            return None if row is None else (str(row[0]), bytes(row[1]))

        return await self._db.read(read, single_statement=True)
