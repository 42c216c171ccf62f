"""Authentication: who a request is, and the sessions that say so.

A login opens a session. Both tokens name the session (``sid``), so logout, which revokes
the session, ends both at once. Refresh tokens rotate: each use swaps the stored hash,
and presenting a stale one revokes the session (someone holds a copy), except within a
short retry grace right after a rotation, when the token just rotated away gets the same
new pair again (a client that retried). No session outlives ``session_max_age_s`` from
its login, however often it is refreshed. Service accounts get an access token by
OAuth 2.0 client credentials, or present a client certificate.

Its parts: the tokens (``app.services.tokens``), the bounded password checks
(``app.services.passwords``), the accounts (``app.services.users``,
``app.services.service_accounts``) and the cache of checked tokens
(``app.services.principal_cache``).
"""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import timedelta
from typing import Final

from argon2 import PasswordHasher

from app.clock import Clock, format_ts
from app.errors import Unauthorized
from app.models import Actor, Principal
from app.services.login_throttle import LoginLimits
from app.services.passwords import PasswordChecks
from app.services.principal_cache import PrincipalCache, RevocationListener
from app.services.service_accounts import ServiceAccounts
from app.services.shared_limits import SharedLoginThrottle
from app.services.tokens import (
    ACCESS,
    ENDED_SESSION,
    MISSING_TOKEN,
    REFRESH,
    TokenPair,
    TokenRejected,
    Tokens,
    TokenSettings,
    hash_token,
)
from app.services.users import UserAccounts
from app.store.audit import AuditStore
from app.store.service_accounts import ServiceAccountStore
from app.store.users import Rotation, UserStore
from app.telemetry import Telemetry
from app.usernames import username_key
from app.vocabulary import AccountKind, AuditAction, AuthFailureReason, AuthMethod

log = logging.getLogger(__name__)

BAD_LOGIN: Final = "wrong username or password"
BAD_CLIENT: Final = "unknown client, wrong secret, or a disabled account"
SERVICE: Final = AccountKind.SERVICE


