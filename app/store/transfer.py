"""Moving an SQLite database into PostgreSQL (``python -m app migrate-to-postgres``).

What is copied is read from the schema, not listed here: every table of the SQLite file
(``sqlite_master``), each with the columns it declares (``PRAGMA table_info``), in an
order where a referenced table comes before the ones that reference it (``PRAGMA
foreign_key_list``). The target's schema is the same migrations' (``app.store.postgres``
brings it up to date when it is opened), and the two must hold the same tables: a table
one side lacks is a refusal naming it, so the copy cannot fall behind the schema.

Rows keep their ids, timestamps and every other value as stored. Rows of tables with a
rowid are read in rowid order, so PostgreSQL's own insertion-order column (``users.rowid``,
``app.store.dialects``) follows SQLite's. Identity columns the copy filled (``commands.seq``,
``audit_log.audit_id``) have their sequences moved past the highest id copied.

The whole copy is one PostgreSQL transaction (``Engine.write``): it is refused before
anything is written when a target table holds a row, and a failure part way leaves the
target as it was, so running the command again is safe.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from app.store.migrations import MIGRATIONS, schema_version
from app.store.sql import Conn

BATCH: Final = 1000  # rows per executemany: memory stays flat on a large history
# The target's bookkeeping, not data: the schema version is the migrations' own.
TARGET_ONLY: Final = frozenset({"schema_version"})


class TransferRefused(Exception):
    """The copy cannot be made; the message says why and that nothing was written."""


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[str, ...]
    has_rowid: bool


def open_source(path: Path) -> sqlite3.Connection:
    """The SQLite file, read-only (it is never changed), checked to be this schema."""
    if not path.is_file():
        raise TransferRefused(f"no SQLite database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
    try:
        version = schema_version(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise TransferRefused(f"{path} cannot be read as an SQLite database: {exc}") from None
    if version != len(MIGRATIONS):
        conn.close()
        older = version < len(MIGRATIONS)
        raise TransferRefused(
            f"{path} is at schema version {version}, this service's is {len(MIGRATIONS)}: "
            + (
                "start this version of the service on it once (it migrates the file at"
                " start), stop it, then migrate"
                if older
                else "migrate it with the newer version that wrote it"
            )
            + "; nothing was written"
        )
    return conn


def source_tables(conn: sqlite3.Connection) -> list[Table]:
    """Every table of the SQLite schema, referenced tables first."""
    names = [
        str(r[0])
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"
            " AND name NOT LIKE 'sqlite_%' ORDER BY name"
        )
    ]
    refers = {
        name: {str(r[2]) for r in conn.execute(f'PRAGMA foreign_key_list("{name}")')} - {name}
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and refers[n] <= set(ordered)]
        if not ready:
            raise TransferRefused(
                f"the foreign keys of {sorted(set(names) - set(ordered))} form a cycle"
            )
        ordered.extend(ready)
    return [
        Table(
            name,
            tuple(str(r[1]) for r in conn.execute(f'PRAGMA table_info("{name}")')),
            _has_rowid(conn, name),
        )
        for name in ordered
    ]


def _has_rowid(conn: sqlite3.Connection, table: str) -> bool:
    try:
        conn.execute(f'SELECT rowid FROM "{table}" LIMIT 0')
    except sqlite3.OperationalError:  # a WITHOUT ROWID table
        return False
    return True


def _rows(conn: sqlite3.Connection, table: Table) -> Iterator[list[tuple[object, ...]]]:
    columns = ", ".join(f'"{c}"' for c in table.columns)
    order = " ORDER BY rowid" if table.has_rowid else ""
    cursor = conn.execute(f'SELECT {columns} FROM "{table.name}"{order}')
    while batch := cursor.fetchmany(BATCH):
        yield [tuple(row) for row in batch]


def copy_into(target: Conn, source: sqlite3.Connection) -> list[tuple[str, int]]:
    """Copy every table of ``source`` into the empty ``target`` (run inside one write
    transaction of the PostgreSQL engine); (table, rows copied) in copy order."""
    source.execute("BEGIN")  # one snapshot of the source for the whole copy
    try:
        tables = source_tables(source)
        _check_target(target, tables)
        copied = []
        for table in tables:
            copied.append((table.name, _copy_table(target, source, table)))
        _move_identities(target, tables)
        return copied
    finally:
        source.execute("ROLLBACK")


def _check_target(target: Conn, tables: list[Table]) -> None:
    columns: dict[str, set[str]] = {}
    for row in target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    ):
        columns.setdefault(str(row[0]), set()).add(str(row[1]))
    theirs = set(columns) - TARGET_ONLY
    ours = {t.name for t in tables}
    if theirs != ours:
        raise TransferRefused(
            "the two schemas differ: tables only in the SQLite file "
            f"{sorted(ours - theirs)}, only in PostgreSQL {sorted(theirs - ours)};"
            " nothing was written"
        )
    for table in tables:
        missing = set(table.columns) - columns[table.name]
        if missing:
            raise TransferRefused(
                f"PostgreSQL's {table.name} lacks the columns {sorted(missing)};"
                " nothing was written"
            )
        if target.execute(f'SELECT 1 FROM "{table.name}" LIMIT 1').fetchone() is not None:
            raise TransferRefused(
                f"the PostgreSQL database is not empty ({table.name} holds rows): the copy"
                " goes into a new database only; nothing was written"
            )


def _copy_table(target: Conn, source: sqlite3.Connection, table: Table) -> int:
    columns = ", ".join(f'"{c}"' for c in table.columns)
    marks = ", ".join("?" * len(table.columns))
    insert = f'INSERT INTO "{table.name}" ({columns}) VALUES ({marks})'
    count = 0
    for batch in _rows(source, table):
        try:
            target.executemany(insert, batch)
        except Exception as exc:  # a value PostgreSQL's types or constraints refuse
            raise TransferRefused(
                f"PostgreSQL refused a row of {table.name} ({type(exc).__name__}: {exc});"
                " nothing was written"
            ) from None
        count += len(batch)
    stored = int(target.execute(f'SELECT count(*) FROM "{table.name}"').fetchone()[0])
    if stored != count:  # cannot happen in one transaction on an empty table: say so if it does
        raise TransferRefused(f"{table.name}: {count} rows copied but {stored} stored")
    return count


def _move_identities(target: Conn, tables: list[Table]) -> None:
    """Identity columns given their values by the copy: the next id follows the last."""
    copied = {t.name: set(t.columns) for t in tables}
    for row in target.execute(
        "SELECT table_name, column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND is_identity = 'YES'"
        " AND identity_generation = 'BY DEFAULT'"
    ):
        table, column = str(row[0]), str(row[1])
        if column not in copied.get(table, set()):
            continue
        target.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?),"
            f' coalesce((SELECT max("{column}") FROM "{table}"), 1),'
            f' (SELECT max("{column}") FROM "{table}") IS NOT NULL)',
            (f'"{table}"', column),
        )
