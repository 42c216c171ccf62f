"""GET /openapi.json: the OpenAPI 3.1 document, derived from the route table.

``document`` turns the table's declarations (``app.api.contract.Endpoint``) into paths,
parameters, request bodies, responses by status and the error codes each can return.

Request and response schemas are the msgspec types the endpoints decode and encode
(``components/schemas``), so the document cannot drift from what the handlers accept
and send. Added here: ``/metrics`` (text, outside the table), ``command_params`` as one
schema per catalogue command (``app.catalogue.CATALOGUE``), and the response-stream WebSocket
(``x-websockets``: OpenAPI has no WebSocket operations) with its frames and close codes
from ``app.api.ws``. ``info.version`` is the installed package's version.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import msgspec
from starlette.responses import Response

from app.api import ws_closes
from app.api.contract import Endpoint, Error, MediaType
from app.api.deps import UUID_PATTERN
from app.api.error_bodies import SOVD_STANDARD_CODES, GenericError, is_sovd
from app.api.routes import ENDPOINTS
from app.catalogue import CATALOGUE
from app.errors import STATUS_OF
from app.events import FRAMES
from app.version import version
from app.vocabulary import Access, ErrorCode

WS_PATH = "/ws/responses/{command_id}"
DESCRIPTION = (
    "Send SOVD diagnostic commands to vehicles and stream their answers over the"
    f" WebSocket {WS_PATH} (described under x-websockets). Try it at /docs."
)
# The body whose command_params the catalogue describes.
_NEW_COMMAND = "NewCommand"

_JSON = "application/json"


# -- the table as a document ---------------------------------------------------------


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _path_parameter(name: str, also: str | None = None) -> dict[str, Any]:
    schema = {"type": "string", "pattern": UUID_PATTERN}
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": schema if also is None else {"anyOf": [schema, {**schema, "pattern": also}]},
    }


def _query_parameters(kind: type[msgspec.Struct], components: dict[str, Any]) -> list[Any]:
    _, defs = msgspec.json.schema_components([kind], ref_template=_REF_TEMPLATE)
    struct = defs.pop(kind.__name__)  # a query is parameters, not a body
    components.update(defs)  # the enums its parameters refer to
    return [
        {"name": name, "in": "query", "required": False, "schema": prop}
        for name, prop in struct["properties"].items()
    ]


_REF_TEMPLATE = "#/components/schemas/{name}"


def document(
    endpoints: tuple[Endpoint, ...],
    extra_paths: Mapping[str, Any],
    description: str,
    version: str = "1",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the table (``extra_paths`` for routes outside it)."""
    types: list[Any] = [Error, GenericError]
    for e in endpoints:
        if e.body is not None:
            types.append(e.body)
        types.extend(
            t for t in e.responses.values() if t is not None and not isinstance(t, MediaType)
        )
    schemas, defs = msgspec.json.schema_components(types, ref_template=_REF_TEMPLATE)
    components: dict[str, Any] = dict(defs)
    refs = iter(schemas[2:])
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        op: dict[str, Any] = {"summary": e.summary, "operationId": e.handler.__name__}
        if e.description:
            op["description"] = e.description
        if e.tags:
            op["tags"] = list(e.tags)
        parameters = [_path_parameter(p, e.path_also.get(p)) for p in e.path_params]
        if e.query is not None:
            parameters += _query_parameters(e.query, components)
        if parameters:
            op["parameters"] = parameters
        if e.body is not None:
            op["requestBody"] = {"required": True, "content": {_JSON: {"schema": next(refs)}}}
        if e.raw_body is not None:
            binary = {"type": "string", "contentMediaType": e.raw_body.media_type}
            op["requestBody"] = {
                "required": True,
                "description": e.raw_body.description,
                "content": {e.raw_body.media_type: {"schema": binary}},
            }
        responses: dict[str, Any] = {}
        for status, kind in e.responses.items():
            ok: dict[str, Any] = {"description": e.notes.get(status, "OK")}
            if isinstance(kind, MediaType):
                ok["content"] = {kind.media_type: {"schema": {"type": "string"}}}
            elif kind is not None:
                ok["content"] = {_JSON: {"schema": next(refs)}}
            responses[str(status)] = ok
        by_status: dict[int, list[str]] = {}
        for code in e.error_codes():
            by_status.setdefault(STATUS_OF[code], []).append(_code_name(code, e.path))
        error_body = _ref("GenericError" if is_sovd(e.path) else "Error")
        for status, codes in sorted(by_status.items()):
            declared = responses.get(str(status))
            schema: dict[str, Any] = error_body
            description = f"error_code: {', '.join(codes)}"
            if declared is not None and "content" in declared:
                # An error body of its own as well (the OAuth token endpoint's, RFC 6749
                # 5.2): either may come.
                schema = {"anyOf": [declared["content"][_JSON]["schema"], error_body]}
                description = f"{declared['description']}; else {description}"
            responses[str(status)] = {
                "description": description,
                "content": {_JSON: {"schema": schema}},
            }
        op["responses"] = responses
        if e.access is not Access.ANONYMOUS:
            op["security"] = [{"bearer": []}]
        op["x-access"] = e.access.value
        paths.setdefault(e.path, {})[e.method.lower()] = op
    for path, item in extra_paths.items():
        paths.setdefault(path, {}).update(item)
    return {
        "openapi": "3.1.0",
        "info": {"title": "SOVD command service", "version": version, "description": description},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
            },
        },
    }


