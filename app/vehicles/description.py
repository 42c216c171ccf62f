"""What each ECU offers, as the SOVD API describes it: the service's "ODX". Pure data.

Derived from the emulated ECUs' specs (``app.vehicles.emulator.ecus``), which the
simulator and the DoIP emulator run, so the description and the behaviour are one
declaration: the data items are the ECU's identification and its live sensors (each
with the codec of ``app.vehicles.uds.DID_CODECS``), the operations its routines (from
``ROUTINES``), and the sessions they need the sessions the spec offers them in. An
address without a default ECU gets identification data only and no operations (it
still has faults and modes).

Fault names and severities are here too, once, for every transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from app.vehicles import uds
from app.vehicles.emulator import ecus
from app.vehicles.emulator.ecus import ROUTINES, EcuSpec


class DataCategory(StrEnum):
    IDENT = "identData"
    CURRENT = "currentData"
    SYSTEM = "sysInfo"


@dataclass(frozen=True, slots=True)
class DataItem:
    id: str  # the SOVD data id, such as "vin" or "engineRpm"
    did: int
    name: str
    category: DataCategory


@dataclass(frozen=True, slots=True)
class Operation:
    id: str  # the SOVD operation id, such as "selfTest"
    routine_id: int
    name: str
    asynchronous: bool  # the start answers at once and the routine runs on
    session: str | None  # the diagnostic session it needs ("extended"), None: any


@dataclass(frozen=True, slots=True)
class EcuDescription:
    data: tuple[DataItem, ...]
    operations: tuple[Operation, ...]
    clear_session: str | None  # the session ClearDTC needs on this ECU, None: any


DEFAULT_ECUS: Final[tuple[tuple[str, int], ...]] = tuple(
    (spec.name, spec.address) for spec in ecus.DEFAULT_ECUS
)

# Every ECU answers these; the names are what a tester shows.
_IDENTIFICATION: Final = (
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
_SENSOR_NAMES: Final[dict[int, str]] = {
    uds.ENGINE_RPM: "Engine speed",
    uds.VEHICLE_SPEED: "Vehicle speed",
    uds.COOLANT_TEMPERATURE: "Coolant temperature",
}

_FAULTS: Final[dict[str, tuple[str, int]]] = {
    # code: (name, severity: 1 most severe .. 4 least)
    "P0171": ("System too lean (bank 1)", 2),
    "P0420": ("Catalyst system efficiency below threshold (bank 1)", 3),
    "P0300": ("Random/multiple cylinder misfire detected", 1),
    "P0128": ("Coolant thermostat below regulating temperature", 4),
    "P0700": ("Transmission control system malfunction", 2),
    "C0035": ("Left front wheel speed sensor circuit", 1),
    "B1000": ("Body control module internal fault", 4),
    "U0100": ("Lost communication with ECM/PCM", 1),
}
DEFAULT_SEVERITY: Final = 3


def _session(sessions: frozenset[int]) -> str | None:
    """The session to switch to when the default one is not among ``sessions``."""
    if uds.DEFAULT_SESSION in sessions:
        return None
    return uds.session_name(min(sessions)) if sessions else None


def _operation(spec: EcuSpec, routine_id: int) -> Operation:
    routine = ROUTINES[routine_id]
    needed = routine.session
    return Operation(
        routine.id,
        routine_id,
        routine.name,
        routine.asynchronous,
        uds.session_name(needed) if needed is not None else _session(spec.routine_sessions),
    )


def _describe(spec: EcuSpec) -> EcuDescription:
    sensors = tuple(
        DataItem(
            uds.DID_CODECS[sensor.did].name,
            sensor.did,
            _SENSOR_NAMES.get(sensor.did, uds.DID_CODECS[sensor.did].name),
            DataCategory.CURRENT,
        )
        for sensor in spec.sensors
    )
    return EcuDescription(
        data=(*_IDENTIFICATION, *sensors),
        operations=tuple(_operation(spec, r) for r in sorted(spec.routines) if r in ROUTINES),
        clear_session=_session(spec.clear_sessions),
    )


_DESCRIPTIONS: Final = {address: _describe(spec) for address, spec in ecus.DEFAULT_SPECS.items()}
_PLAIN: Final = _describe(ecus.plain_spec("plain", 0))


def describe(address: int) -> EcuDescription:
    """What the ECU at ``address`` offers: the default ECU's description, or for any
    other address identification data only and no operations."""
    return _DESCRIPTIONS.get(address, _PLAIN)


def fault_name(code: str) -> str:
    """``P0171`` -> ``System too lean (bank 1)``; "" for a code without a name here."""
    fault = _FAULTS.get(code.upper())
    return fault[0] if fault is not None else ""


def severity(code: str) -> int:
    """1 (most severe) .. 4; ``DEFAULT_SEVERITY`` for a code not in the table."""
    fault = _FAULTS.get(code.upper())
    return fault[1] if fault is not None else DEFAULT_SEVERITY
