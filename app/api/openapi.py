"""GET /openapi.json: the OpenAPI 3.1 document, generated from the route table.

Request and response schemas are the msgspec types the endpoints decode and encode
(``components/schemas``), so the document cannot drift from what the handlers accept
and send. Added here: ``/metrics`` (text, outside the table), ``command_params`` as one
schema per catalogue command (``app.sovd.CATALOGUE``), and the response-stream WebSocket
(``x-websockets``: OpenAPI has no WebSocket operations) with its frames and close codes
from ``app.api.ws``. ``info.version`` is the installed package's version.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from app.api import ws
from app.api.contract import document, error_reference
from app.api.deps import UUID_PATTERN
from app.api.routes import ENDPOINTS
from app.events import FRAMES
from app.sovd import CATALOGUE
from app.version import version

WS_PATH = "/ws/responses/{command_id}"
DESCRIPTION = (
    "Send SOVD diagnostic commands to vehicles and stream their answers over the"
    f" WebSocket {WS_PATH} (described under x-websockets). Try it at /docs."
)
# The body whose command_params the catalogue describes.
_NEW_COMMAND = "NewCommand"


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
        str(ws.CLOSE_POLICY): ["<why the token was refused, as the 401 message says>"],
        str(ws.CLOSE_TOO_BIG): ["<no reason: a client message over 4 KiB after inflating>"],
    }
    for close in ws.CLOSES:
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


def render(with_metrics: bool) -> Response:
    """The document as a ready response (rendered once at start-up)."""
    return Response(msgspec.json.encode(build(with_metrics)), media_type="application/json")
