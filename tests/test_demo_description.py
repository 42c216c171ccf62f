"""The PDX the project builds with odxtools (app.vehicles.pdx), read back with
odxtools and held against the project's own tables, codecs, requests and emulated ECUs."""

from __future__ import annotations

import asyncio
import io
import random
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import odxtools
import pytest
from odxtools.database import Database
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.specialdata import SpecialData

from app.vehicles import trouble_codes, uds, uds_commands
from app.vehicles.emulator import ecus
from app.vehicles.emulator.ecus import Ecu, Timings
from app.vehicles.pdx import (
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
    build_demo_pdx,
    build_pdx,
    demo_spec,
    scenario,
)
from app.vehicles.pdx.demo import DEMO_ECUS

pytestmark = pytest.mark.fast


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
    counter = read.positive_responses[0].parameters["Counter"]
    assert isinstance(counter, ValueParameter)
    assert isinstance(counter.dop, DataObjectProperty)
    assert counter.dop.unit is not None
    assert counter.dop.unit.display_name == "km"
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
    assert trouble_codes.dtc_code(PdxDtc("C0035", "wheel").trouble_code) == "C0035"


# -- the demo PDX against the project's tables ----------------------------------------------

DEMO_VIN = "WAUZZZ8V0KDP00007"
LAYER_NAMES = {"engine": "ENGINE", "transmission": "TRANSMISSION", "abs": "ABS", "body": "BODY"}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return _load(build_demo_pdx(), tmp_path_factory.mktemp("demo"), "demo.pdx")


def _layer(database: Database, spec: ecus.EcuSpec) -> DiagLayer:
    layer: DiagLayer = database.diag_layers[LAYER_NAMES[spec.name]]
    return layer


def _coded(service: DiagService, name: str) -> int:
    request = service.request
    assert request is not None
    parameter = request.parameters[name]
    assert isinstance(parameter, CodedConstParameter)
    value = parameter.coded_value
    assert isinstance(value, int)
    return value


def test_demo_pdx_is_deterministic_and_one_container_per_ecu(demo: Database) -> None:
    assert build_pdx(demo_spec()) == build_demo_pdx()
    assert [c.short_name for c in demo.diag_layer_containers] == list(LAYER_NAMES.values())
    for spec in ecus.DEFAULT_ECUS:
        container = demo.diag_layer_containers[LAYER_NAMES[spec.name]]
        assert [bv.short_name for bv in container.base_variants] == [LAYER_NAMES[spec.name]]
        assert not container.ecu_variants
        layer = _layer(demo, spec)
        address = layer.sdgs[0].values[0]
        assert isinstance(address, SpecialData)
        assert (layer.sdgs[0].semantic_info, address.semantic_info) == ("ECU", "LOGICAL-ADDRESS")
        assert int(address.value, 16) == spec.address


def _spec(address: int) -> PdxEcu:
    return next(e for e in DEMO_ECUS if e.logical_address == address)


def test_every_ecu_reads_the_dids_description_lists(demo: Database) -> None:
    for spec in ecus.DEFAULT_ECUS:
        layer = _layer(demo, spec)
        reads = {s.short_name: s for s in layer.services if s.short_name.endswith("_Read")}
        dids = _spec(spec.address).dids
        assert sorted(reads) == sorted(f"{d.name}_Read" for d in dids)
        for did in dids:
            service = reads[f"{did.name}_Read"]
            assert _coded(service, "DID_RQ") == did.did
            assert service.long_name == did.long_name
            value = service.positive_responses[0].parameters[did.name]
            assert isinstance(value, ValueParameter)
            unit = value.dop.unit if isinstance(value.dop, DataObjectProperty) else None
            assert (unit.display_name if unit is not None else None) == did.unit
            codec = uds.DID_CODECS.get(did.did)
            assert codec is None or codec.unit == did.unit
            (functional_class,) = service.functional_classes
            assert functional_class.short_name == did.category
    engine = demo.diag_layers["ENGINE"]
    assert _coded(engine.services["VIN_Read"], "DID_RQ") == 0xF190
    assert _coded(engine.services["EngineRpm_Read"], "DID_RQ") == 0x010C
    assert _coded(engine.services["CoolantTemperature_Read"], "DID_RQ") == 0x0105
    assert "EngineRpm_Read" not in _names(demo.diag_layers["BODY"])


