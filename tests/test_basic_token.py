"""An access token in HTTP Basic (``oauth2:<access_token>``, GitLab's convention), for SOVD
clients that carry credentials only in a URL's userinfo (the Bruno CLI), and the
cross-site form guard that makes browser-held credentials harmless (docs/security.md).

In process over the ASGI transport with a real SQLite file; the WebSocket stream over a real
socket."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.api.deps import bearer_token
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

TOKEN = "/api/v1/auth/token"
ACCOUNTS = "/api/v1/service-accounts"
FORM = "application/x-www-form-urlencoded"
METRICS_TOKEN = "m" * 32


def basic(username: str, password: str) -> dict[str, str]:
    raw = f"{username}:{password}".encode()
    return {"authorization": "Basic " + base64.b64encode(raw).decode()}


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with in_process(make_config(tmp_path, metrics_token=METRICS_TOKEN)) as server:
        yield server


def account(srv: Server, client_id: str = "bruno") -> tuple[str, str]:
    """A service account's secret and an access token obtained with it."""
    r = srv.http.post(
        ACCOUNTS,
        headers=auth(srv.admin_token()),
        json={"client_id": client_id, "role": "engineer"},
    )
    assert r.status_code == 201, r.text
    secret = str(r.json()["client_secret"])
    r = srv.http.post(
        TOKEN,
        content="grant_type=client_credentials",
        headers={"content-type": FORM, **basic(client_id, secret)},
    )
    assert r.status_code == 200, r.text
    return secret, str(r.json()["access_token"])


def test_the_token_is_extracted_from_bearer_or_basic_oauth2_only() -> None:
    def extract(value: str) -> str | None:
        return bearer_token(Headers({"authorization": value}))

    assert extract("Bearer abc.def") == "abc.def"
    assert extract("bearer   abc.def ") == "abc.def"
    assert extract(basic("oauth2", "abc.def")["authorization"]) == "abc.def"
    assert extract("BASIC " + base64.b64encode(b"oauth2:a:b").decode()) == "a:b"
    # HTTP Basic that carries no token: refused as such (""), never read otherwise.
    assert extract(basic("OAuth2", "abc.def")["authorization"]) == ""
    assert extract(basic("admin", "abc.def")["authorization"]) == ""
    assert extract("Basic oauth2:abc.def") == ""  # not Base64
    assert extract("Basic " + base64.b64encode(b"oauth2").decode()) == ""  # no colon
    assert extract("Bearer") is None
    assert extract("Negotiate abc") is None
    assert bearer_token(Headers({})) is None


def test_basic_oauth2_token_works_where_bearer_does(srv: Server) -> None:
    _, token = account(srv)
    me = srv.http.get("/api/v1/auth/me", headers=basic("oauth2", token))
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "bruno" and me.json()["role"] == "engineer"
    vin = srv.vehicle(srv.token())["vin"]
    components = f"/sovd/vehicles/{vin}/v1/components"
    r = srv.http.get(components, headers=basic("oauth2", token))
    assert r.status_code == 200, r.text
    assert "engine" in {c["id"] for c in r.json()["items"]}
    # A write over the SOVD tree with it: the same as with the bearer header.
    r = srv.http.get(f"{components}/engine/data/vin", headers=basic("oauth2", token))
    assert r.status_code == 200, r.text
    # Roles hold as for a bearer token: an engineer's token is no admin's.
    assert srv.http.get("/api/v1/users", headers=basic("oauth2", token)).status_code == 403


def test_only_oauth2_and_an_access_token_get_in(srv: Server) -> None:
    secret, token = account(srv)
    vin = srv.vehicle(srv.token())["vin"]
    refused = [
        ("another username", basic("bruno", token)),
        ("the client id and secret", basic("bruno", secret)),
        ("the client secret as the token", basic("oauth2", secret)),
        ("a person's password", basic("engineer", ENGINEER_PASSWORD)),
        ("a person's password as the token", basic("oauth2", ENGINEER_PASSWORD)),
        ("the admin's password as the token", basic("oauth2", ADMIN_PASSWORD)),
        ("not Base64", {"authorization": "Basic oauth2:" + token}),
    ]
    for what, headers in refused:
        for path in ("/api/v1/auth/me", f"/sovd/vehicles/{vin}/v1/components"):
            r = srv.http.get(path, headers=headers)
            assert r.status_code == 401, (what, path, r.text)
            assert r.headers["www-authenticate"].startswith("Bearer"), what
            assert secret not in r.text and ENGINEER_PASSWORD not in r.text


def test_a_revoked_token_is_refused_in_basic_too(srv: Server) -> None:
    r = srv.http.post(
        "/api/v1/auth/login", json={"username": "engineer", "password": ENGINEER_PASSWORD}
    )
    token = r.json()["access_token"]
    assert srv.http.get("/api/v1/auth/me", headers=basic("oauth2", token)).status_code == 200
    assert srv.http.post("/api/v1/auth/logout", headers=basic("oauth2", token)).status_code == 204
    r = srv.http.get("/api/v1/auth/me", headers=basic("oauth2", token))
    assert r.status_code == 401 and "invalid_token" in r.headers["www-authenticate"]


