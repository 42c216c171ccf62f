"""Service accounts (#21 item 8): machine clients such as SOVD testers and test rigs.

An admin creates one with a role (API, CLI); its client secret is generated here, shown
once in the answer and stored only as its argon2 hash (``UserAccounts.hash_password``).
The account gets access tokens by OAuth 2.0 client credentials
(``AuthService.client_token``), or presents the client certificate its
``certificate_name`` names (#26). Disabling or deleting it, or a new secret, ends its
tokens and closes its streams as for a person (``app.services.users``).
"""

from __future__ import annotations

import secrets
import uuid

from app.errors import BadRequest, Conflict, NotFound
from app.models import Actor, ServiceAccount
from app.services.users import UserAccounts
from app.store.service_accounts import CertificateTaken, ServiceAccountStore
from app.usernames import UsernameError, UsernameTaken, check_username
from app.vocabulary import AccountKind, Role

SECRET_BYTES = 32  # 256 bits of randomness, 43 URL-safe characters
CERTIFICATE_NAME_MAX = 255


def new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


def check_certificate_name(name: str, field: str) -> str:
    """A subject CN or DNS SAN as certificates carry it: printable, no spaces at its ends."""
    if not 1 <= len(name) <= CERTIFICATE_NAME_MAX or name != name.strip():
        raise BadRequest(f"{field}: 1 to {CERTIFICATE_NAME_MAX} characters, no outer spaces")
    if not name.isprintable():
        raise BadRequest(f"{field}: must be printable text")
    return name


class ServiceAccounts:
    def __init__(self, users: UserAccounts, store: ServiceAccountStore) -> None:
        self._users = users
        self._store = store

    async def create(
        self,
        client_id: str,
        role: Role,
        certificate_name: str | None,
        actor: Actor,
        field: str = "body.client_id",
    ) -> tuple[ServiceAccount, str]:
        """A new account and its secret (the only time the secret exists in clear)."""
        try:
            name = check_username(client_id)
        except UsernameError as exc:
            raise BadRequest(f"{field}: {exc}") from None
        if certificate_name is not None:
            check_certificate_name(certificate_name, "body.certificate_name")
        account = ServiceAccount(
            account_id=str(uuid.uuid4()),
            client_id=name,
            role=role,
            certificate_name=certificate_name,
        )
        secret = new_secret()
        secret_hash = await self._users.hash_password(secret)
        try:
            taken = await self._store.add(account, secret_hash, self._users.now(), actor)
        except CertificateTaken:
            raise Conflict(
                f"body.certificate_name: {certificate_name!r} already names another account"
            ) from None
        if taken is not None:
            raise Conflict(str(UsernameTaken(name, taken)))
        return account, secret

    async def list(self) -> list[ServiceAccount]:
        return await self._store.all()

    async def get(self, account_id: str) -> ServiceAccount:
        found = await self._store.get(account_id)
        if found is None:
            raise NotFound(f"service account {account_id} does not exist")
        return found

    async def by_client_id(self, client_id: str) -> ServiceAccount:
        for account in await self._store.all():
            if account.client_id == client_id:
                return account
        raise NotFound(f"no service account has client_id {client_id[:64]!r}")

    async def set_disabled(self, account_id: str, disabled: bool, actor: Actor) -> ServiceAccount:
        await self._users.set_disabled(account_id, disabled, actor, AccountKind.SERVICE)
        return await self.get(account_id)

    async def rotate_secret(self, account_id: str, actor: Actor) -> tuple[ServiceAccount, str]:
        """A new secret (shown once); the old one stops working and its tokens end."""
        secret = new_secret()
        await self._users.set_secret(account_id, secret, actor)
        return await self.get(account_id), secret

    async def delete(self, account_id: str, actor: Actor) -> None:
        await self._users.delete_user(account_id, actor, AccountKind.SERVICE)

    async def by_certificate(self, name: str) -> ServiceAccount | None:
        return await self._store.by_certificate(name)