def test_every_ecu_lists_its_dtcs_with_codes_texts_and_levels(demo: Database) -> None:
    for spec in ecus.DEFAULT_ECUS:
        (dtc_dop,) = _layer(demo, spec).diag_data_dictionary_spec.dtc_dops
        assert [
            (d.short_name, d.trouble_code, d.display_trouble_code, d.text.text, d.level)
            for d in dtc_dop.dtcs
        ] == [
            (
                d.code,
                trouble_codes.dtc_number(d.code),
                d.code,
                d.text,
                d.level,
            )
            for d in scenario.demo_ecu(spec.layer_name).dtcs
        ]
    (engine_dtcs,) = demo.diag_layers["ENGINE"].diag_data_dictionary_spec.dtc_dops
    p0171 = engine_dtcs.dtcs["P0171"]
    assert (p0171.trouble_code, p0171.text.text, p0171.level) == (
        0x017100,
        "System too lean (bank 1)",
        2,
    )
    (body_dtcs,) = demo.diag_layers["BODY"].diag_data_dictionary_spec.dtc_dops
    assert [d.display_trouble_code for d in body_dtcs.dtcs] == ["B1000"]


def _names(layer: DiagLayer) -> set[str]:
    # (``in`` on odxtools' NamedItemList looks at the items, not their short names)
    return {service.short_name for service in layer.services}


def _preconditions(layer: DiagLayer, name: str) -> list[str]:
    return [state.short_name for state in layer.services[name].pre_condition_states]


def test_sessions_state_chart_and_preconditions(demo: Database) -> None:
    for spec in ecus.DEFAULT_ECUS:
        layer = _layer(demo, spec)
        (chart,) = layer.state_charts
        assert (chart.short_name, chart.semantic) == ("Session", "SESSION")
        assert [s.short_name for s in chart.states] == ["Default", "Extended"]
        assert chart.start_state.short_name == "Default"
        for target, code in (("Default", 0x01), ("Extended", 0x03)):
            service = layer.services[f"{target}_Start"]
            assert _coded(service, "SessionType") == code
            assert sorted(
                (t.source_state.short_name, t.target_state.short_name)
                for t in service.state_transitions
            ) == [("Default", target), ("Extended", target)]
        names = {s.short_name for s in layer.services}
        for routine in _spec(spec.address).routines:
            for action in routine.actions:
                service = layer.services[f"{routine.name}_{action}"]
                assert _coded(service, "RoutineId") == routine.routine_id
                assert (
                    _coded(service, "RoutineControlType")
                    == uds.ROUTINE_ACTIONS[
                        {"Start": "start", "Stop": "stop", "RequestResults": "results"}[action]
                    ]
                )
                assert _preconditions(layer, service.short_name) == list(routine.sessions)
        routines = {n for n in names if n.split("_")[-1] in ("Start", "Stop", "RequestResults")}
        routines -= {"Default_Start", "Extended_Start"}
        assert len(routines) == sum(len(r.actions) for r in _spec(spec.address).routines)
        clear = _spec(spec.address).clear_sessions
        assert _preconditions(layer, "FaultMem_ClearDTCs") == list(clear)
    abs_layer, body, engine = (demo.diag_layers[n] for n in ("ABS", "BODY", "ENGINE"))
    assert _preconditions(abs_layer, "BrakeBleedCheck_Start") == ["Extended"]
    assert "BrakeBleedCheck_Stop" not in _names(abs_layer)
    assert _preconditions(abs_layer, "SelfTest_Start") == []
    assert _preconditions(body, "SelfTest_Start") == ["Extended"]
    assert _preconditions(body, "FaultMem_ClearDTCs") == ["Extended"]
    assert _preconditions(engine, "FaultMem_ClearDTCs") == []
    assert "BrakeBleedCheck_Start" not in _names(engine)


# -- the project's own UDS conversation against the emulated ECUs, read with the PDX ---------


@dataclass(frozen=True, slots=True)
class _Exchanged:
    answer: bytes | None
    nack: int | None = None


@dataclass
class _Recorder:
    """A channel to the emulated ECUs that keeps every request and answer."""

    ecus: dict[int, Ecu]
    now: float = 0.0
    log: list[tuple[int, bytes, bytes | None]] = field(default_factory=list)

    async def exchange(self, ecu: int, request: bytes) -> _Exchanged:
        reply = self.ecus[ecu].handle(request, self.now)
        self.now += reply.work_s + 0.01
        self.log.append((ecu, request, reply.payload))
        return _Exchanged(reply.payload)

    def session_changed(self, ecu: int, session: int) -> None:
        pass


def _recorder() -> _Recorder:
    return _Recorder(
        {
            spec.address: ecus.make_ecu(spec, DEMO_VIN, Timings(s3_s=None), random.Random(7))
            for spec in ecus.DEFAULT_ECUS
        }
    )


def _talk(channel: _Recorder, command: str, **params: str) -> list[tuple[int, bytes, bytes | None]]:
    """Run one command's conversation; what it sent and got, in order."""

    async def run() -> None:
        async for _chunk in uds_commands.conversation(command, params)(channel):
            pass

    start = len(channel.log)
    asyncio.run(run())
    return channel.log[start:]


