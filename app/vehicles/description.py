"""What each ECU offers, as the unbound SOVD tree describes it, read from the demo
description (``app.vehicles.pdx.demo.DEMO_ECUS``, the one place the demo ECUs' content is
declared): the data items are its DIDs (ids in camelCase: ``EngineRpm`` ->
``engineRpm``, ``VIN`` -> ``vin``; names its long names; categories its functional
classes), the operations its routines (asynchronous when the description has a Stop;
the session they need, the ECU's fault clearing session) and the fault names and
severities its DTCs' texts and levels. An address without a demo ECU gets the
identification items only (``IDENTIFICATION``) and no operations (it still has faults
and modes).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from app.vehicles.pdx.demo import DEMO_ECUS, IDENTIFICATION, sovd_id
from app.vehicles.pdx.spec import PdxDid, PdxEcu, PdxRoutine


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
    (ecu.short_name.lower(), ecu.logical_address or 0) for ecu in DEMO_ECUS
)
DEFAULT_SEVERITY: Final = 3


def _session(states: tuple[str, ...]) -> str | None:
    """The session a service needs (its first precondition state, lowercased, as
    ``app.vehicles.uds.SESSIONS`` names it); None: any."""
    return states[0].lower() if states else None


def _item(did: PdxDid) -> DataItem:
    return DataItem(
        sovd_id(did.name),
        did.did,
        did.long_name or did.name,
        DataCategory(sovd_id(did.category or "IdentData")),
    )


def _operation(routine: PdxRoutine) -> Operation:
    return Operation(
        sovd_id(routine.name),
        routine.routine_id,
        routine.long_name or routine.name,
        "Stop" in routine.actions,
        _session(routine.sessions),
    )


def _describe(ecu: PdxEcu) -> EcuDescription:
    return EcuDescription(
        data=tuple(_item(d) for d in ecu.dids),
        operations=tuple(_operation(r) for r in ecu.routines),
        clear_session=_session(ecu.clear_sessions),
    )


_DESCRIPTIONS: Final = {ecu.logical_address: _describe(ecu) for ecu in DEMO_ECUS}
_PLAIN: Final = EcuDescription(tuple(_item(d) for d in IDENTIFICATION), (), None)
# code: (text, level: 1 most severe .. 4 least)
_FAULTS: Final = {d.code: (d.text, d.level) for ecu in DEMO_ECUS for d in ecu.dtcs}


def describe(address: int) -> EcuDescription:
    """What the ECU at ``address`` offers: the demo ECU's description there, or for any
    other address identification data only and no operations."""
    return _DESCRIPTIONS.get(address, _PLAIN)


def fault_name(code: str) -> str:
    """``P0171`` -> ``System too lean (bank 1)``; "" for a code the demo description
    does not have."""
    fault = _FAULTS.get(code.upper())
    return fault[0] if fault is not None else ""


def severity(code: str) -> int:
    """1 (most severe) .. 4; ``DEFAULT_SEVERITY`` for a code the demo description does
    not have (or gives no level)."""
    fault = _FAULTS.get(code.upper())
    level = fault[1] if fault is not None else None
    return DEFAULT_SEVERITY if level is None else level
