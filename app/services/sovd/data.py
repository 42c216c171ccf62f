"""SOVD data of an ECU bound to no description: the ISO 14229-1 identification data
identifiers every ECU answers (UDS 0x22 ReadDataByIdentifier), read with the generic
codecs of ``app.vehicles.uds``. A bound ECU's data are its description's
(``described``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from app.errors import InvalidResponseContent, NotFound
from app.services.sovd.calls import VehicleCalls
from app.services.sovd.entities import Component, Target
from app.vehicles import uds
from app.vocabulary import CommandName

# What a ReadDataByID chunk carries besides the value itself.
_READING_FIELDS = frozenset({"ecuAddress", "dataId", "name", "status"})


class DataCategory(StrEnum):
    IDENT = "identData"
    SYSTEM = "sysInfo"


@dataclass(frozen=True, slots=True)
class DataItem:
    id: str  # the SOVD data id, such as "vin"
    did: int
    name: str
    category: DataCategory


# The identification items of ISO 14229-1 (annex C) that every ECU answers.
IDENTIFICATION: Final = (
    DataItem("vin", uds.VIN, "Vehicle identification number", DataCategory.IDENT),
    DataItem(
        "softwareVersion", uds.ECU_SOFTWARE_VERSION, "ECU software version", DataCategory.IDENT
    ),
    DataItem("serialNumber", uds.ECU_SERIAL_NUMBER, "ECU serial number", DataCategory.IDENT),
    DataItem(
        "activeSession",
        uds.ACTIVE_DIAGNOSTIC_SESSION,
        "Active diagnostic session",
        DataCategory.SYSTEM,
    ),
)


def item(ecu: Component, data_id: str) -> DataItem:
    for found in IDENTIFICATION:
        if found.id == data_id:
            return found
    known = ", ".join(d.id for d in IDENTIFICATION)
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
