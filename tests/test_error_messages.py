"""Error messages an operator can act on (issue #14): 401s that say what is wrong with the
token, and the RFC 6750 challenge; an unknown audit action answered with the known ones.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import jwt
import pytest

from app.vocabulary import AuditAction
from tests.support.fake_clock import FakeClock
from tests.support.harness import Server, auth, in_process, make_config

pytestmark = pytest.mark.fast

ME = "/api/v1/auth/me"


def _challenge(r: httpx.Response) -> str:
    return str(r.headers["www-authenticate"])


def test_a_missing_token_says_so_and_challenges_without_an_error(server: Server) -> None:
    r = server.http.get(ME)
    assert r.status_code == 401
    assert r.json()["message"] == "no bearer token; send Authorization: Bearer <access_token>"
    assert _challenge(r) == 'Bearer realm="sovd"'


def test_a_forged_token_is_invalid_whatever_its_claims(server: Server) -> None:
    # Signed with another key, and expired: still only "invalid" (nothing a forger learns).
    forged = jwt.encode(
        {"sub": "x", "sid": "y", "typ": "access", "iat": 1, "exp": 2}, "k" * 32, "HS256"
    )
    for token in (forged, "not.a.jwt"):
        r = server.http.get(ME, headers=auth(token))
        assert r.status_code == 401
        assert r.json()["message"] == "invalid token"
        assert _challenge(r) == (
            'Bearer realm="sovd", error="invalid_token", error_description="invalid token"'
        )


def test_an_expired_token_says_expired_and_where_to_renew(tmp_path: Path) -> None:
    clock = FakeClock()
    with in_process(make_config(tmp_path, access_token_ttl_s=60), clock=clock) as srv:
        pair = srv.login("admin", "admin-password-1")
        clock.now += 61
        r = srv.http.get(ME, headers=auth(pair["access_token"]))
        assert r.status_code == 401
        message = "access token expired; get a new pair from /api/v1/auth/refresh"
        assert r.json()["message"] == message
        assert _challenge(r) == (
            f'Bearer realm="sovd", error="invalid_token", error_description="{message}"'
        )
        r = srv.http.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert r.status_code == 200


def test_a_logged_out_token_says_the_session_ended(server: Server) -> None:
    token = server.token()
    assert server.http.post("/api/v1/auth/logout", headers=auth(token)).status_code == 204
    r = server.http.get(ME, headers=auth(token))
    assert r.status_code == 401
    assert r.json()["message"].startswith("session ended")
    assert 'error="invalid_token"' in _challenge(r)


def test_a_failed_login_carries_a_challenge_too(server: Server) -> None:
    r = server.http.post("/api/v1/auth/login", json={"username": "admin", "password": "nope"})
    assert r.status_code == 401
    assert _challenge(r) == 'Bearer realm="sovd"'


def test_an_unknown_audit_action_is_answered_with_the_known_ones(server: Server) -> None:
    r = server.http.get(
        "/api/v1/audit", headers=auth(server.admin_token()), params={"action": "bogus"}
    )
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("query parameter action: 'bogus' is not an audit action (known: ")
    assert all(action.value in message for action in AuditAction)


@pytest.mark.parametrize("action", ["auth.login", "user.password_reset"])
def test_a_known_audit_action_filters(server: Server, action: str) -> None:
    r = server.http.get(
        "/api/v1/audit", headers=auth(server.admin_token()), params={"action": action}
    )
    assert r.status_code == 200
    assert all(item["action"] == action for item in r.json()["items"])
