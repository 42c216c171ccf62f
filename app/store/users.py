"""Users and their login sessions.

A user is found by its username key (``app.usernames.username_key``), which is unique:
``Admin`` cannot be created next to ``admin``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from app.models import Actor, Principal, User
from app.store.audit import insert_audit
from app.store.engine import Engine
from app.store.rows import delete_batch, fetch_all, fetch_one
from app.store.sql import Conn, Row
from app.usernames import lookalike, username_key
from app.vocabulary import AccountKind, AuditAction, AuthMethod, Role


@dataclass(frozen=True, slots=True)
class Credentials:
    user: User
    password_hash: str  # a service account's: its secret's
    kind: AccountKind = AccountKind.PERSON


@dataclass(frozen=True, slots=True)
class Rotation:
    """A refresh that was accepted: a new rotation at ``rotated_at``, or (``retried``) a
    retry of the one just made, to be answered with the same pair."""

    user: User
    created_at: str
    rotated_at: str
    retried: bool


# (session created_at, rotated_at) -> (hash of the new refresh token, its expiry)
NextRefresh = Callable[[str, str], tuple[str, str]]


def _user(row: Row) -> User:
    return User(
        user_id=row["user_id"],
        username=row["username"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
    )


def all_users(conn: Conn) -> list[User]:
    """Every person (not the service accounts), by username; also on the CLI's read-only
    connection."""
    rows = fetch_all(
        conn,
        "SELECT user_id, username, role, disabled FROM users WHERE kind = 'person'"
        " ORDER BY username",
    )
    return [_user(r) for r in rows]


def names_by_age(conn: Conn) -> list[tuple[str, str]]:
    """Every ``(user_id, username)``, oldest first; also on the CLI's read-only connection."""
    rows = conn.execute("SELECT user_id, username FROM users ORDER BY created_at, rowid")
    return [(str(r[0]), str(r[1])) for r in rows]


def _credentials(row: Row) -> Credentials:
    return Credentials(_user(row), str(row["password_hash"]), AccountKind(row["kind"]))


