"""The route table is the contract: Starlette's routes and /openapi.json come from it,
requests are decoded into typed structs whose errors name the field, responses are
encoded from typed values, and records are built by name."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import msgspec
import pytest
from starlette.routing import Route

from app.api import decoding
from app.api.decoding import MAX_JSON_DEPTH
from app.api.routes import ENDPOINTS
from app.errors import STATUS_OF
from app.events import ResponseChunk
from app.models import (
    Actor,
    AuditEntry,
    Command,
    EcuRef,
    Principal,
    User,
    Vehicle,
)
from app.store import vehicles as vehicle_store
from app.store.rows import fetch_one
from app.vocabulary import (
    Access,
    AuditAction,
    CommandStatus,
    ConnectionStatus,
    ErrorCode,
    FailureCode,
    Role,
    SimulatorProfile,
)
from tests.support.harness import Server, auth
from tests.support.schemas import fields

pytestmark = pytest.mark.fast

VIN = "1HGCM82633A004352"


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


# -- one table ---------------------------------------------------------------------------


def test_starlettes_routes_are_the_tables(server: Server) -> None:
    table = {(e.path, e.method) for e in ENDPOINTS}
    app_routes = {
        (route.path, method)
        for route in server.app.routes
        if isinstance(route, Route) and route.path != "/metrics"
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert app_routes == table
    assert len(table) == len(ENDPOINTS)  # no endpoint declared twice


def test_the_document_is_the_table(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    documented = {
        (path, method.upper()) for path, item in doc["paths"].items() for method in item
    } - {("/metrics", "GET")}
    assert documented == {(e.path, e.method) for e in ENDPOINTS}
    for e in ENDPOINTS:
        op = doc["paths"][e.path][e.method.lower()]
        statuses = {int(code) for code in op["responses"]}
        errors = {STATUS_OF[code] for code in e.error_codes()}
        assert statuses == set(e.responses) | errors, (e.method, e.path)
        assert ("security" in op) == (e.access is not Access.ANONYMOUS), e.path
        assert op["x-access"] == e.access.value
        for code in e.error_codes():  # every error code is named on its status
            assert code.value in op["responses"][str(STATUS_OF[code])]["description"]
        for status, kind in e.responses.items():
            content = op["responses"][str(status)].get("content")
            assert (content is None) == (kind is None), (e.path, status)
        if e.body is not None:
            schema = op["requestBody"]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{e.body.__name__}"}
            assert _resolve(doc, schema)["additionalProperties"] is False


def test_the_table_derives_the_errors_it_causes() -> None:
    by_key = {(e.method, e.path): e for e in ENDPOINTS}
    create_user = by_key[("POST", "/api/v1/users")].error_codes()
    assert {c.value for c in create_user} >= {
        "unauthorized",
        "insufficient-access-rights",
        "incomplete-request",
        "payload-too-large",
        "storage-unavailable",
        "conflict",
    }
    live = by_key[("GET", "/health/live")].error_codes()
    assert live == ()


def test_enums_in_the_document_come_from_the_vocabulary(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]

    def enum_of(struct: str, field: str) -> list[str]:
        prop = schemas[struct]["properties"][field]
        options = prop.get("anyOf", [prop])
        for option in options:
            resolved = _resolve(doc, option)
            if "enum" in resolved:
                return sorted(resolved["enum"])  # msgspec lists them sorted
        raise AssertionError(f"{struct}.{field} has no enum")

    assert enum_of("Vehicle", "connection_status") == sorted(s.value for s in ConnectionStatus)
    assert enum_of("Vehicle", "simulator_profile") == sorted(p.value for p in SimulatorProfile)
    assert enum_of("Command", "status") == sorted(s.value for s in CommandStatus)
    assert enum_of("Command", "error_code") == sorted(c.value for c in FailureCode)
    assert enum_of("User", "role") == sorted(r.value for r in Role)
    assert enum_of("AuditEntry", "action") == sorted(a.value for a in AuditAction)
    assert enum_of("Error", "error_code") == sorted(c.value for c in ErrorCode)
    audit = doc["paths"]["/api/v1/audit"]["get"]["parameters"]
    action = next(p for p in audit if p["name"] == "action")["schema"]
    assert any("enum" in _resolve(doc, o) for o in action.get("anyOf", [action]))


# -- typed requests ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "expected"),
    [
        (
            "POST",
            "/api/v1/commands",
            {"vehicle_id": 5, "command_name": "ReadDTC", "command_params": {}},
            "body.vehicle_id: Expected `str`, got `int`",
        ),
        (
            "POST",
            "/api/v1/vehicles",
            {"vin": VIN, "make": "a", "model": "b", "year": 2000, "colour": "red"},
            "body: unknown field `colour` (allowed: vin, make, model, year, simulator_profile,"
            " transport, doip, ecus)",
        ),
        (
            "POST",
            "/api/v1/users",
            {"username": "carol", "password": "password-1", "role": "root"},
            "body.role: Invalid enum value 'root'",
        ),
        ("GET", "/api/v1/vehicles?limit=0", None, "query parameter limit: Expected `int` >= 1"),
        (
            "GET",
            "/api/v1/vehicles?sort=vin",
            None,
            "query parameter sort is not known (allowed: status, search, limit, offset)",
        ),
        ("GET", "/api/v1/audit?limit=1&limit=2", None, "query parameter limit is given more"),
        ("GET", "/api/v1/commands?status=done", None, "query parameter status: Invalid enum"),
    ],
)
def test_validation_messages_name_the_field(
    shared_server: Server, method: str, path: str, body: Any, expected: str
) -> None:
    r = shared_server.http.request(
        method, path, json=body, headers=auth(shared_server.admin_token())
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "incomplete-request"
    assert r.json()["message"].startswith(expected), r.json()["message"]


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        # An escaped backslash then "ud800" is text, not a surrogate.
        (b'{"username":"\\\\ud800","password":"x"}', 401),
        # A whole surrogate pair is one character (an emoji).
        (b'{"username":"\\ud83d\\ude00","password":"x"}', 401),
        (b'{"username":"\\ud83d\\u0041","password":"x"}', 400),  # high half, then no low half
        (b'{"username":"\\ude00","password":"x"}', 400),  # a low half alone
        (b'{"username":"a\\u0000b","password":"x"}', 400),  # NUL
    ],
)
def test_escapes_are_read_as_json_reads_them(
    shared_server: Server, raw: bytes, status: int
) -> None:
    r = shared_server.http.post(
        "/api/v1/auth/login", content=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status_code == status, r.text


def test_a_partial_patch_leaves_the_other_field(server: Server) -> None:
    token = server.admin_token()
    vehicle = server.vehicle(token)
    r = server.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        json={"simulator_profile": "flaky"},
        headers=auth(token),
    )
    assert r.status_code == 200, r.text
    assert r.json()["simulator_profile"] == "flaky"
    assert r.json()["connection_status"] == vehicle["connection_status"]
    r = server.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        json={"simulator_profile": None},
        headers=auth(token),
    )
    assert r.status_code == 400  # null is not "leave as is"


# -- typed responses ---------------------------------------------------------------------


def test_responses_are_json_with_every_field(server: Server) -> None:
    token = server.admin_token()
    r = server.http.get("/api/v1/vehicles?limit=1", headers=auth(token))
    assert r.headers["content-type"] == "application/json"
    page = r.json()
    assert set(page) == fields(server, "VehiclePage")
    assert set(page["items"][0]) == fields(server, "Vehicle")
    assert "last_seen_at" in page["items"][0]  # null, but present
    command = server.submit(token, page["items"][0]["vehicle_id"])
    assert set(command) == fields(server, "Command")


# -- records by name ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "values"),
    [
        (Actor, (None, "x", None)),
        (User, ("u1", "alice", Role.ENGINEER)),
        (Principal, ("u1", "alice", Role.ENGINEER, "s1")),
        (ResponseChunk, ("c1", 1, {}, True, "t")),
        (Vehicle, ("v", VIN, "a", "b", 2000, "connected", "healthy", None)),
        (
            Command,
            ("c", "v", "u", "ReadDTC", {}, CommandStatus.PENDING, None, None, "t", None),
        ),
        (AuditEntry, (1, "t", None, None, AuditAction.LOGIN, None, None, {}, None)),
    ],
)
def test_records_cannot_be_built_by_position(record: type[Any], values: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        record(*values)


def test_records_are_immutable() -> None:
    actor = Actor(user_id=None, username="x", client_address=None)
    with pytest.raises(AttributeError):
        actor.username = "y"  # type: ignore[misc]


def test_the_store_reads_a_row_by_column_name() -> None:
    conn = sqlite3.connect(":memory:")
    # The columns in another order than the record's fields.
    row = fetch_one(
        conn,
        "SELECT NULL AS last_seen_at, 'healthy' AS simulator_profile,"
        " 'connected' AS connection_status, 2001 AS year, 'Golf' AS model, 'VW' AS make,"
        " ? AS vin, 'v1' AS vehicle_id, 'simulator' AS transport, NULL AS doip_always_on,"
        " NULL AS doip_ecu_addresses, NULL AS doip_tester_address,"
        " NULL AS doip_logical_address, NULL AS doip_port, NULL AS doip_host,"
        " ? AS ecus",
        (VIN, '[{"name": "gateway", "address": 1}]'),
    )
    assert row is not None
    vehicle = vehicle_store._vehicle(row)
    assert vehicle == Vehicle(
        vehicle_id="v1",
        vin=VIN,
        make="VW",
        model="Golf",
        year=2001,
        connection_status=ConnectionStatus.CONNECTED,
        simulator_profile=SimulatorProfile.HEALTHY,
        last_seen_at=None,
        ecus=(EcuRef(name="gateway", address="0x0001"),),
    )
    assert msgspec.json.decode(msgspec.json.encode(vehicle))["year"] == 2001


@pytest.mark.parametrize(
    "text",
    [
        '"' * 65_000 + "[" * 9,  # quotes never closed, brackets to start the scan
        '["' + "\\\\" * 30_000 + "[" * 9,  # a string of escapes never closed
        "[" * 9 + '"\\"' * 20_000,  # escaped quotes that never end the string
    ],
)
def test_the_nesting_pre_scan_is_linear_on_hostile_bodies(text: str) -> None:
    # A denial of service found in review: a pre-scan pattern that matched whole strings
    # backtracked to the end of the body at every quote, 12 s for 64 KiB, with the event
    # loop stopped. The scan must stay linear; 0.5 s is a hundred times its real cost.
    began = time.perf_counter()
    decoding.bracket_depth(text, MAX_JSON_DEPTH)
    assert time.perf_counter() - began < 0.5


def test_nesting_inside_strings_does_not_count_and_outside_it_does() -> None:
    assert decoding.bracket_depth('{"a": "[[[[[[[[[[[[", "b": ["\\"]"]}', 8) == 2
    assert decoding.bracket_depth("[" * 9 + "]" * 9, 8) == 9


def test_an_unclosed_string_of_quotes_is_a_quick_400(server: Server) -> None:
    r = server.http.post(
        "/api/v1/auth/login",
        content=b'"' * 60_000 + b"[" * 9,
        headers={"Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "incomplete-request"
