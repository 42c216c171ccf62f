"""/api/v1/auth/*: login, token refresh, logout, and who am I."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import client_address, json_response, principal, services
from app.api.schema import Body, Field, parse_body

LOGIN = Body(
    {
        "username": Field(str, min_length=1, max_length=64),
        "password": Field(str, min_length=1, max_length=256),
    }
)
REFRESH = Body({"refresh_token": Field(str, min_length=1, max_length=4096)})


async def login(request: Request) -> Response:
    s = services(request)
    body = await parse_body(request, LOGIN, s.config.max_body_bytes)
    pair = await s.auth.login(body["username"], body["password"], client_address(request))
    return json_response(pair.as_dict())


async def refresh(request: Request) -> Response:
    s = services(request)
    body = await parse_body(request, REFRESH, s.config.max_body_bytes)
    pair = await s.auth.refresh(body["refresh_token"], client_address(request))
    return json_response(pair.as_dict())


async def logout(request: Request) -> Response:
    who = await principal(request)
    await services(request).auth.logout(who, client_address(request))
    return Response(status_code=204)


async def me(request: Request) -> Response:
    who = await principal(request)
    return json_response({"user_id": who.user_id, "username": who.username, "role": who.role})
