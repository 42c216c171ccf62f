"""GET /openapi.json: an OpenAPI 3.1 description of every HTTP route.

Request schemas come from the same ``Body``/``Query`` specs that validate requests, so
the document cannot drift from what the handlers accept; a test checks that its paths
and methods are exactly the app's routes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.api import audit, auth, commands, users, vehicles
from app.api.schema import UUID_PATTERN, Body, Query
from app.models import COMMAND_STATUSES, CONNECTION_STATUSES, ROLES, SIMULATOR_PROFILES

_STR = {"type": "string"}
_NULLABLE_STR = {"type": ["string", "null"]}


def _object(**properties: Any) -> dict[str, Any]:
    """An object whose listed properties are all present (the service always sends every
    field, null where there is no value)."""
    return {"type": "object", "required": list(properties), "properties": properties}


SCHEMAS: dict[str, Any] = {
    "Error": _object(
        error_code={"type": "string", "pattern": "^[a-z]+(-[a-z]+)*$"},
        message=_STR,
        request_id=_STR,
    ),
    "TokenPair": _object(
        access_token=_STR,
        refresh_token=_STR,
        token_type={"const": "bearer"},
        expires_in={"type": "integer"},
    ),
    "User": _object(
        user_id=_STR, username=_STR, role={"enum": list(ROLES)}, disabled={"type": "boolean"}
    ),
    "Me": _object(user_id=_STR, username=_STR, role={"enum": list(ROLES)}),
    "Vehicle": _object(
        vehicle_id=_STR,
        vin=_STR,
        make=_STR,
        model=_STR,
        year={"type": "integer"},
        connection_status={"enum": list(CONNECTION_STATUSES)},
        simulator_profile={"enum": list(SIMULATOR_PROFILES)},
        last_seen_at=_NULLABLE_STR,
    ),
    "Command": _object(
        command_id=_STR,
        vehicle_id=_STR,
        user_id=_STR,
        command_name=_STR,
        command_params={"type": "object"},
        status={"enum": list(COMMAND_STATUSES)},
        error_code=_NULLABLE_STR,
        error_message=_NULLABLE_STR,
        submitted_at=_STR,
        completed_at=_NULLABLE_STR,
    ),
    "ResponseChunk": _object(
        sequence_number={"type": "integer", "minimum": 1},
        response_payload={"type": "object"},
        is_final={"type": "boolean"},
        received_at=_STR,
    ),
    "AuditEntry": _object(
        audit_id={"type": "integer"},
        at=_STR,
        user_id=_NULLABLE_STR,
        username=_NULLABLE_STR,
        action=_STR,
        entity_type=_NULLABLE_STR,
        entity_id=_NULLABLE_STR,
        details={"type": "object"},
        client_address=_NULLABLE_STR,
    ),
    "CatalogueEntry": _object(
        command_name=_STR, description=_STR, params_schema={"type": "object"}
    ),
    "Health": _object(status={"const": "ok"}),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _items(name: str, paged: bool) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "required": ["items"],
        "properties": {"items": {"type": "array", "items": _ref(name)}},
    }
    if paged:
        schema["required"] += ["total", "limit", "offset"]
        for key in ("total", "limit", "offset"):
            schema["properties"][key] = {"type": "integer", "minimum": 0}
    return schema


_ERROR_CODES = {
    400: "Bad request (the message names the field)",
    401: "Missing, invalid or expired token",
    403: "The role does not allow this",
    404: "Not found (or not yours)",
    409: "Conflict",
    413: "Body too large",
    429: "Too many attempts",
    503: "Overloaded, not ready, or the database cannot store anything (storage-unavailable)",
}
_WRITES = ("post", "patch", "delete")


def _operation(
    summary: str,
    ok: int,
    ok_schema: dict[str, Any] | None,
    *,
    security: str | None = "user",
    body: Body | None = None,
    query: Query | None = None,
    path_param: str | None = None,
    errors: tuple[int, ...] = (),
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {}}
    params: list[dict[str, Any]] = []
    if path_param:
        params.append(
            {
                "name": path_param,
                "in": "path",
                "required": True,
                "schema": {"type": "string", "pattern": UUID_PATTERN},
            }
        )
    if query is not None:
        params += [
            {"name": name, "in": "query", "required": False, "schema": field.json_schema()}
            for name, field in query.fields.items()
        ]
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": body.json_schema()}},
        }
    success: dict[str, Any] = {"description": "OK"}
    if ok_schema is not None:
        success["content"] = {"application/json": {"schema": ok_schema}}
    op["responses"][str(ok)] = success
    codes = set(errors)
    if security is not None:
        op["security"] = [{"bearer": []}]
        codes.add(401)
    if security == "admin":
        codes.add(403)
    if body is not None or query is not None:
        codes.add(400)
    if body is not None:
        codes.add(413)
    for code in sorted(codes):
        op["responses"][str(code)] = {
            "description": _ERROR_CODES[code],
            "content": {"application/json": {"schema": _ref("Error")}},
        }
    return op


def _cancel_operation() -> dict[str, Any]:
    op = _operation(
        "Stop a queued or running command (it ends cancelled)",
        200,
        _ref("Command"),
        path_param="command_id",
        errors=(404, 409),
    )
    op["responses"]["202"] = {
        "description": "Cancelled, but the database refuses writes now: the command ends"
        " cancelled once it takes them again (the body is the command as stored)",
        "content": {"application/json": {"schema": _ref("Command")}},
    }
    return op


def _with_storage_errors(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every operation that writes may meet a full disk: 503 storage-unavailable."""
    for item in paths.values():
        for method, op in item.items():
            if method in _WRITES and "503" not in op["responses"]:
                op["responses"]["503"] = {
                    "description": _ERROR_CODES[503],
                    "content": {"application/json": {"schema": _ref("Error")}},
                }
    return paths


