"""What every handler needs: the services, the caller's identity and address."""

from __future__ import annotations

import ipaddress
from typing import Any

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from app.api.errors import USER_KEY
from app.api.schema import is_uuid
from app.errors import Forbidden, NotFound
from app.models import Actor, Principal
from app.services.registry import Services


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def principal(conn: HTTPConnection) -> Principal:
    """The authenticated caller, or Unauthorized."""
    who = await services(conn).auth.authenticate(bearer_token(conn.headers))
    conn.scope[USER_KEY] = who.username  # for the access log
    return who


async def admin(conn: HTTPConnection) -> Principal:
    who = await principal(conn)
    if not who.is_admin:
        raise Forbidden("this operation needs the admin role")
    return who


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address; X-Forwarded-For counts only from a trusted proxy."""
    peer = conn.client.host if conn.client else None
    trusted = services(conn).config.trusted_proxies
    if peer is None or not trusted:
        return peer
    chain = [peer]
    forwarded = conn.headers.get("x-forwarded-for")
    if forwarded:
        chain = [peer, *[p.strip() for p in reversed(forwarded.split(",")) if p.strip()]]
    # Walk from the nearest hop outwards; the first address not a trusted proxy is the client.
    for hop in chain:
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return hop[:64]
        if not any(address in network for network in trusted):
            return hop
    return chain[-1]


def actor(conn: HTTPConnection, who: Principal) -> Actor:
    return Actor(who.user_id, who.username, client_address(conn))


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(content, status_code=status_code, headers=headers)


def page(items: list[Any], total: int, limit: int, offset: int) -> JSONResponse:
    """A page of a list: ``{items, total, limit, offset}``."""
    return JSONResponse(
        {"items": [i.as_dict() for i in items], "total": total, "limit": limit, "offset": offset}
    )


def path_id(conn: HTTPConnection, name: str, what: str) -> str:
    """A UUID path parameter, lower-cased; anything else names nothing (404)."""
    value: str = conn.path_params[name]
    if not is_uuid(value):
        raise NotFound(f"{what} {value[:64]} does not exist")
    return value.lower()
