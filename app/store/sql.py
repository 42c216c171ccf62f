"""What a store operation sees of its connection, whichever engine is behind it.

An operation is a plain function of a ``Conn``, run whole in the connection's own thread
(``app.store.engine``): SQLite's ``sqlite3.Connection`` is one as it is, and
``app.store.postgres`` wraps an asyncpg connection in the same few calls. Statements are
written once, with ``?`` placeholders; what differs between the engines' SQL lives in
``app.store.dialects``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol

# The error a statement raises when it breaks a constraint (a unique key, a foreign key, a
# CHECK), on either engine: the PostgreSQL connection raises this one too, so a store that
# maps it to a domain answer does so once.
IntegrityError = sqlite3.IntegrityError


class Row(Protocol):
    """A row read by column name (``row["vin"]``) or by position (``row[0]``). Not
    ``value in row``: an asyncpg record looks among its keys there (``tuple(row)`` holds
    the values on either engine)."""

    def __getitem__(self, key: Any, /) -> Any: ...


class Cursor(Protocol):
    row_factory: Any  # SQLite: sqlite3.Row for rows by name; PostgreSQL's rows always are

    @property
    def rowcount(self) -> int: ...

    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Conn(Protocol):
    def execute(self, sql: str, parameters: Any = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Any: ...

    def cursor(self) -> Cursor: ...


def insert_later(conn: Conn, sql: str, parameters: Sequence[Any]) -> None:
    """An INSERT whose effect nothing in the transaction reads before it commits (an
    audit row, a command's chunk). The PostgreSQL connection may hold it and send it
    with the other such rows of its batch in one round trip before the commit (each
    statement is a round trip there; ``app.store.postgres``); a failure of it then
    fails the batch's first run, and its rerun runs every statement at once, so the
    failure is the operation's as ever. SQLite runs it at once."""
    later = getattr(conn, "execute_later", None)
    if later is None:
        conn.execute(sql, parameters)
    else:
        later(sql, parameters)
