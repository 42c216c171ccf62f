"""app.descriptions.codec against the demo PDX read by odxtools: services by name in any
case, requests encoded from physical values, answers decoded (values only, with units),
negative answers by the description, and every refusal naming the field."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from odxtools.database import Database

from app.descriptions.codec import LayerCodec
from app.descriptions.parameters import CodecError, jsonable
from app.descriptions.summary import logical_address, summarize
from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec, build_demo_pdx
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def demo() -> Database:
    database = Database()
    database.add_pdx_file(io.BytesIO(build_demo_pdx()))
    database.refresh()
    return database


def test_the_base_variant_of_a_container_in_any_case(demo: Database) -> None:
    engine = LayerCodec.of_container(demo, "engine")
    assert (engine.container, engine.name) == ("ENGINE", "ENGINE")
    assert "EngineRpm_Read" in engine.service_names()
    with pytest.raises(CodecError, match="no diag layer container named FLXC1000"):
        LayerCodec.of_container(demo, "FLXC1000")
    with pytest.raises(CodecError, match="ENGINE has no ECU variant V1"):
        LayerCodec.of_container(demo, "ENGINE", variant="V1")


def test_encode_and_decode_a_did_read(demo: Database) -> None:
    engine = LayerCodec.of_container(demo, "ENGINE")
    encoded = engine.encode("ENGINERPM_READ", {})
    assert (encoded.service_name, encoded.payload, encoded.sid) == (
        "EngineRpm_Read",
        bytes.fromhex("22010C"),
        0x22,
    )
    decoded = encoded.decode(bytes.fromhex("62010C1F40"))
    assert (decoded.parameters, decoded.units, decoded.nrc) == (
        {"EngineRpm": 2000.0},
        {"EngineRpm": "rpm"},
        None,
    )
    negative = encoded.decode(bytes.fromhex("7F2231"))
    assert (negative.nrc, negative.nrc_text, negative.parameters) == (
        0x31,
        "requestOutOfRange",
        {},
    )


def test_a_number_too_large_for_a_float_is_refused_naming_it() -> None:
    # Found in review: float() of a 400-digit integer raised OverflowError, a 500.
    layer = Database()
    spec = PdxSpec(
        (PdxEcu("FLT", dids=(PdxDid(0x1234, "Temp", size=1, scale=0.5, writable=True),)),)
    )
    layer.add_pdx_file(io.BytesIO(pdx_of(spec)))
    layer.refresh()
    codec = LayerCodec.of_container(layer, "FLT")
    for value in (10**400, float("inf")):
        with pytest.raises(CodecError) as refused:
            codec.encode("Temp_Write", {"Temp": value})
        assert refused.value.field == "params.Temp" and "out of range" in str(refused.value)


def test_dtc_records_become_json(demo: Database) -> None:
    report = LayerCodec.of_container(demo, "ENGINE").encode("FaultMem_ReportDTCByStatusMask", {})
    assert report.payload == bytes.fromhex("1902FF")
    decoded = report.decode(bytes.fromhex("5902FF01710009"))
    (record,) = decoded.parameters["DTCAndStatusRecord"]
    assert record["DTC"] == {
        "code": "P0171",
        "troubleCode": "0x017100",
        "text": "System too lean (bank 1)",
        "level": 2,
    }
    assert (record["testFailed"], record["confirmedDTC"]) == ("true", "true")
    assert "SubFunction" not in decoded.parameters  # the echoed constant


def test_parameters_with_defaults_and_given(demo: Database) -> None:
    engine = LayerCodec.of_container(demo, "ENGINE")
    assert engine.encode("FaultMem_ClearDTCs", {}).payload == bytes.fromhex("14FFFFFF")
    clear = engine.encode("FaultMem_ClearDTCs", {"GroupOfDTC": 0x017100})
    assert clear.payload == bytes.fromhex("14017100")
    assert clear.decode(b"\x54").parameters == {}
    (info,) = next(s for s in engine.services() if s.name == "FaultMem_ClearDTCs").params
    assert (info.name, info.type, info.required) == ("GroupOfDTC", "A_UINT32", False)


@pytest.mark.parametrize(
    ("service", "params", "field", "message"),
    [
        ("Nope", {}, "service", "service 'Nope' is not a service of ENGINE"),
        ("FaultMem_ClearDTCs", {"X": 1}, "params.X", "params.X is not a parameter"),
        ("FaultMem_ClearDTCs", {"GroupOfDTC": True}, "params.GroupOfDTC", "must be an integer"),
        ("FaultMem_ClearDTCs", {"GroupOfDTC": 1.5}, "params.GroupOfDTC", "must be an integer"),
        ("FaultMem_ClearDTCs", {"GroupOfDTC": -1}, "params.GroupOfDTC", "does not encode"),
        ("FaultMem_ClearDTCs", {"SID_RQ": 0x14}, "params.SID_RQ", "fixed by the description"),
    ],
)
def test_refusals_name_the_field(
    demo: Database, service: str, params: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(CodecError, match=message) as raised:
        LayerCodec.of_container(demo, "ENGINE").encode(service, params)
    assert raised.value.field == field


def test_answers_the_description_cannot_read(demo: Database) -> None:
    encoded = LayerCodec.of_container(demo, "ENGINE").encode("EngineRpm_Read", {})
    for answer, message in (
        (b"", "is empty"),
        (bytes.fromhex("590200"), "for another service"),
        (bytes.fromhex("7F1931"), "negative response for another service"),
        (bytes.fromhex("62F190"), "does not decode|not one of"),
    ):
        with pytest.raises(CodecError, match=message):
            encoded.decode(answer)


def test_logical_address_from_special_data_or_comparams(demo: Database) -> None:
    summary = summarize(demo)
    assert [b.logical_address for c in summary.containers for b in c.base_variants] == [
        "0x0010",
        "0x0018",
        "0x0028",
        "0x0040",
    ]
    # A real PDX file's layer: CP_DoIPLogicalEcuAddress, through odxtools' comparams.
    real = SimpleNamespace(sdgs=[], get_doip_logical_ecu_address=lambda: 0x1001)
    assert logical_address(real) == "0x1001"
    neither = SimpleNamespace(sdgs=[], get_doip_logical_ecu_address=lambda: None)
    assert logical_address(neither) is None


def test_jsonable() -> None:
    assert jsonable({"a": [b"\x01\xab", 1.5, float("nan"), ("x", 2)]}) == {
        "a": ["01AB", 1.5, "nan", ["x", 2]]
    }