def _code_name(code: ErrorCode, path: str) -> str:
    """How an error code reads in the document: the SOVD tree names ours vendor-specific."""
    if is_sovd(path) and code not in SOVD_STANDARD_CODES:
        return f"vendor-specific ({code.value})"
    return code.value


def error_reference() -> dict[str, Any]:
    return {"content": {_JSON: {"schema": _ref("Error")}}}


# -- what the table does not hold -------------------------------------------------------


def _command_variants(schema: dict[str, Any]) -> None:
    """Tie ``command_params`` to ``command_name``: one ``oneOf`` branch per command of
    the catalogue, its parameters as the catalogue's own JSON schema."""
    schema["properties"]["command_name"]["enum"] = list(CATALOGUE)
    schema["oneOf"] = [
        {
            "title": name,
            "description": spec.description,
            "properties": {
                "command_name": {"const": name},
                "command_params": spec.params_schema(),
            },
        }
        for name, spec in CATALOGUE.items()
    ]


def _frames() -> dict[str, list[str]]:
    """Each frame's fields by its ``event`` tag, as ``app.events`` declares them."""
    return {
        str(kind.__struct_config__.tag): [
            "event",
            *(f.encode_name for f in msgspec.structs.fields(kind)),
        ]
        for kind in FRAMES
    }


def _websockets() -> dict[str, Any]:
    closes: dict[str, list[str]] = {
        # The refused token's reason is the 401's message (missing, invalid, expired).
        str(ws_closes.CLOSE_POLICY): ["<why the token was refused, as the 401 message says>"],
        str(ws_closes.CLOSE_TOO_BIG): ["<no reason: a client message over 4 KiB after inflating>"],
    }
    for close in ws_closes.CLOSES:
        closes.setdefault(str(close.code), []).append(close.reason)
    return {
        WS_PATH: {
            "summary": "A command's answer: replayed from the history, then live",
            "access": "the command's owner, or an admin",
            "parameters": [
                {
                    "name": "command_id",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": UUID_PATTERN},
                },
                {
                    "name": "token",
                    "in": "query",
                    "description": "access token (or an Authorization: Bearer header)",
                    "schema": {"type": "string"},
                },
                {
                    "name": "since",
                    "in": "query",
                    "description": "send only chunks after this sequence_number (resume)",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,9}$", "default": "0"},
                },
            ],
            "messages": {
                "description": "one JSON object per text frame, by its `event` field; the"
                " stream ends after the terminal status or error event",
                **_frames(),
            },
            "close_codes": dict(sorted(closes.items())),
        }
    }


def _metrics_path() -> dict[str, Any]:
    return {
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics (text exposition)",
                "responses": {
                    "200": {
                        "description": "OK",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    },
                    "401": {
                        "description": "error_code: unauthorized (with a metrics token set)",
                        **error_reference(),
                    },
                },
            }
        }
    }


def build(with_metrics: bool) -> dict[str, Any]:
    doc = document(ENDPOINTS, _metrics_path() if with_metrics else {}, DESCRIPTION, version())
    _command_variants(doc["components"]["schemas"][_NEW_COMMAND])
    doc["x-websockets"] = _websockets()
    return doc


@functools.cache
def render(with_metrics: bool) -> Response:
    """The document as a ready response: rendered once per process and setting (it
    depends on the declarations and the installed version only; a response holds no
    state of a request, so every app of the process may send the same one)."""
    return Response(msgspec.json.encode(build(with_metrics)), media_type="application/json")
