"""OAuth 2.0 client credentials (RFC 6749 section 4.4) for service accounts (#21 item 8).

``POST /api/v1/auth/token``: ``grant_type=client_credentials``, form-encoded; the client
authenticates with HTTP Basic (section 2.3.1: client id and secret form-encoded, then
Base64) or with ``client_id`` and ``client_secret`` in the body, not both. The answer is
section 5.1's (``access_token``, ``token_type``, ``expires_in``; no refresh token, 4.4.3),
never cached; errors are section 5.2's (``error``, ``error_description``): 400
``invalid_request``, ``unsupported_grant_type``, ``invalid_scope``, and 401
``invalid_client`` with a ``WWW-Authenticate: Basic`` challenge. A client over the login
throttle gets the service's 429 (``Retry-After``), as a person does.

``POST /sovd/vehicles/{vin}/v1/authorize``: the same for SOVD testers written against
Eclipse OpenSOVD's CDA (its ``/vehicle/v15/authorize``): JSON ``{"client_id",
"client_secret"}``, the same token answer.
"""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum
from typing import Annotated, Any, Final, Literal
from urllib.parse import parse_qsl, unquote_plus

import msgspec

from app.api.contract import Body, Call, Out, Result
from app.api.error_bodies import REALM
from app.errors import Unauthorized

FORM: Final = "application/x-www-form-urlencoded"
MAX_FORM_BYTES: Final = 4096
GRANT: Final = "client_credentials"
# Section 5.1: never cached (Cache-Control: no-store is on every /api/ and /sovd/ answer,
# app.api.middleware); Pragma for HTTP/1.0 caches, as the RFC shows.
_NO_STORE: Final = {"Pragma": "no-cache"}
_SECRET_MAX: Final = 256


class OAuthErrorCode(StrEnum):
    """RFC 6749 section 5.2."""

    INVALID_REQUEST = "invalid_request"
    INVALID_CLIENT = "invalid_client"
    INVALID_GRANT = "invalid_grant"
    UNAUTHORIZED_CLIENT = "unauthorized_client"
    UNSUPPORTED_GRANT_TYPE = "unsupported_grant_type"
    INVALID_SCOPE = "invalid_scope"


class OAuthError(Out, frozen=True, kw_only=True):
    error: OAuthErrorCode
    error_description: str


class AccessToken(Out, frozen=True, kw_only=True):
    """RFC 6749 section 5.1 (and CDA's authorize answer)."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int  # seconds


class Authorize(Body, frozen=True, kw_only=True):
    """CDA's authorize body."""

    client_id: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    client_secret: Annotated[str, msgspec.Meta(min_length=1, max_length=_SECRET_MAX)]


def _error(code: OAuthErrorCode, description: str) -> Result:
    status = 401 if code is OAuthErrorCode.INVALID_CLIENT else 400
    headers = dict(_NO_STORE)
    if status == 401:  # RFC 7235: a 401 names the scheme to use; Basic, as 2.3.1 says
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}", charset="UTF-8"'
    return Result(OAuthError(error=code, error_description=description), status, headers)


def _basic(header: str) -> tuple[str, str] | str:
    """Client id and secret from an ``Authorization: Basic`` value, or why not."""
    _, _, value = header.partition(" ")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "Authorization: Basic credentials are not valid Base64 of UTF-8 text"
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        return "Authorization: Basic credentials must be client_id:client_secret"
    return unquote_plus(client_id), unquote_plus(secret)


async def _issue(call: Call[Any, None], client_id: str, secret: str) -> Result:
    token, expires_in = await call.services.auth.client_token(client_id, secret, call.client())
    return Result(
        AccessToken(access_token=token, token_type="Bearer", expires_in=expires_in),  # noqa: S106
        headers=_NO_STORE,
    )


async def token(call: Call[bytes, None]) -> Result:
    """The client credentials grant."""
    try:
        text = call.body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        return _error(OAuthErrorCode.INVALID_REQUEST, "the body is not a form (UTF-8)")
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:  # section 3.2: parameters sent at most once
            return _error(OAuthErrorCode.INVALID_REQUEST, f"{name} is given more than once")
        form[name] = value
    grant = form.get("grant_type")
    if not grant:
        return _error(OAuthErrorCode.INVALID_REQUEST, "grant_type is missing")
    if grant != GRANT:
        return _error(
            OAuthErrorCode.UNSUPPORTED_GRANT_TYPE,
            f"grant_type {grant[:64]!r} is not supported; use {GRANT} (people log in at"
            " /api/v1/auth/login)",
        )
    if form.get("scope"):
        return _error(
            OAuthErrorCode.INVALID_SCOPE, "scopes are not used: the account's role decides"
        )
    # Only Basic authenticates a client here; a bearer token a client sends along is not
    # a client authentication (and is ignored).
    header = call.request.headers.get("authorization")
    if header is not None and header.partition(" ")[0].lower() != "basic":
        header = None
    in_body = "client_id" in form or "client_secret" in form
    if header is not None:
        if in_body:
            return _error(
                OAuthErrorCode.INVALID_REQUEST,
                "the client authenticates one way: HTTP Basic or client_id and client_secret"
                " in the body, not both",
            )
        basic = _basic(header)
        if isinstance(basic, str):
            return _error(OAuthErrorCode.INVALID_CLIENT, basic)
        client_id, secret = basic
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            return _error(
                OAuthErrorCode.INVALID_CLIENT,
                "no client credentials: send HTTP Basic client_id:client_secret, or"
                " client_id and client_secret in the body",
            )
    if len(client_id) > 256 or len(secret) > _SECRET_MAX:
        return _error(OAuthErrorCode.INVALID_CLIENT, "client_id or client_secret is too long")
    if "\x00" in client_id or "\x00" in secret:  # as JSON bodies (app.api.decoding)
        return _error(OAuthErrorCode.INVALID_REQUEST, "client_id or client_secret holds a NUL")
    try:
        return await _issue(call, client_id, secret)
    except Unauthorized as exc:
        return _error(OAuthErrorCode.INVALID_CLIENT, str(exc))


async def authorize(call: Call[Authorize, None]) -> Result:
    """CDA's authorize: the vehicle in the path must exist (as every path of the tree);
    a wrong client is the tree's 401."""
    await call.services.sovd.entities.vehicle(call.request.path_params["vin"])
    return await _issue(call, call.body.client_id, call.body.client_secret)
