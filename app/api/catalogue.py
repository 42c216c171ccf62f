"""/api/v1/catalogue: the commands this service can send, with their parameters."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import json_response, principal
from app.sovd import CATALOGUE

_ITEMS = {"items": [spec.as_dict() for spec in CATALOGUE.values()]}


async def catalogue(request: Request) -> Response:
    await principal(request)
    return json_response(_ITEMS)
