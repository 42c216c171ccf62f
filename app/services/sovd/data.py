"""SOVD data of a component: its data identifiers (UDS 0x22 ReadDataByIdentifier)."""

from __future__ import annotations

from typing import Any

from app.errors import InvalidResponseContent, NotFound
from app.services.sovd.calls import VehicleCalls
from app.services.sovd.entities import Component, Target
from app.vehicles import uds
from app.vehicles.description import DataItem
from app.vocabulary import CommandName

# What a ReadDataByID chunk carries besides the value itself.
_READING_FIELDS = frozenset({"ecuAddress", "dataId", "name", "status"})


def item(ecu: Component, data_id: str) -> DataItem:
    for found in ecu.description.data:
        if found.id == data_id:
            return found
    known = ", ".join(d.id for d in ecu.description.data)
    raise NotFound(f"component {ecu.name} has no data {data_id[:64]} (it has: {known})")


class Data:
    def __init__(self, calls: VehicleCalls) -> None:
        self._calls = calls

    async def read(self, at: Target, wanted: DataItem) -> tuple[dict[str, Any], str]:
        """The value now (``{"value": ..., "unit"?: ...}``) and the command that read it."""
        outcome = await self._calls.run(
            at, CommandName.READ_DATA_BY_ID, {"dataId": uds.format_did(wanted.did)}
        )
        ecu = at.ecu
        self._calls.check(outcome, f"reading {wanted.id} of {ecu.name}")
        answer = outcome.last
        if answer is None or not ({"value", "raw"} & answer.keys()):
            raise InvalidResponseContent(
                f"the answer for {wanted.id} of {ecu.name} holds no value",
                command_id=outcome.command.command_id,
            )
        return {
            k: v for k, v in answer.items() if k not in _READING_FIELDS
        }, outcome.command.command_id
