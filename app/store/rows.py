"""Rows read by column name: the records are built from ``row["column"]``, never from a
position, so adding or reordering a selected column cannot shift values between fields."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

E = TypeVar("E", bound=StrEnum)


def _cursor(conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> sqlite3.Cursor:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql, args)


def fetch_one(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
    row: sqlite3.Row | None = _cursor(conn, sql, args).fetchone()
    return row


def fetch_all(conn: sqlite3.Connection, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
    rows: list[sqlite3.Row] = _cursor(conn, sql, args).fetchall()
    return rows


def enum_reader(kind: type[E]) -> Callable[[str], E]:
    """``kind(value)`` as a dict lookup: calling an enum class runs Python code per value,
    a cost the fleet page paid once per vehicle and column. An unknown value still fails
    loudly (KeyError naming it) rather than passing as a bare string."""
    members: dict[str, E] = {member.value: member for member in kind}
    return members.__getitem__