def _service(layer: DiagLayer, request: bytes) -> DiagService:
    """The one service of ``layer`` whose request ``request`` is."""
    (message,) = layer.decode(request)
    assert isinstance(message.service, DiagService)
    assert message.coding_object is message.service.request
    return message.service


def test_read_data_requests_and_answers(demo: Database) -> None:
    channel = _recorder()
    engine = demo.diag_layers["ENGINE"]

    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x10", dataId="0xF190")
    service = engine.services["VIN_Read"]
    assert bytes(service.encode_request()) == request == bytes.fromhex("22F190")
    assert _service(engine, request) is service
    assert answer is not None
    assert service.decode_message(answer).param_dict == {
        "SID_PR": 0x62,
        "DID_PR": 0xF190,
        "VIN": DEMO_VIN,
    }

    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x10", dataId="0x010C")
    service = engine.services["EngineRpm_Read"]
    assert bytes(service.encode_request()) == request == bytes.fromhex("22010C")
    assert answer is not None
    rpm = service.decode_message(answer).param_dict["EngineRpm"]
    assert rpm == uds.DID_CODECS[uds.ENGINE_RPM].decode(answer[3:])
    assert rpm == int.from_bytes(answer[3:5], "big") * 0.25
    assert 650 <= rpm <= 4500
    value = service.positive_responses[0].parameters["EngineRpm"]
    assert isinstance(value, ValueParameter)
    assert isinstance(value.dop, DataObjectProperty)
    assert value.dop.unit is not None and value.dop.unit.display_name == "rpm"

    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x10", dataId="0x0105")
    assert answer is not None
    coolant = engine.services["CoolantTemperature_Read"].decode_message(answer)
    assert coolant.param_dict["CoolantTemperature"] == answer[3] - 40

    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x28", dataId="0xF195")
    abs_layer = demo.diag_layers["ABS"]
    assert _service(abs_layer, request).short_name == "SoftwareVersion_Read"
    assert answer is not None
    version = abs_layer.services["SoftwareVersion_Read"].decode_message(answer)
    assert version.param_dict["SoftwareVersion"] == "ABS 07.00.02"

    # A DID the body does not have: the ECU's negative answer, decoded with the PDX.
    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x40", dataId="0x010C")
    assert answer == bytes.fromhex("7F2231")
    vin_read = demo.diag_layers["BODY"].services["VIN_Read"]
    negative = vin_read.decode_message(answer)
    assert negative.coding_object is vin_read.negative_responses[0]
    assert negative.param_dict == {"SID_NR": 0x7F, "SIDRQ_NR": 0x22, "NRC": "requestOutOfRange"}


def test_session_switch_and_active_session(demo: Database) -> None:
    channel = _recorder()
    body = demo.diag_layers["BODY"]
    ((_, request, answer),) = _talk(
        channel, "DiagnosticSessionControl", ecuAddress="0x40", session="extended"
    )
    service = body.services["Extended_Start"]
    assert bytes(service.encode_request()) == request == bytes.fromhex("1003")
    assert answer is not None
    assert service.decode_message(answer).param_dict == {
        "SID_PR": 0x50,
        "SessionType": 0x03,
        "P2Server": ecus.P2_SERVER_MS,
        "P2StarServer": ecus.P2_STAR_SERVER_MS,
    }
    ((_, request, answer),) = _talk(channel, "ReadDataByID", ecuAddress="0x40", dataId="0xF186")
    assert answer is not None
    active = body.services["ActiveSession_Read"].decode_message(answer)
    assert active.param_dict["ActiveSession"] == "extended"
    assert bytes(body.services["Default_Start"].encode_request()) == bytes.fromhex("1001")


