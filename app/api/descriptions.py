"""/api/v1/descriptions: the ECU descriptions (PDX files) of the service (admin only).

``POST /api/v1/descriptions?name=<file>.pdx`` takes the file's raw bytes
(``Content-Type: application/zip``, capped by SOVD_PDX_MAX_BYTES instead of the JSON
cap), checks and parses it and stores it, or answers 400/409/413 with nothing stored;
``GET`` lists every file with its state; ``DELETE .../{name}`` removes one.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.api.contract import Call, Out, Query, RawBody, Result
from app.descriptions.summary import Description as Description  # the response type
from app.services.description_files import NAME_PATTERN, NAME_RULE

ZIP = "application/zip"

UPLOAD = RawBody(
    ZIP,
    lambda config: config.pdx_max_bytes,
    "The PDX file's bytes as they are (at most SOVD_PDX_MAX_BYTES, 32 MiB by default)",
)


class DescriptionName(Query, frozen=True, kw_only=True):
    name: Annotated[
        str, msgspec.Meta(pattern=NAME_PATTERN, description=f"the file's name: {NAME_RULE}")
    ]


class DescriptionList(Out, frozen=True, kw_only=True):
    items: list[Description]


async def list_descriptions(call: Call[None, None]) -> DescriptionList:
    return DescriptionList(items=call.services.descriptions.all())


async def add_description(call: Call[bytes, DescriptionName]) -> Result:
    added = await call.services.descriptions.add(call.query.name, call.body)
    return Result(added)


async def remove_description(call: Call[None, None]) -> None:
    name: str = call.request.path_params["name"]
    await call.services.descriptions.remove(name)
