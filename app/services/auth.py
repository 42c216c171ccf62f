"""Authentication: passwords, sessions and the JWT access/refresh tokens that carry them.

A login opens a session. Both tokens name the session (``sid``), so logout, which revokes
the session, ends both at once. Refresh tokens rotate: each use swaps the stored hash,
and presenting a stale one revokes the session (someone holds a copy), except within a
short retry grace right after a rotation, when the token just rotated away gets the same
new pair again (a client that retried). No session outlives ``session_max_age_s`` from
its login, however often it is refreshed. Only hashes of refresh tokens are stored.

Logins are bounded before any password is checked: one check at a time per client
address and per username (the others wait their turn), each attempt counted in the
throttle before its check runs (given back on success), and at most
``LoginLimits.checks`` checks at once in the whole process (beyond that: 503 instead of
a queue of CPU work). Password hashing (argon2) runs off the event loop, in its own
threads.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, NoReturn

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.clock import Clock, format_ts, parse_ts
from app.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    NotFound,
    Overloaded,
    RateLimited,
    Unauthorized,
)
from app.models import Actor, Principal, User
from app.services.principal_cache import PrincipalCache, RevocationListener
from app.services.throttle import (
    ADDRESS_LIMIT,
    USERNAME_LIMIT,
    LoginLimits,
    LoginRefused,
    LoginSlot,
)
from app.store.audit import AuditStore
from app.store.users import Credentials, Rotation, UserStore
from app.telemetry import Telemetry
from app.usernames import (
    UsernameError,
    UsernameTaken,
    check_username,
    nonconforming,
    shown,
    username_key,
)
from app.vocabulary import AccountKind, AuditAction, AuthFailureReason, AuthMethod, Role

log = logging.getLogger(__name__)

ALGORITHM: Final = "HS256"
ACCESS: Final = "access"
REFRESH: Final = "refresh"
BAD_LOGIN: Final = "wrong username or password"
BAD_CLIENT: Final = "unknown client, wrong secret, or a disabled account"
SERVICE: Final = AccountKind.SERVICE
# 401 messages. Expired and ended are told apart from invalid only for a token whose
# signature checked out: that tells a forger nothing they did not know.
MISSING_TOKEN: Final = "no bearer token; send Authorization: Bearer <access_token>"  # noqa: S105
BAD_TOKEN: Final = "invalid token"  # noqa: S105 (a message)
EXPIRED_ACCESS: Final = "access token expired; get a new pair from /api/v1/auth/refresh"
EXPIRED_REFRESH: Final = "refresh token expired; log in again"
ENDED_SESSION: Final = (
    "session ended (logged out, password changed, or account disabled); log in again"
)
WRONG_CURRENT: Final = "body.current_password: wrong password"
PASSWORD_MIN: Final = 8
PASSWORD_MAX: Final = 256
PASSWORD_RULES: Final = (
    f"a password is {PASSWORD_MIN} to {PASSWORD_MAX} characters and differs from the username"
)
# A 503 for a login over the check cap: a check takes well under a second.
OVERLOADED_RETRY_S: Final = 1
# What the next written unauthenticated audit row says about the rows left out before it.
LEFT_OUT: Final = "audit_rows_left_out_before"
NO_ADDRESS: Final = "-"

PASSWORD_HASH_FAST: Final = "fast"  # noqa: S105 (a profile name)


def password_hasher(profile: str) -> PasswordHasher:
    """argon2id with the library's defaults (RFC 9106's second recommendation); ``fast``
    is for tests only: cheap parameters, so a test can run hundreds of logins."""
    if profile == PASSWORD_HASH_FAST:
        return PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    return PasswordHasher()


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


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenRejected(Unauthorized):
    """A 401 about the bearer token; ``missing``: none was sent (RFC 6750 then wants no
    ``error`` in the challenge)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def check_password_rules(username: str, password: str, field: str = "body.password") -> None:
    """BadRequest naming the rules if ``password`` breaks them."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise BadRequest(f"{field}: {len(password)} characters; {PASSWORD_RULES}")
    if username_key(password) == username_key(username):
        raise BadRequest(f"{field}: equals the username; {PASSWORD_RULES}")


def _times_are_valid(claims: dict[str, Any], now: float) -> bool | None:
    """``exp`` in the future, ``iat`` and ``nbf`` not: whole numbers only (as issued).
    None: well formed but expired."""
    exp, iat, nbf = (claims.get(name) for name in ("exp", "iat", "nbf"))
    if type(exp) is not int or type(iat) is not int or not (nbf is None or type(nbf) is int):
        return False
    if not (iat <= now and (nbf is None or nbf <= now)):
        return False
    return True if exp > now else None


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
    ) -> None:
        self._users = users
        self._audit = audit
        self._tokens = tokens
        self._telemetry = telemetry
        self._clock = clock or Clock()
        self._verified = PrincipalCache(clock=self._clock)
        # Throttle, check cap and audit budget of logins; None: unlimited.
        self._limits = limits
        # Public so that a test can wrap it and count the checks that really run.
        self.hasher = hasher or PasswordHasher()
        # The check threads: as many as checks may run at once, so none ever queues here.
        self._checks = ThreadPoolExecutor(
            max_workers=limits.checks.limit if limits else None,
            thread_name_prefix="password-check",
        )
        # Verifying against this when the user does not exist keeps the answer time the
        # same for unknown users and wrong passwords.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        # Service accounts are managed beside people (their module needs this one).
        from app.services.service_accounts import ServiceAccounts
        from app.store.service_accounts import ServiceAccountStore

        self.accounts = ServiceAccounts(self, ServiceAccountStore(users.db))

    def now(self) -> str:
        return self._clock.timestamp()

    # -- passwords -------------------------------------------------------------------

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _verify(self, password_hash: str, password: str, slot: LoginSlot | None) -> bool:
        """Check a password in a check thread. The check's place (``_start_check``) is
        given up when the thread is done, even if the request is cancelled meanwhile: the
        thread cannot be stopped, so it still counts as running."""
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._checks, self._check, password_hash, password
            )
        except BaseException:
            self._end_check(slot)
            raise
        future.add_done_callback(lambda _: self._end_check(slot))
        return await asyncio.shield(future)

    def on_revocation(self, listener: RevocationListener) -> None:
        """Tell ``listener`` whenever a session or a user's access ends (logout, a reused
        refresh token, disable, delete), so whatever outlives a request can end too."""
        self._verified.add_listener(listener)

    # -- tokens ----------------------------------------------------------------------

    def _issue(
        self, user_id: str, session_id: str, issued: datetime, session_end: datetime, jti: str
    ) -> tuple[TokenPair, datetime]:
        """The token pair of a session issued at ``issued``, and the refresh token's
        expiry; neither outlives ``session_end``. Deterministic in its arguments. Tokens
        carry no role: authorization reads it from the database on every request."""
        t = self._tokens
        access_exp = min(issued + timedelta(seconds=t.access_ttl_s), session_end)
        refresh_exp = min(issued + timedelta(seconds=t.refresh_ttl_s), session_end)
        base = {"sub": user_id, "sid": session_id, "iat": issued}
        access = jwt.encode({**base, "typ": ACCESS, "exp": access_exp}, t.secret, ALGORITHM)
        refresh = jwt.encode(
            {**base, "typ": REFRESH, "jti": jti, "exp": refresh_exp}, t.secret, ALGORITHM
        )
        expires_in = max(0, int((access_exp - issued).total_seconds()))
        return TokenPair(access, refresh, expires_in), refresh_exp

    def _rotated(
        self, user_id: str, session_id: str, old_refresh: str, created_at: str, rotated_at: str
    ) -> tuple[TokenPair, datetime]:
        """The pair that replaces ``old_refresh`` at ``rotated_at``: derived from it, the
        stored times and the signing key only, so a retry can be answered with the same
        pair without keeping any token."""
        digest = hmac.new(
            self._tokens.secret.encode(), b"refresh-rotation\0" + old_refresh.encode(), "sha256"
        ).digest()
        jti = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
        session_end = parse_ts(created_at) + timedelta(seconds=self._tokens.session_max_age_s)
        return self._issue(user_id, session_id, parse_ts(rotated_at), session_end, jti)

    def _decode(self, token: str, token_type: str) -> dict[str, Any]:
        # Times are checked against the service's own clock (the one that issued them).
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._tokens.secret,
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

    async def authenticate(self, token: str | None) -> Principal:
        """The principal behind an access token, or Unauthorized."""
        if not token:
            self._telemetry.auth_failure(AuthFailureReason.MISSING_TOKEN)
            raise TokenRejected(MISSING_TOKEN, missing=True)
        cached = self._verified.get(token)
        if cached is not None:
            return cached
        try:
            claims = self._decode(token, ACCESS)
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
        slot = await self._start_check(key, username, client)
        try:
            creds = await self._users.credentials(key)
        except BaseException:
            # No password was checked: nothing to count.
            self._end_check(slot)
            self._give_back(slot)
            raise
        # From here the attempt counts unless it succeeds (a cancelled request included).
        password_hash = creds.password_hash if creds else self._dummy_hash
        ok = await self._verify(password_hash, password, slot)
        now = self._clock.wall()
        if creds is not None and creds.kind is not AccountKind.PERSON:
            ok = False  # a service account gets tokens by client credentials, not here
        if creds is None or not ok or creds.user.disabled:
            self._telemetry.auth_failure(AuthFailureReason.BAD_CREDENTIALS)
            user_id = creds.user.user_id if creds else None
            actor = Actor(user_id=user_id, username=username[:64], client_address=client)
            if creds is None:
                await self._audit_unauthenticated(actor, AuditAction.LOGIN_FAILED, now, None)
            else:
                # A guess at a real account is always written down: a flood of made-up
                # names must not use up the budget and hide a brute force on admin. The
                # throttle already bounds these rows (2N per account and window, plus N
                # per address the account logged in from).
                await self._audit.record(
                    actor, AuditAction.LOGIN_FAILED, format_ts(now), "user", user_id, {}
                )
            raise Unauthorized(BAD_LOGIN)
        if slot is not None and self._limits is not None:
            self._limits.throttle.succeeded(slot)
        user = creds.user
        session_id = str(uuid.uuid4())
        session_end = now + timedelta(seconds=self._tokens.session_max_age_s)
        pair, refresh_exp = self._issue(
            user.user_id, session_id, now, session_end, secrets.token_urlsafe(16)
        )
        await self._users.create_session(
            session_id,
            user,
            _hash_token(pair.refresh_token),
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
        slot = await self._start_check(key, client_id, client)
        try:
            creds = await self._users.credentials(key)
        except BaseException:
            self._end_check(slot)
            self._give_back(slot)
            raise
        password_hash = creds.password_hash if creds else self._dummy_hash
        ok = await self._verify(password_hash, secret, slot)
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
                await self._audit_unauthenticated(
                    actor, AuditAction.LOGIN_FAILED, now, None, details
                )
            else:
                await self._audit.record(
                    actor, AuditAction.LOGIN_FAILED, format_ts(now), "user", actor.user_id, details
                )
            raise Unauthorized(BAD_CLIENT)
        if slot is not None and self._limits is not None:
            self._limits.throttle.succeeded(slot)
        user = creds.user
        session_id = str(uuid.uuid4())
        session_end = now + timedelta(seconds=self._tokens.access_ttl_s)
        pair, _ = self._issue(user.user_id, session_id, now, session_end, "")
        await self._users.create_session(
            session_id,
            user,
            _hash_token(secrets.token_urlsafe(32)),  # no refresh token is ever handed out
            format_ts(now),
            format_ts(session_end),
            Actor(user_id=user.user_id, username=user.username, client_address=client),
            AuthMethod.CLIENT_CREDENTIALS,
        )
        return pair.access_token, pair.expires_in

    async def _start_check(self, key: str, username: str, client: str | None) -> LoginSlot | None:
        """Take a place for one password check, or refuse: 429 (throttled) or 503 (the
        process's checks are all busy).

        The address and then the username wait for their turn (one check at a time per
        address and per username, in arrival order), so every attempt is counted in the
        throttle before the next one on either is decided: logins sent together cannot
        all pass, and a refusal's Retry-After never depends on checks still running."""
        limits = self._limits
        if limits is None:
            return None
        address = client or NO_ADDRESS
        lines = (f"{ADDRESS_LIMIT}:{address}", f"{USERNAME_LIMIT}:{key}")
        await limits.turns.take(lines[0])
        try:
            await limits.turns.take(lines[1])
        except BaseException:
            limits.turns.give(lines[0])
            raise
        slot = limits.throttle.reserve(address, key)
        if isinstance(slot, LoginRefused):
            self._give_turns(address, key)
            await self._refuse(slot, key, username, client)
        if not limits.checks.try_enter():
            self._give_turns(address, key)
            limits.throttle.give_back(slot)
            raise Overloaded(
                f"too many logins are being checked; try again in {OVERLOADED_RETRY_S} s",
                retry_after=OVERLOADED_RETRY_S,
            )
        return slot

    def _give_turns(self, address: str, key: str) -> None:
        assert self._limits is not None
        self._limits.turns.give(f"{ADDRESS_LIMIT}:{address}")
        self._limits.turns.give(f"{USERNAME_LIMIT}:{key}")

    def _end_check(self, slot: LoginSlot | None) -> None:
        """Give up the place taken by ``_start_check`` (the attempt itself still counts)."""
        if slot is not None and self._limits is not None:
            self._limits.checks.leave()
            self._give_turns(slot.address, slot.username)

    def _give_back(self, slot: LoginSlot | None) -> None:
        """The attempt does not count: it succeeded, or no password was checked."""
        if slot is not None and self._limits is not None:
            self._limits.throttle.give_back(slot)

    async def _refuse(
        self, refused: LoginRefused, key: str, username: str, client: str | None
    ) -> NoReturn:
        """429. Counted every time; audited once per limited key per window."""
        assert self._limits is not None
        self._telemetry.auth_failure(AuthFailureReason.THROTTLED)
        now = self._clock.wall()
        for limit in refused.limits:
            subject = (client or NO_ADDRESS) if limit == ADDRESS_LIMIT else key
            left_out = self._limits.refusals.note(f"{limit}:{subject}")
            if left_out is not None:
                await self._audit_unauthenticated(
                    Actor(user_id=None, username=username[:64], client_address=client),
                    AuditAction.LOGIN_THROTTLED,
                    now,
                    None,
                    {"limit": limit, "refused_since_previous_row": left_out},
                )
        wait = refused.retry_after
        raise RateLimited(f"too many failed logins; try again in {wait} s", retry_after=wait)

    async def _audit_unauthenticated(
        self,
        actor: Actor,
        action: AuditAction,
        at: datetime,
        user_id: str | None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """An audit row caused by someone not logged in, within the global budget: rows
        over it are left out and counted, and the next row written says how many."""
        details = dict(details or {})
        if self._limits is not None:
            left_out = self._limits.audit.take()
            if left_out is None:
                return
            if left_out:
                details[LEFT_OUT] = left_out
                log.warning(
                    "left %d audit rows of failed or refused logins out (over the budget)",
                    left_out,
                    extra={"event": "audit_budget"},
                )
        await self._audit.record(actor, action, format_ts(at), "user", user_id, details)

    async def refresh(self, refresh_token: str, client: str | None) -> TokenPair:
        try:
            claims = self._decode(refresh_token, REFRESH)
        except Unauthorized:
            self._telemetry.auth_failure(AuthFailureReason.INVALID_TOKEN)
            raise
        now = self._clock.wall()
        user_id, session_id = str(claims["sub"]), str(claims["sid"])

        def next_refresh(created_at: str, rotated_at: str) -> tuple[str, str]:
            # Runs inside the store's transaction: the new token's hash and expiry.
            pair, refresh_exp = self._rotated(
                user_id, session_id, refresh_token, created_at, rotated_at
            )
            return _hash_token(pair.refresh_token), format_ts(refresh_exp)

        grace = self._tokens.retry_grace_s
        rotation: Rotation | None = await self._users.rotate_refresh(
            session_id,
            _hash_token(refresh_token),
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
        pair, _ = self._rotated(
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

    # -- users -----------------------------------------------------------------------

    async def change_password(
        self, who: Principal, current: str, new: str, client: str | None
    ) -> int:
        """A user's own new password: the current one must check out (counted in the login
        throttle like a login); every other session of theirs ends (their streams close).
        Returns how many sessions ended."""
        if who.session_id.startswith("certificate:"):
            raise Forbidden("a client certificate has no password; an admin replaces secrets")
        check_password_rules(who.username, new, "body.new_password")
        key = username_key(who.username)
        slot = await self._start_check(key, who.username, client)
        try:
            creds = await self._users.user(who.user_id)
        except BaseException:
            self._end_check(slot)
            self._give_back(slot)
            raise
        ok = await self._verify(creds.password_hash if creds else self._dummy_hash, current, slot)
        if creds is not None and creds.kind is not AccountKind.PERSON:
            # A service account's secret is replaced by an admin (POST .../secret), never
            # by the account itself: a stolen token must not be able to lock the owner out.
            self._give_back(slot)
            raise Forbidden("a service account's secret is replaced by an admin, not here")
        if creds is None or not ok:
            self._telemetry.auth_failure(AuthFailureReason.BAD_CREDENTIALS)
            # A guess with a stolen access token is a failed login too: written down like
            # one (the throttle bounds these rows as it bounds failed logins).
            await self._audit.record(
                Actor(user_id=who.user_id, username=who.username, client_address=client),
                AuditAction.LOGIN_FAILED,
                self._clock.timestamp(),
                "user",
                who.user_id,
                {"via": "password change"},
            )
            raise Forbidden(WRONG_CURRENT)
        if slot is not None and self._limits is not None:
            self._limits.throttle.succeeded(slot)
        actor = Actor(user_id=who.user_id, username=who.username, client_address=client)
        ended = await self._users.set_password(
            who.user_id,
            await self.hash_password(new),
            self._clock.timestamp(),
            actor,
            AuditAction.PASSWORD_CHANGE,
            keep_session=who.session_id,
        )
        for session_id in ended or ():
            self._verified.drop_session(session_id)
        return len(ended or ())

    async def reset_password(self, user_id: str, password: str, actor: Actor) -> User:
        """An admin sets another user's password: every session of theirs ends."""
        if user_id == actor.user_id:
            raise Conflict(
                "use POST /api/v1/auth/password to change your own password"
                " (it asks for the current one)"
            )
        creds = await self._of_kind(user_id, AccountKind.PERSON)
        check_password_rules(creds.user.username, password)
        ended = await self._users.set_password(
            user_id,
            await self.hash_password(password),
            self._clock.timestamp(),
            actor,
            AuditAction.USER_PASSWORD_RESET,
        )
        if ended is None:  # deleted meanwhile
            raise NotFound(f"user {user_id} does not exist")
        self._verified.drop_user(user_id)
        return creds.user

    async def set_secret(self, account_id: str, secret: str, actor: Actor) -> None:
        """A service account's new secret (stored hashed): its sessions end."""
        await self._of_kind(account_id, AccountKind.SERVICE)
        ended = await self._users.set_password(
            account_id,
            await self.hash_password(secret),
            self._clock.timestamp(),
            actor,
            AuditAction.USER_PASSWORD_RESET,
        )
        if ended is None:
            raise NotFound(f"service account {account_id} does not exist")
        self._verified.drop_user(account_id)

    async def create_user(
        self,
        username: str,
        password: str,
        role: Role,
        actor: Actor,
        field: str = "body.username",
    ) -> User:
        """A new user. BadRequest if the name breaks the username rule
        (``app.usernames.check_username``); Conflict if it is taken, in any case or Unicode
        form, or looks like a taken one (the message names that user)."""
        try:
            name = check_username(username)
        except UsernameError as exc:
            raise BadRequest(f"{field}: {exc}") from None
        check_password_rules(name, password)
        return await self._new_user(name, password, role, actor)

    async def _new_user(self, name: str, password: str, role: Role, actor: Actor) -> User:
        """Store a user whose name has passed ``check_username``'s form; the look-alike
        half of the rule is checked with the insert, in one transaction."""
        user = User(user_id=str(uuid.uuid4()), username=name, role=role)
        password_hash = await self.hash_password(password)
        taken = await self._users.add(user, password_hash, self._clock.timestamp(), actor)
        if taken is not None:
            raise Conflict(str(UsernameTaken(name, taken)))
        return user

    async def _of_kind(self, user_id: str, kind: AccountKind) -> Credentials:
        """The account ``user_id`` if it is of ``kind``, else NotFound (the users API
        does not reach service accounts, nor theirs people)."""
        creds = await self._users.user(user_id)
        if creds is None or creds.kind is not kind:
            what = "user" if kind is AccountKind.PERSON else "service account"
            raise NotFound(f"{what} {user_id} does not exist")
        return creds

    async def set_disabled(
        self, user_id: str, disabled: bool, actor: Actor, kind: AccountKind = AccountKind.PERSON
    ) -> User:
        """Disable (its sessions end, its streams close) or re-enable an account."""
        if disabled and user_id == actor.user_id:
            raise Conflict("an admin cannot disable their own account")
        await self._of_kind(user_id, kind)
        user = await self._users.set_disabled(user_id, disabled, self._clock.timestamp(), actor)
        if user is None:
            raise NotFound(f"user {user_id} does not exist")
        if disabled:  # a disabled user has no live token left to forget when re-enabled
            self._verified.drop_user(user_id)
        return user

    async def delete_user(
        self, user_id: str, actor: Actor, kind: AccountKind = AccountKind.PERSON
    ) -> None:
        if user_id == actor.user_id:
            raise Conflict("an admin cannot delete their own account")
        await self._of_kind(user_id, kind)
        deleted = await self._users.delete(user_id, self._clock.timestamp(), actor)
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
        is generated and logged once: the only place it can ever be read. On an existing
        one, warn once per stored username that breaks the username rule (never changed
        here: ``python -m app users check`` lists them too)."""
        if await self._users.count() > 0:
            await self.warn_nonconforming_usernames()
            ignored = [
                name
                for name, value in (
                    ("SOVD_ADMIN_PASSWORD", admin_password),
                    ("SOVD_ENGINEER_PASSWORD", engineer_password),
                )
                if value
            ]
            if ignored:
                log.warning(
                    "%s ignored: the database already has users (these set the first"
                    " passwords only); change one with POST /api/v1/auth/password or"
                    " python -m app users reset-password",
                    " and ".join(ignored),
                    extra={"event": "initial_password_ignored"},
                )
            return
        initial: tuple[tuple[str, Role, str | None], ...] = (
            ("admin", Role.ADMIN, admin_password),
            ("engineer", Role.ENGINEER, engineer_password),
        )
        for username, role, password in initial:
            chosen = password or secrets.token_urlsafe(12)
            # Configured ones were checked by Config (length) and are the operator's.
            await self._new_user(check_username(username), chosen, role, actor)
            if password is None:
                log.warning(
                    "created user %s with a generated password, shown only this once: %s",
                    username,
                    chosen,
                    extra={"event": "initial_user_password"},
                )

    async def warn_nonconforming_usernames(self) -> int:
        """One warning per stored username that breaks the rule (its form, or it looks
        like an older user's), the name escaped; how many. Nothing is changed."""
        failing = nonconforming(await self._users.names_by_age())
        for user_id, name, why in failing:
            log.warning(
                "username %s (user %s) breaks the username rule: %s; kept as it is (see"
                " python -m app users check)",
                shown(name),
                user_id,
                why,
                extra={"event": "username_nonconforming", "user_id": user_id},
            )
        return len(failing)
