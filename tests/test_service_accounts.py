"""Service accounts and OAuth 2.0 client credentials (#21 item 8; RFC 6749 4.4, 5.1, 5.2).

In process over the ASGI transport with a real SQLite file (cheap argon2 as everywhere in
the tests); the stream revocation over a real socket (``running``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import httpx
import pytest
from websockets.sync.client import connect

from app.cli import main as cli_main
from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    auth,
    in_process,
    make_config,
    running,
    wait_until,
)

pytestmark = pytest.mark.fast

TOKEN = "/api/v1/auth/token"
ACCOUNTS = "/api/v1/service-accounts"
FORM = {"content-type": "application/x-www-form-urlencoded"}


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with in_process(make_config(tmp_path, login_max_failures=3)) as server:
        yield server


def create(srv: Server, client_id: str, role: str = "engineer", **extra: Any) -> dict[str, Any]:
    r = srv.http.post(
        ACCOUNTS,
        headers=auth(srv.admin_token()),
        json={"client_id": client_id, "role": role, **extra},
    )
    assert r.status_code == 201, r.text
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["location"] == f"{ACCOUNTS}/{r.json()['account']['account_id']}"
    return dict(r.json())


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


def grant(srv: Server, client_id: str, secret: str, how: str = "basic") -> httpx.Response:
    if how == "basic":
        return srv.http.post(
            TOKEN,
            content="grant_type=client_credentials",
            headers={**FORM, **basic(client_id, secret)},
        )
    return srv.http.post(
        TOKEN,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
    )


def oauth_error(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == code, body
    assert r.headers["cache-control"] == "no-store"
    return str(body["error_description"])


def test_an_admin_creates_an_account_whose_secret_is_shown_once_and_stored_hashed(
    srv: Server,
) -> None:
    made = create(srv, "hil-rig-1")
    account, secret = made["account"], made["client_secret"]
    assert account == {
        "account_id": account["account_id"],
        "client_id": "hil-rig-1",
        "role": "engineer",
        "disabled": False,
        "certificate_name": None,
    }
    assert len(secret) >= 40
    admin = auth(srv.admin_token())
    listed = srv.http.get(ACCOUNTS, headers=admin).json()["items"]
    assert listed == [account]
    one = srv.http.get(f"{ACCOUNTS}/{account['account_id']}", headers=admin)
    assert one.json() == account and secret not in one.text
    # Stored as an argon2 hash, never in clear; not among the people.
    (stored,) = srv.query("SELECT password_hash FROM users WHERE username = 'hil-rig-1'")
    assert stored[0].startswith("$argon2id$") and secret not in stored[0]
    people = srv.http.get("/api/v1/users", headers=admin).json()["items"]
    assert "hil-rig-1" not in {u["username"] for u in people}
    # The users API does not reach it.
    r = srv.http.patch(
        f"/api/v1/users/{account['account_id']}", headers=admin, json={"disabled": True}
    )
    assert r.status_code == 404 and "does not exist" in r.json()["message"]
    # A taken or look-alike client id, a bad one, an engineer: refused.
    r = srv.http.post(ACCOUNTS, headers=admin, json={"client_id": "HIL-rig-1", "role": "admin"})
    assert r.status_code == 409 and "taken" in r.json()["message"]
    r = srv.http.post(ACCOUNTS, headers=admin, json={"client_id": "a b", "role": "admin"})
    assert r.status_code == 400 and "body.client_id" in r.json()["message"]
    r = srv.http.post(
        ACCOUNTS, headers=auth(srv.token()), json={"client_id": "rig-2", "role": "admin"}
    )
    assert r.status_code == 403
    # A new secret: the old one stops working.
    assert grant(srv, "hil-rig-1", secret).status_code == 200
    rotated = srv.http.post(f"{ACCOUNTS}/{account['account_id']}/secret", headers=admin)
    assert rotated.status_code == 200 and rotated.json()["client_secret"] != secret
    oauth_error(grant(srv, "hil-rig-1", secret), 401, "invalid_client")
    assert grant(srv, "hil-rig-1", rotated.json()["client_secret"]).status_code == 200


@pytest.mark.parametrize("how", ["basic", "body"])
def test_client_credentials_give_a_bearer_token_that_acts_with_the_role(
    srv: Server, how: str
) -> None:
    engineer = create(srv, "tester", "engineer")
    admin = create(srv, "fleet-bot", "admin")
    r = grant(srv, "tester", engineer["client_secret"], how)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store" and r.headers["pragma"] == "no-cache"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}  # no refresh token (4.4.3)
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == srv.services.config.access_token_ttl_s
    token = body["access_token"]
    me = srv.http.get("/api/v1/auth/me", headers=auth(token)).json()
    assert me["username"] == "tester" and me["role"] == "engineer"
    vin = srv.vehicle(token)["vin"]
    r = srv.http.get(f"/sovd/vehicles/{vin}/v1/components/engine/data", headers=auth(token))
    assert r.status_code == 200, r.text
    assert srv.http.get("/api/v1/users", headers=auth(token)).status_code == 403
    bot = grant(srv, "fleet-bot", admin["client_secret"], how).json()["access_token"]
    assert srv.http.get("/api/v1/users", headers=auth(bot)).status_code == 200
    # Its own secret is not changed with a token (an admin replaces it).
    r = srv.http.post(
        "/api/v1/auth/password",
        headers=auth(token),
        json={"current_password": engineer["client_secret"], "new_password": "x" * 40},
    )
    assert r.status_code == 403 and "admin" in r.json()["message"]
    assert grant(srv, "tester", engineer["client_secret"], how).status_code == 200
    # The audit says how the session was opened.
    rows = srv.query(
        "SELECT details FROM audit_log WHERE action = 'auth.login' AND username = 'tester'"
    )
    assert [json.loads(d[0])["method"] for d in rows] == ["client_credentials"] * 2


def test_errors_are_rfc_6749_section_5_2s(srv: Server) -> None:
    made = create(srv, "rig")
    secret = made["client_secret"]

    def post(content: str, **headers: str) -> httpx.Response:
        return srv.http.post(TOKEN, content=content, headers={**FORM, **headers})

    oauth_error(post(""), 400, "invalid_request")
    oauth_error(post("client_id=rig"), 400, "invalid_request")
    assert "password" in oauth_error(
        post("grant_type=password&username=a&password=b"), 400, "unsupported_grant_type"
    )
    oauth_error(post("grant_type=refresh_token&refresh_token=x"), 400, "unsupported_grant_type")
    oauth_error(
        post("grant_type=client_credentials&grant_type=client_credentials"), 400, "invalid_request"
    )
    oauth_error(
        post(f"grant_type=client_credentials&scope=x&client_id=rig&client_secret={secret}"),
        400,
        "invalid_scope",
    )
    both = post(
        f"grant_type=client_credentials&client_id=rig&client_secret={secret}",
        **basic("rig", secret),
    )
    assert "not both" in oauth_error(both, 400, "invalid_request")
    # A NUL in the credentials (a form's %00, or inside Basic) never reaches the store
    # (PostgreSQL's text cannot hold one: that would be a 503, not the client's error).
    for r in (
        post(f"grant_type=client_credentials&client_id=r%00ig&client_secret={secret}"),
        post("grant_type=client_credentials", **basic("rig", "a\x00b")),
    ):
        assert "NUL" in oauth_error(r, 400, "invalid_request")
    for r in (
        post("grant_type=client_credentials"),  # no credentials at all
        post("grant_type=client_credentials", **basic("rig", "wrong")),
        post("grant_type=client_credentials", **basic("nobody", secret)),
        post("grant_type=client_credentials", authorization="Basic !!!"),
        post("grant_type=client_credentials&client_id=rig&client_secret=wrong"),
    ):
        oauth_error(r, 401, "invalid_client")
        assert r.headers["www-authenticate"].startswith('Basic realm="sovd"')
    # Not a form: the service's own 400 names the media type.
    r = srv.http.post(TOKEN, json={"grant_type": "client_credentials"})
    assert r.status_code == 400 and "x-www-form-urlencoded" in r.json()["message"]


def test_people_and_service_accounts_keep_to_their_own_way_in(srv: Server) -> None:
    made = create(srv, "rig")
    r = srv.http.post(
        "/api/v1/auth/login", json={"username": "rig", "password": made["client_secret"]}
    )
    assert r.status_code == 401
    oauth_error(grant(srv, "engineer", "engineer-password-1"), 401, "invalid_client")


def test_failed_secrets_are_throttled_as_logins(srv: Server) -> None:
    made = create(srv, "rig")
    for _ in range(3):  # login_max_failures
        oauth_error(grant(srv, "rig", "wrong"), 401, "invalid_client")
    r = grant(srv, "rig", made["client_secret"])
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    failed = srv.query(
        "SELECT details FROM audit_log WHERE action = 'auth.login_failed' AND username = 'rig'"
    )
    assert [json.loads(d[0])["method"] for d in failed] == ["client_credentials"] * 3


def test_disabling_or_deleting_an_account_ends_its_tokens(srv: Server) -> None:
    made = create(srv, "rig")
    account_id = made["account"]["account_id"]
    admin = auth(srv.admin_token())
    token = grant(srv, "rig", made["client_secret"]).json()["access_token"]
    assert srv.http.get("/api/v1/auth/me", headers=auth(token)).status_code == 200
    r = srv.http.patch(f"{ACCOUNTS}/{account_id}", headers=admin, json={"disabled": True})
    assert r.status_code == 200 and r.json()["disabled"] is True
    assert srv.http.get("/api/v1/auth/me", headers=auth(token)).status_code == 401
    oauth_error(grant(srv, "rig", made["client_secret"]), 401, "invalid_client")
    srv.http.patch(f"{ACCOUNTS}/{account_id}", headers=admin, json={"disabled": False})
    token = grant(srv, "rig", made["client_secret"]).json()["access_token"]
    assert srv.http.delete(f"{ACCOUNTS}/{account_id}", headers=admin).status_code == 204
    assert srv.http.get("/api/v1/auth/me", headers=auth(token)).status_code == 401
    assert srv.http.get(f"{ACCOUNTS}/{account_id}", headers=admin).status_code == 404


def test_cda_authorize_answers_the_same_token(srv: Server) -> None:
    made = create(srv, "sovd-tester")
    vin = srv.vehicle(srv.token())["vin"]
    url = f"/sovd/vehicles/{vin}/v1/authorize"
    body = {"client_id": "sovd-tester", "client_secret": made["client_secret"]}
    r = srv.http.post(url, json=body)
    assert r.status_code == 200, r.text
    assert set(r.json()) == {"access_token", "token_type", "expires_in"}
    assert r.json()["token_type"] == "Bearer"
    token = r.json()["access_token"]
    assert srv.http.get(f"/sovd/vehicles/{vin}/v1/components", headers=auth(token)).is_success
    r = srv.http.post(url, json={**body, "client_secret": "wrong"})
    assert r.status_code == 401 and r.json()["vendor_code"] == "unauthorized"
    r = srv.http.post(url, json={"client_id": "sovd-tester"})
    assert r.status_code == 400 and "client_secret" in r.json()["message"]


@pytest.mark.socket
def test_disabling_an_account_closes_its_streams(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        made = create(srv, "rig")
        token = grant(srv, "rig", made["client_secret"]).json()["access_token"]
        vehicle = srv.http.get(
            "/api/v1/vehicles", headers=auth(token), params={"status": "connected"}
        ).json()["items"][0]
        cid = str(srv.submit(token, vehicle["vehicle_id"])["command_id"])
        wait_until(lambda: cid in fake.started, "the command to start")
        with connect(f"{srv.ws_url}/ws/responses/{cid}?token={token}") as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            r = srv.http.patch(
                f"{ACCOUNTS}/{made['account']['account_id']}",
                headers=auth(srv.admin_token()),
                json={"disabled": True},
            )
            assert r.status_code == 200
            with pytest.raises(Exception, match="1008"):
                ws.recv(timeout=3.0)
            assert ws.close_code == 1008


def test_the_cli_creates_lists_and_disables_accounts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = make_config(tmp_path)
    with in_process(config) as srv:  # creates the database
        srv.admin_token()
    env = {
        "SOVD_DB_PATH": str(config.db_path),
        "SOVD_PASSWORD_HASH_PROFILE": "fast",
        "SOVD_JWT_SECRET": config.jwt_secret or "",
    }

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli_main(list(argv), env, lambda _: 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = run(
        "service-accounts", "create", "bench-rig", "--role", "admin", "--certificate-name", "rig-1"
    )
    assert code == 0, out
    secret = next(line.split(": ", 1)[1] for line in out.splitlines() if "client_secret" in line)
    code, out, _ = run("service-accounts", "list")
    assert code == 0 and "bench-rig" in out and "admin" in out and "rig-1" in out
    assert secret not in out
    code, _, err = run("service-accounts", "create", "bench-rig")
    assert code == 1 and "bench-rig" in err
    with in_process(config) as srv:
        ok = grant(srv, "bench-rig", secret)
        assert ok.status_code == 200, ok.text
    code, out, _ = run("service-accounts", "disable", "bench-rig")
    assert code == 0 and "disabled" in out
    with in_process(config) as srv:
        oauth_error(grant(srv, "bench-rig", secret), 401, "invalid_client")


def test_migration_7_keeps_every_user_a_person(tmp_path: Path) -> None:
    """A database at version 6 moves to 7: its users are people, nothing else changes;
    a certificate name is unique and a kind is one of the two."""
    import sqlite3

    from app.store.migrations import MIGRATIONS, migrate

    conn = sqlite3.connect(tmp_path / "old.db", isolation_level=None)
    for number, script in enumerate(MIGRATIONS[:6], start=1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
    conn.execute(
        "INSERT INTO users (user_id, username, username_key, password_hash, role, disabled,"
        " created_at) VALUES ('u1', 'alice', 'alice', 'h', 'engineer', 0, '2024-01-01')"
    )
    assert migrate(conn) == len(MIGRATIONS)
    assert conn.execute("SELECT user_id, kind, certificate_name FROM users").fetchall() == [
        ("u1", "person", None)
    ]
    insert = (
        "INSERT INTO users (user_id, username, username_key, password_hash, role, disabled,"
        " created_at, kind, certificate_name) VALUES (?, ?, ?, 'h', 'engineer', 0, 'now', ?, ?)"
    )
    conn.execute(insert, ("s1", "rig", "rig", "service", "rig.lab"))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, ("s2", "rig2", "rig2", "service", "rig.lab"))
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute(insert, ("s3", "rig3", "rig3", "robot", None))
    conn.close()
