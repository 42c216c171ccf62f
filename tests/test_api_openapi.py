"""The OpenAPI document describes exactly the app's HTTP routes."""

from __future__ import annotations

import importlib.metadata
from typing import Any

import jsonschema_rs
import pytest
from starlette.routing import Route

from app.api import ws_closes
from app.catalogue import CATALOGUE
from tests.support.harness import Server

pytestmark = pytest.mark.fast


def _resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with its ``$ref`` (into components/schemas) followed."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = doc["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return found


def _app_operations(server: Server) -> set[tuple[str, str]]:
    ops = set()
    for route in server.app.routes:
        if isinstance(route, Route):
            for method in route.methods or ():
                if method != "HEAD":
                    ops.add((route.path, method.lower()))
    return ops


def test_document_paths_and_methods_are_the_apps_routes(server: Server) -> None:
    r = server.http.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.1")
    documented = {(path, method) for path, item in doc["paths"].items() for method in item}
    assert documented == _app_operations(server)


def test_every_operation_documents_its_responses_and_error_body(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    error_ref = {"$ref": "#/components/schemas/Error"}
    generic_ref = {"$ref": "#/components/schemas/GenericError"}
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    # The SOVD tree answers with SOVD's GenericError.
                    expected = generic_ref if path.startswith("/sovd/") else error_ref
                    if path == "/api/v1/auth/token":  # RFC 6749 5.2's body, or ours
                        oauth = {"$ref": "#/components/schemas/OAuthError"}
                        assert schema in ({"anyOf": [oauth, expected]}, oauth, expected), code
                        continue
                    assert schema == expected, (path, method, code)
            if "security" in op:
                assert "401" in op["responses"], (path, method)
            if "requestBody" in op:
                assert {"400", "413"} <= set(op["responses"]), (path, method)
    login = doc["paths"]["/api/v1/auth/login"]["post"]
    body = _resolve(doc, login["requestBody"]["content"]["application/json"]["schema"])
    assert body["required"] == ["username", "password"]
    assert body["additionalProperties"] is False


def test_writes_document_storage_errors_and_cancel_its_outcomes(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    for path, item in doc["paths"].items():
        for method, op in item.items():
            if method in ("post", "patch", "delete"):
                assert "503" in op["responses"], (path, method)  # storage-unavailable
    cancel = doc["paths"]["/api/v1/commands/{command_id}/cancel"]["post"]
    assert {"200", "202", "401", "404", "409", "503"} <= set(cancel["responses"])
    ok = cancel["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/Command"}
    command = _resolve(doc, ok)
    statuses = _resolve(doc, command["properties"]["status"])["enum"]
    assert "cancelled" in statuses
    patch = doc["paths"]["/api/v1/users/{user_id}"]["patch"]
    body = _resolve(doc, patch["requestBody"]["content"]["application/json"]["schema"])
    assert body["properties"]["cancel_commands"]["type"] == "boolean"
    # Either field alone is a change: disabling, or an admin's password reset.
    assert body.get("required", []) == []
    assert body["properties"]["password"]["type"] == "string"


def test_info_version_is_the_package_version(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    assert doc["info"]["version"] == importlib.metadata.version("sovd-command-service")


def test_the_websocket_is_described_with_every_close_code(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    (stream,) = doc["x-websockets"].values()
    assert set(doc["x-websockets"]) == {"/ws/responses/{command_id}"}
    assert {p["name"] for p in stream["parameters"]} == {"command_id", "token", "since"}
    closes = stream["close_codes"]
    for close in ws_closes.CLOSES:
        assert close.reason in closes[str(close.code)], close
    assert str(ws_closes.CLOSE_POLICY) in closes  # a refused token
    assert str(ws_closes.CLOSE_TOO_BIG) in closes  # a client message over the cap (Hypercorn's)
    assert set(stream["messages"]) >= {"status", "response", "error"}
    assert "sequence_number" in stream["messages"]["response"]


def _new_command(doc: dict[str, Any]) -> dict[str, Any]:
    submit = doc["paths"]["/api/v1/commands"]["post"]
    return _resolve(doc, submit["requestBody"]["content"]["application/json"]["schema"])


def test_command_params_follow_the_catalogue_one_schema_per_command(server: Server) -> None:
    doc = server.http.get("/openapi.json").json()
    schema = _new_command(doc)
    branches = {b["properties"]["command_name"]["const"]: b for b in schema["oneOf"]}
    assert set(branches) == set(CATALOGUE)
    for name, spec in CATALOGUE.items():
        assert branches[name]["properties"]["command_params"] == spec.params_schema()
    vid = "0c8a3f7e-2d0b-4d8e-9b1a-6f1f2b3c4d5e"
    validator = jsonschema_rs.Draft202012Validator(schema)
    ok = {"vehicle_id": vid, "command_name": "ReadDataByID"}
    validator.validate({**ok, "command_params": {"ecuAddress": "0x10", "dataId": "0x010C"}})
    # Parameters of another command, a missing one, an unknown command: all refused.
    for bad in (
        {**ok, "command_params": {"ecuAddress": "0x10"}},
        {**ok, "command_name": "ReadDTC", "command_params": {"dataId": "0x010C"}},
        {**ok, "command_name": "Bogus", "command_params": {}},
    ):
        assert not validator.is_valid(bad), bad
