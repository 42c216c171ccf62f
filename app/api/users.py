"""/api/v1/users: user administration (admin only)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import actor, admin, json_response, path_id, services
from app.api.schema import Body, Field, parse_body
from app.errors import BadRequest
from app.models import ROLES

USERNAME_PATTERN = r"^[A-Za-z0-9._-]{3,64}$"

CREATE = Body(
    {
        "username": Field(
            str,
            pattern=USERNAME_PATTERN,
            description="3 to 64 letters, digits, dots, dashes or underscores",
        ),
        "password": Field(str, min_length=8, max_length=256),
        "role": Field(str, choices=ROLES),
    }
)


async def create_user(request: Request) -> Response:
    who = await admin(request)
    s = services(request)
    body = await parse_body(request, CREATE, s.config.max_body_bytes)
    user = await s.auth.create_user(
        body["username"], body["password"], body["role"], actor(request, who)
    )
    return json_response(user.as_dict(), 201, headers={"Location": f"/api/v1/users/{user.user_id}"})


async def list_users(request: Request) -> Response:
    await admin(request)
    users = await services(request).auth.list_users()
    return json_response({"items": [u.as_dict() for u in users]})


PATCH = Body(
    {
        "disabled": Field(bool),
        "cancel_commands": Field(
            bool,
            required=False,
            description="with disabled: true, whether the user's queued and running commands"
            " are cancelled (default true); their open streams close either way",
        ),
    }
)


async def update_user(request: Request) -> Response:
    """Disable or re-enable a user. Disabling ends their sessions, closes their response
    streams (1008) and, unless ``cancel_commands`` is false, cancels their commands."""
    who = await admin(request)
    s = services(request)
    user_id = path_id(request, "user_id", "user")
    body = await parse_body(request, PATCH, s.config.max_body_bytes)
    cancel = body.get("cancel_commands", True)
    if "cancel_commands" in body and not body["disabled"]:
        raise BadRequest("cancel_commands applies only with disabled: true")
    by = actor(request, who)
    user = await s.auth.set_disabled(user_id, body["disabled"], by)
    if user.disabled and cancel:
        s.commands.cancel_all_of(user.user_id, user.username, by)
    return json_response(user.as_dict())


async def delete_user(request: Request) -> Response:
    who = await admin(request)
    await services(request).auth.delete_user(
        path_id(request, "user_id", "user"), actor(request, who)
    )
    return Response(status_code=204)
