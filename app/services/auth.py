"""Authentication: passwords, sessions and the JWT access/refresh tokens that carry them.

A login opens a session. Both tokens name the session (``sid``), so logout, which revokes
the session, ends both at once. Refresh tokens rotate: each use swaps the stored hash,
and presenting a stale one revokes the session (someone holds a copy). Only hashes of
refresh tokens are stored. Password hashing (argon2) runs off the event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.clock import format_ts, utc_now
from app.errors import Conflict, NotFound, RateLimited, Unauthorized
from app.models import Actor, Principal, Role, User
from app.services.principal_cache import PrincipalCache
from app.services.throttle import SlidingWindow
from app.store.audit import AuditStore
from app.store.users import UserStore
from app.telemetry import Telemetry

log = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
BAD_LOGIN: Final = "wrong username or password"
BAD_TOKEN: Final = "missing, invalid or expired token"  # noqa: S105 (a message)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "bearer",
            "expires_in": self.expires_in,
        }


@dataclass(frozen=True, slots=True)
class TokenSettings:
    secret: str
    access_ttl_s: int
    refresh_ttl_s: int


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AuthService:
    def __init__(
        self,
        users: UserStore,
        audit: AuditStore,
        tokens: TokenSettings,
        telemetry: Telemetry,
        login_failures: SlidingWindow | None = None,
    ) -> None:
        self._users = users
        self._audit = audit
        self._tokens = tokens
        self._telemetry = telemetry
        self._verified = PrincipalCache()
        # Failed logins per client address and per username; None: no throttling.
        self._failures = login_failures
        self._hasher = PasswordHasher()
        # Verifying against this when the user does not exist keeps the answer time the
        # same for unknown users and wrong passwords.
        self._dummy_hash = self._hasher.hash(secrets.token_hex(16))

    # -- passwords -------------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        def check() -> bool:
            try:
                return self._hasher.verify(password_hash, password)
            except (VerificationError, InvalidHashError):
                return False

        return await asyncio.to_thread(check)

    # -- tokens ----------------------------------------------------------------------

    def _issue(self, user_id: str, session_id: str, now: datetime) -> tuple[TokenPair, str]:
        """A new token pair for a session, and the refresh token's expiry. Tokens carry no
        role: authorization reads it from the database on every request."""
        t = self._tokens
        base = {"sub": user_id, "sid": session_id, "iat": now}
        access = jwt.encode(
            {**base, "typ": "access", "exp": now + timedelta(seconds=t.access_ttl_s)},
            t.secret,
            algorithm=ALGORITHM,
        )
        refresh_exp = now + timedelta(seconds=t.refresh_ttl_s)
        refresh = jwt.encode(
            {**base, "typ": "refresh", "jti": secrets.token_urlsafe(16), "exp": refresh_exp},
            t.secret,
            algorithm=ALGORITHM,
        )
        return TokenPair(access, refresh, t.access_ttl_s), format_ts(refresh_exp)

    def _decode(self, token: str, token_type: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._tokens.secret,
                algorithms=[ALGORITHM],
                options={"require": ["exp", "iat", "sub", "sid", "typ"]},
            )
        except jwt.PyJWTError:
            raise Unauthorized(BAD_TOKEN) from None
        if claims.get("typ") != token_type or not isinstance(claims.get("sid"), str):
            raise Unauthorized(BAD_TOKEN)
        return claims

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind an access token, or Unauthorized."""
        if not token:
            self._telemetry.auth_failure("missing_token")
            raise Unauthorized(BAD_TOKEN)
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        try:
            claims = self._decode(token, "access")
        except Unauthorized:
            self._telemetry.auth_failure("invalid_token")
            raise
        principal = await self._users.principal(claims["sid"])
        if principal is None or principal.user_id != claims["sub"]:
            self._telemetry.auth_failure("revoked_session")
            raise Unauthorized(BAD_TOKEN)
        self._verified.put(token, principal, float(claims["exp"]))
        return principal

    # -- sessions --------------------------------------------------------------------

    async def login(self, username: str, password: str, client: str | None) -> TokenPair:
        keys = (f"address:{client}", f"username:{username.lower()}")
        await self._refuse_if_throttled(keys, username, client)
        creds = await self._users.credentials(username)
        ok = await self._verify(creds.password_hash if creds else self._dummy_hash, password)
        now = datetime.now(UTC)
        if creds is None or not ok or creds.user.disabled:
            self._telemetry.auth_failure("bad_credentials")
            actor = Actor(creds.user.user_id if creds else None, username[:64], client)
            if self._failures is not None:
                for key in keys:
                    self._failures.hit(key)
            await self._audit.record(
                actor,
                "auth.login_failed",
                format_ts(now),
                "user",
                creds.user.user_id if creds else None,
            )
            raise Unauthorized(BAD_LOGIN)
        user = creds.user
        session_id = str(uuid.uuid4())
        pair, refresh_exp = self._issue(user.user_id, session_id, now)
        await self._users.create_session(
            session_id,
            user,
            _hash_token(pair.refresh_token),
            format_ts(now),
            refresh_exp,
            Actor(user.user_id, user.username, client),
        )
        return pair

    async def _refuse_if_throttled(
        self, keys: tuple[str, ...], username: str, client: str | None
    ) -> None:
        if self._failures is None:
            return
        waits = [w for w in map(self._failures.retry_after, keys) if w is not None]
        if not waits:
            return
        self._telemetry.auth_failure("throttled")
        await self._audit.record(
            Actor(None, username[:64], client), "auth.login_throttled", utc_now(), "user"
        )
        raise RateLimited(
            f"too many failed logins; try again in {max(waits)} s", retry_after=max(waits)
        )

    async def refresh(self, refresh_token: str, client: str | None) -> TokenPair:
        try:
            claims = self._decode(refresh_token, "refresh")
        except Unauthorized:
            self._telemetry.auth_failure("invalid_token")
            raise
        now = datetime.now(UTC)
        user_id, session_id = str(claims["sub"]), str(claims["sid"])
        pair, refresh_exp = self._issue(user_id, session_id, now)
        user = await self._users.rotate_refresh(
            session_id,
            _hash_token(refresh_token),
            _hash_token(pair.refresh_token),
            format_ts(now),
            refresh_exp,
            Actor(user_id, None, client),
        )
        if user is None or user.user_id != user_id:
            # A reused refresh token revokes its session: forget its access tokens too.
            self._verified.drop_session(session_id)
            self._telemetry.auth_failure("stale_refresh")
            raise Unauthorized(BAD_TOKEN)
        return pair

    async def logout(self, principal: Principal, client: str | None) -> None:
        self._verified.drop_session(principal.session_id)
        await self._users.revoke_session(
            principal.session_id,
            format_ts(datetime.now(UTC)),
            Actor(principal.user_id, principal.username, client),
        )

    # -- users -----------------------------------------------------------------------

    async def create_user(self, username: str, password: str, role: Role, actor: Actor) -> User:
        user = User(user_id=str(uuid.uuid4()), username=username, role=role)
        password_hash = await self.hash_password(password)
        if not await self._users.create(user, password_hash, format_ts(datetime.now(UTC)), actor):
            raise Conflict(f"username {username!r} is already taken")
        return user

    async def set_disabled(self, user_id: str, disabled: bool, actor: Actor) -> User:
        if disabled and user_id == actor.user_id:
            raise Conflict("an admin cannot disable their own account")
        user = await self._users.set_disabled(user_id, disabled, utc_now(), actor)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        self._verified.drop_user(user_id)
        return user

    async def delete_user(self, user_id: str, actor: Actor) -> None:
        if user_id == actor.user_id:
            raise Conflict("an admin cannot delete their own account")
        deleted = await self._users.delete(user_id, utc_now(), actor)
        if deleted is None:
            raise NotFound(f"user {user_id} does not exist")
        if not deleted:
            raise Conflict(f"user {user_id} has command history; disable the account instead")
        self._verified.drop_user(user_id)

    async def list_users(self) -> list[User]:
        return await self._users.all()

    async def ensure_initial_users(
        self, admin_password: str | None, engineer_password: str | None, actor: Actor
    ) -> None:
        """On a new database, create ``admin`` and ``engineer``. A password not configured
        is generated and logged once: the only place it can ever be read."""
        if await self._users.count() > 0:
            return
        initial: tuple[tuple[str, Role, str | None], ...] = (
            ("admin", "admin", admin_password),
            ("engineer", "engineer", engineer_password),
        )
        for username, role, password in initial:
            chosen = password or secrets.token_urlsafe(12)
            await self.create_user(username, chosen, role, actor)
            if password is None:
                log.warning(
                    "created user %s with a generated password, shown only this once: %s",
                    username,
                    chosen,
                    extra={"event": "initial_user_password"},
                )
