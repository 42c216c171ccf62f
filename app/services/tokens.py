"""The JWT access and refresh tokens of a session: issued, rotated, decoded.

Both tokens name the session (``sid``) and carry no role (authorization reads it from the
database on every request). A rotated pair is derived from the token it replaces, the
stored times and the signing key only, so a retried refresh gets the same pair again.
Only hashes of refresh tokens are stored (``hash_token``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

from app.clock import Clock, parse_ts
from app.errors import Unauthorized

ALGORITHM: Final = "HS256"
ACCESS: Final = "access"
REFRESH: Final = "refresh"
# 401 messages. Expired and ended are told apart from invalid only for a token whose
# signature checked out: that tells a forger nothing they did not know.
MISSING_TOKEN: Final = "no bearer token; send Authorization: Bearer <access_token>"  # noqa: S105
BAD_TOKEN: Final = "invalid token"  # noqa: S105 (a message)
EXPIRED_ACCESS: Final = "access token expired; get a new pair from /api/v1/auth/refresh"
EXPIRED_REFRESH: Final = "refresh token expired; log in again"
ENDED_SESSION: Final = (
    "session ended (logged out, password changed, or account disabled); log in again"
)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret: str
    access_ttl_s: int
    refresh_ttl_s: int
    session_max_age_s: int = 30 * 86400
    retry_grace_s: float = 5.0


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRejected(Unauthorized):
    """A 401 about the bearer token; ``missing``: none was sent (RFC 6750 then wants no
    ``error`` in the challenge)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def _times_are_valid(claims: dict[str, Any], now: float) -> bool | None:
    """``exp`` in the future, ``iat`` and ``nbf`` not: whole numbers only (as issued).
    None: well formed but expired."""
    exp, iat, nbf = (claims.get(name) for name in ("exp", "iat", "nbf"))
    if type(exp) is not int or type(iat) is not int or not (nbf is None or type(nbf) is int):
        return False
    if not (iat <= now and (nbf is None or nbf <= now)):
        return False
    return True if exp > now else None


class Tokens:
    """Signs and checks the tokens of ``settings`` against the service's own clock."""

    def __init__(self, settings: TokenSettings, clock: Clock) -> None:
        self.settings = settings
        self._clock = clock

    def issue(
        self, user_id: str, session_id: str, issued: datetime, session_end: datetime, jti: str
    ) -> tuple[TokenPair, datetime]:
        """The token pair of a session issued at ``issued``, and the refresh token's
        expiry; neither outlives ``session_end``. Deterministic in its arguments. Tokens
        carry no role: authorization reads it from the database on every request."""
        t = self.settings
        access_exp = min(issued + timedelta(seconds=t.access_ttl_s), session_end)
        refresh_exp = min(issued + timedelta(seconds=t.refresh_ttl_s), session_end)
        base = {"sub": user_id, "sid": session_id, "iat": issued}
        access = jwt.encode({**base, "typ": ACCESS, "exp": access_exp}, t.secret, ALGORITHM)
        refresh = jwt.encode(
            {**base, "typ": REFRESH, "jti": jti, "exp": refresh_exp}, t.secret, ALGORITHM
        )
        expires_in = max(0, int((access_exp - issued).total_seconds()))
        return TokenPair(access, refresh, expires_in), refresh_exp

    def rotated(
        self, user_id: str, session_id: str, old_refresh: str, created_at: str, rotated_at: str
    ) -> tuple[TokenPair, datetime]:
        """The pair that replaces ``old_refresh`` at ``rotated_at``: derived from it, the
        stored times and the signing key only, so a retry can be answered with the same
        pair without keeping any token."""
        digest = hmac.new(
            self.settings.secret.encode(), b"refresh-rotation\0" + old_refresh.encode(), "sha256"
        ).digest()
        jti = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        session_end = parse_ts(created_at) + timedelta(seconds=self.settings.session_max_age_s)
        return self.issue(user_id, session_id, parse_ts(rotated_at), session_end, jti)

    def decode(self, token: str, token_type: str) -> dict[str, Any]:
        # Times are checked against the service's own clock (the one that issued them).
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self.settings.secret,
                algorithms=[ALGORITHM],
                options={
                    "require": ["exp", "iat", "sub", "sid", "typ"],
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                },
            )
        except jwt.PyJWTError:
            raise TokenRejected(BAD_TOKEN) from None
        if claims.get("typ") != token_type or not isinstance(claims.get("sid"), str):
            raise TokenRejected(BAD_TOKEN)
        valid = _times_are_valid(claims, self._clock.wall().timestamp())
        if valid is None:
            raise TokenRejected(EXPIRED_ACCESS if token_type == ACCESS else EXPIRED_REFRESH)
        if not valid:
            raise TokenRejected(BAD_TOKEN)
        return claims
