"""GET /openapi.json: the OpenAPI 3.1 document, generated from the route table.

Request and response schemas are the msgspec types the endpoints decode and encode
(``components/schemas``), so the document cannot drift from what the handlers accept
and send. Only ``/metrics`` (text, outside the table) is described here by hand.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

from app.api.contract import document, error_reference
from app.api.routes import ENDPOINTS

DESCRIPTION = (
    "Send SOVD diagnostic commands to vehicles and stream their answers"
    " (WS /ws/responses/{command_id}, not described here)."
)


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


def render(with_metrics: bool) -> Response:
    """The document as a ready response (rendered once at start-up)."""
    doc = document(ENDPOINTS, _metrics_path() if with_metrics else {}, DESCRIPTION)
    return Response(msgspec.json.encode(doc), media_type="application/json")
