"""Service accounts: rows of the users table of kind 'service' (migration 7).

They share the users' namespace (a client id is a username: no account may look like a
person's name or another's) and their sessions, so disabling or deleting one ends its
tokens through the same ``UserStore`` calls as a person's.
"""

from __future__ import annotations

from app.models import Actor, ServiceAccount
from app.store.audit import insert_audit
from app.store.engine import Engine
from app.store.rows import fetch_all, fetch_one
from app.store.sql import Conn, Row
from app.usernames import lookalike, username_key
from app.vocabulary import AccountKind, AuditAction, Role

_COLUMNS = "user_id, username, role, disabled, certificate_name"


def _account(row: Row) -> ServiceAccount:
    return ServiceAccount(
        account_id=row["user_id"],
        client_id=row["username"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        certificate_name=row["certificate_name"],
    )


class CertificateTaken(Exception):
    """Another account already names this certificate."""


class ServiceAccountStore:
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def add(
        self, account: ServiceAccount, secret_hash: str, at: str, actor: Actor
    ) -> str | None:
        """Insert an account: None if done, else the existing name its client id is or
        looks like (nothing inserted). CertificateTaken if its certificate name is
        another account's."""

        def run(conn: Conn) -> str | None:
            names = (str(r[0]) for r in conn.execute("SELECT username FROM users"))
            other = lookalike(account.client_id, names)
            if other is not None:
                return other
            if (
                account.certificate_name is not None
                and conn.execute(
                    "SELECT 1 FROM users WHERE certificate_name = ?", (account.certificate_name,)
                ).fetchone()
            ):
                raise CertificateTaken(account.certificate_name)
            inserted = conn.execute(
                "INSERT INTO users (user_id, username, username_key, password_hash, role,"
                " disabled, created_at, kind, certificate_name)"
                " VALUES (?, ?, ?, ?, ?, 0, ?, ?, ?) ON CONFLICT DO NOTHING",
                (
                    account.account_id,
                    account.client_id,
                    username_key(account.client_id),
                    secret_hash,
                    account.role,
                    at,
                    AccountKind.SERVICE,
                    account.certificate_name,
                ),
            ).rowcount
            if inserted != 1:
                return account.client_id
            insert_audit(
                conn,
                actor,
                AuditAction.USER_CREATE,
                at,
                "user",
                account.account_id,
                {
                    "username": account.client_id,
                    "role": account.role,
                    "kind": AccountKind.SERVICE,
                    "certificate_name": account.certificate_name,
                },
            )
            return None

        return await self._db.write(run)

    async def all(self) -> list[ServiceAccount]:
        def run(conn: Conn) -> list[ServiceAccount]:
            rows = fetch_all(
                conn,
                f"SELECT {_COLUMNS} FROM users WHERE kind = 'service' ORDER BY username",
            )
            return [_account(r) for r in rows]

        return await self._db.read(run)

    async def get(self, account_id: str) -> ServiceAccount | None:
        def run(conn: Conn) -> ServiceAccount | None:
            row = fetch_one(
                conn,
                f"SELECT {_COLUMNS} FROM users WHERE kind = 'service' AND user_id = ?",
                (account_id,),
            )
            return None if row is None else _account(row)

        return await self._db.read(run)

    async def by_certificate(self, name: str) -> ServiceAccount | None:
        """The account a client certificate's CN or SAN names (disabled ones too)."""

        def run(conn: Conn) -> ServiceAccount | None:
            row = fetch_one(
                conn,
                f"SELECT {_COLUMNS} FROM users WHERE kind = 'service' AND certificate_name = ?",
                (name,),
            )
            return None if row is None else _account(row)

        return await self._db.read(run)