def test_metrics_and_the_token_endpoint_are_unchanged(srv: Server) -> None:
    _, token = account(srv)
    # /metrics takes its own token as a bearer only.
    assert srv.http.get("/metrics", headers=auth(METRICS_TOKEN)).status_code == 200
    for headers in (basic("oauth2", METRICS_TOKEN), basic("oauth2", token), auth(token)):
        assert srv.http.get("/metrics", headers=headers).status_code == 401
    # The token endpoint's Basic is the client's id and secret (RFC 6749 2.3.1), not a
    # token: oauth2:<token> there is an unknown client.
    r = srv.http.post(
        TOKEN,
        content="grant_type=client_credentials",
        headers={"content-type": FORM, **basic("oauth2", token)},
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "media", ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "text/plain"]
)
def test_no_write_takes_what_a_cross_site_form_sends(srv: Server, media: str) -> None:
    """A browser holding Basic credentials for this origin (from a URL's userinfo) sends
    them with a cross-site form's POST: every write refuses the form's Content-Types,
    before anything is done, except the token endpoint (form-encoded by RFC 6749, and it
    authenticates the client itself, never with a held credential)."""
    _, token = account(srv)
    vin = srv.vehicle(srv.token())["vin"]
    engine = f"/sovd/vehicles/{vin}/v1/components/engine"
    writes = [
        ("POST", "/api/v1/auth/logout", ""),  # no body: an empty form would end the session
        ("POST", f"{engine}/operations/SelfTest/executions", ""),  # optional body
        ("POST", f"{engine}/operations/SelfTest/executions", '{"parameters": {}}'),
        ("PUT", f"{engine}/modes/session", '{"value": "extended"}'),
        ("DELETE", f"{engine}/faults", ""),
        ("POST", "/api/v1/users", "username=x&password=yyyyyyyyyy&role=admin"),
    ]
    for method, path, content in writes:
        headers = {"content-type": media, **basic("oauth2", token)}
        r = srv.http.request(method, path, content=content, headers=headers)
        assert r.status_code == 400, (method, path, r.text)
        assert media.split(";")[0] in r.json()["message"], r.text
    # Nothing happened: the session is alive, no execution ran, no user was made.
    assert srv.http.get("/api/v1/auth/me", headers=basic("oauth2", token)).status_code == 200
    r = srv.http.get(f"{engine}/operations/SelfTest/executions", headers=auth(token))
    assert r.status_code == 200 and r.json()["items"] == []
    users = srv.http.get("/api/v1/users", headers=auth(srv.admin_token())).json()
    assert "x" not in {u["username"] for u in users["items"]}
    # The same writes as JSON (or without a body) are taken.
    r = srv.http.post(
        f"{engine}/operations/SelfTest/executions", json={}, headers=basic("oauth2", token)
    )
    assert r.status_code in (200, 202), r.text


def test_the_token_endpoint_still_takes_its_form(srv: Server) -> None:
    r = srv.http.post(
        TOKEN, content="grant_type=client_credentials", headers={"content-type": FORM}
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = srv.http.post(
        TOKEN, content="grant_type=client_credentials", headers={"content-type": "text/plain"}
    )
    assert r.status_code == 400, r.text


def test_openapi_declares_the_400_of_every_write(srv: Server) -> None:
    doc = srv.http.get("/openapi.json").json()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if method.upper() in {"POST", "PUT", "PATCH", "DELETE"}:
                assert "400" in op["responses"], (method, path)


@pytest.mark.socket
def test_the_websocket_takes_the_token_in_basic_too(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        token = srv.token()
        vehicle = srv.http.get(
            "/api/v1/vehicles", headers=auth(token), params={"status": "connected"}
        ).json()["items"][0]
        cid = str(srv.submit(token, vehicle["vehicle_id"])["command_id"])
        wait_until(lambda: cid in fake.started, "the command to start")
        url = f"{srv.ws_url}/ws/responses/{cid}"
        with connect(url, additional_headers=basic("oauth2", token)) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
        with connect(url, additional_headers=basic("engineer", ENGINEER_PASSWORD)) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=DEADLINE_S)
            assert ws.close_code == 1008 and "bearer token" in (ws.close_reason or "")
        # A page of another origin cannot ride on credentials the browser attaches itself;
        # its own origin can, and a token the page put in the URL is not ambient.
        evil = {"Origin": "https://evil.example"}
        with connect(url, additional_headers={**basic("oauth2", token), **evil}) as ws:
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=DEADLINE_S)
            assert ws.close_code == 1008 and "cross-site" in (ws.close_reason or "")
        own = {"Origin": srv.ws_url.replace("ws://", "http://")}
        with connect(url, additional_headers={**basic("oauth2", token), **own}) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
        with connect(f"{url}?token={token}", additional_headers=evil) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
