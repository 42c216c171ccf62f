"""app.descriptions.sovd_map: the SOVD tree CDA's mapping makes of an ODX layer, held
against the demo PDX (its answers made by the emulated ECUs) and a custom layer: a spec
built with ``build_pdx``'s database, plus what that builder does not make (a 0x2E write,
varcoding, 0x85 DTC setting, 0x19 0x04/0x06, a SEMANTIC, a DTC without display code)
added with odxtools' public API before the database is refreshed."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import odxtools
import pytest
from odxtools.database import Database
from odxtools.diaglayers.basevariant import BaseVariant
from odxtools.diaglayers.basevariantraw import BaseVariantRaw
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diaglayers.diaglayertype import DiagLayerType
from odxtools.diaglayers.ecuvariant import EcuVariant
from odxtools.diaglayers.ecuvariantraw import EcuVariantRaw
from odxtools.diagservice import DiagService
from odxtools.functionalclass import FunctionalClass
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import DocType, OdxDocFragment, OdxLinkId, OdxLinkRef
from odxtools.odxtypes import DataType
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.parentref import ParentRef
from odxtools.request import Request
from odxtools.response import Response, ResponseType
from odxtools.standardlengthtype import StandardLengthType

from app.descriptions import sovd_map
from app.descriptions.parameters import CodecError
from app.descriptions.sovd_map import (
    check_precondition,
    configurations,
    data_items,
    decode_answer,
    decode_faults,
    decode_read,
    encode_execution,
    encode_write,
    fault_services,
    find_configuration,
    find_data,
    find_mode,
    find_operation,
    modes,
    operations,
    preconditions,
    start_states,
    strip_suffix,
)
from app.vehicles.emulator import ecus
from app.vehicles.emulator.ecus import Ecu, Timings
from app.vehicles.pdx import (
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
    build_database,
    build_demo_pdx,
    scenario,
)
from tests.support.schemas import dtc_status

pytestmark = pytest.mark.fast

VIN = "WAUZZZ8V0KDP00007"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Database:
    path: Path = tmp_path_factory.mktemp("demo") / "demo.pdx"
    path.write_bytes(build_demo_pdx())
    return odxtools.load_pdx_file(str(path))


def _ecu(name: str) -> Ecu:
    spec = next(s for s in ecus.DEFAULT_ECUS if s.name == name)
    return ecus.make_ecu(spec, VIN, Timings(s3_s=None), random.Random(7))


def _ask(ecu: Ecu, request: bytes) -> bytes:
    payload = ecu.handle(request, 0.0).payload
    assert payload is not None
    return payload


def _names(services: tuple[DiagService | None, ...]) -> tuple[str | None, ...]:
    return tuple(s.short_name if s is not None else None for s in services)


# -- a custom layer: build_pdx's spec, and what build_pdx does not make ---------------------

SPEC = PdxSpec(
    (
        PdxEcu(
            "CUSTOM",
            dids=(
                PdxDid(0x1234, "Counter", "A counter_Read", size=2, scale=0.5, unit="km"),
                PdxDid(0x2345, "LightMode", "Light mode", names=((0, "Off"), (1, "On"))),
                PdxDid(0xF190, "VINDataIdentifier", "VIN", text=True, size=17),
                PdxDid(0x0600, "Coding", "Coding", size=1),
            ),
            dtcs=(PdxDtc("P0171", "Lean", 2), PdxDtc("C0035", "Wheel speed")),
            routines=(
                PdxRoutine(0x0201, "SelfTest", "Self test"),
                PdxRoutine(0x0202, "Flash", "Flash", actions=("Start",)),
                PdxRoutine(0x1002, "CalibrateSensors", sessions=("Extended",)),
                PdxRoutine(0x1003, "Park", "Park", actions=("Start", "RequestResults")),
            ),
        ),
    ),
    name="CUSTOM_PDX",
)


def _uint8() -> StandardLengthType:
    return StandardLengthType(base_data_type=DataType.A_UINT32, bit_length=8)


def _const(name: str, value: int, position: int, bits: int = 8) -> Parameter:
    return CodedConstParameter(
        short_name=name,
        byte_position=position,
        coded_value_raw=str(value),
        diag_coded_type=StandardLengthType(base_data_type=DataType.A_UINT32, bit_length=bits),
    )


class _Extra:
    """Adds services to the CUSTOM base variant of a built database."""

    def __init__(self, database: Database) -> None:
        container = database.diag_layer_containers["CUSTOM"]
        variant: BaseVariant = container.base_variants["CUSTOM"]
        assert isinstance(variant.diag_layer_raw, BaseVariantRaw)
        self.raw = variant.diag_layer_raw
        self.docs = (OdxDocFragment("CUSTOM", DocType.CONTAINER),)
        self.varcoding = self.link("FNC", "VarCoding")
        self.raw.functional_classes.append(
            FunctionalClass(
                odx_id=OdxLinkId("CUSTOM.FNC.VarCoding", self.docs), short_name="VarCoding"
            )
        )

    def link(self, kind: str, name: str) -> OdxLinkRef:
        return OdxLinkRef(f"CUSTOM.{kind}.{name}", self.docs)

    def value(self, name: str, dop: str, position: int, kind: str = "DOP") -> Parameter:
        return ValueParameter(
            short_name=name, semantic="DATA", byte_position=position, dop_ref=self.link(kind, dop)
        )

    def service(
        self,
        name: str,
        request: list[Parameter],
        response: list[Parameter],
        classes: tuple[OdxLinkRef, ...] = (),
    ) -> None:
        self.raw.requests.append(
            Request(
                odx_id=OdxLinkId(f"CUSTOM.RQ.RQ_{name}", self.docs),
                short_name=f"RQ_{name}",
                parameters=NamedItemList(request),
            )
        )
        self.raw.positive_responses.append(
            Response(
                odx_id=OdxLinkId(f"CUSTOM.PR.PR_{name}", self.docs),
                short_name=f"PR_{name}",
                response_type=ResponseType.POSITIVE,
                parameters=NamedItemList(response),
            )
        )
        self.raw.diag_comms_raw.append(
            DiagService(
                odx_id=OdxLinkId(f"CUSTOM.DC.{name}", self.docs),
                short_name=name,
                functional_class_refs=list(classes),
                request_ref=self.link("RQ", f"RQ_{name}"),
                pos_response_refs=[self.link("PR", f"PR_{name}")],
                neg_response_refs=[self.link("NR", "NR_Generic")],
            )
        )

    def tweak_read(
        self, name: str, *, semantic: str | None = None, varcoding: bool = False
    ) -> None:
        service = next(
            s
            for s in self.raw.diag_comms_raw
            if isinstance(s, DiagService) and s.short_name == name
        )
        service.semantic = semantic
        if varcoding:
            service.functional_class_refs.append(self.varcoding)


def _custom_database() -> Database:
    database = build_database(SPEC)
    extra = _Extra(database)
    sid = _const("SID", 0x2E, 0)
    extra.service(
        "Counter_Write",
        [sid, _const("DID", 0x1234, 1, 16), extra.value("Counter", "Counter", 3)],
        [_const("SID_PR", 0x6E, 0), _const("DID_PR", 0x1234, 1, 16)],
    )
    extra.service(
        "Coding_Write",
        [_const("SID", 0x2E, 0), _const("DID", 0x0600, 1, 16), extra.value("Coding", "Coding", 3)],
        [_const("SID_PR", 0x6E, 0), _const("DID_PR", 0x0600, 1, 16)],
        (extra.varcoding,),
    )
    extra.service(
        "Variant_Write",
        [_const("SID", 0x2E, 0), _const("DID", 0x0601, 1, 16), extra.value("Variant", "Coding", 3)],
        [_const("SID_PR", 0x6E, 0), _const("DID_PR", 0x0601, 1, 16)],
        (extra.varcoding,),
    )
    extra.tweak_read("Coding_Read", varcoding=True)
    extra.tweak_read("Counter_Read", semantic="CURRENTDATA")
    for name, code in (("On", 0x01), ("Off", 0x02), ("TimeTravelDTCsOn", 0x42)):
        extra.service(
            f"DTC_Setting_Mode_{name}",
            [_const("SID", 0x85, 0), _const("SettingType", code, 1)],
            [_const("SID_PR", 0xC5, 0), _const("SettingType", code, 1)],
        )
    for name, sub in (("FaultMem_ReportSnapshot", 0x04), ("FaultMem_ReportExtendedData", 0x06)):
        extra.service(
            name,
            [
                _const("SID", 0x19, 0),
                _const("SubFunction", sub, 1),
                extra.value("DTC", "DTC", 2),
                extra.value("RecordNumber", "DTCStatusMask", 5),
            ],
            [
                _const("SID_PR", 0x59, 0),
                _const("SubFunction", sub, 1),
                extra.value("DTC", "DTC", 2),
                extra.value("Status", "DTCStatusMask", 5),
            ],
        )
    assert extra.raw.diag_data_dictionary_spec is not None
    (dtc_dop,) = extra.raw.diag_data_dictionary_spec.dtc_dops
    dtc_dop.dtcs["C0035"].display_trouble_code = None
    # An ECU variant inheriting everything from the base variant (a new container: odxtools
    # lists a container's layers when it is made).
    container = database.diag_layer_containers["CUSTOM"]
    variant = EcuVariant(
        diag_layer_raw=EcuVariantRaw(
            variant_type=DiagLayerType.ECU_VARIANT,
            odx_id=OdxLinkId("CUSTOM.EV.CUSTOM_App", extra.docs),
            short_name="CUSTOM_App",
            parent_refs=[ParentRef(layer_ref=extra.link("BV", "CUSTOM"))],
        )
    )
    database.diag_layer_containers = NamedItemList(
        [dataclasses.replace(container, ecu_variants=NamedItemList([variant]))]
    )
    database.refresh()
    return database


@pytest.fixture(scope="module")
def custom_database() -> Database:
    return _custom_database()


@pytest.fixture(scope="module")
def custom(custom_database: Database) -> DiagLayer:
    # (odxtools holds some references weakly: the database is kept by its fixture)
    layer: DiagLayer = custom_database.diag_layers["CUSTOM"]
    return layer


# -- names ------------------------------------------------------------------------------------


def test_affixes_are_cut_as_cda_does() -> None:
    assert strip_suffix("VINDataIdentifier_Read") == "VINDataIdentifier"
    assert strip_suffix("Coding_WRITE") == "Coding"
    assert strip_suffix("Dump_Read_Dump") == "Dump"
    assert strip_suffix("Foo_Read_Func") == "Foo"
    assert strip_suffix("Actuator_Control") == "Actuator"
    assert strip_suffix("NoAffix") == "NoAffix"
    assert strip_suffix("_Read") == "_Read"  # nothing would be left
    assert strip_suffix("SelfTest_RequestResults", sovd_map.ROUTINE_SUFFIXES) == "SelfTest"


# -- data ---------------------------------------------------------------------------------------


def test_demo_data_items(demo: Database) -> None:
    engine = demo.diag_layers["ENGINE"]
    items = data_items(engine)
    assert [(i.id, i.name, i.category, i.unit) for i in items] == [
        ("VIN", "Vehicle identification number", "", None),
        ("SoftwareVersion", "ECU software version", "", None),
        ("SerialNumber", "ECU serial number", "", None),
        ("ActiveSession", "Active diagnostic session", "", None),
        ("EngineRpm", "Engine speed", "", "rpm"),
        ("VehicleSpeed", "Vehicle speed", "", "km/h"),
        ("CoolantTemperature", "Coolant temperature", "", "degC"),
        ("Coding", "Engine variant coding", "", None),
    ]
    # The engine's coding is written too, and a configuration (FUNCT-CLASS VarCoding).
    assert [i.id for i in items if i.write is not None] == ["Coding"]
    assert [i.id for i in configurations(engine)] == ["Coding"]
    assert [i.id for i in items if i.configuration] == ["Coding"]
    rpm = find_data(engine, "ENGINERPM")
    assert rpm is not None and rpm.read is engine.services["EngineRpm_Read"]
    assert rpm.value_params == ("EngineRpm",)
    assert rpm.service_abstract == ("22010C",)
    assert find_data(engine, "vin") == items[0]
    assert find_data(engine, "EngineRpm_Read") is None
    assert [i.id for i in data_items(demo.diag_layers["BODY"])] == [
        "VIN",
        "SoftwareVersion",
        "SerialNumber",
        "ActiveSession",
    ]
    assert not configurations(demo.diag_layers["BODY"])


def test_demo_reads_decode_emulated_answers(demo: Database) -> None:
    engine, ecu = demo.diag_layers["ENGINE"], _ecu("engine")
    vin = find_data(engine, "vin")
    assert vin is not None
    assert decode_read(vin, _ask(ecu, bytes.fromhex("22F190"))).parameters == {"VIN": VIN}

    answer = _ask(ecu, bytes.fromhex("22010C"))
    rpm = find_data(engine, "engineRpm")
    assert rpm is not None
    decoded = decode_read(rpm, answer)
    assert decoded.parameters == {"EngineRpm": int.from_bytes(answer[3:5], "big") * 0.25}
    assert decoded.units == {"EngineRpm": "rpm"}

    answer = _ask(ecu, bytes.fromhex("220105"))
    coolant = find_data(engine, "coolanttemperature")
    assert coolant is not None
    assert decode_read(coolant, answer).parameters == {"CoolantTemperature": answer[3] - 40}

    active = find_data(engine, "activesession")
    assert active is not None
    assert decode_read(active, _ask(ecu, bytes.fromhex("22F186"))).parameters == {
        "ActiveSession": "default"
    }

    # A negative answer, read with the description's negative response.
    body = demo.diag_layers["BODY"]
    refused = _ask(_ecu("body"), bytes.fromhex("22010C"))
    assert refused == bytes.fromhex("7F2231")
    body_vin = find_data(body, "VIN")
    assert body_vin is not None
    decoded = decode_read(body_vin, refused)
    assert (decoded.nrc, decoded.nrc_text, decoded.parameters) == (0x31, "requestOutOfRange", {})


def test_custom_data_items_units_text_tables_writes_and_varcoding(custom: DiagLayer) -> None:
    items = data_items(custom)
    assert [(i.id, i.name, i.category, i.unit, i.configuration) for i in items] == [
        ("Counter", "A counter", "CURRENTDATA", "km", False),
        ("LightMode", "Light mode", "", None, False),
        ("VINDataIdentifier", "VIN", "", None, False),
        ("Coding", "Coding", "", None, True),
    ]
    counter = find_data(custom, "counter")
    assert counter is not None
    assert _names((counter.read, counter.write)) == ("Counter_Read", "Counter_Write")
    assert counter.service_abstract == ("221234", "2E1234")
    assert find_data(custom, "vindataidentifier") == items[2]
    # Write-only: a configuration, not a data item (CDA lists only 0x22 under data).
    assert find_data(custom, "Variant") is None
    assert [
        (c.id, _names((c.read, c.write)), c.service_abstract) for c in configurations(custom)
    ] == [
        ("Coding", ("Coding_Read", "Coding_Write"), ("220600", "2E0600")),
        ("Variant", (None, "Variant_Write"), ("2E0601",)),
    ]
    coding = find_configuration(custom, "CODING")
    assert coding is not None and coding.id == "Coding"
    assert find_configuration(custom, "Counter") is None

    light = find_data(custom, "lightmode")
    assert light is not None
    assert decode_read(light, bytes.fromhex("62234501")).parameters == {"LightMode": "On"}
    assert decode_read(counter, bytes.fromhex("6212340064")).parameters == {"Counter": 50.0}
    assert decode_read(counter, bytes.fromhex("6212340064")).units == {"Counter": "km"}
    with pytest.raises(CodecError, match="Counter_Read"):
        decode_read(counter, bytes.fromhex("6E1234"))


def test_encode_write_names_a_bad_parameter(custom: DiagLayer) -> None:
    counter = find_data(custom, "Counter")
    assert counter is not None
    assert encode_write(custom, counter, {"Counter": 50.0}).payload == bytes.fromhex("2E12340064")
    assert encode_write(custom, counter, {"Counter": 50}).payload == bytes.fromhex("2E12340064")
    with pytest.raises(CodecError, match=r"Speed is not a parameter of Counter_Write") as error:
        encode_write(custom, counter, {"Speed": 1})
    assert error.value.field == "params.Speed"
    with pytest.raises(CodecError, match=r"Counter of Counter_Write must be a number") as error:
        encode_write(custom, counter, {"Counter": "fifty"})
    assert error.value.field == "params.Counter"
    light = find_data(custom, "LightMode")
    assert light is not None
    with pytest.raises(CodecError, match="LightMode cannot be written") as error:
        encode_write(custom, light, {"LightMode": "On"})
    assert error.value.field == "service"
    written = encode_write(custom, counter, {"Counter": 1})
    assert written.decode(bytes.fromhex("6E1234")).parameters == {}


# -- operations -----------------------------------------------------------------------------------


def test_demo_operations(demo: Database) -> None:
    abs_layer = demo.diag_layers["ABS"]
    found = [
        (
            o.id,
            o.name,
            o.asynchronous_execution,
            o.has_stop,
            o.has_request_results,
            _names((o.start, o.stop, o.request_results)),
        )
        for o in operations(abs_layer)
    ]
    assert found == [
        (
            "SelfTest",
            "Self-test",
            True,
            True,
            True,
            ("SelfTest_Start", "SelfTest_Stop", "SelfTest_RequestResults"),
        ),
        # CDA's rule: a request-results service makes it asynchronous, even though the
        # start runs the check to its end.
        (
            "BrakeBleedCheck",
            "Brake bleed check",
            True,
            False,
            True,
            ("BrakeBleedCheck_Start", None, "BrakeBleedCheck_RequestResults"),
        ),
    ]
    self_test = find_operation(abs_layer, "selftest")
    assert self_test is not None and self_test.start is not None
    assert find_operation(abs_layer, "nosuch") is None
    start = encode_execution(abs_layer, self_test.start, {})
    assert start.payload == bytes.fromhex("31010201")
    answer = _ask(_ecu("abs"), start.payload)
    assert start.decode(answer).parameters == {"RoutineState": "running", "Progress": 0}
    with pytest.raises(CodecError, match=r"params\.Speed is not a parameter of SelfTest_Start"):
        encode_execution(abs_layer, self_test.start, {"Speed": 3})


def test_custom_operations(custom: DiagLayer) -> None:
    found = {
        o.id: (o.name, o.asynchronous_execution, o.has_stop, o.has_request_results)
        for o in operations(custom)
    }
    assert found == {
        "SelfTest": ("Self test", True, True, True),
        "Flash": ("Flash", False, False, False),
        "CalibrateSensors": ("CalibrateSensors", True, True, True),
        "Park": ("Park", True, False, True),
    }
    flash = find_operation(custom, "FLASH")
    assert flash is not None
    assert _names((flash.start, flash.stop, flash.request_results)) == ("Flash_Start", None, None)


# -- modes ----------------------------------------------------------------------------------------


def test_modes(demo: Database, custom: DiagLayer) -> None:
    (session,) = modes(demo.diag_layers["ENGINE"])
    assert (session.id, session.name, session.possible_values) == (
        "session",
        "Diagnostic session",
        ("default", "extended"),
    )
    extended = session.value("Extended")
    assert extended is not None
    assert (extended.name, extended.service.short_name, extended.state) == (
        "Extended",
        "Extended_Start",
        "Extended",
    )
    assert session.value("programming") is None

    assert [m.id for m in modes(custom)] == ["session", "dtcsetting"]
    setting = find_mode(custom, "DTCSetting")
    assert setting is not None
    assert setting.name == "DTC setting"
    assert setting.possible_values == ("on", "off", "timetraveldtcson")
    off = setting.value("OFF")
    assert off is not None and (off.name, off.service.short_name) == ("Off", "DTC_Setting_Mode_Off")
    assert find_mode(demo.diag_layers["ENGINE"], "dtcsetting") is None


# -- preconditions --------------------------------------------------------------------------------


def test_preconditions(demo: Database, custom: DiagLayer) -> None:
    calibrate = custom.services["CalibrateSensors_Start"]
    (needed,) = preconditions(custom, calibrate)
    assert (needed.chart, needed.semantic, needed.states, needed.start_state) == (
        "Session",
        "SESSION",
        ("Extended",),
        "Default",
    )
    assert start_states(custom) == {"Session": "Default"}
    message = "CalibrateSensors_Start needs the session Extended (now: Default)"
    assert check_precondition(custom, calibrate, {}) == message
    assert check_precondition(custom, calibrate, {"Session": "Default"}) == message
    assert check_precondition(custom, calibrate, {"session": "EXTENDED"}) is None
    self_test = custom.services["SelfTest_Start"]
    assert preconditions(custom, self_test) == ()
    assert check_precondition(custom, self_test, {}) is None
    assert check_precondition(custom, self_test, {"Session": "Extended"}) is None

    body = demo.diag_layers["BODY"]
    assert check_precondition(body, body.services["FaultMem_ClearDTCs"], {}) == (
        "FaultMem_ClearDTCs needs the session Extended (now: Default)"
    )
    abs_layer = demo.diag_layers["ABS"]
    bleed = find_operation(abs_layer, "brakebleedcheck")
    assert bleed is not None and bleed.start is not None
    assert check_precondition(abs_layer, bleed.start, {"Session": "Default"}) == (
        "BrakeBleedCheck_Start needs the session Extended (now: Default)"
    )
    engine = demo.diag_layers["ENGINE"]
    assert check_precondition(engine, engine.services["FaultMem_ClearDTCs"], {}) is None


# -- faults ---------------------------------------------------------------------------------


def test_fault_services(demo: Database, custom: DiagLayer) -> None:
    engine = fault_services(demo.diag_layers["ENGINE"])
    assert _names(
        (engine.report_by_status_mask, engine.snapshots, engine.extended_data, engine.clear)
    ) == ("FaultMem_ReportDTCByStatusMask", None, None, "FaultMem_ClearDTCs")
    extra = fault_services(custom)
    assert _names((extra.snapshots, extra.extended_data)) == (
        "FaultMem_ReportSnapshot",
        "FaultMem_ReportExtendedData",
    )
    assert extra.snapshots is not None and extra.extended_data is not None
    request = sovd_map.encode_fault_request(custom, extra.snapshots, 0x017100)
    assert request.payload == bytes.fromhex("1904017100FF")
    request = sovd_map.encode_fault_request(custom, extra.extended_data, 0x403500, 0x01)
    assert request.payload == bytes.fromhex("190640350001")
    with pytest.raises(CodecError, match="does not take a DTC"):
        sovd_map.encode_fault_request(custom, custom.services["Counter_Read"], 0x017100)
    with pytest.raises(CodecError, match="0x123456"):
        sovd_map.encode_fault_request(custom, extra.snapshots, 0x123456)
    snapshot = decode_answer(extra.snapshots, bytes.fromhex("5904017100 2F"))
    assert snapshot.parameters == {
        "DTC": {
            "code": "P0171",
            "troubleCode": "0x017100",
            "text": "Lean",
            "level": 2,
        },
        "Status": 0x2F,
    }


def test_demo_faults_from_the_emulated_ecus(demo: Database) -> None:
    answer = _ask(_ecu("engine"), bytes.fromhex("1902FF"))
    faults = decode_faults(demo.diag_layers["ENGINE"], answer)
    assert [f.as_dict() for f in faults] == [
        {
            "code": "017100",
            "scope": "FaultMem",
            "display_code": "P0171",
            "fault_name": "System too lean (bank 1)",
            "severity": 2,
            "status": dtc_status(scenario.CONFIRMED_ACTIVE),
        },
        {
            "code": "042000",
            "scope": "FaultMem",
            "display_code": "P0420",
            "fault_name": "Catalyst system efficiency below threshold (bank 1)",
            "severity": 3,
            "status": dtc_status(scenario.PENDING_ACTIVE),
        },
    ]
    (c0035,) = decode_faults(demo.diag_layers["ABS"], _ask(_ecu("abs"), bytes.fromhex("1902FF")))
    assert (c0035.code, c0035.display_code, c0035.severity) == ("403500", "C0035", 1)
    assert c0035.status.bit("warning_indicator_requested")
    assert c0035.status.mask == scenario.CONFIRMED_WITH_LAMP


def test_custom_faults_known_dtcs_and_missing_display_codes(custom: DiagLayer) -> None:
    answer = bytes.fromhex("5902FF 0171002F")
    listed = [f.as_dict() for f in decode_faults(custom, answer)]
    assert [(f["code"], f.get("display_code"), f["fault_name"], f["severity"]) for f in listed] == [
        ("017100", "P0171", "Lean", 2),
        # Known to the description, not reported: listed with status 0 (mask 0xFF, CDA).
        ("403500", None, "Wheel speed", 0),
    ]
    assert "display_code" not in listed[1]
    assert listed[1]["status"]["mask"] == "00"
    assert not any(v for k, v in listed[1]["status"].items() if k != "mask")
    # Another mask: only what the ECU reported.
    (only,) = decode_faults(custom, answer, mask=0x08)
    assert only.code == "017100"
    # A DTC the description does not define: no display code, no name, severity 0.
    unknown, *_ = decode_faults(custom, bytes.fromhex("5902FF 12345601"))
    assert (unknown.code, unknown.display_code, unknown.fault_name, unknown.severity) == (
        "123456",
        None,
        None,
        0,
    )
    assert unknown.status.bit("test_failed") and unknown.status.mask == 0x01
    assert [f.code for f in decode_faults(custom, bytes.fromhex("5902FF"))] == ["017100", "403500"]
    with pytest.raises(CodecError, match="not a positive 0x19 0x02 answer"):
        decode_faults(custom, bytes.fromhex("7F1931"))


def test_an_ecu_variant_inherits_the_tree(custom_database: Database) -> None:
    variant = custom_database.diag_layers["CUSTOM_App"]
    assert isinstance(variant, EcuVariant)
    assert variant.diag_layer_raw.diag_comms_raw == []  # all inherited
    assert [i.id for i in data_items(variant)] == [
        "Counter",
        "LightMode",
        "VINDataIdentifier",
        "Coding",
    ]
    assert [c.id for c in configurations(variant)] == ["Coding", "Variant"]
    assert [o.id for o in operations(variant)] == ["SelfTest", "Flash", "CalibrateSensors", "Park"]
    assert [m.id for m in modes(variant)] == ["session", "dtcsetting"]
    calibrate = find_operation(variant, "calibratesensors")
    assert calibrate is not None and calibrate.start is not None
    assert check_precondition(variant, calibrate.start, {"Session": "Default"}) == (
        "CalibrateSensors_Start needs the session Extended (now: Default)"
    )
    assert [f.code for f in decode_faults(variant, bytes.fromhex("5902FF"))] == [
        "017100",
        "403500",
    ]
