"""The command line: ``python -m app [serve]`` runs the service; ``python -m app users ...``
manages accounts on the database directly, for an operator locked out of the API;
``python -m app migrate-to-postgres`` moves the SQLite database into PostgreSQL
(``app.cli_migrate``).

Configuration comes from the environment (``SOVD_*``) either way: the users commands
read ``SOVD_DB_PATH`` and ``SOVD_PASSWORD_HASH_PROFILE``. Those that change something
take the data directory's lock first, so they refuse while the service runs (two writers
would race; use the API then) and the service cannot start halfway through one; those
that only read (``users list``, ``users check``, ``descriptions list``) take no lock and
open the database read-only (``descriptions list`` reads files only), so they work while
the service runs. Usernames are printed escaped (``app.usernames.shown``): a stored name
never writes a raw control character to the terminal. Passwords are read from the
terminal (asked twice) or, when stdin is not a terminal, as one line from stdin: never
from the command line, where ``ps`` and shell history would show them.

Exit status: 0 done, 1 refused or failed (one line on stderr saying why; ``users check``:
some username breaks the rule), 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import hashlib
import os
import pwd
import re
import sqlite3
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, TextIO, TypeVar

from app import cli_migrate, cli_service_accounts
from app.config import Config, ConfigError
from app.datadir import LOCK_NAME, DataDirLock, DataDirLocked, make_private_dir
from app.descriptions.intake import PdxLimits, PdxRejected
from app.errors import ServiceError, StartupError
from app.models import Actor
from app.services import description_files
from app.services.auth import AuthService
from app.services.passwords import PASSWORD_RULES, password_hasher
from app.services.tokens import TokenSettings
from app.store.audit import AuditStore
from app.store.engine import Engine, open_database, read_once
from app.store.sql import Conn
from app.store.users import UserStore, all_users, names_by_age
from app.telemetry import NoTelemetry
from app.usernames import UsernameError, check_username, nonconforming, shown, username_key
from app.version import version
from app.vocabulary import Role

T = TypeVar("T")

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2


class CliError(Exception):
    """A users command cannot go on; the message is the one line printed."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m app",
        description="SOVD command service. Settings come from the environment (SOVD_*,"
        " see docs/configuration.md); without a command it serves.",
    )
    top.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = top.add_subparsers(
        dest="command",
        metavar="{serve,users,service-accounts,descriptions,migrate-to-postgres}",
    )
    commands.add_parser("serve", help="run the service (the default)")
    users = commands.add_parser(
        "users",
        help="manage accounts on the database directly (changes: service stopped)",
        description="Accounts, changed in the database directly: for an operator locked out"
        " of the API. Changes are refused while the service runs (use the API then); list"
        " and check only read and work any time. Passwords are asked for on the terminal,"
        " or read as one line from stdin.",
    )
    action = users.add_subparsers(dest="action", metavar="ACTION", required=True)
    action.add_parser("list", help="list the accounts; read-only, works while the service runs")
    action.add_parser(
        "check",
        help="list the accounts whose username breaks the username rule (exit 1 if any);"
        " read-only, works while the service runs",
    )
    create = action.add_parser("create", help="create an account (asks for its password)")
    create.add_argument("username")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.ENGINEER.value)
    reset = action.add_parser(
        "reset-password", help="set an account's password (asks for it); ends its sessions"
    )
    reset.add_argument("username")
    disable = action.add_parser("disable", help="disable an account; ends its sessions")
    disable.add_argument("username")
    enable = action.add_parser("enable", help="re-enable a disabled account")
    enable.add_argument("username")
    cli_service_accounts.register(commands)
    cli_migrate.register(commands)
    descriptions = commands.add_parser(
        "descriptions",
        help="manage the ECU descriptions (PDX files) on disk (add/remove: service stopped)",
        description="ECU descriptions under <data dir>/descriptions/, checked as the API"
        " checks them (POST /api/v1/descriptions). add and remove are refused while the"
        " service runs (use the API then); list only reads.",
    )
    what = descriptions.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = what.add_parser("add", help="check a PDX file and add it (its file name is kept)")
    add.add_argument("file")
    what.add_parser("list", help="list the stored files (works while the service runs)")
    remove = what.add_parser("remove", help="remove a stored file by its name")
    remove.add_argument("name")
    return top


