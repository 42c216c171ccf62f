"""A request body with one key twice in an object is refused (issue #19, item 9b).

msgspec keeps the last of duplicate keys, and other parsers (a proxy's, an auditing
tool's) the first: ``{"role": "engineer", "role": "admin"}`` would be read two ways. Every
body, on every route, is decoded in one place (``app.api.decoding.BodyReader``), which
answers 400 naming the key, in the ``/api/v1`` error shape or SOVD's GenericError under
``/sovd/``, and nothing is stored. In process, over the ASGI transport.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Server, auth, in_process, make_config

pytestmark = pytest.mark.fast

GENERIC_ERROR_FIELDS = {"error_code", "message", "vendor_code", "translation_id", "parameters"}


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    with in_process(make_config(tmp_path)) as server:
        yield server


def _post_raw(server: Server, path: str, token: str, body: str, method: str = "POST") -> Any:
    return server.http.request(
        method,
        path,
        content=body.encode(),
        headers={**auth(token), "Content-Type": "application/json"},
    )


def _refused(r: Any, key: str) -> dict[str, Any]:
    assert r.status_code == 400, r.text
    body: dict[str, Any] = r.json()
    assert body["error_code"] == "incomplete-request"
    assert body["message"] == f"request body: duplicate key {key!r}"
    return body


def _usernames(server: Server) -> set[str]:
    return {row[0] for row in server.query("SELECT username FROM users")}


@pytest.mark.parametrize(
    "role_twice",
    [
        '"role": "engineer", "role": "admin"',
        '"role": "admin", "role": "engineer"',
        '"role": "engineer", "r\\u006fle": "admin"',  # one key, two spellings
    ],
)
def test_a_role_given_twice_is_refused_and_nobody_is_created(srv: Server, role_twice: str) -> None:
    before = _usernames(srv)
    body = f'{{"username": "mallory", "password": "mallory-password-1", {role_twice}}}'
    r = _post_raw(srv, "/api/v1/users", srv.admin_token(), body)
    found = _refused(r, "role")
    assert set(found) == {"error_code", "message", "request_id"}
    assert found["request_id"] == r.headers["x-request-id"]
    assert _usernames(srv) == before


def test_a_duplicate_inside_a_nested_object_is_refused(srv: Server) -> None:
    token = srv.token()
    vehicle_id = srv.vehicle(token)["vehicle_id"]
    body = json.dumps({"vehicle_id": vehicle_id, "command_name": "ReadDTC"})[:-1] + (
        ', "command_params": {"ecuAddress": "0x10", "ecuAddress": "0x18"}}'
    )
    r = _post_raw(srv, "/api/v1/commands", token, body)
    _refused(r, "ecuAddress")
    assert srv.query("SELECT COUNT(*) FROM commands") == [(0,)]


def test_the_sovd_tree_refuses_it_as_a_generic_error(srv: Server) -> None:
    token = srv.token()
    vin = srv.vehicle(token)["vin"]
    path = f"/sovd/vehicles/{vin}/v1/components/body/modes/session"
    r = _post_raw(srv, path, token, '{"value": "default", "value": "extended"}', method="PUT")
    body = _refused(r, "value")
    assert set(body) <= GENERIC_ERROR_FIELDS
    assert "x-command-id" not in r.headers  # refused before any command was made
    assert srv.query("SELECT COUNT(*) FROM commands") == [(0,)]


def test_repeated_names_that_are_not_duplicates_are_accepted(srv: Server) -> None:
    """The same key in different objects, and values that spell a key, are fine."""
    admin = srv.admin_token()
    body = '{"username": "role", "password": "password-password", "role": "engineer"}'  # values
    r = _post_raw(srv, "/api/v1/users", admin, body)
    assert r.status_code == 201, r.text
    vehicle = {
        "vin": "1HGCM82633A004352",
        "make": "make",
        "model": "model",
        "year": 2020,
        "ecus": [{"name": "engine", "address": "0x10"}, {"name": "abs", "address": "0x28"}],
    }
    r = _post_raw(srv, "/api/v1/vehicles", admin, json.dumps(vehicle))
    assert r.status_code == 201, r.text
    assert [e["name"] for e in r.json()["ecus"]] == ["engine", "abs"]
    # Escapes take the exact path too, and a key escaped once is still one key.
    r = _post_raw(srv, "/api/v1/auth/login", "", '{"usern\\u0061me": "role", "password": "x"}')
    assert r.status_code == 401, r.text
