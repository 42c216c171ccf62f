"""/api/v1/catalogue: the commands this service can send, with their parameters."""

from __future__ import annotations

from typing import Any

from app.api.contract import Call, Out
from app.catalogue import CATALOGUE


class CatalogueEntry(Out, frozen=True, kw_only=True):
    command_name: str
    description: str
    params_schema: dict[str, Any]


class Catalogue(Out, frozen=True, kw_only=True):
    items: list[CatalogueEntry]


_ITEMS = Catalogue(
    items=[
        CatalogueEntry(
            command_name=spec.command_name,
            description=spec.description,
            params_schema=spec.params_schema(),
        )
        for spec in CATALOGUE.values()
    ]
)


async def catalogue(call: Call[None, None]) -> Catalogue:
    return _ITEMS
