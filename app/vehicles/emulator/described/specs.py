"""The base variants to emulate: PDX files loaded, each base variant at its logical address.

``described_specs`` lists the base variants of loaded PDX files with their logical
addresses: an explicit one (``--ecus NAME=0x...``), else the special data
``LOGICAL-ADDRESS`` (what ``app.vehicles.pdx`` writes), else the comparam
``CP_DoIPLogicalEcuAddress`` (odxtools' ``get_doip_logical_ecu_address``, how real
descriptions say it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import odxtools
from odxtools.database import Database
from odxtools.diaglayers.diaglayer import DiagLayer

from app.descriptions import summary


@dataclass(frozen=True, slots=True, eq=False)
class DescribedSpec:
    """One base variant to emulate, at a logical address."""

    name: str
    address: int
    layer: DiagLayer = field(repr=False)


def load_pdx(path: str | Path) -> Database:
    """A PDX file read with odxtools (``ValueError`` naming the file when it cannot be)."""
    try:
        return odxtools.load_pdx_file(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a PDX odxtools can read ({exc})") from exc


def logical_address(layer: DiagLayer) -> int | None:
    """The layer's logical address, read as binding reads it
    (``app.descriptions.summary.logical_address``); None when it has none."""
    text = summary.logical_address(layer)
    return None if text is None else int(text, 16)


def described_specs(
    databases: Sequence[Database], addresses: Mapping[str, int] | None = None
) -> tuple[DescribedSpec, ...]:
    """Every base variant of ``databases`` at its address: ``addresses[name]`` if given,
    else the description's (``logical_address``). ``ValueError`` for a variant without
    an address, two variants at one address, or a name in ``addresses`` that no
    variant has."""
    given = dict(addresses or {})
    specs: list[DescribedSpec] = []
    seen: dict[int, str] = {}
    for database in databases:
        for layer in database.base_variants:
            name = layer.short_name
            address = given.pop(name, None)
            if address is None:
                address = logical_address(layer)
            if address is None:
                raise ValueError(
                    f"base variant {name} has no logical address (no LOGICAL-ADDRESS special"
                    f" data, no CP_DoIPLogicalEcuAddress): give it one with --ecus {name}=0x..."
                )
            if not 0x0001 <= address <= 0xFFFF:
                raise ValueError(f"base variant {name}: address 0x{address:X} is not 16-bit")
            if address in seen:
                raise ValueError(
                    f"base variants {seen[address]} and {name} are both at 0x{address:04X}:"
                    f" move one with --ecus {name}=0x..."
                )
            seen[address] = name
            specs.append(DescribedSpec(name, address, layer))
    if given:
        raise ValueError(f"no base variant named {', '.join(sorted(given))} in the PDX file(s)")
    if not specs:
        raise ValueError("the PDX file(s) have no base variant")
    return tuple(specs)
