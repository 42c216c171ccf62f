"""ECUs answering from an ODX description (app.vehicles.emulator.described): the demo PDX
and a small custom one, in process (every answer decoded again with odxtools), then over
DoIP on loopback with the project's connector, and ``python -m app.vehicles.emulator
--pdx``."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from doipclient import DoIPClient
from odxtools.database import Database
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.parameters.valueparameter import ValueParameter

from app.vehicles import trouble_codes
from app.vehicles.connector import DiagnosticRequest
from app.vehicles.doip_connector import DoipConnector, DoipSettings, DoipTarget
from app.vehicles.emulator import (
    DescribedEcu,
    DescribedSpec,
    EmulatorSettings,
    Timings,
    described_specs,
    load_pdx,
    running_emulator,
)
from app.vehicles.emulator.__main__ import parse_args
from app.vehicles.emulator.server import described_rng
from app.vehicles.pdx import (
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
    build_demo_pdx,
)
from tests.support.doip_helpers import doip_threads, eventually
from tests.support.pdx_files import pdx_of
from tests.test_doip_emulator import ROOT, _read_line

pytestmark = pytest.mark.fast

TINY = PdxSpec(
    (
        PdxEcu(
            "TINY",
            logical_address=0x50,
            dids=(
                PdxDid(0x1234, "Counter", size=2, scale=0.5, offset=-100, unit="km"),
                PdxDid(0x2345, "Gear", names=((0, "park"), (1, "drive"), (2, "reverse"))),
                PdxDid(0xF18C, "SerialNumber", size=10, text=True),
                PdxDid(0x3456, "Secret", size=1, sessions=("Extended",)),
            ),
            dtcs=(PdxDtc("P0001", "one"), PdxDtc("P0002", "two"), PdxDtc("U0100", "lost")),
            routines=(PdxRoutine(0x0301, "Calibrate", sessions=("Extended",)),),
        ),
        PdxEcu("NOADDRESS"),
    ),
    name="TINY_PDX",
)


def _write(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


@pytest.fixture(scope="module")
def demo_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write(tmp_path_factory.mktemp("demo"), "demo.pdx", build_demo_pdx())


@pytest.fixture(scope="module")
def demo(demo_path: Path) -> Database:
    return load_pdx(demo_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Database:
    return load_pdx(_write(tmp_path_factory.mktemp("tiny"), "tiny.pdx", pdx_of(TINY)))


def _spec(database: Database, name: str, address: int = 0x10) -> DescribedSpec:
    layer: DiagLayer = database.diag_layers[name]
    return DescribedSpec(name, address, layer)


def _ecu(database: Database, name: str, seed: int = 1, **timing: Any) -> DescribedEcu:
    return DescribedEcu(_spec(database, name), random.Random(seed), **timing)


def _ask(ecu: DescribedEcu, request: str, now: float = 0.0) -> bytes:
    payload = ecu.handle(bytes.fromhex(request), now).payload
    assert payload is not None
    return payload


def _decoded(ecu: DescribedEcu, service: str, answer: bytes) -> dict[str, Any]:
    """``answer`` decoded by odxtools as an answer of ``service``."""
    message = ecu.spec.layer.services[service].decode_message(answer)
    return dict(message.param_dict)


def _limits(layer: DiagLayer, service: str, parameter: str) -> tuple[float, float]:
    """The physical values a number parameter's DOP can encode (its coded range)."""
    value = layer.services[service].positive_responses[0].parameters[parameter]
    assert isinstance(value, ValueParameter)
    dop = value.dop
    assert isinstance(dop, DataObjectProperty)
    bits = dop.diag_coded_type.get_static_bit_length()
    assert bits is not None
    ends = []
    for internal in (0, (1 << bits) - 1):
        physical = dop.compu_method.convert_internal_to_physical(internal)
        assert isinstance(physical, int | float)
        ends.append(float(physical))
    return min(ends), max(ends)


# -- addresses ------------------------------------------------------------------------------


