"""A spec to a PDX: one diag layer container per ECU (``build_database``), written by
odxtools and repacked to deterministic bytes (``build_pdx``).

Determinism: odxtools' ``write_pdx_file`` stamps the current time on the index's
CREATION-DATE attributes and on the zip entries; the file it writes is repacked with a
fixed date (``PDX_DATE``) on both, so the same spec gives byte-identical bytes.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Final

from odxtools.admindata import AdminData
from odxtools.database import Database
from odxtools.diagdatadictionaryspec import DiagDataDictionarySpec
from odxtools.diaglayercontainer import DiagLayerContainer
from odxtools.diaglayers.basevariant import BaseVariant
from odxtools.diaglayers.basevariantraw import BaseVariantRaw
from odxtools.diaglayers.diaglayertype import DiagLayerType
from odxtools.diaglayers.ecuvariant import EcuVariant
from odxtools.diaglayers.ecuvariantraw import EcuVariantRaw
from odxtools.docrevision import DocRevision
from odxtools.ecuvariantpattern import EcuVariantPattern
from odxtools.matchingparameter import MatchingParameter
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import OdxLinkId, OdxLinkRef
from odxtools.parentref import ParentRef
from odxtools.specialdata import SpecialData
from odxtools.specialdatagroup import SpecialDataGroup
from odxtools.unitspec import UnitSpec
from odxtools.writepdxfile import write_pdx_file

from app.vehicles.pdx.fault_memory import _add_environment_data, _add_fault_memory
from app.vehicles.pdx.layers import _Layer
from app.vehicles.pdx.services import (
    _add_dids,
    _add_dtc_settings,
    _add_negative_response,
    _add_routines,
    _add_sessions,
)
from app.vehicles.pdx.spec import PdxEcu, PdxSpec, PdxVariant

# The zip entries' and the index's dates: fixed, so the bytes only depend on the spec.
PDX_DATE: Final = (2024, 1, 1, 0, 0, 0)
_INDEX_DATE: Final = "2024-01-01T00:00:00"
_CREATION_DATE = re.compile(rb'CREATION-DATE="[^"]*"')


def _container(ecu: PdxEcu, spec: PdxSpec) -> DiagLayerContainer:
    layer = _Layer(ecu)
    _add_negative_response(layer)
    _add_sessions(layer)
    _add_dids(layer)
    if ecu.fault_memory:
        _add_fault_memory(layer)
        _add_environment_data(layer)
    _add_routines(layer)
    _add_dtc_settings(layer)
    sdgs = []
    if ecu.logical_address is not None:
        sdgs.append(
            SpecialDataGroup(
                semantic_info="ECU",
                values=[
                    SpecialData(
                        semantic_info="LOGICAL-ADDRESS", value=f"0x{ecu.logical_address:02X}"
                    )
                ],
            )
        )
    raw = BaseVariantRaw(
        variant_type=DiagLayerType.BASE_VARIANT,
        odx_id=layer.id("BV", ecu.short_name),
        short_name=ecu.short_name,
        long_name=ecu.long_name,
        functional_classes=NamedItemList(layer.classes.values()),
        diag_data_dictionary_spec=DiagDataDictionarySpec(
            dtc_dops=NamedItemList(layer.dtc_dops),
            data_object_props=NamedItemList(layer.dops),
            structures=NamedItemList(layer.structures),
            end_of_pdu_fields=NamedItemList(layer.eopf),
            unit_spec=UnitSpec(units=NamedItemList(layer.units.values())) if layer.units else None,
        ),
        diag_comms_raw=list(layer.services),
        requests=NamedItemList(layer.requests),
        positive_responses=NamedItemList(layer.positive),
        negative_responses=NamedItemList(layer.negative),
        state_charts=NamedItemList(layer.charts),
        sdgs=sdgs,
    )
    base = BaseVariant(diag_layer_raw=raw)
    return DiagLayerContainer(
        odx_id=OdxLinkId(f"DLC.{ecu.short_name}", layer.docs),
        short_name=ecu.short_name,
        long_name=ecu.long_name,
        admin_data=AdminData(
            language="en-US",
            doc_revisions=[
                DocRevision(revision_label=spec.revision, state="released", date=spec.date)
            ],
        ),
        base_variants=NamedItemList([base]),
        ecu_variants=NamedItemList(_variant(ecu, v, base) for v in ecu.variants),
    )


def _variant(ecu: PdxEcu, variant: PdxVariant, base: BaseVariant) -> EcuVariant:
    """An ECU variant: its own DIDs' services, the base variant's by inheritance, and its
    ECU-VARIANT-PATTERNs."""
    layer = _Layer(PdxEcu(variant.name, sessions=ecu.sessions, dids=variant.dids), ecu.short_name)
    _add_dids(layer)
    raw = EcuVariantRaw(
        variant_type=DiagLayerType.ECU_VARIANT,
        odx_id=layer.id("EV", variant.name),
        short_name=variant.name,
        functional_classes=NamedItemList(layer.classes.values()),
        diag_data_dictionary_spec=DiagDataDictionarySpec(
            data_object_props=NamedItemList(layer.dops),
            unit_spec=UnitSpec(units=NamedItemList(layer.units.values())) if layer.units else None,
        ),
        diag_comms_raw=list(layer.services),
        requests=NamedItemList(layer.requests),
        positive_responses=NamedItemList(layer.positive),
        parent_refs=[ParentRef(layer_ref=OdxLinkRef.from_id(base.odx_id))],
        ecu_variant_patterns=[
            EcuVariantPattern(
                matching_parameters=[
                    MatchingParameter(
                        expected_value=expected, diag_comm_snref=service, out_param_if_snref=out
                    )
                    for service, out, expected in pattern
                ]
            )
            for pattern in variant.patterns
        ],
    )
    return EcuVariant(diag_layer_raw=raw)


def build_database(spec: PdxSpec) -> Database:
    """The odxtools database of ``spec`` (references resolved), before it is written."""
    database = Database()
    database.short_name = spec.name
    database.diag_layer_containers = NamedItemList(_container(ecu, spec) for ecu in spec.ecus)
    database.refresh()
    return database


def _repack(written: bytes) -> bytes:
    """The PDX with fixed dates on its entries and in its index: deterministic bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(written)) as source,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "index.xml":
                data = _CREATION_DATE.sub(f'CREATION-DATE="{_INDEX_DATE}"'.encode(), data)
            info = zipfile.ZipInfo(entry.filename, date_time=PDX_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return out.getvalue()


def build_pdx(spec: PdxSpec) -> bytes:
    """The bytes of a PDX file describing ``spec``'s ECUs (see the package's docstring for
    the layers and services); the same spec gives the same bytes."""
    database = build_database(spec)
    with tempfile.TemporaryDirectory(prefix="pdx-") as directory:
        path = Path(directory) / f"{spec.name}.pdx"
        write_pdx_file(str(path), database)
        return _repack(path.read_bytes())
