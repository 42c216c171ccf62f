"""Diagnostic trouble codes (ISO 14229-1 / SAE J2012): the DTC status byte and its bits,
a DTC's number and its display code (``P0171``, the failure type apart), and the
ReadDTCInformation 0x19 0x02 answer. Pure functions, no I/O; the rest of UDS's vocabulary
is ``app.vehicles.uds``.

Display codes follow SAE J2012 / ISO 15031-6: the first two bytes of a 3-byte UDS DTC
carry the letter and four digits (``P0171``), the third byte is the failure type (FTB),
which the display code leaves out.
"""

from __future__ import annotations

import re
from typing import Final

from app.vehicles.uds import READ_DTC_INFORMATION, positive

# -- DTC status byte (ISO 14229-1 D.2) ---------------------------------------------------

DTC_STATUS_BITS: Final = (
    "testFailed",
    "testFailedThisOperationCycle",
    "pendingDTC",
    "confirmedDTC",
    "testNotCompletedSinceLastClear",
    "testFailedSinceLastClear",
    "testNotCompletedThisOperationCycle",
    "warningIndicatorRequested",
)
TEST_FAILED: Final = 0x01
PENDING_DTC: Final = 0x04
CONFIRMED_DTC: Final = 0x08
ALL_DTC_STATUS_BITS: Final = 0xFF


def status_bits(status: int) -> tuple[str, ...]:
    """The names of the bits set in a DTC status byte, lowest bit first."""
    return tuple(name for bit, name in enumerate(DTC_STATUS_BITS) if status & (1 << bit))


def status_byte(*names: str) -> int:
    """The status byte with the named bits set; ValueError for an unknown name."""
    value = 0
    for name in names:
        try:
            value |= 1 << DTC_STATUS_BITS.index(name)
        except ValueError:
            raise ValueError(f"{name!r} is not a DTC status bit") from None
    return value


def status_summary(status: int) -> str:
    """One word for a DTC's state, as a workshop says it: ``confirmed`` (confirmed and
    failing now), ``historic`` (confirmed, not failing now), ``pending`` (failed this or
    the last cycle, not yet confirmed), ``failed`` (failing, neither pending nor
    confirmed), else ``stored``."""
    if status & CONFIRMED_DTC:
        return "confirmed" if status & TEST_FAILED else "historic"
    if status & PENDING_DTC:
        return "pending"
    if status & TEST_FAILED:
        return "failed"
    return "stored"


# -- DTC numbers and their SAE display codes ------------------------------------------

_LETTERS: Final = "PCBU"
_DISPLAY = re.compile(r"^([PCBU])([0-3])([0-9A-F]{3})$")
ALL_DTC_GROUPS: Final = 0xFFFFFF


def dtc_code(dtc: int) -> str:
    """The SAE display code of a 3-byte DTC: 0x017100 -> ``P0171`` (FTB left out)."""
    if not 0 <= dtc <= 0xFFFFFF:
        raise ValueError(f"a DTC has three bytes, got 0x{dtc:X}")
    high = dtc >> 16
    letter = _LETTERS[high >> 6]
    return f"{letter}{(high >> 4) & 0x3}{high & 0xF:X}{(dtc >> 8) & 0xFF:02X}"


def failure_type(dtc: int) -> int:
    """The failure type byte (FTB) of a 3-byte DTC."""
    return dtc & 0xFF


def dtc_number(code: str, ftb: int = 0) -> int:
    """The 3-byte DTC of an SAE display code: ``P0171`` -> 0x017100."""
    match = _DISPLAY.match(code.upper())
    if match is None:
        raise ValueError(f"{code!r} is not a DTC display code such as P0171")
    if not 0 <= ftb <= 0xFF:
        raise ValueError(f"a failure type is one byte, got 0x{ftb:X}")
    letter, first, rest = match.groups()
    high = (_LETTERS.index(letter) << 6) | (int(first) << 4) | int(rest[0], 16)
    return (high << 16) | (int(rest[1:], 16) << 8) | ftb


# -- ReadDTCInformation 0x19 0x02 (report DTCs by status mask) ---------------------------

REPORT_DTC_BY_STATUS_MASK: Final = 0x02


def encode_dtc_report(availability_mask: int, records: list[tuple[int, int]]) -> bytes:
    """The positive answer to 0x19 0x02: availability mask, then DTC (3 bytes) + status
    (1 byte) per record."""
    body = bytearray((REPORT_DTC_BY_STATUS_MASK, availability_mask))
    for dtc, status in records:
        body += dtc.to_bytes(3, "big") + bytes((status,))
    return positive(READ_DTC_INFORMATION, bytes(body))
