"""Issue #8 item 11: usernames are unique case-insensitively and after NFKC normalisation.

Also what migration 3 does with a database that already holds names that collide: the
oldest keeps the name; a later one keeps its row and history but is disabled.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from app.store.migrations import MIGRATIONS
from app.usernames import username_key
from tests.support.harness import ADMIN_PASSWORD, Server, auth, in_process, make_config

pytestmark = pytest.mark.fast

FAST = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)


def test_admin_cannot_be_created_next_to_admin_in_another_case_or_form(server: Server) -> None:
    admin = server.admin_token()
    for name in ("Admin", "ADMIN", "Engineer", "eNGINEER"):
        r = server.http.post(
            "/api/v1/users",
            headers=auth(admin),
            json={"username": name, "password": "whatever-pass-1", "role": "admin"},
        )
        assert r.status_code == 409, (name, r.text)
        assert r.json()["error_code"] == "conflict"
    assert server.query("SELECT count(*) FROM users") == [(2,)]
    # A new name in mixed case keeps its spelling, and owns every other spelling.
    r = server.http.post(
        "/api/v1/users",
        headers=auth(admin),
        json={"username": "Alice.M", "password": "alice-password", "role": "engineer"},
    )
    assert r.status_code == 201 and r.json()["username"] == "Alice.M"
    r = server.http.post(
        "/api/v1/users",
        headers=auth(admin),
        json={"username": "alice.m", "password": "alice-password", "role": "engineer"},
    )
    assert r.status_code == 409


def test_any_spelling_that_normalises_to_the_name_logs_in_as_that_user(server: Server) -> None:
    # Full-width letters (U+FF21...) are NFKC-equivalent to ASCII ones.
    for typed in ("admin", "Admin", "ADMIN", "\uff41\uff44\uff4d\uff49\uff4e"):
        tokens = server.login(typed, ADMIN_PASSWORD)
        me = server.http.get("/api/v1/auth/me", headers=auth(tokens["access_token"])).json()
        assert me["username"] == "admin", typed


def test_the_username_key() -> None:
    assert username_key("Admin") == username_key("\uff21\uff24\uff2d\uff29\uff2e") == "admin"
    assert username_key("Stra\u00dfe") == username_key("STRASSE")  # case folding, not lower()
    assert username_key("\u212aelvin") == "kelvin"  # KELVIN SIGN


def _version_2_database(path: Path) -> dict[str, str]:
    """A database as the previous release left it, holding ``admin`` and, created later,
    ``Admin`` with a session and a command of its own. Returns the user ids."""
    path.parent.mkdir(parents=True)
    ids = {name: str(uuid.uuid4()) for name in ("admin", "Admin", "engineer")}
    with sqlite3.connect(path) as conn:
        for script in MIGRATIONS[:2]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version=2")
        users = [
            ("admin", ADMIN_PASSWORD, "admin", "2024-01-01T00:00:00.000000+00:00"),
            ("Admin", "other-password-1", "admin", "2024-02-01T00:00:00.000000+00:00"),
            ("engineer", "engineer-password-1", "engineer", "2024-01-01T00:00:01.000000+00:00"),
        ]
        for name, password, role, at in users:
            conn.execute(
                "INSERT INTO users (user_id, username, password_hash, role, disabled,"
                " created_at) VALUES (?, ?, ?, ?, 0, ?)",
                (ids[name], name, FAST.hash(password), role, at),
            )
        conn.execute(
            "INSERT INTO sessions (session_id, user_id, refresh_hash, created_at, expires_at)"
            " VALUES ('s-2', ?, 'h', '2024-02-01T00:00:00.000000+00:00',"
            " '2999-01-01T00:00:00.000000+00:00')",
            (ids["Admin"],),
        )
        conn.execute(
            "INSERT INTO vehicles VALUES ('v1', 'WVWZZZ1KZAW000001', 'VW', 'Golf', 2020,"
            " 'connected', 'healthy', NULL, '2024-01-01T00:00:00.000000+00:00')"
        )
        conn.execute(
            "INSERT INTO commands (command_id, vehicle_id, user_id, command_name,"
            " command_params, status, submitted_at, completed_at) VALUES ('c1', 'v1',"
            " ?, 'ReadDTC', '{}', 'completed', '2024-02-02T00:00:00.000000+00:00',"
            " '2024-02-02T00:00:01.000000+00:00')",
            (ids["Admin"],),
        )
    return ids


def test_colliding_names_in_an_existing_database_are_kept_and_the_later_disabled(
    tmp_path: Path,
) -> None:
    config = make_config(tmp_path, demo_data=False)
    ids = _version_2_database(config.db_path)
    with in_process(config) as srv:
        rows = srv.query("SELECT user_id, username, username_key, disabled FROM users")
        assert sorted(rows) == sorted(
            [
                (ids["admin"], "admin", "admin", 0),
                (ids["Admin"], "Admin", f"admin#{ids['Admin']}", 1),
                (ids["engineer"], "engineer", "engineer", 0),
            ]
        )
        # Nothing was lost: the later user's command and session are still there.
        assert srv.query("SELECT user_id FROM commands") == [(ids["Admin"],)]
        assert srv.query("SELECT session_id FROM sessions") == [("s-2",)]
        audit = srv.query(
            "SELECT username, details FROM audit_log WHERE action = 'user.update'"
            " AND entity_id = ?",
            ids["Admin"],
        )
        assert len(audit) == 1 and audit[0][0] == "system"
        assert "collides with the older 'admin'" in audit[0][1]
        # ``admin`` (and any spelling of it) is the older user.
        token = srv.login("Admin", ADMIN_PASSWORD)["access_token"]
        me = srv.http.get("/api/v1/auth/me", headers=auth(token)).json()
        assert me["user_id"] == ids["admin"]
        r = srv.http.post(
            "/api/v1/auth/login", json={"username": "Admin", "password": "other-password-1"}
        )
        assert r.status_code == 401
        # Re-enabled by an admin, the later user logs in under its documented key.
        r = srv.http.patch(
            f"/api/v1/users/{ids['Admin']}", headers=auth(token), json={"disabled": False}
        )
        assert r.status_code == 200
        assert srv.login(f"admin#{ids['Admin']}", "other-password-1")["token_type"] == "bearer"
