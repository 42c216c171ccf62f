"""Rows read by column name: the records are built from ``row["column"]``, never from a
position, so adding or reordering a selected column cannot shift values between fields."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from app.store.sql import Conn, Cursor, Row

E = TypeVar("E", bound=StrEnum)


def _cursor(conn: Conn, sql: str, args: Sequence[Any]) -> Cursor:
    cur = conn.cursor()
    cur.row_factory = sqlite3.Row  # SQLite's rows by name (PostgreSQL's always are)
    return cur.execute(sql, args)


def fetch_one(conn: Conn, sql: str, args: Sequence[Any] = ()) -> Row | None:
    row: Row | None = _cursor(conn, sql, args).fetchone()
    return row


def fetch_all(conn: Conn, sql: str, args: Sequence[Any] = ()) -> list[Row]:
    rows: list[Row] = _cursor(conn, sql, args).fetchall()
    return rows


def enum_reader(kind: type[E]) -> Callable[[str], E]:
    """``kind(value)`` as a dict lookup: calling an enum class runs Python code per value,
    a cost the fleet page paid once per vehicle and column. An unknown value still fails
    loudly (KeyError naming it) rather than passing as a bare string."""
    members: dict[str, E] = {member.value: member for member in kind}
    return members.__getitem__


class Where:
    """The WHERE clause of a filtered read, built one condition at a time with its
    arguments bound (never spelled into the SQL)."""

    __slots__ = ("args", "conditions")

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.args: list[Any] = []

    def add(self, condition: str, *args: Any) -> None:
        self.conditions.append(condition)
        self.args.extend(args)

    def equal(self, column: str, value: Any) -> None:
        """``column = value``, unless ``value`` is None (no filter on that column)."""
        if value is not None:
            self.add(f"{column} = ?", value)

    @property
    def clause(self) -> str:
        return f"WHERE {' AND '.join(self.conditions)}" if self.conditions else ""


def page(
    conn: Conn,
    columns: str,
    table: str,
    where: Where,
    order: str,
    limit: int,
    offset: int,
) -> tuple[list[Row], int]:
    """One page of a filtered list (``limit`` rows after ``offset`` in ``order``) and the
    count of every row the filter matches, read in the caller's one transaction."""
    clause = where.clause
    total = conn.execute(f"SELECT count(*) FROM {table} {clause}", where.args).fetchone()[0]
    rows = fetch_all(
        conn,
        f"SELECT {columns} FROM {table} {clause} ORDER BY {order} LIMIT ? OFFSET ?",
        [*where.args, limit, offset],
    )
    return rows, int(total)


def delete_batch(
    conn: Conn, table: str, key: str, condition: str, args: Sequence[Any], batch: int
) -> int:
    """Delete at most ``batch`` rows of ``table`` matching ``condition`` (a retention
    sweep keeps each write transaction short); return how many went."""
    cur = conn.execute(
        f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM {table} WHERE {condition} LIMIT ?)",
        [*args, batch],
    )
    return cur.rowcount
