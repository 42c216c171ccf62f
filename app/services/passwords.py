"""Passwords: their rules, argon2 hashing, and the bounded checks of a login.

Logins are bounded before any password is checked: one check at a time per client
address and per username (the others wait their turn), each attempt counted in the
throttle before its check runs (given back on success), and at most
``LoginLimits.checks`` checks at once in the whole process (beyond that: 503 instead of
a queue of CPU work). Password hashing (argon2) runs off the event loop, in its own
threads. Failed and refused logins of unknown accounts are audited within a budget.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, Final, NoReturn

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from app.clock import Clock, format_ts
from app.errors import BadRequest, Overloaded, RateLimited
from app.models import Actor
from app.services.login_throttle import (
    ADDRESS_LIMIT,
    USERNAME_LIMIT,
    LoginLimits,
    LoginRefused,
    LoginSlot,
)
from app.services.shared_limits import SharedLoginThrottle
from app.store.audit import AuditStore
from app.telemetry import Telemetry
from app.usernames import username_key
from app.vocabulary import AuditAction, AuthFailureReason

log = logging.getLogger(__name__)

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


def check_password_rules(username: str, password: str, field: str = "body.password") -> None:
    """BadRequest naming the rules if ``password`` breaks them."""
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise BadRequest(f"{field}: {len(password)} characters; {PASSWORD_RULES}")
    if username_key(password) == username_key(username):
        raise BadRequest(f"{field}: equals the username; {PASSWORD_RULES}")


class PasswordChecks:
    """Hashes passwords and checks them, each check bounded by ``limits`` (None:
    unlimited) and run in a thread of its own."""

    def __init__(
        self,
        audit: AuditStore,
        telemetry: Telemetry,
        clock: Clock,
        limits: LoginLimits | None,
        hasher: PasswordHasher | None,
        shared: SharedLoginThrottle | None = None,
    ) -> None:
        self._audit = audit
        # A cluster: the throttle's counts are every node's (app.services.shared_limits);
        # the turns, the check cap and the audit budget stay this node's.
        self.shared = shared
        self._telemetry = telemetry
        self._clock = clock
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
        self.dummy_hash = self.hasher.hash(secrets.token_hex(16))

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, password_hash: str, password: str, slot: LoginSlot | None) -> bool:
        """Check a password in a check thread. The check's place (``start_check``) is
        given up when the thread is done, even if the request is cancelled meanwhile: the
        thread cannot be stopped, so it still counts as running."""
        try:
            future = asyncio.get_running_loop().run_in_executor(
                self._checks, self._check, password_hash, password
            )
        except BaseException:
            self.end_check(slot)
            raise
        future.add_done_callback(lambda _: self.end_check(slot))
        return await asyncio.shield(future)

    async def start_check(self, key: str, username: str, client: str | None) -> LoginSlot | None:
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
        try:
            if self.shared is None:
                slot = limits.throttle.reserve(address, key)
            else:
                slot = await self.shared.reserve(address, key)
        except BaseException:
            self._give_turns(address, key)
            raise
        if isinstance(slot, LoginRefused):
            self._give_turns(address, key)
            await self._refuse(slot, key, username, client)
        if not limits.checks.try_enter():
            self._give_turns(address, key)
            self.give_back(slot)
            raise Overloaded(
                f"too many logins are being checked; try again in {OVERLOADED_RETRY_S} s",
                retry_after=OVERLOADED_RETRY_S,
            )
        return slot

    def _give_turns(self, address: str, key: str) -> None:
        assert self._limits is not None
        self._limits.turns.give(f"{ADDRESS_LIMIT}:{address}")
        self._limits.turns.give(f"{USERNAME_LIMIT}:{key}")

    def end_check(self, slot: LoginSlot | None) -> None:
        """Give up the place taken by ``start_check`` (the attempt itself still counts)."""
        if slot is not None and self._limits is not None:
            self._limits.checks.leave()
            self._give_turns(slot.address, slot.username)

    def give_back(self, slot: LoginSlot | None) -> None:
        """The attempt does not count: it succeeded, or no password was checked."""
        if slot is not None and self._limits is not None:
            if self.shared is not None:
                self.shared.give_back(slot)
            else:
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
                await self.audit_unauthenticated(
                    Actor(user_id=None, username=username[:64], client_address=client),
                    AuditAction.LOGIN_THROTTLED,
                    now,
                    None,
                    {"limit": limit, "refused_since_previous_row": left_out},
                )
        wait = refused.retry_after
        raise RateLimited(f"too many failed logins; try again in {wait} s", retry_after=wait)

    async def audit_unauthenticated(
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

    def succeeded(self, slot: LoginSlot | None) -> None:
        """The password checked out: the attempt no longer counts against the throttle."""
        if slot is not None and self._limits is not None:
            if self.shared is not None:
                self.shared.succeeded(slot)
            else:
                self._limits.throttle.succeeded(slot)
