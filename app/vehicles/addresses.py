"""Logical addresses (ISO 13400-2): ECUs, DoIP entities (gateways) and testers alike have
two bytes, ``0x0001`` to ``0xFFFF``. The one parse / format pair every layer uses.

Read: ``0x`` (or ``0X``) and one to four hex digits in any case; fewer digits mean leading
zeros (``0x10`` is ``0x0010``). Shown and stored as text: ``0x`` and four upper-case
digits (``0x0010``). Pure: no I/O, no imports from the service.
"""

from __future__ import annotations

import re
from typing import Final

# What a logical address looks like (the range is checked by ``parse_address``): the
# pattern the API documents.
ADDRESS_PATTERN: Final = r"^0[xX][0-9A-Fa-f]{1,4}$"
_ADDRESS: Final = re.compile(ADDRESS_PATTERN)
MIN_ADDRESS: Final = 0x0001
MAX_ADDRESS: Final = 0xFFFF
ECU_EXAMPLE: Final = "0x0010"
RANGE: Final = "two bytes in hex from 0x0001 to 0xFFFF"


class InvalidAddress(ValueError):
    """Not a logical address; the message names the field and gives an example."""


def parse_address(raw: object, field: str, example: str = ECU_EXAMPLE) -> int:
    """``raw`` as a number, or InvalidAddress naming ``field`` (``example`` is shown as
    one that would do)."""
    if isinstance(raw, str) and _ADDRESS.fullmatch(raw):
        value = int(raw[2:], 16)
        if MIN_ADDRESS <= value <= MAX_ADDRESS:
            return value
    shown = repr(raw) if isinstance(raw, str) else type(raw).__name__
    raise InvalidAddress(
        f"{field} must be a logical address, {RANGE} such as {example}"
        f" (0x10 is 0x0010), got {shown}"
    )


def format_address(value: int) -> str:
    """``16`` -> ``0x0010``: how an address is shown and stored."""
    if not MIN_ADDRESS <= value <= MAX_ADDRESS:
        raise ValueError(f"a logical address is {RANGE}, got {value:#x}")
    return f"0x{value:04X}"


def canonical_address(raw: object, field: str, example: str = ECU_EXAMPLE) -> str:
    """``0x10`` -> ``0x0010``; InvalidAddress naming ``field`` for anything else."""
    return format_address(parse_address(raw, field, example))


def stored_spellings(value: int) -> tuple[str, ...]:
    """Every spelling an address may have in stored text: ``0x0010``, and ``0x10`` as
    command parameters said it before addresses had two bytes (one byte, two digits)."""
    canonical = format_address(value)
    return (canonical, f"0x{value:02X}") if value <= 0xFF else (canonical,)


def as_shown(raw: str) -> str:
    """A stored address in today's spelling (``0x10`` -> ``0x0010``); text that is no
    address is left as it is."""
    try:
        return canonical_address(raw, "address")
    except InvalidAddress:
        return raw