def test_dtc_report_and_clear(demo: Database) -> None:
    channel = _recorder()
    engine = demo.diag_layers["ENGINE"]
    ((_, request, answer),) = _talk(channel, "ReadDTC", ecuAddress="0x10")
    report = engine.services["FaultMem_ReportDTCByStatusMask"]
    assert bytes(report.encode_request()) == request == bytes.fromhex("1902FF")
    assert _service(engine, request) is report
    assert answer is not None
    decoded = report.decode_message(answer).param_dict
    assert decoded["DTCStatusAvailabilityMask"] == 0xFF
    records = decoded["DTCAndStatusRecord"]
    assert isinstance(records, list)
    found = {}
    for record in records:
        assert isinstance(record, dict)
        dtc = record["DTC"]
        assert isinstance(dtc, DiagnosticTroubleCode)
        found[dtc.display_trouble_code] = (
            dtc.text.text,
            dtc.level,
            tuple(bit for bit in trouble_codes.DTC_STATUS_BITS if record[bit] == "true"),
        )
    assert found == {
        "P0171": (
            "System too lean (bank 1)",
            2,
            trouble_codes.status_bits(scenario.CONFIRMED_ACTIVE),
        ),
        "P0420": (
            "Catalyst system efficiency below threshold (bank 1)",
            3,
            trouble_codes.status_bits(scenario.PENDING_ACTIVE),
        ),
    }

    abs_layer = demo.diag_layers["ABS"]
    ((_, _, answer),) = _talk(channel, "ReadDTC", ecuAddress="0x28")
    assert answer is not None
    abs_report = abs_layer.services["FaultMem_ReportDTCByStatusMask"]
    abs_records = abs_report.decode_message(answer).param_dict["DTCAndStatusRecord"]
    assert isinstance(abs_records, list)
    (record,) = abs_records
    assert isinstance(record, dict)
    assert isinstance(record["DTC"], DiagnosticTroubleCode)
    assert record["DTC"].trouble_code == trouble_codes.dtc_number("C0035")
    assert record["warningIndicatorRequested"] == "true"

    # ClearDTC: read, clear all groups, read again.
    sent = _talk(channel, "ClearDTC", ecuAddress="0x10")
    assert [_service(engine, request).short_name for _, request, _ in sent] == [
        "FaultMem_ReportDTCByStatusMask",
        "FaultMem_ClearDTCs",
        "FaultMem_ReportDTCByStatusMask",
    ]
    clear = engine.services["FaultMem_ClearDTCs"]
    assert bytes(clear.encode_request()) == sent[1][1] == bytes.fromhex("14FFFFFF")
    assert bytes(clear.encode_request(GroupOfDTC=0x017100)) == bytes.fromhex("14017100")
    assert sent[1][2] is not None
    assert clear.decode_message(sent[1][2]).param_dict == {"SID_PR": 0x54}
    assert sent[2][2] is not None
    assert report.decode_message(sent[2][2]).param_dict["DTCAndStatusRecord"] == []

    # The body clears only in the extended session, as its PRE-CONDITION-STATE-REF says.
    body = demo.diag_layers["BODY"]
    sent = _talk(channel, "ClearDTC", ecuAddress="0x40")
    _, request, answer = sent[1]
    assert _service(body, request).short_name == "FaultMem_ClearDTCs"
    assert answer == bytes.fromhex("7F147F")
    refused = body.services["FaultMem_ClearDTCs"].decode_message(answer)
    assert refused.param_dict["NRC"] == "serviceNotSupportedInActiveSession"


def test_routine_requests_and_status_records(demo: Database) -> None:
    channel = _recorder()
    engine = demo.diag_layers["ENGINE"]
    for action, name, state in (
        ("start", "SelfTest_Start", "running"),
        ("results", "SelfTest_RequestResults", "running"),
        ("stop", "SelfTest_Stop", "stopped"),
    ):
        ((_, request, answer),) = _talk(
            channel, "RoutineControl", ecuAddress="0x10", routineId="0x0201", action=action
        )
        service = engine.services[name]
        assert bytes(service.encode_request()) == request
        assert request == bytes((0x31, uds.ROUTINE_ACTIONS[action], 0x02, 0x01))
        assert _service(engine, request) is service
        assert answer is not None
        decoded = service.decode_message(answer).param_dict
        assert (decoded["RoutineId"], decoded["RoutineState"]) == (0x0201, state)
        status = uds.decode_routine_status(answer[4:])
        assert status is not None and decoded["Progress"] == status.progress

    # The brake bleed check needs the extended session; it then fails on C0035.
    abs_layer = demo.diag_layers["ABS"]
    start = abs_layer.services["BrakeBleedCheck_Start"]
    ((_, request, answer),) = _talk(
        channel, "RoutineControl", ecuAddress="0x28", routineId="0x0202", action="start"
    )
    assert bytes(start.encode_request()) == request == bytes.fromhex("31010202")
    assert answer is not None
    assert start.decode_message(answer).param_dict["NRC"] == "conditionsNotCorrect"
    _talk(channel, "DiagnosticSessionControl", ecuAddress="0x28", session="extended")
    ((_, request, answer),) = _talk(
        channel, "RoutineControl", ecuAddress="0x28", routineId="0x0202", action="start"
    )
    assert answer is not None
    assert start.decode_message(answer).param_dict["NRC"] == (
        "failurePreventsExecutionOfRequestedAction"
    )
    results = abs_layer.services["BrakeBleedCheck_RequestResults"]
    ((_, request, answer),) = _talk(
        channel, "RoutineControl", ecuAddress="0x28", routineId="0x0202", action="results"
    )
    assert bytes(results.encode_request()) == request
    assert answer is not None
    assert results.decode_message(answer).param_dict["RoutineState"] == "failed"
