"""What the API lists of a loaded description: the diag layer containers a PDX file
holds, each with its base variants (the ECUs) and ECU variants, and how many services
and DTCs each offers (inherited ones included, as odxtools resolves them)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class LayerSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    services: int
    dtcs: int
    # The ECU's logical address as the layer gives it (``0x0010``), None if it gives none:
    # a special data ``LOGICAL-ADDRESS`` (as ``app.vehicles.pdx`` writes it),
    # else the comparam CP_DoIPLogicalEcuAddress (in CP_UniqueRespIdTable, as real PDX
    # files carry it).
    logical_address: str | None = None


class EcuVariantSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    base_variant: str | None  # the base variant it refines, if it names one
    services: int
    dtcs: int


class ContainerSummary(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    base_variants: list[LayerSummary]
    ecu_variants: list[EcuVariantSummary]
    # Layers that may be shared between files (CDA's files share UDS_Ethernet_DoIP).
    protocols: list[str]


class DescriptionContents(msgspec.Struct, frozen=True, kw_only=True):
    containers: list[ContainerSummary]

    @property
    def base_variants(self) -> list[str]:
        """The ECUs this file provides: one file per base variant in the library."""
        return [b.name for c in self.containers for b in c.base_variants]


def _dtcs(layer: Any) -> int:
    spec = layer.diag_data_dictionary_spec
    codes = {dtc.trouble_code for dop in spec.dtc_dops for dtc in dop.dtcs}
    return len(codes)


def _address_text(raw: object) -> str | None:
    try:
        value = raw if isinstance(raw, int) else int(str(raw).strip(), 0)
    except ValueError:
        return None
    return f"0x{value:04X}" if 0 < value <= 0xFFFF else None


def _special_data(values: Any) -> Any:
    """Special data items, nested groups included (a group has ``values``)."""
    for value in values:
        if hasattr(value, "values"):
            yield from _special_data(value.values)
        else:
            yield value


def logical_address(layer: Any) -> str | None:
    """The layer's logical address (see ``LayerSummary.logical_address``): special data
    ``LOGICAL-ADDRESS`` at any depth (one that is no address from 0x0001 to 0xFFFF is
    passed over), else the comparam ``CP_DoIPLogicalEcuAddress``. The one reading of it,
    for binding and for the emulator alike."""
    for item in _special_data(layer.sdgs):
        if getattr(item, "semantic_info", None) == "LOGICAL-ADDRESS":
            found = _address_text(getattr(item, "value", ""))
            if found is not None:
                return found
    try:
        return _address_text(layer.get_doip_logical_ecu_address())
    except Exception:  # a comparam odxtools cannot read: no address from it
        return None


def _base_of(variant: Any) -> str | None:
    for ref in variant.parent_refs:
        parent = ref.layer  # a weakref proxy: ask it what it is
        if parent.variant_type.value == "BASE-VARIANT":  # odxtools' DiagLayerType
            return str(parent.short_name)
    return None


def summarize(database: Any) -> DescriptionContents:
    """The summary of an odxtools ``Database`` (``Any``: this module never imports
    odxtools, so the service's own process does not either)."""
    containers = []
    for dlc in database.diag_layer_containers:
        containers.append(
            ContainerSummary(
                name=str(dlc.short_name),
                base_variants=[
                    LayerSummary(
                        name=str(b.short_name),
                        services=len(b.services),
                        dtcs=_dtcs(b),
                        logical_address=logical_address(b),
                    )
                    for b in dlc.base_variants
                ],
                ecu_variants=[
                    EcuVariantSummary(
                        name=str(e.short_name),
                        base_variant=_base_of(e),
                        services=len(e.services),
                        dtcs=_dtcs(e),
                    )
                    for e in dlc.ecu_variants
                ],
                protocols=[str(p.short_name) for p in dlc.protocols],
            )
        )
    return DescriptionContents(containers=containers)


class Description(msgspec.Struct, frozen=True, kw_only=True):
    """One PDX file of the library, as ``GET /api/v1/descriptions`` lists it."""

    name: str  # the file name, ``<name>.pdx``
    sha256: str | None  # null until the file has been read
    size_bytes: int
    state: Literal["loading", "ready", "failed"]
    error: str | None  # why it failed to load
    containers: list[ContainerSummary]  # empty until ready
