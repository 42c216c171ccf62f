"""The PDX the project builds with odxtools (app.vehicles.demo_description), read back with
odxtools and held against the project's own tables, codecs, requests and emulated ECUs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import odxtools
import pytest
from odxtools.database import Database
from odxtools.diaglayers.diaglayer import DiagLayer

from app.vehicles import uds
from app.vehicles.demo_description import (
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
    build_pdx,
)


def _load(pdx: bytes, tmp_path: Path, name: str = "description.pdx") -> Database:
    path = tmp_path / name
    path.write_bytes(pdx)
    return odxtools.load_pdx_file(str(path))


# -- build_pdx with a tiny spec -----------------------------------------------------------

TINY = PdxSpec(
    (
        PdxEcu(
            "TINY",
            logical_address=0x50,
            dids=(PdxDid(0x1234, "Counter", "A counter", size=2, scale=0.5, unit="km"),),
        ),
    ),
    name="TINY_PDX",
)


def test_build_pdx_tiny_spec_loads_encodes_and_decodes(tmp_path: Path) -> None:
    database = _load(build_pdx(TINY), tmp_path)
    assert [layer.short_name for layer in database.diag_layers] == ["TINY"]
    layer: DiagLayer = database.diag_layers["TINY"]
    names = sorted(service.short_name for service in layer.services)
    assert names == sorted(
        [
            "Default_Start",
            "Extended_Start",
            "Counter_Read",
            "FaultMem_ReportDTCByStatusMask",
            "FaultMem_ClearDTCs",
        ]
    )
    read = layer.services["Counter_Read"]
    assert read.long_name == "A counter"
    assert bytes(read.encode_request()) == bytes.fromhex("221234")
    message = read.decode_message(bytes.fromhex("621234 0064"))
    assert message.param_dict["Counter"] == 50.0
    assert read.positive_responses[0].parameters["Counter"].dop.unit.display_name == "km"
    negative = read.decode_message(bytes.fromhex("7f2231"))
    assert negative.param_dict["NRC"] == "requestOutOfRange"


def test_build_pdx_is_deterministic() -> None:
    first = build_pdx(TINY)
    assert build_pdx(TINY) == first
    with zipfile.ZipFile(io.BytesIO(first)) as pdx:
        assert sorted(pdx.namelist()) == ["TINY.odx-d", "index.xml"]
        assert {info.date_time for info in pdx.infolist()} == {(2024, 1, 1, 0, 0, 0)}


def test_spec_checks_names_and_sessions() -> None:
    with pytest.raises(ValueError, match="short name"):
        PdxEcu("NOT OK")
    with pytest.raises(ValueError, match="no session named Programming"):
        PdxEcu("X", routines=(PdxRoutine(0x0201, "SelfTest", sessions=("Programming",)),))
    with pytest.raises(ValueError, match="DTC display code"):
        PdxDtc("X0171", "no such letter")
    with pytest.raises(ValueError, match="unique"):
        PdxSpec((PdxEcu("A"), PdxEcu("A")))
    assert uds.dtc_code(PdxDtc("C0035", "wheel").trouble_code) == "C0035"
