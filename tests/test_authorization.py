"""Who may do what: every route and the WebSocket, for anonymous, engineer A, engineer B
and admin, against A's and B's commands. Another engineer's command is 404 everywhere."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.conftest import ADMIN_PASSWORD, ENGINEER_PASSWORD, Server, auth, make_config, running

_counter = itertools.count()


def _vin() -> str:
    return f"1HGCM82633A{next(_counter):06d}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    with running(make_config(tmp_path_factory.mktemp("authz"))) as srv:
        admin = srv.admin_token()
        a = srv.token()  # the demo "engineer"
        b = srv.create_engineer("bob")
        vehicle = srv.vehicle(admin)["vehicle_id"]
        cmd_a = srv.submit(a, vehicle)["command_id"]
        cmd_b = srv.submit(b, vehicle)["command_id"]
        for cid in (cmd_a, cmd_b):
            srv.wait_status(admin, cid)
        yield {
            "srv": srv,
            "tokens": {"anonymous": None, "a": a, "b": b, "admin": admin},
            "vehicle": vehicle,
            "cmd": {"a": cmd_a, "b": cmd_b},
        }


def _fresh_user(srv: Server) -> str:
    r = srv.http.post(
        "/api/v1/users",
        headers=auth(srv.admin_token()),
        json={
            "username": f"temp{next(_counter)}",
            "password": "temp-password-1",
            "role": "engineer",
        },
    )
    return str(r.json()["user_id"])


# (name, method, path, body, rule, ok status); {vehicle}, {cmd_a}, {cmd_b}, {user} filled in.
ROUTES: list[tuple[str, str, str, Callable[[], Any] | None, str, int]] = [
    ("live", "GET", "/health/live", None, "public", 200),
    ("ready", "GET", "/health/ready", None, "public", 200),
    ("openapi", "GET", "/openapi.json", None, "public", 200),
    ("metrics", "GET", "/metrics", None, "public", 200),
    (
        "login",
        "POST",
        "/api/v1/auth/login",
        lambda: {"username": "engineer", "password": ENGINEER_PASSWORD},
        "public",
        200,
    ),
    ("me", "GET", "/api/v1/auth/me", None, "user", 200),
    ("catalogue", "GET", "/api/v1/catalogue", None, "user", 200),
    ("vehicles", "GET", "/api/v1/vehicles", None, "user", 200),
    ("vehicle", "GET", "/api/v1/vehicles/{vehicle}", None, "user", 200),
    ("commands", "GET", "/api/v1/commands", None, "user", 200),
    (
        "submit",
        "POST",
        "/api/v1/commands",
        lambda: {
            "vehicle_id": "{vehicle}",
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
        "user",
        201,
    ),
    ("users", "GET", "/api/v1/users", None, "admin", 200),
    (
        "create-user",
        "POST",
        "/api/v1/users",
        lambda: {
            "username": f"user{next(_counter)}",
            "password": "password-123",
            "role": "engineer",
        },
        "admin",
        201,
    ),
    ("disable-user", "PATCH", "/api/v1/users/{user}", lambda: {"disabled": True}, "admin", 200),
    ("delete-user", "DELETE", "/api/v1/users/{user}", None, "admin", 204),
    (
        "create-vehicle",
        "POST",
        "/api/v1/vehicles",
        lambda: {"vin": _vin(), "make": "a", "model": "b", "year": 2020},
        "admin",
        201,
    ),
    (
        "patch-vehicle",
        "PATCH",
        "/api/v1/vehicles/{vehicle}",
        lambda: {"connection_status": "connected"},
        "admin",
        200,
    ),
    ("audit", "GET", "/api/v1/audit", None, "admin", 200),
    ("command-a", "GET", "/api/v1/commands/{cmd_a}", None, "owner-a", 200),
    ("responses-a", "GET", "/api/v1/commands/{cmd_a}/responses", None, "owner-a", 200),
    ("command-b", "GET", "/api/v1/commands/{cmd_b}", None, "owner-b", 200),
    ("responses-b", "GET", "/api/v1/commands/{cmd_b}/responses", None, "owner-b", 200),
    # The commands have ended: whoever may cancel them hears 409, anyone else 404.
    ("cancel-a", "POST", "/api/v1/commands/{cmd_a}/cancel", None, "owner-a", 409),
    ("cancel-b", "POST", "/api/v1/commands/{cmd_b}/cancel", None, "owner-b", 409),
]


def _expected(rule: str, who: str, ok: int) -> int:
    if rule == "public":
        return ok
    if who == "anonymous":
        return 401
    if rule == "user" or who == "admin":
        return ok
    if rule == "admin":
        return 403
    return ok if rule == f"owner-{who}" else 404


def _fill(text: str, world: dict[str, Any], srv: Server) -> str:
    text = text.replace("{vehicle}", world["vehicle"])
    text = text.replace("{cmd_a}", world["cmd"]["a"]).replace("{cmd_b}", world["cmd"]["b"])
    if "{user}" in text:
        text = text.replace("{user}", _fresh_user(srv))
    return text


@pytest.mark.parametrize("who", ["anonymous", "a", "b", "admin"])
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "rule", "ok"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_http_matrix(
    world: dict[str, Any],
    who: str,
    name: str,
    method: str,
    path: str,
    body: Callable[[], Any] | None,
    rule: str,
    ok: int,
) -> None:
    srv: Server = world["srv"]
    token = world["tokens"][who]
    payload = body() if body else None
    if isinstance(payload, dict) and payload.get("vehicle_id") == "{vehicle}":
        payload["vehicle_id"] = world["vehicle"]
    r = srv.http.request(
        method, _fill(path, world, srv), json=payload, headers=auth(token) if token else {}
    )
    expected = _expected(rule, who, ok)
    assert r.status_code == expected, r.text
    if expected >= 400:
        assert (
            r.json()["error_code"]
            == {
                401: "unauthorized",
                403: "insufficient-access-rights",
                404: "not-found",
                409: "conflict",
            }[expected]
        )


@pytest.mark.parametrize("who", ["anonymous", "a", "b", "admin"])
def test_token_routes_and_logout(world: dict[str, Any], who: str) -> None:
    srv: Server = world["srv"]
    tokens = (
        srv.login("engineer", ENGINEER_PASSWORD)
        if who in ("anonymous", "a")
        else (
            srv.login("bob", "other-password-1")
            if who == "b"
            else srv.login("admin", ADMIN_PASSWORD)
        )
    )
    r = srv.http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200  # the refresh token itself is the credential
    fresh = r.json()["access_token"]
    r = srv.http.post("/api/v1/auth/logout", headers=auth(fresh) if who != "anonymous" else {})
    assert r.status_code == (401 if who == "anonymous" else 204)


@pytest.mark.parametrize(
    ("who", "command", "close"),
    [
        ("anonymous", "a", 1008),
        ("a", "a", 1000),
        ("b", "a", 4404),
        ("admin", "a", 1000),
        ("anonymous", "b", 1008),
        ("a", "b", 4404),
        ("b", "b", 1000),
        ("admin", "b", 1000),
    ],
)
def test_websocket_matrix(world: dict[str, Any], who: str, command: str, close: int) -> None:
    srv: Server = world["srv"]
    events, code = srv.stream(world["cmd"][command], world["tokens"][who])
    assert code == close
    assert bool(events) == (close == 1000)
