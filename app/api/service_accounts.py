"""/api/v1/service-accounts: machine clients' accounts (admin only; #21 item 8).

The secret is in the answer of the create and of ``POST .../secret`` only: it is stored
hashed and can never be read again (a lost one is replaced, which ends the old one's
tokens).
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.api.contract import Body, Call, Out, Result
from app.api.users import USERNAME_PATTERN
from app.models import ServiceAccount
from app.services.service_accounts import CERTIFICATE_NAME_MAX
from app.usernames import USERNAME_MAX, USERNAME_RULE
from app.vocabulary import Role


class NewServiceAccount(Body, frozen=True, kw_only=True):
    client_id: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=4 * USERNAME_MAX,
            description="the client_id it authenticates with: " + USERNAME_RULE + "; not"
            " one that looks like an existing user's or account's (409 names it)",
            extra_json_schema={"pattern": USERNAME_PATTERN},
        ),
    ]
    role: Role
    certificate_name: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=CERTIFICATE_NAME_MAX,
                description="the subject CN or a DNS SAN of the client certificate that"
                " authenticates it when SOVD_TLS_CLIENT_CA is set (unique)",
            ),
        ]
        | None
    ) = None


class ServiceAccountPatch(Body, frozen=True, kw_only=True):
    disabled: Annotated[
        bool,
        msgspec.Meta(description="true: its tokens end and its streams close at once"),
    ]


class ServiceAccountList(Out, frozen=True, kw_only=True):
    items: list[ServiceAccount]


class ServiceAccountSecret(Out, frozen=True, kw_only=True):
    """An account and its client secret: shown this once, stored only hashed."""

    account: ServiceAccount
    client_secret: str


def _location(account: ServiceAccount) -> dict[str, str]:
    return {"Location": f"/api/v1/service-accounts/{account.account_id}"}


async def create_service_account(call: Call[NewServiceAccount, None]) -> Result:
    body = call.body
    account, secret = await call.services.auth.accounts.create(
        body.client_id, body.role, body.certificate_name, call.actor()
    )
    return Result(
        ServiceAccountSecret(account=account, client_secret=secret),
        headers=_location(account),  # never cached: every /api/ answer is no-store
    )


async def list_service_accounts(call: Call[None, None]) -> ServiceAccountList:
    return ServiceAccountList(items=await call.services.auth.accounts.list())


async def get_service_account(call: Call[None, None]) -> ServiceAccount:
    return await call.services.auth.accounts.get(call.path_id("account_id"))


async def update_service_account(call: Call[ServiceAccountPatch, None]) -> ServiceAccount:
    """Disable (its tokens end, its streams close) or re-enable an account."""
    return await call.services.auth.accounts.set_disabled(
        call.path_id("account_id"), call.body.disabled, call.actor()
    )


async def rotate_secret(call: Call[None, None]) -> Result:
    account, secret = await call.services.auth.accounts.rotate_secret(
        call.path_id("account_id"), call.actor()
    )
    return Result(ServiceAccountSecret(account=account, client_secret=secret))


async def delete_service_account(call: Call[None, None]) -> None:
    await call.services.auth.accounts.delete(call.path_id("account_id"), call.actor())