class UserStore:
    """People and service accounts share the table (one namespace of names, one kind of
    session); ``all`` lists the people (``app.store.service_accounts`` the others)."""

    def __init__(self, db: Engine) -> None:
        self._db = db

    @property
    def db(self) -> Engine:
        return self._db

    async def count(self) -> int:
        return await self._db.read(
            lambda c: int(c.execute("SELECT count(*) FROM users").fetchone()[0])
        )

    async def create(self, user: User, password_hash: str, at: str, actor: Actor) -> bool:
        """Insert a user; False if the username is taken (in any case or Unicode form) or
        looks like a taken one (``add``)."""
        return await self.add(user, password_hash, at, actor) is None

    async def add(self, user: User, password_hash: str, at: str, actor: Actor) -> str | None:
        """Insert a user: None if done, else the existing username it is or looks like
        (``app.usernames.lookalike``; nothing inserted). The check and the insert are one
        write transaction, so two look-alikes created at once cannot both get in."""

        def run(conn: Conn) -> str | None:
            names = (str(r[0]) for r in conn.execute("SELECT username FROM users"))
            other = lookalike(user.username, names)
            if other is not None:
                return other
            inserted = conn.execute(
                "INSERT INTO users (user_id, username, username_key, password_hash, role,"
                " disabled, created_at) VALUES (?, ?, ?, ?, ?, 0, ?) ON CONFLICT DO NOTHING",
                (
                    user.user_id,
                    user.username,
                    username_key(user.username),
                    password_hash,
                    user.role,
                    at,
                ),
            ).rowcount
            if inserted != 1:
                return user.username  # the key is taken (a migrated row's, say)
            insert_audit(
                conn,
                actor,
                AuditAction.USER_CREATE,
                at,
                "user",
                user.user_id,
                {"username": user.username, "role": user.role},
            )
            return None

        return await self._db.write(run)

    async def names_by_age(self) -> list[tuple[str, str]]:
        """Every ``(user_id, username)``, oldest first (for ``app.usernames.nonconforming``)."""

        return await self._db.read(names_by_age)

    async def credentials(self, key: str) -> Credentials | None:
        """The user whose username key is ``key``, with their password hash."""

        def run(conn: Conn) -> Credentials | None:
            row = fetch_one(
                conn,
                "SELECT user_id, username, role, disabled, password_hash, kind FROM users"
                " WHERE username_key = ?",
                (key,),
            )
            return None if row is None else _credentials(row)

        return await self._db.read(run)

    async def all(self) -> list[User]:
        return await self._db.read(all_users)

    async def create_session(
        self,
        session_id: str,
        user: User,
        refresh_hash: str,
        at: str,
        expires_at: str,
        actor: Actor,
        method: AuthMethod = AuthMethod.PASSWORD,
    ) -> None:
        """A new session; its audit row says how it was authenticated."""

        def run(conn: Conn) -> None:
            conn.execute(
                "INSERT INTO sessions (session_id, user_id, refresh_hash, created_at, expires_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (session_id, user.user_id, refresh_hash, at, expires_at),
            )
            insert_audit(
                conn, actor, AuditAction.LOGIN, at, "session", session_id, {"method": method}
            )

        await self._db.write(run)

    async def principal(self, session_id: str) -> Principal | None:
        """The live principal of a session: None if revoked, or its user gone or disabled."""

        def run(conn: Conn) -> Principal | None:
            row = fetch_one(
                conn,
                "SELECT u.user_id, u.username, u.role FROM sessions s"
                " JOIN users u ON u.user_id = s.user_id"
                " WHERE s.session_id = ? AND s.revoked_at IS NULL AND u.disabled = 0",
                (session_id,),
            )
            if row is None:
                return None
            return Principal(
                user_id=row["user_id"],
                username=row["username"],
                role=Role(row["role"]),
                session_id=session_id,
            )

        return await self._db.read(run, single_statement=True)

    async def rotate_refresh(
        self,
        session_id: str,
        old_hash: str,
        at: str,
        retry_since: str | None,
        next_refresh: NextRefresh,
        actor: Actor,
    ) -> Rotation | None:
        """Swap a session's refresh token for the one ``next_refresh`` derives. The token
        rotated away at or after ``retry_since`` is a retry (the same rotation is returned,
        nothing changes); any other stale token revokes the session. None: refused."""

        def run(conn: Conn) -> Rotation | None:
            row = fetch_one(
                conn,
                "SELECT s.refresh_hash, s.previous_hash, s.rotated_at, s.created_at,"
                " s.revoked_at, s.expires_at, u.user_id, u.username, u.role, u.disabled"
                " FROM sessions s JOIN users u ON u.user_id = s.user_id"
                " WHERE s.session_id = ?",
                (session_id,),
            )
            if row is None or row["revoked_at"] is not None or row["expires_at"] <= at:
                return None
            current, previous = row["refresh_hash"], row["previous_hash"]
            rotated_at, created_at = row["rotated_at"], row["created_at"]
            user = _user(row)
            if current == old_hash:
                if user.disabled:
                    return None
                new_hash, expires_at = next_refresh(created_at, at)
                if expires_at <= at:  # the session has reached its maximum age
                    return None
                conn.execute(
                    "UPDATE sessions SET refresh_hash = ?, previous_hash = ?, rotated_at = ?,"
                    " expires_at = ? WHERE session_id = ?",
                    (new_hash, old_hash, at, expires_at, session_id),
                )
                insert_audit(conn, actor, AuditAction.REFRESH, at, "session", session_id)
                return Rotation(user, created_at, at, retried=False)
            retried = (
                retry_since is not None
                and previous == old_hash
                and rotated_at is not None
                and rotated_at >= retry_since
            )
            if retried:
                return None if user.disabled else Rotation(user, created_at, rotated_at, True)
            # A refresh token that was already used: someone holds a copy. End the
            # session so neither copy works any more.
            conn.execute(
                "UPDATE sessions SET revoked_at = ? WHERE session_id = ?", (at, session_id)
            )
            insert_audit(conn, actor, AuditAction.REFRESH_REUSED, at, "session", session_id)
            return None

        return await self._db.write(run)

    async def revoke_session(self, session_id: str, at: str, actor: Actor) -> None:
        def run(conn: Conn) -> None:
            conn.execute(
                "UPDATE sessions SET revoked_at = ? WHERE session_id = ? AND revoked_at IS NULL",
                (at, session_id),
            )
            insert_audit(conn, actor, AuditAction.LOGOUT, at, "session", session_id)

        await self._db.write(run)

    async def set_disabled(
        self, user_id: str, disabled: bool, at: str, actor: Actor
    ) -> User | None:
        """Disable (ending every session) or re-enable a user; None if there is none."""

        def run(conn: Conn) -> User | None:
            cur = conn.execute(
                "UPDATE users SET disabled = ? WHERE user_id = ?", (int(disabled), user_id)
            )
            if cur.rowcount != 1:
                return None
            if disabled:
                conn.execute(
                    "UPDATE sessions SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
                    (at, user_id),
                )
            insert_audit(
                conn, actor, AuditAction.USER_UPDATE, at, "user", user_id, {"disabled": disabled}
            )
            row = fetch_one(
                conn,
                "SELECT user_id, username, role, disabled FROM users WHERE user_id = ?",
                (user_id,),
            )
            assert row is not None  # updated in this transaction
            return _user(row)

        return await self._db.write(run)

    async def user(self, user_id: str) -> Credentials | None:
        """The user with this id, with their password hash."""

        def run(conn: Conn) -> Credentials | None:
            row = fetch_one(
                conn,
                "SELECT user_id, username, role, disabled, password_hash, kind FROM users"
                " WHERE user_id = ?",
                (user_id,),
            )
            return None if row is None else _credentials(row)

        return await self._db.read(run)

    async def set_password(
        self,
        user_id: str,
        password_hash: str,
        at: str,
        actor: Actor,
        action: AuditAction,
        keep_session: str | None = None,
    ) -> list[str] | None:
        """Store a new password hash and end every live session of the user but
        ``keep_session``; the ids of the sessions ended, or None if there is no such user."""

        def run(conn: Conn) -> list[str] | None:
            cur = conn.execute(
                "UPDATE users SET password_hash = ? WHERE user_id = ?", (password_hash, user_id)
            )
            if cur.rowcount != 1:
                return None
            rows = fetch_all(
                conn,
                "SELECT session_id FROM sessions WHERE user_id = ? AND revoked_at IS NULL"
                " AND session_id <> coalesce(?, '')",
                (user_id, keep_session),
            )
            ended = [str(r["session_id"]) for r in rows]
            conn.executemany(
                "UPDATE sessions SET revoked_at = ? WHERE session_id = ?",
                [(at, sid) for sid in ended],
            )
            insert_audit(conn, actor, action, at, "user", user_id, {"sessions_ended": len(ended)})
            return ended

        return await self._db.write(run)

    async def delete(self, user_id: str, at: str, actor: Actor) -> bool | None:
        """Delete a user and their sessions. None if there is no such user, False if they
        have command history (kept: disable them instead)."""

        def run(conn: Conn) -> bool | None:
            if conn.execute("SELECT 1 FROM users WHERE user_id = ?", (user_id,)).fetchone() is None:
                return None
            if conn.execute(
                "SELECT 1 FROM commands WHERE user_id = ? LIMIT 1", (user_id,)
            ).fetchone():
                return False
            # Its sessions go with it (ON DELETE CASCADE).
            conn.execute("DELETE FROM users WHERE user_id = ?", (user_id,))
            insert_audit(conn, actor, AuditAction.USER_DELETE, at, "user", user_id)
            return True

        return await self._db.write(run)

    async def purge_dead_sessions(self, now: str, batch: int) -> int:
        """Delete up to ``batch`` sessions that expired before ``now`` or were revoked;
        return how many. Their audit rows stay (they name the session by id only)."""

        dead = "expires_at < ? OR revoked_at IS NOT NULL"
        return await self._db.write(
            lambda c: delete_batch(c, "sessions", "session_id", dead, (now,), batch)
        )
