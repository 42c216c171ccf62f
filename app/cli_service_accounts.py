"""``python -m app service-accounts ...``: machine clients' accounts on the database
directly (#21 item 8), as ``users`` does for people: refused while the service runs
(the API then: /api/v1/service-accounts). ``create`` prints the client secret once;
nothing else ever shows it."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from app.cli_subcommands import Subcommands
from app.vocabulary import Role

if TYPE_CHECKING:
    from app.config import Config
    from app.services.auth import AuthService


def register(commands: Subcommands) -> None:
    accounts = commands.add_parser(
        "service-accounts",
        help="manage machine clients' accounts on the database (only while the service is stopped)",
        description="Service accounts (OAuth 2.0 client credentials, client certificates),"
        " changed in the database directly. Refused while the service runs (use"
        " /api/v1/service-accounts then).",
    )
    action = accounts.add_subparsers(dest="action", metavar="ACTION", required=True)
    action.add_parser("list", help="list the service accounts")
    create = action.add_parser("create", help="create one; prints its client secret once")
    create.add_argument("client_id")
    create.add_argument("--role", choices=[r.value for r in Role], default=Role.ENGINEER.value)
    create.add_argument(
        "--certificate-name",
        help="the subject CN or a DNS SAN of the client certificate that authenticates it",
    )
    for name, what in (
        ("disable", "disable one; its tokens end"),
        ("enable", "re-enable one"),
        ("new-secret", "replace its secret (prints the new one once); its tokens end"),
        ("delete", "delete one without command history"),
    ):
        action.add_parser(name, help=what).add_argument("client_id")


async def run(auth: AuthService, args: argparse.Namespace, actor: object, out: TextIO) -> None:
    from app.models import Actor
    from app.usernames import shown

    assert isinstance(actor, Actor)
    accounts = auth.accounts
    if args.action == "list":
        out.write(f"{'client_id':<24} {'role':<9} {'state':<9} {'certificate':<24} id\n")
        for a in await accounts.list():
            state = "disabled" if a.disabled else "enabled"
            cert = shown(a.certificate_name) if a.certificate_name else "-"
            out.write(
                f"{shown(a.client_id):<24} {a.role.value:<9} {state:<9} {cert:<24} {a.account_id}\n"
            )
        return
    if args.action == "create":
        account, secret = await accounts.create(
            args.client_id, Role(args.role), args.certificate_name, actor, field="client_id"
        )
        out.write(
            f"created {shown(account.client_id)} ({account.role.value}) {account.account_id}\n"
            f"client_secret (shown only this once): {secret}\n"
        )
        return
    found = await accounts.by_client_id(args.client_id)
    if args.action == "new-secret":
        _, secret = await accounts.rotate_secret(found.account_id, actor)
        out.write(f"client_secret (shown only this once): {secret}\n")
        return
    if args.action == "delete":
        await accounts.delete(found.account_id, actor)
        out.write(f"{shown(found.client_id)}: deleted\n")
        return
    await accounts.set_disabled(found.account_id, args.action == "disable", actor)
    out.write(f"{shown(found.client_id)}: {args.action}d\n")


async def command(config: Config, args: argparse.Namespace, out: TextIO) -> None:
    """Run one action with the data directory's lock held (as ``users`` does)."""
    from app import cli
    from app.datadir import DataDirLock, DataDirLocked
    from app.store.engine import open_database

    cli.need_database(config)
    lock = DataDirLock(config.data_dir)
    try:
        lock.acquire()
    except DataDirLocked:
        raise cli.CliError(
            f"the service is running on {config.data_dir} (pid {cli.lock_holder(config)}); stop"
            " the service or use the API (/api/v1/service-accounts)"
        ) from None
    try:
        db = open_database(config.db_path, config.database_url)
        await db.open()
        try:
            await run(cli.auth_service(db, config), args, cli.cli_actor(), out)
        finally:
            await db.close()
    finally:
        lock.release()
