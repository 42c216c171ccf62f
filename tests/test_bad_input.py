"""Bad input on every route: the exact status and error code, and nothing stored changes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.harness import Server, auth, make_config, running, wait_until

pytestmark = pytest.mark.socket

VIN = "1HGCM82633A004352"
HUGE = "x" * 70_000
DEEP: Any = 1
for _ in range(20):
    DEEP = {"a": DEEP}
VEHICLE = "{vehicle}"  # replaced by a real vehicle id
USER = "{user}"  # replaced by a real user id
READ_DTC = {"ecuAddress": "0x10"}


INCOMPLETE = "incomplete-request"


def _raw(body: bytes) -> dict[str, Any]:
    """Request kwargs for a body sent byte for byte (httpx cannot encode a lone surrogate)."""
    return {"content": body, "headers": {"Content-Type": "application/json"}}


def cmd(**overrides: Any) -> dict[str, Any]:
    body = {"vehicle_id": VEHICLE, "command_name": "ReadDTC", "command_params": READ_DTC}
    body.update(overrides)
    return body


# (id, method, path, request kwargs, status, error_code)
CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    (
        "login-broken-json",
        "POST",
        "/api/v1/auth/login",
        {"content": b'{"username": '},
        400,
        "incomplete-request",
    ),
    (
        "login-wrong-types",
        "POST",
        "/api/v1/auth/login",
        {"json": {"username": 1, "password": []}},
        400,
        "incomplete-request",
    ),
    (
        "login-extra-field",
        "POST",
        "/api/v1/auth/login",
        {"json": {"username": "a", "password": "b", "x": 1}},
        400,
        "incomplete-request",
    ),
    (
        "login-missing-field",
        "POST",
        "/api/v1/auth/login",
        {"json": {"username": "a"}},
        400,
        "incomplete-request",
    ),
    (
        "login-nul",
        "POST",
        "/api/v1/auth/login",
        {"json": {"username": "adm\x00in", "password": "b"}},
        400,
        "incomplete-request",
    ),
    (
        "login-huge",
        "POST",
        "/api/v1/auth/login",
        {"json": {"username": HUGE, "password": "b"}},
        413,
        "payload-too-large",
    ),
    (
        "login-text-plain",
        "POST",
        "/api/v1/auth/login",
        {"content": b"username=a", "headers": {"Content-Type": "text/plain"}},
        400,
        "incomplete-request",
    ),
    (
        "login-form",
        "POST",
        "/api/v1/auth/login",
        {"data": {"username": "a", "password": "b"}},
        400,
        "incomplete-request",
    ),
    ("login-deep", "POST", "/api/v1/auth/login", {"json": DEEP}, 400, "incomplete-request"),
    ("login-array", "POST", "/api/v1/auth/login", {"json": ["a", "b"]}, 400, "incomplete-request"),
    (
        "login-empty-body",
        "POST",
        "/api/v1/auth/login",
        {"content": b"", "headers": {"Content-Type": "application/json"}},
        400,
        "incomplete-request",
    ),
    (
        "login-bad-utf8",
        "POST",
        "/api/v1/auth/login",
        {"content": b'{"username": "\xff"}', "headers": {"Content-Type": "application/json"}},
        400,
        "incomplete-request",
    ),
    (
        "refresh-empty",
        "POST",
        "/api/v1/auth/refresh",
        {"json": {"refresh_token": ""}},
        400,
        "incomplete-request",
    ),
    (
        "refresh-number",
        "POST",
        "/api/v1/auth/refresh",
        {"json": {"refresh_token": 12}},
        400,
        "incomplete-request",
    ),
    (
        "user-bad-role",
        "POST",
        "/api/v1/users",
        {"json": {"username": "carol", "password": "password-1", "role": "root"}},
        400,
        "incomplete-request",
    ),
    (
        "user-short-password",
        "POST",
        "/api/v1/users",
        {"json": {"username": "carol", "password": "short", "role": "engineer"}},
        400,
        "incomplete-request",
    ),
    (
        "user-unicode-name",
        "POST",
        "/api/v1/users",
        {"json": {"username": "çärøl", "password": "password-1", "role": "engineer"}},
        400,
        "incomplete-request",
    ),
    (
        "user-sql-name",
        "POST",
        "/api/v1/users",
        {
            "json": {
                "username": "a'; DROP TABLE users;--",
                "password": "password-1",
                "role": "admin",
            }
        },
        400,
        "incomplete-request",
    ),
    (
        "user-extra-field",
        "POST",
        "/api/v1/users",
        {"json": {"username": "carol", "password": "password-1", "role": "admin", "admin": True}},
        400,
        "incomplete-request",
    ),
    (
        "user-patch-string",
        "PATCH",
        f"/api/v1/users/{USER}",
        {"json": {"disabled": "yes"}},
        400,
        "incomplete-request",
    ),
    (
        "user-patch-bad-id",
        "PATCH",
        "/api/v1/users/1",
        {"json": {"disabled": True}},
        404,
        "not-found",
    ),
    (
        "vehicle-vin-with-I",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": "1HGCM82633A00435I", "make": "a", "model": "b", "year": 2000}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-vin-short",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": "1HGCM", "make": "a", "model": "b", "year": 2000}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-year-string",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": VIN, "make": "a", "model": "b", "year": "2000"}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-year-bool",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": VIN, "make": "a", "model": "b", "year": True}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-year-huge",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": VIN, "make": "a", "model": "b", "year": 10**30}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-make-long",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": VIN, "make": "m" * 65, "model": "b", "year": 2000}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-null-model",
        "POST",
        "/api/v1/vehicles",
        {"json": {"vin": VIN, "make": "a", "model": None, "year": 2000}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-patch-empty",
        "PATCH",
        f"/api/v1/vehicles/{VEHICLE}",
        {"json": {}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-patch-status",
        "PATCH",
        f"/api/v1/vehicles/{VEHICLE}",
        {"json": {"connection_status": "online"}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-patch-vin",
        "PATCH",
        f"/api/v1/vehicles/{VEHICLE}",
        {"json": {"vin": VIN}},
        400,
        "incomplete-request",
    ),
    (
        "vehicle-patch-bad-id",
        "PATCH",
        "/api/v1/vehicles/12345",
        {"json": {"connection_status": "connected"}},
        404,
        "not-found",
    ),
    ("vehicles-limit-0", "GET", "/api/v1/vehicles?limit=0", {}, 400, "incomplete-request"),
    ("vehicles-limit-201", "GET", "/api/v1/vehicles?limit=201", {}, 400, "incomplete-request"),
    ("vehicles-limit-negative", "GET", "/api/v1/vehicles?limit=-1", {}, 400, "incomplete-request"),
    (
        "vehicles-limit-huge",
        "GET",
        "/api/v1/vehicles?limit=99999999999999999999999",
        {},
        400,
        "incomplete-request",
    ),
    (
        "vehicles-offset-negative",
        "GET",
        "/api/v1/vehicles?offset=-5",
        {},
        400,
        "incomplete-request",
    ),
    (
        "vehicles-status-sql",
        "GET",
        "/api/v1/vehicles?status=' OR 1=1 --",
        {},
        400,
        "incomplete-request",
    ),
    (
        "vehicles-search-long",
        "GET",
        "/api/v1/vehicles?search=" + "s" * 65,
        {},
        400,
        "incomplete-request",
    ),
    ("vehicles-search-nul", "GET", "/api/v1/vehicles?search=a%00b", {}, 400, "incomplete-request"),
    ("vehicles-unknown-param", "GET", "/api/v1/vehicles?sort=vin", {}, 400, "incomplete-request"),
    (
        "vehicles-repeated-param",
        "GET",
        "/api/v1/vehicles?limit=1&limit=2",
        {},
        400,
        "incomplete-request",
    ),
    ("vehicle-bad-id", "GET", "/api/v1/vehicles/not-a-uuid", {}, 404, "not-found"),
    (
        "commands-since-word",
        "GET",
        "/api/v1/commands?since=yesterday",
        {},
        400,
        "incomplete-request",
    ),
    (
        "commands-since-no-zone",
        "GET",
        "/api/v1/commands?since=2026-01-01T00:00:00",
        {},
        400,
        "incomplete-request",
    ),
    (
        "commands-until-bad-month",
        "GET",
        "/api/v1/commands?until=2026-13-01T00:00:00Z",
        {},
        400,
        "incomplete-request",
    ),
    (
        "commands-status-unknown",
        "GET",
        "/api/v1/commands?status=done",
        {},
        400,
        "incomplete-request",
    ),
    (
        "commands-user-not-uuid",
        "GET",
        "/api/v1/commands?user_id=admin",
        {},
        400,
        "incomplete-request",
    ),
    (
        "commands-vehicle-sql",
        "GET",
        "/api/v1/commands?vehicle_id=' OR '1'='1",
        {},
        400,
        "incomplete-request",
    ),
    ("command-bad-id", "GET", "/api/v1/commands/1%20OR%201=1", {}, 404, "not-found"),
    ("responses-bad-id", "GET", "/api/v1/commands/xyz/responses", {}, 404, "not-found"),
    ("command-absent", "GET", f"/api/v1/commands/{uuid.UUID(int=1)}", {}, 404, "not-found"),
    (
        "submit-unknown-command",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_name="FlashECU")},
        400,
        "incomplete-request",
    ),
    (
        "submit-params-list",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_params=["0x10"])},
        400,
        "incomplete-request",
    ),
    (
        "submit-missing-vehicle",
        "POST",
        "/api/v1/commands",
        {"json": {"command_name": "ReadDTC", "command_params": READ_DTC}},
        400,
        "incomplete-request",
    ),
    (
        "submit-bad-ecu",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_params={"ecuAddress": "16"})},
        400,
        "incomplete-request",
    ),
    (
        "submit-extra-param",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_params={"ecuAddress": "0x10", "force": "1"})},
        400,
        "incomplete-request",
    ),
    (
        "submit-vehicle-not-uuid",
        "POST",
        "/api/v1/commands",
        {"json": cmd(vehicle_id="WVWZZZ1KZAW000001")},
        400,
        "incomplete-request",
    ),
    (
        "submit-unknown-vehicle",
        "POST",
        "/api/v1/commands",
        {"json": cmd(vehicle_id=str(uuid.UUID(int=2)))},
        404,
        "not-found",
    ),
    (
        "submit-huge-params",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_params={"ecuAddress": HUGE})},
        413,
        "payload-too-large",
    ),
    (
        "submit-unicode-name",
        "POST",
        "/api/v1/commands",
        {"json": cmd(command_name="ReadDTC\u202e")},
        400,
        "incomplete-request",
    ),
    # Hostile input that once reached the database or the parser's recursion: a 500.
    ("login-1000-arrays", "POST", "/api/v1/auth/login", _raw(b"[" * 1000), 400, INCOMPLETE),
    (
        "submit-1000-objects",
        "POST",
        "/api/v1/commands",
        _raw(b'{"a":' * 1000 + b"1" + b"}" * 1000),
        400,
        INCOMPLETE,
    ),
    (
        "login-surrogate-username",
        "POST",
        "/api/v1/auth/login",
        _raw(b'{"username":"\\ud800","password":"x"}'),
        400,
        INCOMPLETE,
    ),
    (
        "login-surrogate-password",
        "POST",
        "/api/v1/auth/login",
        _raw(b'{"username":"engineer","password":"pass\\udfffword"}'),
        400,
        INCOMPLETE,
    ),
    (
        "login-surrogate-unknown-key",
        "POST",
        "/api/v1/auth/login",
        _raw(b'{"username":"a","password":"b","\\ud800":1}'),
        400,
        INCOMPLETE,
    ),
    (
        "submit-surrogate-param-key",
        "POST",
        "/api/v1/commands",
        _raw(
            b'{"vehicle_id":"{vehicle}","command_name":"ReadDTC",'
            b'"command_params":{"\\udc00":"0x10"}}'
        ),
        400,
        INCOMPLETE,
    ),
    (
        "user-surrogate-password",
        "POST",
        "/api/v1/users",
        _raw(b'{"username":"carol","password":"password-\\ud800","role":"engineer"}'),
        400,
        INCOMPLETE,
    ),
    (
        "vehicle-surrogate-make",
        "POST",
        "/api/v1/vehicles",
        _raw(b'{"vin":"1HGCM82633A004352","make":"\\ud83d","model":"b","year":2000}'),
        400,
        INCOMPLETE,
    ),
    (
        "commands-since-before-year-1-in-utc",
        "GET",
        "/api/v1/commands?since=0001-01-01T00:00:00%2B14:00",
        {},
        400,
        INCOMPLETE,
    ),
    (
        "commands-until-after-year-9999-in-utc",
        "GET",
        "/api/v1/commands?until=9999-12-31T23:59:59-14:00",
        {},
        400,
        INCOMPLETE,
    ),
    ("audit-limit-0", "GET", "/api/v1/audit?limit=0", {}, 400, "incomplete-request"),
    ("audit-action-sql", "GET", "/api/v1/audit?action=x' OR 'a'='a", {}, 400, "incomplete-request"),
    ("unknown-route", "GET", "/api/v2/vehicles", {}, 404, "not-found"),
    ("wrong-method", "DELETE", "/api/v1/vehicles", {}, 405, "method-not-allowed"),
]

TABLES = ("users", "sessions", "vehicles", "commands", "command_responses")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(make_config(tmp_path_factory.mktemp("bad"))) as server:
        yield server


def _snapshot(server: Server) -> dict[str, list[tuple[Any, ...]]]:
    return {t: sorted(server.query(f"SELECT * FROM {t}"), key=repr) for t in TABLES}


@pytest.mark.parametrize(
    ("name", "method", "path", "kwargs", "status", "code"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input(
    srv: Server, name: str, method: str, path: str, kwargs: dict[str, Any], status: int, code: str
) -> None:
    token = srv.admin_token()
    vehicle_id = srv.vehicle(token)["vehicle_id"]
    user_id = srv.http.get("/api/v1/users", headers=auth(token)).json()["items"][0]["user_id"]
    path = path.replace(VEHICLE, vehicle_id).replace(USER, user_id)
    if (
        "json" in kwargs
        and isinstance(kwargs["json"], dict)
        and kwargs["json"].get("vehicle_id") == VEHICLE
    ):
        kwargs = {**kwargs, "json": {**kwargs["json"], "vehicle_id": vehicle_id}}
    if isinstance(kwargs.get("content"), bytes):
        kwargs = {
            **kwargs,
            "content": kwargs["content"].replace(VEHICLE.encode(), vehicle_id.encode()),
        }
    before = _snapshot(srv)
    headers = {**auth(token), **kwargs.pop("headers", {})} if "headers" in kwargs else auth(token)
    r = srv.http.request(method, path, headers=headers, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error_code"] == code
    assert set(body) == {"error_code", "message", "request_id"}
    assert body["message"]
    assert _snapshot(srv) == before


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


HOSTILE = [
    c for c in CASES if c[0].startswith(("login-1000", "submit-1000")) or "surrogate" in c[0]
]


def test_hostile_bodies_are_logged_as_bad_requests_without_a_traceback(
    srv: Server, caplog: pytest.LogCaptureFixture
) -> None:
    token = srv.admin_token()
    vehicle_id = srv.vehicle(token)["vehicle_id"]
    assert len(HOSTILE) >= 7
    with caplog.at_level(logging.INFO):
        for _, method, path, kwargs, _, _ in HOSTILE:
            content = kwargs["content"].replace(VEHICLE.encode(), vehicle_id.encode())
            headers = {**auth(token), **kwargs["headers"]}
            r = srv.http.request(method, path, headers=headers, content=content)
            assert r.status_code == 400, r.text
            message = r.json()["message"]
            assert "nested deeper than 8" in message or "unpaired UTF-16 surrogate" in message
        # The access line is written after the response is sent: wait for all of them.
        wait_until(
            lambda: [getattr(r, "status", None) for r in caplog.records].count(400) >= len(HOSTILE),
            "the access log lines",
        )
    # Each is one ordinary access-log line with its 400 (what metrics count too), and
    # nothing is logged as an unhandled error with a traceback.
    statuses = [r.status for r in caplog.records if getattr(r, "event", None) == "request"]
    assert statuses.count(400) >= len(HOSTILE)
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
