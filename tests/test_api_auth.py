import hashlib
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from tests.support.harness import ADMIN_PASSWORD, ENGINEER_PASSWORD, Server, auth
from tests.support.schemas import fields

pytestmark = pytest.mark.fast


def test_login_returns_a_bearer_token_pair(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    assert set(tokens) == fields(server, "TokenPair")
    assert tokens["token_type"] == "bearer"
    assert tokens["expires_in"] == server.config.access_token_ttl_s
    me = server.http.get("/api/v1/auth/me", headers=auth(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["username"] == "engineer" and me.json()["role"] == "engineer"
    assert set(me.json()) == fields(server, "Me")


def test_wrong_user_and_wrong_password_get_the_same_answer(server: Server) -> None:
    wrong_pw = server.http.post(
        "/api/v1/auth/login", json={"username": "engineer", "password": "nope-nope"}
    )
    no_user = server.http.post(
        "/api/v1/auth/login", json={"username": "nobody", "password": "nope-nope"}
    )
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.json()["error_code"] == no_user.json()["error_code"] == "unauthorized"
    assert wrong_pw.json()["message"] == no_user.json()["message"]


def test_refresh_rotates_and_a_used_refresh_token_is_rejected(server: Server) -> None:
    first = server.login("engineer", ENGINEER_PASSWORD)
    r = server.http.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (
        server.http.get("/api/v1/auth/me", headers=auth(second["access_token"])).status_code == 200
    )
    r = server.http.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    third = r.json()
    # The first token is two rotations old: not a retry (see test_refresh_sessions.py).
    reused = server.http.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401 and reused.json()["error_code"] == "unauthorized"
    # Reuse means a copy is out there: the whole session is ended.
    after = server.http.post("/api/v1/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert after.status_code == 401
    assert (
        server.http.get("/api/v1/auth/me", headers=auth(third["access_token"])).status_code == 401
    )


def test_refresh_tokens_are_stored_only_as_hashes(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    stored = [row[0] for row in server.query("SELECT refresh_hash FROM sessions")]
    assert tokens["refresh_token"] not in stored
    assert hashlib.sha256(tokens["refresh_token"].encode()).hexdigest() in stored


def test_an_access_token_cannot_be_used_to_refresh(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    r = server.http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert r.status_code == 401


def test_a_refresh_token_is_not_an_access_token(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    assert (
        server.http.get("/api/v1/auth/me", headers=auth(tokens["refresh_token"])).status_code == 401
    )


def test_logout_revokes_the_sessions_access_and_refresh_tokens(server: Server) -> None:
    tokens = server.login("engineer", ENGINEER_PASSWORD)
    other = server.login("engineer", ENGINEER_PASSWORD)
    r = server.http.post("/api/v1/auth/logout", headers=auth(tokens["access_token"]))
    assert r.status_code == 204 and r.content == b""
    assert (
        server.http.get("/api/v1/auth/me", headers=auth(tokens["access_token"])).status_code == 401
    )
    assert (
        server.http.post(
            "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        ).status_code
        == 401
    )
    # Another session of the same user is untouched.
    assert (
        server.http.get("/api/v1/auth/me", headers=auth(other["access_token"])).status_code == 200
    )


def test_tokens_signed_otherwise_or_expired_are_rejected(server: Server) -> None:
    good = jwt.decode(server.token(), options={"verify_signature": False})
    now = datetime.now(UTC)
    secret = server.config.jwt_secret
    assert secret is not None
    forged = [
        jwt.encode(good, "another-secret-that-is-long-enough-32b", algorithm="HS256"),
        jwt.encode({**good, "exp": now - timedelta(seconds=5)}, secret, algorithm="HS256"),
        jwt.encode({k: v for k, v in good.items() if k != "sid"}, secret, algorithm="HS256"),
        jwt.encode({**good, "sid": "not-a-session"}, secret, algorithm="HS256"),
        jwt.encode(good, secret, algorithm="HS512"),
        jwt.encode(good, None, algorithm="none"),
        jwt.encode({**good, "nbf": now + timedelta(minutes=5)}, secret, algorithm="HS256"),
        jwt.encode({**good, "iat": now + timedelta(minutes=5)}, secret, algorithm="HS256"),
        jwt.encode({**good, "typ": "refresh"}, secret, algorithm="HS256"),
        jwt.encode({k: v for k, v in good.items() if k != "exp"}, secret, algorithm="HS256"),
        # Times are whole numbers, as issued; anything else is refused.
        jwt.encode({**good, "exp": str(good["exp"])}, secret, algorithm="HS256"),
        jwt.encode({**good, "exp": good["exp"] + 0.5}, secret, algorithm="HS256"),
        jwt.encode({**good, "iat": True}, secret, algorithm="HS256"),
        jwt.encode({**good, "nbf": "0"}, secret, algorithm="HS256"),
        "not.a.token",
    ]
    for token in forged:
        r = server.http.get("/api/v1/auth/me", headers=auth(token))
        assert r.status_code == 401, token
        assert r.json()["error_code"] == "unauthorized"
    assert server.http.get("/api/v1/auth/me").status_code == 401
    assert (
        server.http.get("/api/v1/auth/me", headers={"Authorization": "Basic abc"}).status_code
        == 401
    )


def test_admin_creates_and_lists_users(server: Server) -> None:
    admin = server.admin_token()
    r = server.http.post(
        "/api/v1/users",
        headers=auth(admin),
        json={"username": "alice", "password": "alice-password", "role": "engineer"},
    )
    assert r.status_code == 201
    body = r.json()
    assert set(body) == fields(server, "User")
    assert (body["username"], body["role"], body["disabled"]) == ("alice", "engineer", False)
    listed = server.http.get("/api/v1/users", headers=auth(admin)).json()["items"]
    assert sorted(u["username"] for u in listed) == ["admin", "alice", "engineer"]
    assert server.login("alice", "alice-password")["token_type"] == "bearer"
    stored = server.query("SELECT password_hash FROM users WHERE username = 'alice'")[0][0]
    assert stored.startswith("$argon2id$") and "alice-password" not in stored


def test_duplicate_username_is_a_conflict(server: Server) -> None:
    r = server.http.post(
        "/api/v1/users",
        headers=auth(server.admin_token()),
        json={"username": "engineer", "password": "whatever-1", "role": "admin"},
    )
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"


def test_engineers_cannot_manage_users(server: Server) -> None:
    token = server.token()
    r = server.http.get("/api/v1/users", headers=auth(token))
    assert r.status_code == 403 and r.json()["error_code"] == "insufficient-access-rights"
    r = server.http.post(
        "/api/v1/users",
        headers=auth(token),
        json={"username": "mallory", "password": "whatever-1", "role": "admin"},
    )
    assert r.status_code == 403
    assert server.query("SELECT count(*) FROM users WHERE username = 'mallory'") == [(0,)]


def test_admin_password_from_config_works(server: Server) -> None:
    assert server.login("admin", ADMIN_PASSWORD)["token_type"] == "bearer"


def test_a_disabled_users_tokens_stop_working_at_once(server: Server) -> None:
    admin = server.admin_token()
    bob = server.create_engineer("bob")
    assert server.http.get("/api/v1/auth/me", headers=auth(bob)).status_code == 200
    bob_id = server.http.get("/api/v1/auth/me", headers=auth(bob)).json()["user_id"]
    r = server.http.patch(f"/api/v1/users/{bob_id}", headers=auth(admin), json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert server.http.get("/api/v1/auth/me", headers=auth(bob)).status_code == 401
    r = server.http.post(
        "/api/v1/auth/login", json={"username": "bob", "password": "other-password-1"}
    )
    assert r.status_code == 401
    server.http.patch(f"/api/v1/users/{bob_id}", headers=auth(admin), json={"disabled": False})
    assert server.login("bob", "other-password-1")["token_type"] == "bearer"


def test_a_deleted_users_tokens_stop_working_and_history_is_kept(server: Server) -> None:
    admin = server.admin_token()
    bob = server.create_engineer("bob")
    bob_id = server.http.get("/api/v1/auth/me", headers=auth(bob)).json()["user_id"]
    r = server.http.delete(f"/api/v1/users/{bob_id}", headers=auth(admin))
    assert r.status_code == 204
    assert server.http.get("/api/v1/auth/me", headers=auth(bob)).status_code == 401
    assert server.http.delete(f"/api/v1/users/{bob_id}", headers=auth(admin)).status_code == 404
    # A user with command history cannot be deleted (the history is kept).
    engineer = server.token()
    server.submit(engineer, server.vehicle(engineer)["vehicle_id"])
    me = server.http.get("/api/v1/auth/me", headers=auth(engineer)).json()["user_id"]
    r = server.http.delete(f"/api/v1/users/{me}", headers=auth(admin))
    assert r.status_code == 409 and r.json()["error_code"] == "conflict"
    admin_id = server.http.get("/api/v1/auth/me", headers=auth(admin)).json()["user_id"]
    assert server.http.delete(f"/api/v1/users/{admin_id}", headers=auth(admin)).status_code == 409
    assert server.http.delete(f"/api/v1/users/{me}", headers=auth(engineer)).status_code == 403
