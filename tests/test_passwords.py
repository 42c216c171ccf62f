"""Changing and resetting passwords (issue #14, Accounts).

``POST /api/v1/auth/password``: the user's own, with the current one; their other
sessions end, this one stays. ``PATCH /api/v1/users/{id}`` with ``password``: an admin
sets another user's; every session of theirs ends and their open streams close with
1008 "token revoked". The rules are stated in the 400, and every change is audited.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.harness import (
    ADMIN_PASSWORD,
    DEADLINE_S,
    ENGINEER_PASSWORD,
    ScriptedConnector,
    Server,
    auth,
    in_process,
    make_config,
    running,
    wait_until,
)

pytestmark = pytest.mark.fast

CHANGE = "/api/v1/auth/password"


def _user_id(srv: Server, username: str) -> str:
    users = srv.http.get("/api/v1/users", headers=auth(srv.admin_token())).json()["items"]
    return str(next(u["user_id"] for u in users if u["username"] == username))


def _me(srv: Server, token: str) -> int:
    return srv.http.get("/api/v1/auth/me", headers=auth(token)).status_code


def test_own_change_needs_the_current_password_and_ends_only_the_other_sessions(
    server: Server,
) -> None:
    this, other = server.login("engineer", ENGINEER_PASSWORD), server.token()
    r = server.http.post(
        CHANGE,
        headers=auth(this["access_token"]),
        json={"current_password": ENGINEER_PASSWORD, "new_password": "brand-new-secret"},
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"sessions_ended": 1}
    assert _me(server, this["access_token"]) == 200  # this session goes on
    assert _me(server, other) == 401  # the other one is over
    r = server.http.post("/api/v1/auth/refresh", json={"refresh_token": this["refresh_token"]})
    assert r.status_code == 200  # this session's refresh token still works
    login = {"username": "engineer", "password": ENGINEER_PASSWORD}
    assert server.http.post("/api/v1/auth/login", json=login).status_code == 401
    server.token("engineer", "brand-new-secret")
    actions = server.query(
        "SELECT username, entity_id FROM audit_log WHERE action = 'auth.password_change'"
    )
    assert actions == [("engineer", _user_id(server, "engineer"))]


def test_a_wrong_current_password_changes_nothing(server: Server) -> None:
    token = server.token()
    r = server.http.post(
        CHANGE,
        headers=auth(token),
        json={"current_password": "not-it-at-all", "new_password": "brand-new-secret"},
    )
    assert r.status_code == 403
    assert r.json()["message"] == "body.current_password: wrong password"
    # Audited like a failed login (found in review: such guesses left no row).
    rows = server.query(
        "SELECT username, details FROM audit_log WHERE action = 'auth.login_failed'"
    )
    assert rows == [("engineer", '{"via":"password change"}')]
    server.token("engineer", ENGINEER_PASSWORD)  # unchanged


@pytest.mark.parametrize(
    ("new", "said"),
    [
        ("short", "5 characters; a password is 8 to 256 characters"),
        ("x" * 257, "257 characters; a password is 8 to 256 characters"),
        ("ENGINEER", "equals the username; a password is 8 to 256 characters"),
    ],
)
def test_the_rules_are_stated_in_the_error(server: Server, new: str, said: str) -> None:
    r = server.http.post(
        CHANGE,
        headers=auth(server.token()),
        json={"current_password": ENGINEER_PASSWORD, "new_password": new},
    )
    assert r.status_code == 400
    assert r.json()["message"].startswith(f"body.new_password: {said}")
    assert "differs from the username" in r.json()["message"]
    admin = auth(server.admin_token())
    r = server.http.patch(
        f"/api/v1/users/{_user_id(server, 'engineer')}", headers=admin, json={"password": new}
    )
    assert r.status_code == 400
    assert r.json()["message"].startswith(f"body.password: {said}")


def test_creating_a_user_whose_password_is_the_username_is_refused(server: Server) -> None:
    r = server.http.post(
        "/api/v1/users",
        headers=auth(server.admin_token()),
        json={"username": "Operator1", "password": "operator1", "role": "engineer"},
    )
    assert r.status_code == 400
    assert "equals the username" in r.json()["message"]


def test_admin_reset_ends_every_session_of_the_user_and_is_audited(server: Server) -> None:
    old = server.token()
    admin = server.admin_token()
    uid = _user_id(server, "engineer")
    r = server.http.patch(
        f"/api/v1/users/{uid}", headers=auth(admin), json={"password": "set-by-admin-1"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["username"] == "engineer"
    assert _me(server, old) == 401
    server.token("engineer", "set-by-admin-1")
    rows = server.query(
        "SELECT username, entity_id FROM audit_log WHERE action = 'user.password_reset'"
    )
    assert rows == [("admin", uid)]


def test_admin_reset_of_their_own_password_points_to_the_own_route(server: Server) -> None:
    admin = server.admin_token()
    r = server.http.patch(
        f"/api/v1/users/{_user_id(server, 'admin')}",
        headers=auth(admin),
        json={"password": "another-one-1"},
    )
    assert r.status_code == 409
    assert "POST /api/v1/auth/password" in r.json()["message"]
    server.token("admin", ADMIN_PASSWORD)


def test_a_patch_with_nothing_to_change_names_the_fields(server: Server) -> None:
    r = server.http.patch(
        f"/api/v1/users/{_user_id(server, 'engineer')}",
        headers=auth(server.admin_token()),
        json={},
    )
    assert r.status_code == 400
    assert r.json()["message"] == "body: give disabled, password or both"


@pytest.mark.socket
def test_admin_reset_closes_the_users_open_streams(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        token = srv.token()
        cid = str(srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
        wait_until(lambda: cid in fake.started, "the command to start")
        url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
        with connect(url, open_timeout=DEADLINE_S) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            r = srv.http.patch(
                f"/api/v1/users/{_user_id(srv, 'engineer')}",
                headers=auth(srv.admin_token()),
                json={"password": "set-by-admin-1"},
            )
            assert r.status_code == 200
            deadline = time.monotonic() + 3
            with pytest.raises(ConnectionClosed):
                while time.monotonic() < deadline:
                    ws.recv(timeout=3)
            assert ws.close_code == 1008
            assert ws.close_reason == "token revoked"
        fake.feed(cid, {"x": 1}, final=True)  # the command itself runs on


def test_guessing_the_current_password_is_throttled_like_a_login(tmp_path: Path) -> None:
    with in_process(make_config(tmp_path, login_max_failures=2)) as srv:
        token = srv.token()
        wrong = {"current_password": "a-wrong-guess", "new_password": "brand-new-secret"}
        codes = [
            srv.http.post(CHANGE, headers=auth(token), json=wrong).status_code for _ in range(3)
        ]
        assert codes == [403, 403, 429]
        right = {"current_password": ENGINEER_PASSWORD, "new_password": "brand-new-secret"}
        r = srv.http.post(CHANGE, headers=auth(token), json=right)
        assert r.status_code == 429  # the username is held off, the right answer included
        assert "Retry-After" in r.headers
