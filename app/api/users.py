"""/api/v1/users: user administration (admin only)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.api.contract import Body, Call, Out, Result
from app.errors import BadRequest
from app.models import User
from app.services.passwords import PASSWORD_RULES
from app.usernames import USERNAME_MAX, USERNAME_RULE
from app.vocabulary import Role

# For the document only (JSON Schema regexes match the whole string with ^...$). The
# service checks the one rule, app.usernames.check_username: NFKC first, then a full
# match, then no look-alike of an existing user.
USERNAME_PATTERN = r"^[A-Za-z0-9._-]{3,64}$"


class NewUser(Body, frozen=True, kw_only=True):
    username: Annotated[
        str,
        msgspec.Meta(
            min_length=1,
            max_length=4 * USERNAME_MAX,  # the rule is checked on the NFKC form
            description=USERNAME_RULE + " (after NFKC normalisation); not one that looks"
            " like an existing user's (409 names it)",
            extra_json_schema={"pattern": USERNAME_PATTERN},
        ),
    ]
    password: Annotated[str, msgspec.Meta(min_length=8, max_length=256)]
    role: Role


class UserPatch(Body, frozen=True, kw_only=True):
    disabled: bool | msgspec.UnsetType = msgspec.UNSET
    password: (
        Annotated[
            str,
            msgspec.Meta(
                max_length=4096,
                description="a new password (" + PASSWORD_RULES + "); every session of the"
                " user ends and their streams close",
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET
    cancel_commands: (
        Annotated[
            bool,
            msgspec.Meta(
                description="with disabled: true, whether the user's queued and running"
                " commands are cancelled (default true); their open streams close either way"
            ),
        ]
        | msgspec.UnsetType
    ) = msgspec.UNSET


class UserList(Out, frozen=True, kw_only=True):
    items: list[User]


async def create_user(call: Call[NewUser, None]) -> Result:
    body = call.body
    user = await call.services.auth.users.create_user(
        body.username, body.password, body.role, call.actor()
    )
    return Result(user, headers={"Location": f"/api/v1/users/{user.user_id}"})


async def list_users(call: Call[None, None]) -> UserList:
    return UserList(items=await call.services.auth.users.list_users())


async def update_user(call: Call[UserPatch, None]) -> User:
    """Disable or re-enable a user, or set their password. Disabling or a new password
    ends their sessions and closes their response streams (1008); disabling also cancels
    their commands unless ``cancel_commands`` is false."""
    body = call.body
    if body.disabled is msgspec.UNSET and body.password is msgspec.UNSET:
        raise BadRequest("body: give disabled, password or both")
    given = body.cancel_commands is not msgspec.UNSET
    if given and body.disabled is not True:
        raise BadRequest("body.cancel_commands: applies only with disabled: true")
    s, by, user_id = call.services, call.actor(), call.path_id("user_id")
    if body.password is not msgspec.UNSET:
        user = await s.auth.users.reset_password(user_id, body.password, by)
    if body.disabled is not msgspec.UNSET:
        user = await s.auth.users.set_disabled(user_id, body.disabled, by)
        if user.disabled and body.cancel_commands is not False:
            s.commands.cancel_all_of(user.user_id, user.username, by)
    return user


async def delete_user(call: Call[None, None]) -> None:
    await call.services.auth.users.delete_user(call.path_id("user_id"), call.actor())
