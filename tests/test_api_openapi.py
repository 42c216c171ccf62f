"""The OpenAPI document describes exactly the app's HTTP routes."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route

from tests.conftest import Server


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
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert op["responses"], (path, method)
            for code, response in op["responses"].items():
                if int(code) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == error_ref, (path, method, code)
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
    assert body["required"] == ["disabled"]