def test_every_base_variant_at_its_logical_address(demo: Database, tiny: Database) -> None:
    specs = described_specs([demo])
    assert [(s.name, s.address) for s in specs] == [
        ("ENGINE", 0x10),
        ("TRANSMISSION", 0x18),
        ("ABS", 0x28),
        ("BODY", 0x40),
    ]
    moved = described_specs([demo], {"ENGINE": 0x1010})
    assert [s.address for s in moved] == [0x1010, 0x18, 0x28, 0x40]
    with pytest.raises(ValueError, match="NOADDRESS has no logical address"):
        described_specs([tiny])
    assert [(s.name, s.address) for s in described_specs([tiny], {"NOADDRESS": 0x51})] == [
        ("TINY", 0x50),
        ("NOADDRESS", 0x51),
    ]
    with pytest.raises(ValueError, match="both at 0x0018"):
        described_specs([demo], {"ENGINE": 0x18})
    with pytest.raises(ValueError, match="no base variant named GEARBOX"):
        described_specs([demo], {"GEARBOX": 0x18})


def test_cli_serves_the_pdx_and_names_addresses_by_variant(demo_path: Path) -> None:
    args = parse_args(["--pdx", str(demo_path), "--ecus", "ENGINE=0x1010"])
    assert args.ecus == ()
    assert [(s.name, s.address) for s in args.described][:2] == [
        ("ENGINE", 0x1010),
        ("TRANSMISSION", 0x18),
    ]
    assert parse_args([]).described == ()
    for bad in (["--ecus", "0x10"], ["--ecus", "ENGINE=0x0"], ["--ecus", "NOPE=0x10"]):
        with pytest.raises(SystemExit):
            parse_args(["--pdx", str(demo_path), *bad])


# -- reading data ---------------------------------------------------------------------------


def test_reads_decode_with_odxtools_within_the_dops_limits(demo: Database, tiny: Database) -> None:
    engine = _ecu(demo, "ENGINE")
    vin = _decoded(engine, "VIN_Read", _ask(engine, "22F190"))["VIN"]
    assert isinstance(vin, str) and len(vin) == 17 and vin.isalnum() and vin.isupper()
    assert _decoded(engine, "VIN_Read", _ask(engine, "22F190"))["VIN"] == vin  # it stays
    low, high = _limits(engine.spec.layer, "EngineRpm_Read", "EngineRpm")
    rpms = [
        _decoded(engine, "EngineRpm_Read", _ask(engine, "22010C"))["EngineRpm"] for _ in range(20)
    ]
    assert all(low <= rpm <= high for rpm in rpms)
    assert len(set(rpms)) > 1  # live data move
    coolant = _decoded(engine, "CoolantTemperature_Read", _ask(engine, "220105"))
    assert -40 <= coolant["CoolantTemperature"] <= 215

    small = DescribedEcu(_spec(tiny, "TINY", 0x50), random.Random(3))
    counters = [
        _decoded(small, "Counter_Read", _ask(small, "221234"))["Counter"] for _ in range(20)
    ]
    assert all(-100 <= c <= 0xFFFF * 0.5 - 100 and (c * 2) == int(c * 2) for c in counters)
    gears = {_decoded(small, "Gear_Read", _ask(small, "222345"))["Gear"] for _ in range(20)}
    assert gears <= {"park", "drive", "reverse"} and len(gears) > 1
    serial = _decoded(small, "SerialNumber_Read", _ask(small, "22F18C"))["SerialNumber"]
    assert isinstance(serial, str) and len(serial) == 10


def _conversation(ecu: DescribedEcu) -> list[bytes]:
    requests = ["22F190", "22010C", "22010C", "22010D", "220105", "1902FF", "31010201"]
    return [_ask(ecu, r, i * 0.1) for i, r in enumerate(requests)]


def test_same_seed_same_answers_other_seed_other_numbers(demo: Database) -> None:
    assert _conversation(_ecu(demo, "ENGINE", 7)) == _conversation(_ecu(demo, "ENGINE", 7))
    first, other = _conversation(_ecu(demo, "ENGINE", 7)), _conversation(_ecu(demo, "ENGINE", 8))
    assert first[0] != other[0]  # the VIN
    assert first[1:5] != other[1:5]  # the numbers
    spec = _spec(demo, "ENGINE")
    assert described_rng(5, spec).random() == described_rng(5, spec).random()


# -- sessions and preconditions --------------------------------------------------------------


