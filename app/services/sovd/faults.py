"""SOVD faults of a component: its DTCs (UDS 0x19 to read, 0x14 to clear).

A fault is the ECU's DTC as SOVD shows it: ``code`` the native three bytes in hex,
``display_code`` the SAE form, the eight ISO 14229-1 status bits by name (spelt as the
Eclipse OpenSOVD classic diagnostic adapter, CDA, spells them: ``confirmed_dtc``) and the
status byte as ``mask``. An ECU bound to a description (``described``) adds its
``scope``, the DTC's ``fault_name`` (its TEXT) and ``severity`` (its LEVEL, 1 most
severe); an unbound ECU's faults are what a generic ReadDTC says: no name, severity 0
(unknown, as CDA gives a DTC without a level).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import msgspec

from app.descriptions.fault_status import STATUS_KEYS
from app.errors import NotFound
from app.services.sovd.calls import Outcome, VehicleCalls
from app.services.sovd.entities import Target
from app.vehicles import trouble_codes
from app.vehicles.connector import DtcRecord
from app.vocabulary import CommandName

_NATIVE: Final = re.compile(r"^[0-9A-Fa-f]{6}$")
assert len(STATUS_KEYS) == len(trouble_codes.DTC_STATUS_BITS)


class FaultStatus(msgspec.Struct, frozen=True, kw_only=True):
    test_failed: bool
    test_failed_this_operation_cycle: bool
    pending_dtc: bool
    confirmed_dtc: bool
    test_not_completed_since_last_clear: bool
    test_failed_since_last_clear: bool
    test_not_completed_this_operation_cycle: bool
    warning_indicator_requested: bool
    mask: str  # the status byte, two hex digits


class Fault(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    # A bound ECU's (``described``): "FaultMem" (CDA's field); absent for the others.
    scope: str | msgspec.UnsetType = msgspec.UNSET
    # Absent where a bound ECU's description has none (CDA).
    display_code: str | msgspec.UnsetType = msgspec.UNSET
    fault_name: str | msgspec.UnsetType = msgspec.UNSET
    severity: int  # 1 most severe; 0: unknown (no description, or it gives no level: CDA)
    status: FaultStatus

    def has_status(self, bit: int) -> bool:
        """Whether status bit ``bit`` (0 lowest .. 7) is set."""
        return bool(int(self.status.mask, 16) & (1 << bit))


def _status(byte: int) -> FaultStatus:
    bits = {name: bool(byte & (1 << i)) for i, name in enumerate(STATUS_KEYS)}
    return FaultStatus(**bits, mask=f"{byte:02X}")


def fault_status(byte: int) -> FaultStatus:
    return _status(byte)


def fault_of(dtc: DtcRecord) -> Fault:
    """A fault from one DTC of a generic ReadDTC answer, as the connector read it: its
    codes and status only (no description names it)."""
    return Fault(
        code=f"{dtc.number:06X}",
        display_code=trouble_codes.dtc_code(dtc.number),
        severity=0,
        status=_status(dtc.status),
    )


@dataclass(frozen=True, slots=True)
class FaultFilter:
    # (status bit 0..7, wanted value) pairs, OR'd: a fault is kept if any matches;
    # empty: all.
    status: tuple[tuple[int, bool], ...] = ()
    severity: int | None = None  # this severity or more severe (lower number; 0 unknown)

    def keeps(self, fault: Fault) -> bool:
        if self.severity is not None and fault.severity > self.severity:
            return False
        if not self.status:
            return True
        return any(fault.has_status(bit) is wanted for bit, wanted in self.status)


def matches(fault: Fault, ref: str) -> bool:
    """``ref`` names the fault: its native code (any case) or its display code."""
    if _NATIVE.fullmatch(ref):
        return fault.code == ref.upper()
    return fault.display_code == ref.upper()


class Faults:
    def __init__(self, calls: VehicleCalls) -> None:
        self._calls = calls

    async def read(self, at: Target) -> tuple[list[Fault], str]:
        """The component's faults, read now, and the command that read them."""
        outcome = await self._calls.run(at, CommandName.READ_DTC, {})
        self._calls.check(outcome, f"reading the faults of {at.ecu.name}")
        return _faults(outcome), outcome.command.command_id

    async def clear(self, at: Target, ref: str | None) -> str:
        """Clear all the component's faults, or the one ``ref`` names (NotFound if the ECU
        does not have it). Returns the ClearDTC command's id."""
        params: dict[str, str] = {}
        what = f"clearing the faults of {at.ecu.name}"
        if ref is not None:
            faults, _ = await self.read(at)
            found = next((f for f in faults if matches(f, ref)), None)
            if found is None:
                raise NotFound(f"component {at.ecu.name} has no fault {ref[:16]}")
            params["dtcCode"] = found.code  # the three bytes: that DTC, not its siblings
            what = f"clearing fault {found.code} of {at.ecu.name}"
        outcome = await self._calls.run(at, CommandName.CLEAR_DTC, params)
        self._calls.check(outcome, what)
        return outcome.command.command_id


def _faults(outcome: Outcome) -> list[Fault]:
    return [fault_of(e.dtc) for e in outcome.events if e.dtc is not None]
