"""``python -m app migrate-to-postgres``: an SQLite database moved into PostgreSQL (issue #23
item 6), by ``app.store.transfer``.

The source is the SQLite file (``--from``, default ``SOVD_DB_PATH``), opened read-only
and under its data directory's lock, so the service must be stopped there (a command
it ran meanwhile would be missing from the copy). The target is the PostgreSQL database
``--to`` names (default ``SOVD_DATABASE_URL``, where a password belongs: a URL on the
command line shows in ``ps``; or leave the password out and set ``PGPASSWORD``); it is
brought to this schema as the service would, claimed as the service claims it (refused
while a service uses it), and must hold no row. One transaction: all or nothing.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlsplit

from app.cli_subcommands import Subcommands
from app.config.parsing import database_url
from app.datadir import DataDirLock, DataDirLocked
from app.errors import StartupError, StorageUnavailable
from app.store.engine import open_database
from app.store.sql import IntegrityError
from app.store.transfer import TransferRefused, copy_into, open_source

if TYPE_CHECKING:
    from app.config import Config

COMMAND = "migrate-to-postgres"


class MigrateError(Exception):
    """The one line printed when the copy cannot be made."""


def register(commands: Subcommands) -> None:
    move = commands.add_parser(
        COMMAND,
        help="copy the SQLite database into an empty PostgreSQL database (service stopped)",
        description="Copy every table of the SQLite database (users, service accounts,"
        " sessions, vehicles, commands with their answers, the audit log) into an empty"
        " PostgreSQL database, keeping ids and timestamps, in one transaction. The"
        " service must be stopped on the SQLite file; the PostgreSQL database must hold"
        " no row. Prints the rows copied per table.",
    )
    move.add_argument(
        "--from",
        dest="source",
        metavar="FILE",
        help="the SQLite database file (default: SOVD_DB_PATH)",
    )
    move.add_argument(
        "--to",
        dest="target",
        metavar="URL",
        help="postgresql://user@host:5432/dbname (default: SOVD_DATABASE_URL; keep a"
        " password out of the command line: PGPASSWORD or SOVD_DATABASE_URL)",
    )


async def run(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    source = Path(args.source) if args.source else config.db_path
    target = args.target or config.database_url
    if target is None:
        raise MigrateError("no target: give --to postgresql://... or set SOVD_DATABASE_URL")
    try:
        database_url(target)
    except ValueError as exc:
        raise MigrateError(f"--to: {exc}") from None
    lock = DataDirLock(source.parent)
    try:
        lock.acquire()
    except DataDirLocked:
        raise MigrateError(
            f"the service is running on {source.parent}: stop it first (a command it runs"
            " meanwhile would be missing from the copy); nothing was written"
        ) from None
    try:
        await _copy(source, target, out)
    finally:
        lock.release()


async def _copy(source: Path, target: str, out: TextIO) -> None:
    try:
        conn = open_source(source)
    except TransferRefused as exc:
        raise MigrateError(str(exc)) from None
    try:
        db = open_database(source, target)
        try:
            await db.open()  # the schema as the service makes it; refused while one runs
        except StartupError as exc:
            raise MigrateError(f"{exc}; nothing was written") from None
        try:
            copied = await db.write(lambda target_conn: copy_into(target_conn, conn), durable=True)
        except TransferRefused as exc:
            raise MigrateError(str(exc)) from None
        except (IntegrityError, StorageUnavailable) as exc:
            raise MigrateError(
                f"PostgreSQL refused the copy ({exc}); nothing was written"
            ) from None
        finally:
            await db.close()
    finally:
        conn.close()
    out.write(f"copied {source} into {_where(target)}, one transaction:\n")
    width = max(len(name) for name, _ in copied)
    for name, count in copied:
        out.write(f"  {name:<{width}} {count:>9}\n")
    out.write(f"{sum(c for _, c in copied)} rows in {len(copied)} tables\n")


def _where(url: str) -> str:
    """The database a URL names, without its user or password."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.hostname or 'the default host'}{port}{parts.path}"