class AuthService:
    def __init__(
        self,
        users: UserStore,
        audit: AuditStore,
        tokens: TokenSettings,
        telemetry: Telemetry,
        limits: LoginLimits | None = None,
        *,
        hasher: PasswordHasher | None = None,
        clock: Clock | None = None,
        shared_throttle: SharedLoginThrottle | None = None,
    ) -> None:
        self._users = users
        self._audit = audit
        self._telemetry = telemetry
        self._clock = clock or Clock()
        self._tokens = Tokens(tokens, self._clock)
        self._verified = PrincipalCache(clock=self._clock)
        self.passwords = PasswordChecks(
            audit, telemetry, self._clock, limits, hasher, shared_throttle
        )
        # People, and service accounts beside them, managed through the same calls.
        self.users = UserAccounts(
            users, audit, self.passwords, self._verified, telemetry, self._clock
        )
        self.accounts = ServiceAccounts(self.users, ServiceAccountStore(users.db))

    def on_revocation(self, listener: RevocationListener) -> None:
        """Tell ``listener`` whenever a session or a user's access ends (logout, a reused
        refresh token, disable, delete), so whatever outlives a request can end too."""
        self._verified.add_listener(listener)

    def revoked_elsewhere(
        self, *, session_id: str | None = None, user_id: str | None = None
    ) -> None:
        """Another node revoked a session or a user's access (``app.services.relay``):
        forget their tokens here too, and tell this node's listeners."""
        if session_id is not None:
            self._verified.drop_session(session_id)
        if user_id is not None:
            self._verified.drop_user(user_id)

    # -- the principal of a request --------------------------------------------------

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind an access token, or Unauthorized."""
        if not token:
            self._telemetry.auth_failure(AuthFailureReason.MISSING_TOKEN)
            raise TokenRejected(MISSING_TOKEN, missing=True)
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        try:
            claims = self._tokens.decode(token, ACCESS)
        except Unauthorized:
            self._telemetry.auth_failure(AuthFailureReason.INVALID_TOKEN)
            raise
        principal = await self._users.principal(claims["sid"])
        if principal is None or principal.user_id != claims["sub"]:
            self._telemetry.auth_failure(AuthFailureReason.REVOKED_SESSION)
            raise TokenRejected(ENDED_SESSION)
        self._verified.put(token, principal, float(claims["exp"]))
        return principal

    async def authenticate_certificate(
        self, names: tuple[str, ...], first_use: bool, client: str | None
    ) -> Principal:
        """The service account a verified client certificate maps to (its
        ``certificate_name`` is one of ``names``: DNS SANs, then the subject CN), or
        Unauthorized saying why. ``first_use``: the connection's first request, audited
        as a login by certificate."""
        account = None
        for name in names:
            account = await self.accounts.by_certificate(name)
            if account is not None:
                break
        if account is None or account.disabled:
            self._telemetry.auth_failure(AuthFailureReason.BAD_CREDENTIALS)
            shown_names = ", ".join(names[:3]) or "no name"
            if account is None:
                raise TokenRejected(
                    f"the client certificate ({shown_names}) verifies but maps to no service"
                    " account; an admin names it as an account's certificate_name (or send"
                    " a bearer token)"
                )
            raise TokenRejected(f"the service account {account.client_id} is disabled")
        who = Principal(
            user_id=account.account_id,
            username=account.client_id,
            role=account.role,
            session_id=f"certificate:{account.account_id}",
        )
        if first_use:
            await self._audit.record(
                Actor(user_id=who.user_id, username=who.username, client_address=client),
                AuditAction.LOGIN,
                self._clock.timestamp(),
                "user",
                who.user_id,
                {"method": AuthMethod.CLIENT_CERTIFICATE, "certificate_name": name},
            )
        return who

    # -- sessions --------------------------------------------------------------------

    async def login(self, username: str, password: str, client: str | None) -> TokenPair:
        key = username_key(username)
        slot = await self.passwords.start_check(key, username, client)
        try:
            creds = await self._users.credentials(key)
        except BaseException:
            # No password was checked: nothing to count.
            self.passwords.end_check(slot)
            self.passwords.give_back(slot)
            raise
        # From here the attempt counts unless it succeeds (a cancelled request included).
        password_hash = creds.password_hash if creds else self.passwords.dummy_hash
        ok = await self.passwords.verify(password_hash, password, slot)
        now = self._clock.wall()
        if creds is not None and creds.kind is not AccountKind.PERSON:
            ok = False  # a service account gets tokens by client credentials, not here
        if creds is None or not ok or creds.user.disabled:
            self._telemetry.auth_failure(AuthFailureReason.BAD_CREDENTIALS)
            user_id = creds.user.user_id if creds else None
            actor = Actor(user_id=user_id, username=username[:64], client_address=client)
            if creds is None:
                await self.passwords.audit_unauthenticated(
                    actor, AuditAction.LOGIN_FAILED, now, None
                )
            else:
                # A guess at a real account is always written down: a flood of made-up
                # names must not use up the budget and hide a brute force on admin. The
                # throttle already bounds these rows (2N per account and window, plus N
                # per address the account logged in from).
                await self._audit.record(
                    actor, AuditAction.LOGIN_FAILED, format_ts(now), "user", user_id, {}
                )
            raise Unauthorized(BAD_LOGIN)
        self.passwords.succeeded(slot)
        user = creds.user
        session_id = str(uuid.uuid4())
        session_end = now + timedelta(seconds=self._tokens.settings.session_max_age_s)
        pair, refresh_exp = self._tokens.issue(
            user.user_id, session_id, now, session_end, secrets.token_urlsafe(16)
        )
        await self._users.create_session(
            session_id,
            user,
            hash_token(pair.refresh_token),
            format_ts(now),
            format_ts(refresh_exp),
            Actor(user_id=user.user_id, username=user.username, client_address=client),
        )
        return pair

    async def client_token(
        self, client_id: str, secret: str, client: str | None
    ) -> tuple[str, int]:
        """OAuth 2.0 client credentials (RFC 6749 section 4.4): a service account's access
        token and its lifetime in seconds, or Unauthorized (BAD_CLIENT). Throttled,
        capped and audited as a login is (the client id counts as the username); the
        session lasts as long as its access token and has no refresh token (section
        4.4.3): a client asks again."""
        key = username_key(client_id)
        slot = await self.passwords.start_check(key, client_id, client)
        try:
            creds = await self._users.credentials(key)
        except BaseException:
            self.passwords.end_check(slot)
            self.passwords.give_back(slot)
            raise
        password_hash = creds.password_hash if creds else self.passwords.dummy_hash
        ok = await self.passwords.verify(password_hash, secret, slot)
        now = self._clock.wall()
        if creds is None or not ok or creds.user.disabled or creds.kind is not SERVICE:
            self._telemetry.auth_failure(AuthFailureReason.BAD_CREDENTIALS)
            actor = Actor(
                user_id=creds.user.user_id if creds else None,
                username=client_id[:64],
                client_address=client,
            )
            details = {"method": AuthMethod.CLIENT_CREDENTIALS}
            if creds is None:
                await self.passwords.audit_unauthenticated(
                    actor, AuditAction.LOGIN_FAILED, now, None, details
                )
            else:
                await self._audit.record(
                    actor, AuditAction.LOGIN_FAILED, format_ts(now), "user", actor.user_id, details
                )
            raise Unauthorized(BAD_CLIENT)
        self.passwords.succeeded(slot)
        user = creds.user
        session_id = str(uuid.uuid4())
        session_end = now + timedelta(seconds=self._tokens.settings.access_ttl_s)
        pair, _ = self._tokens.issue(user.user_id, session_id, now, session_end, "")
        await self._users.create_session(
            session_id,
            user,
            hash_token(secrets.token_urlsafe(32)),  # no refresh token is ever handed out
            format_ts(now),
            format_ts(session_end),
            Actor(user_id=user.user_id, username=user.username, client_address=client),
            AuthMethod.CLIENT_CREDENTIALS,
        )
        return pair.access_token, pair.expires_in

    async def refresh(self, refresh_token: str, client: str | None) -> TokenPair:
        try:
            claims = self._tokens.decode(refresh_token, REFRESH)
        except Unauthorized:
            self._telemetry.auth_failure(AuthFailureReason.INVALID_TOKEN)
            raise
        now = self._clock.wall()
        user_id, session_id = str(claims["sub"]), str(claims["sid"])

        def next_refresh(created_at: str, rotated_at: str) -> tuple[str, str]:
            # Runs inside the store's transaction: the new token's hash and expiry.
            pair, refresh_exp = self._tokens.rotated(
                user_id, session_id, refresh_token, created_at, rotated_at
            )
            return hash_token(pair.refresh_token), format_ts(refresh_exp)

        grace = self._tokens.settings.retry_grace_s
        rotation: Rotation | None = await self._users.rotate_refresh(
            session_id,
            hash_token(refresh_token),
            format_ts(now),
            format_ts(now - timedelta(seconds=grace)) if grace > 0 else None,
            next_refresh,
            Actor(user_id=user_id, username=None, client_address=client),
        )
        if rotation is None or rotation.user.user_id != user_id:
            # A reused refresh token revokes its session: forget its access tokens too.
            self._verified.drop_session(session_id)
            self._telemetry.auth_failure(AuthFailureReason.STALE_REFRESH)
            raise TokenRejected(ENDED_SESSION)
        pair, _ = self._tokens.rotated(
            user_id, session_id, refresh_token, rotation.created_at, rotation.rotated_at
        )
        return pair

    async def logout(self, principal: Principal, client: str | None) -> None:
        await self._users.revoke_session(
            principal.session_id,
            self._clock.timestamp(),
            Actor(user_id=principal.user_id, username=principal.username, client_address=client),
        )
        # Forgotten (and its streams told) only once the revocation is stored: a request
        # checking the same token meanwhile would otherwise read the still-live session
        # and cache it again.
        self._verified.drop_session(principal.session_id)