def test_sessions_switch_and_preconditions_refuse_then_accept(demo: Database) -> None:
    body = _ecu(demo, "BODY", s3_s=5.0)
    assert body.session == "Default"
    session = _decoded(body, "ActiveSession_Read", _ask(body, "22F186"))
    assert session["ActiveSession"] == "default"
    # SelfTest_Start and FaultMem_ClearDTCs need Extended: the description's NR_Generic.
    for request, service in (("31010201", "SelfTest_Start"), ("14FFFFFF", "FaultMem_ClearDTCs")):
        refused = _ask(body, request)
        assert refused == bytes((0x7F, int(request[:2], 16), 0x7F))
        assert _decoded(body, service, refused)["NRC"] == "serviceNotSupportedInActiveSession"

    switched = _ask(body, "1003", 1.0)
    assert _decoded(body, "Extended_Start", switched) == {
        "SID_PR": 0x50,
        "SessionType": 0x03,
        "P2Server": 50,
        "P2StarServer": 5000,
    }
    assert body.session == "Extended"
    assert _decoded(body, "ActiveSession_Read", _ask(body, "22F186", 1.1))["ActiveSession"] == (
        "extended"
    )
    started = _decoded(body, "SelfTest_Start", _ask(body, "31010201", 1.2))
    assert started["RoutineState"] == "running"
    assert _ask(body, "14FFFFFF", 1.3) == b"\x54"

    assert _ask(body, "1001", 1.4)[:2] == b"\x50\x01"
    assert body.session == "Default"
    assert _ask(body, "14FFFFFF", 1.5) == b"\x7f\x14\x7f"
    # Extended ends after S3 without a request, and when the tester goes away.
    _ask(body, "1003", 2.0)
    assert _ask(body, "14FFFFFF", 7.5) == b"\x7f\x14\x7f"
    assert body.handle(b"\x10\x83", 8.0).payload is None  # suppressed, yet switched
    assert body.session == "Extended"
    body.reset_session()
    assert body.session == "Default"


def test_abs_bleed_check_needs_extended_and_runs_within_its_start(demo: Database) -> None:
    abs_ecu = _ecu(demo, "ABS")
    start = "BrakeBleedCheck_Start"
    assert _decoded(abs_ecu, start, _ask(abs_ecu, "31010202"))["NRC"] == (
        "serviceNotSupportedInActiveSession"
    )
    _ask(abs_ecu, "1003")
    done = _decoded(abs_ecu, start, _ask(abs_ecu, "31010202"))
    assert (done["RoutineState"], done["Progress"]) == ("completed", 100)  # no Stop: at once


# -- DTCs -------------------------------------------------------------------------------------


def _records(ecu: DescribedEcu, answer: bytes) -> dict[str, int]:
    """The reported DTCs (display code) and their status bytes, as odxtools decodes them."""
    decoded = _decoded(ecu, "FaultMem_ReportDTCByStatusMask", answer)
    assert decoded["DTCStatusAvailabilityMask"] == 0xFF
    found = {}
    for record in decoded["DTCAndStatusRecord"]:
        dtc = record["DTC"]
        assert isinstance(dtc, DiagnosticTroubleCode)
        assert dtc.display_trouble_code is not None
        found[dtc.display_trouble_code] = trouble_codes.status_byte(
            *(bit for bit in trouble_codes.DTC_STATUS_BITS if record[bit] == "true")
        )
    return found


def test_dtc_report_clear_and_back_after_a_self_test(tiny: Database) -> None:
    ecu = DescribedEcu(_spec(tiny, "TINY", 0x50), random.Random(8), routine_s=1.0)
    stored = {trouble_codes.dtc_code(code): status for code, status in ecu.dtcs.items()}
    assert stored == {"P0001": 0x28, "P0002": 0x2F, "U0100": 0x27}  # seed 8's draw
    assert _records(ecu, _ask(ecu, "1902FF")) == stored
    assert _records(ecu, _ask(ecu, "190208")) == {"P0001": 0x28, "P0002": 0x2F}  # confirmed

    assert _ask(ecu, "14000100") == b"\x54"  # one DTC: P0001 (ftb 0)
    assert set(_records(ecu, _ask(ecu, "1902FF"))) == {"P0002", "U0100"}
    assert _ask(ecu, "14123456") == b"\x7f\x14\x31"  # not a DTC it has
    assert _ask(ecu, "14FFFFFF") == b"\x54"
    assert _records(ecu, _ask(ecu, "1902FF")) == {}

    # A completed routine re-runs the tests: the failing DTCs come back, the historic not.
    _ask(ecu, "1003", 10.0)
    _ask(ecu, "31010301", 10.1)
    _ask(ecu, "31030301", 11.2)
    assert _records(ecu, _ask(ecu, "1902FF", 11.3)) == {"P0002": 0x2F, "U0100": 0x27}


