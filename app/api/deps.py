"""What every handler needs: the services, the caller's identity and address."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Final

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from app import tls
from app.api.error_bodies import USER_KEY
from app.models import Actor, Principal
from app.services.registry import Services

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_UUID = re.compile(UUID_PATTERN)


def is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


def services(conn: HTTPConnection) -> Services:
    found: Services = conn.app.state.services
    return found


# GitLab's convention for an OAuth token in HTTP Basic: this username, the token as the
# password (for clients that can put credentials only in a URL's userinfo, such as the
# Bruno CLI: ``http://oauth2:<access_token>@host/...``).
BASIC_TOKEN_USERNAME: Final = "oauth2"  # noqa: S105 (a fixed username, no secret)


def bearer_token(headers: Headers) -> str | None:
    """The access token the request carries: ``Authorization: Bearer <access_token>``, or
    ``Authorization: Basic base64("oauth2:<access_token>")``; it is then checked as any
    bearer token is (``authenticate``). None: no ``Authorization`` (or another scheme).
    ``""``: HTTP Basic that is not ``oauth2:<token>`` (another username, a password or
    client secret): refused as carrying no token, never read as a person's or client's
    credentials, and no fallback to a client certificate."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, credentials = value.strip().partition(" ")
    credentials = credentials.strip()
    if scheme.lower() == "bearer":
        return credentials or None
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return ""
    username, colon, token = decoded.partition(":")
    if not colon or username != BASIC_TOKEN_USERNAME:
        return ""
    return token


async def principal(conn: HTTPConnection) -> Principal:
    """The authenticated caller, or Unauthorized."""
    who = await authenticate(conn, bearer_token(conn.headers))
    conn.scope[USER_KEY] = who.username  # for the access log
    return who


async def authenticate(conn: HTTPConnection, token: str | None) -> Principal:
    """The caller by its bearer token; without one, over HTTPS with a client CA, by the
    client certificate its connection presented (``app.tls``; a service account's)."""
    auth = services(conn).auth
    found = tls.peer() if token is None else None
    if found is None:
        return await auth.authenticate(token)
    who = await auth.authenticate_certificate(found.names, not found.audited, client_address(conn))
    found.audited = True
    return who


def client_address(conn: HTTPConnection) -> str | None:
    """The client's address; X-Forwarded-For counts only from a trusted proxy."""
    peer = conn.client.host if conn.client else None
    trusted = services(conn).config.trusted_proxies
    if peer is None or not trusted:
        return peer
    # Every X-Forwarded-For line, in order, as one list (RFC 9110 5.3): a proxy that adds
    # its own line after the client's (HAProxy's ``option forwardfor``) is heard, and a
    # line the client forged comes first, where it is believed only past trusted hops.
    forwarded = ",".join(conn.headers.getlist("x-forwarded-for"))
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


def from_trusted_proxy(conn: HTTPConnection) -> bool:
    peer = conn.client.host if conn.client else None
    trusted = services(conn).config.trusted_proxies
    if peer is None or not trusted:
        return False
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in trusted)


def scheme(conn: HTTPConnection) -> str:
    """How the client reached us: ``X-Forwarded-Proto`` from a trusted proxy (which
    ends TLS in front of the service), else the request's own scheme."""
    forwarded = conn.headers.get("x-forwarded-proto", "").strip().lower()
    if forwarded in ("http", "https") and from_trusted_proxy(conn):
        return forwarded
    return conn.url.scheme


def actor(conn: HTTPConnection, who: Principal) -> Actor:
    return Actor(user_id=who.user_id, username=who.username, client_address=client_address(conn))


def ambient_credentials(conn: HTTPConnection) -> bool:
    """Whether the connection's credentials are ones a browser attaches by itself (HTTP
    Basic ``oauth2:<token>`` it was given in a URL, a client certificate) rather than a
    token the page put there (``?token=``, ``Authorization: Bearer``, which a browser's
    WebSocket cannot send anyway)."""
    if conn.query_params.get("token"):
        return False
    return not conn.headers.get("authorization", "").lower().startswith("bearer ")


def cross_site(conn: HTTPConnection, allowed: tuple[str, ...]) -> bool:
    """Whether a browser opened the connection (a WebSocket) from a page of another origin
    than this service's and those SOVD_CORS_ORIGINS lists (a WebSocket has no CORS
    preflight: with ambient credentials, any page could otherwise read a stream). No
    ``Origin``: not a browser."""
    origin = conn.headers.get("origin")
    if origin is None:
        return False
    scheme = "https" if conn.url.scheme in ("wss", "https") else "http"
    own = f"{scheme}://{conn.headers.get('host', '')}"
    return origin.rstrip("/").lower() not in {own.lower(), *(o.lower() for o in allowed)}