def _paths() -> dict[str, dict[str, Any]]:
    return {
        "/health/live": {"get": _operation("Liveness", 200, _ref("Health"), security=None)},
        "/health/ready": {
            "get": _operation("Readiness", 200, _ref("Health"), security=None, errors=(503,))
        },
        "/api/v1/auth/login": {
            "post": _operation(
                "Log in", 200, _ref("TokenPair"), security=None, body=auth.LOGIN, errors=(401, 429)
            ),
        },
        "/api/v1/auth/refresh": {
            "post": _operation(
                "New token pair",
                200,
                _ref("TokenPair"),
                security=None,
                body=auth.REFRESH,
                errors=(401,),
            ),
        },
        "/api/v1/auth/logout": {"post": _operation("End the session", 204, None)},
        "/api/v1/auth/me": {"get": _operation("Who am I", 200, _ref("Me"))},
        "/api/v1/users": {
            "get": _operation("List users", 200, _items("User", False), security="admin"),
            "post": _operation(
                "Create a user",
                201,
                _ref("User"),
                security="admin",
                body=users.CREATE,
                errors=(409,),
            ),
        },
        "/api/v1/users/{user_id}": {
            "patch": _operation(
                "Disable or re-enable a user",
                200,
                _ref("User"),
                security="admin",
                body=users.PATCH,
                path_param="user_id",
                errors=(404, 409),
            ),
            "delete": _operation(
                "Delete a user without command history",
                204,
                None,
                security="admin",
                path_param="user_id",
                errors=(404, 409),
            ),
        },
        "/api/v1/vehicles": {
            "get": _operation("List vehicles", 200, _items("Vehicle", True), query=vehicles.LIST),
            "post": _operation(
                "Register a vehicle",
                201,
                _ref("Vehicle"),
                security="admin",
                body=vehicles.CREATE,
                errors=(409,),
            ),
        },
        "/api/v1/vehicles/{vehicle_id}": {
            "get": _operation(
                "One vehicle", 200, _ref("Vehicle"), path_param="vehicle_id", errors=(404,)
            ),
            "patch": _operation(
                "Change a vehicle",
                200,
                _ref("Vehicle"),
                security="admin",
                body=vehicles.PATCH,
                path_param="vehicle_id",
                errors=(404,),
            ),
        },
        "/api/v1/catalogue": {
            "get": _operation("The command catalogue", 200, _items("CatalogueEntry", False)),
        },
        "/api/v1/commands": {
            "get": _operation("Command history", 200, _items("Command", True), query=commands.LIST),
            "post": _operation(
                "Submit a command",
                201,
                _ref("Command"),
                body=commands.SUBMIT,
                errors=(404, 409, 429, 503),
            ),
        },
        "/api/v1/commands/{command_id}": {
            "get": _operation(
                "One command", 200, _ref("Command"), path_param="command_id", errors=(404,)
            ),
        },
        "/api/v1/commands/{command_id}/cancel": {
            "post": _cancel_operation(),
        },
        "/api/v1/commands/{command_id}/responses": {
            "get": _operation(
                "A command's answer",
                200,
                _items("ResponseChunk", False),
                path_param="command_id",
                errors=(404,),
            ),
        },
        "/api/v1/audit": {
            "get": _operation(
                "The audit log", 200, _items("AuditEntry", True), security="admin", query=audit.LIST
            ),
        },
    }


def document(with_metrics: bool) -> dict[str, Any]:
    paths = _with_storage_errors(_paths())
    paths["/openapi.json"] = {
        "get": _operation("This document", 200, {"type": "object"}, security=None)
    }
    if with_metrics:
        paths["/metrics"] = {
            "get": {
                "summary": "Prometheus metrics (text exposition)",
                "responses": {
                    "200": {"description": "OK", "content": {"text/plain": {"schema": _STR}}},
                    "401": {
                        "description": _ERROR_CODES[401],
                        "content": {"application/json": {"schema": _ref("Error")}},
                    },
                },
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SOVD command service",
            "version": "1",
            "description": "Send SOVD diagnostic commands to vehicles and stream their "
            "answers (WS /ws/responses/{command_id}, not described here).",
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def endpoint(with_metrics: bool) -> Callable[[Request], Awaitable[Response]]:
    body = JSONResponse(document(with_metrics)).body  # rendered once

    async def openapi(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return openapi