def test_demo_dtcs_are_the_descriptions(demo: Database) -> None:
    for seed in range(5):
        engine = _ecu(demo, "ENGINE", seed)
        reported = _records(engine, _ask(engine, "1902FF"))
        assert set(reported) <= {"P0171", "P0420"}
        assert reported == {trouble_codes.dtc_code(c): s for c, s in engine.dtcs.items()}


# -- routines ---------------------------------------------------------------------------------


def test_routine_start_results_stop_progress(demo: Database) -> None:
    engine = _ecu(demo, "ENGINE", routine_s=2.0)

    def status(answer: bytes, service: str) -> tuple[str, int]:
        decoded = _decoded(engine, service, answer)
        assert decoded["RoutineId"] == 0x0201
        return decoded["RoutineState"], decoded["Progress"]

    assert _ask(engine, "31030201") == b"\x7f\x31\x24"  # results before any start
    assert status(_ask(engine, "31010201", 0.0), "SelfTest_Start") == ("running", 0)
    assert _ask(engine, "31010201", 0.1) == b"\x7f\x31\x22"  # already running
    polls = [
        status(_ask(engine, "31030201", t), "SelfTest_RequestResults") for t in (0.5, 1.0, 1.5)
    ]
    assert polls == [("running", 25), ("running", 50), ("running", 75)]
    done = status(_ask(engine, "31030201", 2.1), "SelfTest_RequestResults")
    assert done == ("completed", 100)
    assert engine.routine_state(0x0201) == "completed"
    assert _ask(engine, "31020201", 2.2) == b"\x7f\x31\x24"  # not running: nothing to stop

    assert status(_ask(engine, "31010201", 3.0), "SelfTest_Start") == ("running", 0)
    assert status(_ask(engine, "31020201", 3.5), "SelfTest_Stop") == ("stopped", 25)
    assert status(_ask(engine, "31030201", 9.0), "SelfTest_RequestResults") == ("stopped", 25)


def _first_text(parameter: Any) -> str | None:
    """A text table parameter's first text (None: not one)."""
    dop = getattr(parameter, "dop", None)
    if dop is None or dop.compu_method.category.value != "TEXTTABLE":
        return None
    return str(dop.compu_method.compu_internal_to_phys.compu_scales[0].compu_const.vt)


def test_every_described_service_gets_an_answer_odxtools_decodes(demo: Database) -> None:
    for layer in demo.base_variants:
        ecu = DescribedEcu(DescribedSpec(layer.short_name, 0x10, layer), random.Random(4))
        _ask(ecu, "1003")  # every precondition of the demo is the extended session
        for service in layer.services:
            # (a write's value: the engine's Coding_Write takes one, 1 encodes in any
            # number's DOP; the actuator test's Target is a text table: its first text)
            assert service.request is not None
            needed = {
                p.short_name: _first_text(p) or 1
                for p in service.request.parameters
                if p.is_required
            }
            request = bytes(service.encode_request(**needed))
            answer = _ask(ecu, request.hex())
            message = service.decode_message(answer)
            assert message.coding_object is service.positive_responses[0], service.short_name


# -- what it does not have --------------------------------------------------------------------


def test_unknown_services_dids_and_subfunctions(demo: Database) -> None:
    engine = _ecu(demo, "ENGINE")
    vin_read = engine.spec.layer.services["VIN_Read"]
    # The engine writes its coding only: another DID is out of range; an ECU without a
    # 0x2E service does not support it at all.
    assert _ask(engine, "2E F190 00") == b"\x7f\x2e\x31"
    assert _ask(_ecu(demo, "BODY"), "2E F190 00") == b"\x7f\x2e\x11"  # serviceNotSupported
    unknown_did = _ask(engine, "22FFFF")
    assert unknown_did == b"\x7f\x22\x31"  # requestOutOfRange
    assert vin_read.decode_message(unknown_did).param_dict["NRC"] == "requestOutOfRange"
    assert _ask(engine, "3101FFFF") == b"\x7f\x31\x31"  # a routine it does not have
    assert _ask(engine, "1002") == b"\x7f\x10\x12"  # subFunctionNotSupported
    assert _ask(engine, "190A") == b"\x7f\x19\x12"
    assert _ask(engine, "22F1") == b"\x7f\x22\x13"  # too short for any DID
    assert _ask(engine, "22F19000") == b"\x7f\x22\x13"  # longer than VIN_Read decodes
    assert _ask(engine, "") == b"\x7f\x00\x13"
    # TesterPresent, which the description does not list: answered, or silently.
    assert _ask(engine, "3E00") == b"\x7e\x00"
    assert engine.handle(b"\x3e\x80", 0.0).payload is None