def main(argv: Sequence[str], env: Mapping[str, str], serve: Callable[[Config], int]) -> int:
    args = parser().parse_args(argv)
    try:
        config = Config.from_env(env)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command in (None, "serve"):
        return serve(config)
    if args.command == "descriptions":
        try:
            descriptions_command(config, args, sys.stdout)
        except CliError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    if args.command == cli_migrate.COMMAND:
        try:
            asyncio.run(cli_migrate.run(config, args, sys.stdout))
        except cli_migrate.MigrateError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    if args.command == "service-accounts":
        try:
            asyncio.run(cli_service_accounts.command(config, args, sys.stdout))
        except (CliError, ServiceError, StartupError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        return EXIT_OK
    try:
        if args.action == "check":
            return EXIT_FAILED if _check(config, sys.stdout) else EXIT_OK
        if args.action == "list":
            _list(config, sys.stdout)
            return EXIT_OK
        asyncio.run(_users(config, args, sys.stdin, sys.stdout))
    except (CliError, ServiceError, StartupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


# -- users ------------------------------------------------------------------------------


def cli_actor() -> Actor:
    """Who the audit log names for a change made here: the operating-system account."""
    try:
        name = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        name = str(os.getuid())
    return Actor(user_id=None, username=f"cli:{name}"[:64], client_address="local")


def _read_password(stdin: TextIO) -> str:
    if stdin.isatty():
        first = getpass.getpass(f"new password ({PASSWORD_RULES}): ")
        if getpass.getpass("again: ") != first:
            raise CliError("the two passwords differ; nothing changed")
        return first
    line = stdin.readline().rstrip("\r\n")
    if not line:
        raise CliError("no password on stdin (one line expected); nothing changed")
    return line


def need_database(config: Config) -> None:
    if config.database_url is None and not config.db_path.exists():
        raise CliError(
            f"no database at {config.db_path} (SOVD_DB_PATH); start the service once to"
            " create it, or point SOVD_DB_PATH at the existing one"
        )


def _read(config: Config, query: Callable[[Conn], T]) -> T:
    """Run ``query`` on a read-only connection, without the data directory's lock (a
    running service holds it, and reading needs none): it never changes or blocks
    anything, and the service's writes go on (WAL: readers see the last commit)."""
    need_database(config)
    if config.database_url is not None:
        return asyncio.run(read_once(config.database_url, query))
    uri = f"{config.db_path.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=5.0)
        try:
            return query(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise CliError(f"cannot read {config.db_path}: {exc}") from None


def _list(config: Config, out: TextIO) -> None:
    """``users list``: every account, read-only (works while the service runs)."""
    listed = _read(config, all_users)
    out.write(f"{'username':<24} {'role':<9} {'state':<9} user_id\n")
    for u in listed:
        state = "disabled" if u.disabled else "enabled"
        out.write(f"{shown(u.username):<24} {u.role.value:<9} {state:<9} {u.user_id}\n")


def _check(config: Config, out: TextIO) -> int:
    """``users check``: print each stored username that breaks the rule, escaped, with
    why; how many. Read-only (``_read``), so it works while the service runs."""
    rows = _read(config, names_by_age)
    failing = nonconforming((str(u), str(n)) for u, n in rows)
    for user_id, name, why in failing:
        out.write(f"{shown(name)} (user {user_id}): {why}\n")
    if failing:
        out.write(
            f"{len(failing)} of {len(rows)} usernames break the rule; they still work as"
            " they are: disable (PATCH /api/v1/users/{user_id}) or replace them\n"
        )
    else:
        out.write(f"all {len(rows)} usernames keep the rule\n")
    return len(failing)


async def _users(config: Config, args: argparse.Namespace, stdin: TextIO, out: TextIO) -> None:
    need_database(config)
    if args.action == "create":
        try:  # the form first: no password is asked for a name that cannot be created
            check_username(args.username)
        except UsernameError as exc:
            raise CliError(f"{exc}; nothing changed") from None
    # Read before the lock is taken: a change cannot wait on a prompt holding the service off.
    password = _read_password(stdin) if args.action in ("create", "reset-password") else ""
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except DataDirLocked:
        raise CliError(
            f"the service is running on {config.data_dir} (pid {lock_holder(config)}); stop the"
            " service or use the API (PATCH /api/v1/users/{user_id}, POST /api/v1/users)"
        ) from None
    try:
        db = open_database(config.db_path, config.database_url)
        await db.open()
        try:
            await _run(auth_service(db, config), UserStore(db), args, password, out)
        finally:
            await db.close()
    finally:
        lock.release()


# -- descriptions ---------------------------------------------------------------------


def descriptions_command(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    """``descriptions add FILE | list | remove NAME`` on ``<data dir>/descriptions``: the
    API's checks, the same files; add and remove under the data directory's lock."""
    directory = description_files.directory_of(config.data_dir)
    limits = PdxLimits(config.pdx_max_bytes, config.pdx_max_unpacked_bytes, config.pdx_max_entries)
    if args.action == "list":
        _list_descriptions(directory, out)
        return
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except DataDirLocked:
        raise CliError(
            f"the service is running on {config.data_dir} (pid {lock_holder(config)}); stop the"
            " service or use the API (POST /api/v1/descriptions, DELETE"
            " /api/v1/descriptions/{name})"
        ) from None
    try:
        if args.action == "add":
            _add_description(Path(args.file), directory, limits, out)
        else:
            _remove_description(args.name, directory, out)
    finally:
        lock.release()


def _add_description(path: Path, directory: Path, limits: PdxLimits, out: TextIO) -> None:
    name = path.name
    try:
        description_files.check_name(name)
        if (directory / name).exists():
            raise CliError(f"a description named {name} exists; remove it first; nothing changed")
        data, sha256 = description_files.read_checked(path, limits)
        contents = description_files.parse(data)
        others = {}
        for stored in description_files.stored_files(directory):
            try:
                stored_data, stored_sha = description_files.read_checked(stored, limits)
                known = description_files.read_cache(directory, stored_sha)
                others[stored.name] = known or description_files.parse(stored_data)
            except PdxRejected:
                continue  # a stored file that does not load provides no ECU
        why = description_files.conflict(name, contents, others)
        if why is not None:
            raise PdxRejected(why)
    except PdxRejected as exc:
        raise CliError(f"{name}: {exc.message}; nothing changed") from None
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    make_private_dir(directory)
    description_files.write_private(directory / name, data)
    description_files.write_cache(directory, sha256, contents)
    ecus = ", ".join(contents.base_variants)
    out.write(f"added {name} (sha256 {sha256}): {ecus}\n")


def _list_descriptions(directory: Path, out: TextIO) -> None:
    files = description_files.stored_files(directory)
    for path in files:
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        known = description_files.read_cache(directory, sha256)
        ecus = ", ".join(known.base_variants) if known else "(not loaded yet)"
        out.write(f"{path.name}  {len(data)} bytes  sha256 {sha256}  {ecus}\n")
    out.write(f"{len(files)} description(s) in {directory}\n")


def _remove_description(name: str, directory: Path, out: TextIO) -> None:
    path = directory / name
    if not re.fullmatch(description_files.NAME_PATTERN, name) or not path.is_file():
        raise CliError(f"no description named {name!r} in {directory}")
    sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
    path.unlink()
    description_files.drop_cache(directory, sha256)
    out.write(f"removed {name}\n")


def lock_holder(config: Config) -> str:
    try:
        text = (config.data_dir / LOCK_NAME).read_text("ascii", "replace").strip()
    except OSError:
        return "unknown"
    return text if text.isdigit() else "unknown"


def auth_service(db: Engine, config: Config) -> AuthService:
    # No tokens are issued here: the signing settings are never read.
    return AuthService(
        UserStore(db),
        AuditStore(db),
        TokenSettings(secret="", access_ttl_s=0, refresh_ttl_s=0),
        NoTelemetry(),
        hasher=password_hasher(config.password_hash_profile),
    )


async def _run(
    auth: AuthService, users: UserStore, args: argparse.Namespace, password: str, out: TextIO
) -> None:
    actor = cli_actor()
    if args.action == "create":
        user = await auth.users.create_user(
            args.username, password, Role(args.role), actor, field="username"
        )
        out.write(f"created {shown(user.username)} ({user.role.value}) {user.user_id}\n")
        return
    creds = await users.credentials(username_key(args.username))
    if creds is None:
        raise CliError(f"no user named {shown(args.username)} (see: python -m app users list)")
    user_id = creds.user.user_id
    steps: dict[str, Callable[[], Awaitable[object]]] = {
        "reset-password": lambda: auth.users.reset_password(user_id, password, actor),
        "disable": lambda: auth.users.set_disabled(user_id, True, actor),
        "enable": lambda: auth.users.set_disabled(user_id, False, actor),
    }
    await steps[args.action]()
    done = {
        "reset-password": "password set; every session of theirs ended",
        "disable": "disabled; every session of theirs ended",
        "enable": "enabled",
    }[args.action]
    out.write(f"{shown(creds.user.username)}: {done}\n")
