"""User accounts: people created, their passwords changed or reset, disabled, deleted.

Whatever ends an account's access (a new password, disabling, deleting) ends its
sessions too, and the principal cache forgets them, so their streams close. A user's own
password change checks the current one as a login does (``PasswordChecks``). Service
accounts (``app.services.service_accounts``) are managed through the same calls, by kind.
On a new database the first ``admin`` and ``engineer`` are created here.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from typing import Final

from app.clock import Clock
from app.errors import BadRequest, Conflict, Forbidden, NotFound
from app.models import Actor, Principal, User
from app.services.passwords import PasswordChecks, check_password_rules
from app.services.principal_cache import PrincipalCache
from app.store.audit import AuditStore
from app.store.users import Credentials, UserStore
from app.telemetry import Telemetry
from app.usernames import (
    UsernameError,
    UsernameTaken,
    check_username,
    nonconforming,
    shown,
    username_key,
)
from app.vocabulary import AccountKind, AuditAction, AuthFailureReason, Role

log = logging.getLogger(__name__)

WRONG_CURRENT: Final = "body.current_password: wrong password"


class UserAccounts:
    def __init__(
        self,
        users: UserStore,
        audit: AuditStore,
        passwords: PasswordChecks,
        verified: PrincipalCache,
        telemetry: Telemetry,
        clock: Clock,
    ) -> None:
        self._users = users
        self._audit = audit
        self._passwords = passwords
        self._verified = verified
        self._telemetry = telemetry
        self._clock = clock

    def now(self) -> str:
        return self._clock.timestamp()

    async def hash_password(self, password: str) -> str:
        return await self._passwords.hash_password(password)

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
        slot = await self._passwords.start_check(key, who.username, client)
        try:
            creds = await self._users.user(who.user_id)
        except BaseException:
            self._passwords.end_check(slot)
            self._passwords.give_back(slot)
            raise
        ok = await self._passwords.verify(
            creds.password_hash if creds else self._passwords.dummy_hash, current, slot
        )
        if creds is not None and creds.kind is not AccountKind.PERSON:
            # A service account's secret is replaced by an admin (POST .../secret), never
            # by the account itself: a stolen token must not be able to lock the owner out.
            self._passwords.give_back(slot)
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
        self._passwords.succeeded(slot)
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