# -- over DoIP ----------------------------------------------------------------------------------

FAST = DoipSettings(
    p2_s=1.0,
    p2_star_s=1.0,
    connect_timeout_s=1.0,
    activation_timeout_s=1.0,
    tester_present_s=0.5,
    backoff_first_s=0.05,
    backoff_max_s=0.2,
    routine_poll_s=0.05,
)


@pytest.mark.socket
def test_the_doip_connector_reads_from_described_ecus(demo: Database) -> None:
    specs = described_specs([demo], {"BODY": 0x1040})
    settings = EmulatorSettings(
        ecus=(), described=specs, seed=11, timings=Timings(self_test_s=0.2, s3_s=5.0)
    )
    twin = DescribedEcu(specs[0], described_rng(11, specs[0]))  # the same seed, in process
    expected_rpm = twin.spec.layer.services["EngineRpm_Read"].decode_message(_ask(twin, "22010C"))

    async def run(connector: DoipConnector, name: str, params: dict[str, str]) -> list[Any]:
        request = DiagnosticRequest("c1", "v1", "WVWZZZ1KZAW000001", "", name, params)
        answer = connector.execute(request)
        try:
            return [dict(chunk.payload) async for chunk in answer]
        finally:
            await answer.aclose()

    async def scenario() -> None:
        async with running_emulator(settings) as emulator:
            assert emulator.addresses == [0x10, 0x18, 0x28, 0x1040]
            target = DoipTarget("127.0.0.1", port=emulator.port, logical_address=0x0001)

            async def resolve(vehicle_id: str) -> DoipTarget | None:
                return target

            connector = DoipConnector(resolve, FAST)
            try:
                (rpm,) = await run(
                    connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}
                )
                assert (rpm["dataId"], rpm["unit"]) == ("0x010C", "rpm")
                assert rpm["value"] == expected_rpm.param_dict["EngineRpm"]
                (vin,) = await run(
                    connector, "ReadDataByID", {"ecuAddress": "0x1040", "dataId": "0xF190"}
                )
                assert isinstance(vin["value"], str) and len(vin["value"]) == 17
                chunks = await run(
                    connector,
                    "RoutineControl",
                    {"ecuAddress": "0x18", "routineId": "0x0201", "action": "run"},
                )
                assert chunks[0]["status"] == "running"
                assert (chunks[-1]["status"], chunks[-1]["progress"]) == ("completed", 100)
                assert emulator.described[0x18].routine_state(0x0201) == "completed"
            finally:
                await connector.aclose()
            await eventually(lambda: not doip_threads(), "the worker threads to end")

    asyncio.run(scenario())


@pytest.fixture
def pdx_process(demo_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.vehicles.emulator",
            "--port",
            "0",
            "--seed",
            "3",
            "--pdx",
            str(demo_path),
            "--ecus",
            "BODY=0x1040",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.socket
def test_python_m_emulator_pdx_serves_the_description(
    pdx_process: subprocess.Popen[str], demo: Database
) -> None:
    listening = json.loads(_read_line(pdx_process, time.monotonic() + 20))
    assert listening["event"] == "emulator_listening"
    assert listening["ecus"] == ["0x0010", "0x0018", "0x0028", "0x1040"]
    assert listening["described"]["0x1040"] == "BODY"
    with DoIPClient("127.0.0.1", 0x0010, tcp_port=listening["port"]) as client:
        client.send_diagnostic(b"\x22\xf1\x90")
        answer = bytes(client.receive_diagnostic(timeout=5))
    decoded = demo.diag_layers["ENGINE"].services["VIN_Read"].decode_message(answer)
    # The VIN it announces (--vin, default EmulatorSettings'), as an ECU with it answers.
    vin = EmulatorSettings().vin
    twin = DescribedEcu(_spec(demo, "ENGINE"), described_rng(3, _spec(demo, "ENGINE")), vin=vin)
    assert answer == _ask(twin, "22F190")
    assert decoded.param_dict["VIN"] == vin
    pdx_process.send_signal(signal.SIGTERM)
    assert pdx_process.wait(timeout=10) == 0
