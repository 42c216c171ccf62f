"""Issue #8 item 14: a session has an absolute lifetime, and a retried refresh is not a theft.

- Refreshing never extends a session past its login + SOVD_SESSION_MAX_AGE_S.
- The refresh token just rotated away, presented again within SOVD_REFRESH_RETRY_GRACE_S
  (a client retrying a request whose answer it lost), gets the same new pair; later, or a
  token older than that, still ends the session.

Time-dependent parts use the service with an injected wall clock over a real SQLite file
(and a real PostgreSQL database, in the socket tier: tests/support/postgres.py);
the concurrent retry goes over HTTP to the real server.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest

from app.clock import Clock
from app.errors import Unauthorized
from app.models import SYSTEM_ACTOR
from app.services.auth import AuthService
from app.services.passwords import password_hasher
from app.services.tokens import TokenPair, TokenSettings
from app.store.audit import AuditStore
from app.store.engine import Engine
from app.store.users import UserStore
from app.telemetry import NoTelemetry
from tests.support.harness import ENGINEER_PASSWORD, Server, auth
from tests.support.login_helpers import fire
from tests.support.postgres import OpenEngine

pytestmark = pytest.mark.fast

SECRET = secrets.token_urlsafe(48)
DAY = timedelta(days=1)
T0 = datetime(2031, 3, 1, 8, 0, tzinfo=UTC)


class WallClock(Clock):
    def __init__(self) -> None:
        self.now = T0

    def wall(self) -> datetime:
        return self.now


def _claims(token: str) -> dict[str, Any]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


def _with_service(
    open_engine: OpenEngine, scenario: Callable[[AuthService, WallClock, Engine], Awaitable[None]]
) -> None:
    async def run() -> None:
        db = open_engine()
        await db.open()
        try:
            clock = WallClock()
            service = AuthService(
                UserStore(db),
                AuditStore(db),
                TokenSettings(
                    SECRET,
                    access_ttl_s=900,
                    refresh_ttl_s=7 * 86400,
                    session_max_age_s=30 * 86400,
                    retry_grace_s=5.0,
                ),
                NoTelemetry(),
                hasher=password_hasher("fast"),
                clock=clock,
            )
            await service.users.create_user("engineer", ENGINEER_PASSWORD, "engineer", SYSTEM_ACTOR)
            await scenario(service, clock, db)
        finally:
            await db.close()

    asyncio.run(run())


def test_refreshing_never_extends_a_session_past_its_maximum_age(open_engine: OpenEngine) -> None:
    async def scenario(service: AuthService, clock: WallClock, db: Engine) -> None:
        pair = await service.login("engineer", ENGINEER_PASSWORD, "10.0.0.1")
        expiries = []
        for day in (5, 10, 15, 20, 26):
            clock.now = T0 + day * DAY
            pair = await service.refresh(pair.refresh_token, "10.0.0.1")
            expiries.append(_claims(pair.refresh_token)["exp"])
        # A week after each refresh, except the last: capped at login + 30 days.
        week = [int((T0 + (day + 7) * DAY).timestamp()) for day in (5, 10, 15, 20)]
        assert expiries == [*week, int((T0 + 30 * DAY).timestamp())]
        assert pair.expires_in == 900
        last_access = pair.access_token
        clock.now = T0 + 30 * DAY - timedelta(minutes=5)
        pair = await service.refresh(pair.refresh_token, "10.0.0.1")
        # The access token stops with the session too.
        assert _claims(pair.access_token)["exp"] == int((T0 + 30 * DAY).timestamp())
        assert pair.expires_in == 300
        clock.now = T0 + 30 * DAY
        with pytest.raises(Unauthorized):
            await service.refresh(pair.refresh_token, "10.0.0.1")
        with pytest.raises(Unauthorized):
            await service.authenticate(pair.access_token)
        with pytest.raises(Unauthorized):
            await service.authenticate(last_access)
        # A new login starts a new session with its own 30 days.
        fresh = await service.login("engineer", ENGINEER_PASSWORD, "10.0.0.1")
        assert (await service.authenticate(fresh.access_token)).username == "engineer"

    _with_service(open_engine, scenario)


def test_a_retry_within_the_grace_gets_the_same_pair_and_later_ends_the_session(
    open_engine: OpenEngine,
) -> None:
    async def scenario(service: AuthService, clock: WallClock, db: Engine) -> None:
        login = await service.login("engineer", ENGINEER_PASSWORD, "10.0.0.1")
        clock.now += timedelta(minutes=10)
        first = await service.refresh(login.refresh_token, "10.0.0.1")
        clock.now += timedelta(seconds=4)
        retried = await service.refresh(login.refresh_token, "10.0.0.1")
        assert retried == first
        assert (await service.authenticate(first.access_token)).username == "engineer"
        # Six seconds after the rotation the grace (5 s) is over: reuse ends the session.
        clock.now += timedelta(seconds=2)
        with pytest.raises(Unauthorized):
            await service.refresh(login.refresh_token, "10.0.0.1")
        with pytest.raises(Unauthorized):
            await service.refresh(first.refresh_token, "10.0.0.1")
        actions = await db.read(
            lambda c: [r[0] for r in c.execute("SELECT action FROM audit_log ORDER BY audit_id")]
        )
        assert actions[-2:] == ["auth.refresh", "auth.refresh_reused"]
        # Nothing secret is kept for the retry: only hashes of refresh tokens are stored.
        stored = await db.read(
            lambda c: c.execute("SELECT refresh_hash, previous_hash FROM sessions").fetchone()
        )
        values = tuple(stored)  # a row's values (``in`` on a PostgreSQL row tests its keys)
        assert first.refresh_token not in values and login.refresh_token not in values

    _with_service(open_engine, scenario)


def test_a_token_two_rotations_old_is_never_a_retry(open_engine: OpenEngine) -> None:
    async def scenario(service: AuthService, clock: WallClock, db: Engine) -> None:
        login = await service.login("engineer", ENGINEER_PASSWORD, "10.0.0.1")
        first = await service.refresh(login.refresh_token, "10.0.0.1")
        second: TokenPair = await service.refresh(first.refresh_token, "10.0.0.1")
        with pytest.raises(Unauthorized):  # within a second, but not the one just rotated
            await service.refresh(login.refresh_token, "10.0.0.1")
        with pytest.raises(Unauthorized):
            await service.refresh(second.refresh_token, "10.0.0.1")

    _with_service(open_engine, scenario)


@pytest.mark.socket
def test_refreshes_of_one_token_at_once_all_get_the_same_new_pair(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    request = ("/api/v1/auth/refresh", {"refresh_token": tokens["refresh_token"]}, {})
    responses = fire(server, [request] * 5)
    assert [r.status_code for r in responses] == [200] * 5
    pairs = [r.json() for r in responses]
    assert all(p == pairs[0] for p in pairs)
    new = pairs[0]
    assert new["refresh_token"] != tokens["refresh_token"]
    assert server.http.get("/api/v1/auth/me", headers=auth(new["access_token"])).status_code == 200
    # The new refresh token works (once), the session lives on.
    r = server.http.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert r.status_code == 200
    assert server.query("SELECT count(*) FROM sessions WHERE revoked_at IS NULL") == [(1,)]


def test_a_session_from_before_the_cap_that_is_already_too_old_cannot_be_refreshed(
    open_engine: OpenEngine,
) -> None:
    async def scenario(service: AuthService, clock: WallClock, db: Engine) -> None:
        pair = await service.login("engineer", ENGINEER_PASSWORD, "10.0.0.1")
        # As an earlier release left it: opened 40 days ago, kept alive by refreshing.
        await db.write(
            lambda c: c.execute(
                "UPDATE sessions SET created_at = ?", ((T0 - 40 * DAY).isoformat(),)
            )
        )
        with pytest.raises(Unauthorized):
            await service.refresh(pair.refresh_token, "10.0.0.1")
        stored = await db.read(
            lambda c: c.execute("SELECT refresh_hash, expires_at FROM sessions").fetchone()
        )
        assert stored[1] == (T0 + 7 * DAY).isoformat(timespec="microseconds")  # unchanged

    _with_service(open_engine, scenario)
