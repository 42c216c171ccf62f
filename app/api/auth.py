"""/api/v1/auth/*: login, token refresh, logout, and who am I."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from app.api.contract import Body, Call, Out
from app.services import passwords, tokens
from app.vocabulary import Role


class Login(Body, frozen=True, kw_only=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]


class Refresh(Body, frozen=True, kw_only=True):
    refresh_token: Annotated[str, msgspec.Meta(min_length=1, max_length=4096)]


class PasswordChange(Body, frozen=True, kw_only=True):
    current_password: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    new_password: Annotated[
        str, msgspec.Meta(description=passwords.PASSWORD_RULES, max_length=4096)
    ]


class PasswordChanged(Out, frozen=True, kw_only=True):
    sessions_ended: int


class TokenPair(Out, frozen=True, kw_only=True):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"]
    expires_in: int


class Me(Out, frozen=True, kw_only=True):
    user_id: str
    username: str
    role: Role


def _tokens(pair: tokens.TokenPair) -> TokenPair:
    return TokenPair(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        token_type="bearer",  # noqa: S106 (the token scheme, not a secret)
        expires_in=pair.expires_in,
    )


async def login(call: Call[Login, None]) -> TokenPair:
    pair = await call.services.auth.login(call.body.username, call.body.password, call.client())
    return _tokens(pair)


async def refresh(call: Call[Refresh, None]) -> TokenPair:
    return _tokens(await call.services.auth.refresh(call.body.refresh_token, call.client()))


async def logout(call: Call[None, None]) -> None:
    await call.services.auth.logout(call.who, call.client())


async def change_password(call: Call[PasswordChange, None]) -> PasswordChanged:
    """The caller's own password; their other sessions end (this one stays)."""
    body = call.body
    ended = await call.services.auth.users.change_password(
        call.who, body.current_password, body.new_password, call.client()
    )
    return PasswordChanged(sessions_ended=ended)


async def me(call: Call[None, None]) -> Me:
    who = call.who
    return Me(user_id=who.user_id, username=who.username, role=who.role)
