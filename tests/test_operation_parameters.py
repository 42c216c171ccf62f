"""Typed operation parameters end to end (#21 item 1): a routine's Start declares them in
the spec (``PdxNumber``, ``PdxChoice``), ``build_pdx`` makes real DOPs of them, the
described ECU decodes them with odxtools and refuses a value beyond the declared limits
(0x31), and the SOVD operation offers their schema and sends them encoded.

The demo engine's ``ActuatorTest`` (Duration 0.5..30 s in half seconds, Target one of
three actuators) over the ASGI transport, a real SQLite file, the seeded simulator
(latency 0) whose ECUs answer as the demo PDX describes them."""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import odxtools
import pytest
from odxtools.database import Database

from app.builders import simulator_for
from app.vehicles.emulator.described import DescribedEcu, DescribedSpec
from app.vehicles.pdx import PdxChoice, PdxNumber, PdxRoutine
from app.vehicles.pdx.demo import ACTUATOR_TEST, build_demo_pdx
from app.vehicles.pdx.scenario import check_scenario
from app.vehicles.simulator import SimulatedConnector
from tests.support.harness import DEADLINE_S, Server, auth, in_process, make_config

pytestmark = pytest.mark.fast

DIALECT = "https://json-schema.org/draft/2020-12/schema"


# -- the spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: PdxNumber("Bad name"), "not an ODX short name"),
        (lambda: PdxNumber("D", size=5), "1 to 4 bytes"),
        (lambda: PdxNumber("D", scale=0), "scale must be above 0"),
        (lambda: PdxNumber("D", low=5, high=1), "low 5 is above high 1"),
        (lambda: PdxNumber("D", low=300), "no raw value of 1 byte"),
        (lambda: PdxNumber("D", scale=0.5, high=0.7), "no raw value"),
        (lambda: PdxChoice("T", ()), "at least one value"),
        (lambda: PdxChoice("T", ((1, "A"), (1, "B"))), "unique"),
        (lambda: PdxChoice("T", ((1, "A"), (2, "A"))), "unique"),
        (lambda: PdxChoice("T", ((256, "A"),)), "does not fit 1 byte"),
        (lambda: PdxChoice("T", ((1, " "),)), "name is empty"),
        (lambda: PdxRoutine(1, "R", parameters=(PdxNumber("D"), PdxNumber("D"))), "unique"),
        (lambda: PdxRoutine(1, "R", parameters=(PdxNumber("RoutineId"),)), "none of"),
        (
            lambda: PdxRoutine(1, "R", actions=("Stop",), parameters=(PdxNumber("D"),)),
            "has no Start",
        ),
    ],
)
def test_parameters_are_checked_when_made(make: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        make()


def test_the_demo_scenario_names_parameters_the_routine_has() -> None:
    check_scenario()  # the actuator test runs for its Duration, which its Start has


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with tempfile.NamedTemporaryFile(suffix=".pdx") as f:
        f.write(build_demo_pdx())
        f.flush()
        yield odxtools.load_pdx_file(f.name)


def _engine(database: Database) -> Any:
    return next(layer for layer in database.base_variants if layer.short_name == "ENGINE")


def test_the_pdx_has_real_dops_odxtools_encodes(database: Database) -> None:
    start = _engine(database).services.ActuatorTest_Start
    assert [p.short_name for p in start.request.parameters] == [
        "SID_RQ",
        "RoutineControlType",
        "RoutineId",
        "Duration",
        "Target",
    ]
    payload = bytes(start.encode_request(Duration=2.5, Target="FuelPump"))
    assert payload == bytes.fromhex("310102030502")  # 2.5 s = raw 5 (scale 0.5)
    assert start.request.decode(payload)["Duration"] == 2.5
    duration = start.request.parameters.Duration.dop
    assert duration.unit.display_name == "s"
    limits = duration.internal_constr  # the raw limits of 0.5 and 30 s
    assert (limits.lower_limit.value, limits.upper_limit.value) == (1, 60)
    # Stop and RequestResults carry none.
    stop = _engine(database).services.ActuatorTest_Stop
    assert [p.short_name for p in stop.request.parameters][-1] == "RoutineId"


# -- the described ECU ---------------------------------------------------------------------


def test_the_described_ecu_decodes_and_refuses_beyond_the_limits(database: Database) -> None:
    layer = _engine(database)
    ecu = DescribedEcu(DescribedSpec("ENGINE", 0x10, layer), random.Random(1), routine_s=5.0)
    start = layer.services.ActuatorTest_Start
    beyond = bytes(start.encode_request(Duration=31, Target="IdleValve"))  # raw 62 > 60
    reply = ecu.handle(beyond, 0.0)
    assert reply.payload == bytes.fromhex("7F3131")  # requestOutOfRange
    assert ecu.routine_state(ACTUATOR_TEST) is None  # nothing ran
    zero = bytes(start.encode_request(Duration=0, Target="IdleValve"))  # raw 0 < 1
    assert ecu.handle(zero, 0.0).payload == bytes.fromhex("7F3131")
    ok = bytes(start.encode_request(Duration=30, Target="CoolingFan"))
    answer = ecu.handle(ok, 0.0).payload
    assert answer is not None and answer[:4] == bytes.fromhex("71010203")
    assert ecu.routines[ACTUATOR_TEST].parameters == {"Duration": 30.0, "Target": "CoolingFan"}
    # A raw value no text table entry has (Target 9): out of range too; a request cut
    # short of its parameters is of the wrong length.
    assert ecu.handle(ok[:-1] + b"\x09", 1.0).payload == bytes.fromhex("7F3131")
    assert ecu.handle(ok[:-1], 1.0).payload == bytes.fromhex("7F3113")


# -- over SOVD -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, SimulatedConnector]]:
    config = make_config(tmp_path_factory.mktemp("params"), command_timeout_s=3.0)
    simulator = simulator_for(config)
    with in_process(config, connector=simulator) as server:
        yield server, simulator


@pytest.fixture(scope="module")
def golf(world: tuple[Server, SimulatedConnector]) -> dict[str, Any]:
    srv = world[0]
    r = srv.http.get("/api/v1/vehicles", params={"search": "Golf"}, headers=auth(srv.token()))
    return dict(r.json()["items"][0])


def _op(vehicle: dict[str, Any], path: str = "") -> str:
    return f"/sovd/vehicles/{vehicle['vin']}/v1/components/engine/operations/ActuatorTest{path}"


def _chunk(srv: Server, command_id: str) -> dict[str, Any]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(srv.admin_token()))
    return dict(r.json()["items"][-1]["response_payload"])


def _idle(srv: Server, vehicle: dict[str, Any]) -> None:
    """No execution of the actuator test left (DELETE sends its Stop)."""
    listed = srv.http.get(_op(vehicle, "/executions"), headers=auth(srv.token()))
    for item in listed.json()["items"]:
        r = srv.http.delete(_op(vehicle, f"/executions/{item['id']}"), headers=auth(srv.token()))
        assert r.status_code == 204, r.text


def test_the_operation_offers_its_parameters_schema(
    world: tuple[Server, SimulatedConnector], golf: dict[str, Any]
) -> None:
    srv = world[0]
    r = srv.http.get(_op(golf), params={"include-schema": "true"}, headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item"]["id"] == "ActuatorTest" and body["item"]["has_stop"] is True
    schema = body["schema"]
    assert schema["$schema"] == DIALECT
    assert schema["$defs"]["ExecutionParameters"] == {
        "type": "object",
        "properties": {
            "Duration": {"type": "number", "minimum": 0.5, "maximum": 30.0, "x-unit": "s"},
            "Target": {"type": "string", "enum": ["IdleValve", "FuelPump", "CoolingFan"]},
        },
        "required": ["Duration", "Target"],
        "additionalProperties": False,
    }
    # The self-test takes none; without include-schema there is no schema.
    r = srv.http.get(
        _op(golf).replace("ActuatorTest", "SelfTest"),
        params={"include-schema": "true"},
        headers=auth(srv.token()),
    )
    assert r.json()["schema"]["$defs"]["ExecutionParameters"]["properties"] == {}
    assert "schema" not in srv.http.get(_op(golf), headers=auth(srv.token())).json()


def test_parameters_reach_the_ecu_encoded_and_it_runs_for_the_duration(
    world: tuple[Server, SimulatedConnector], golf: dict[str, Any]
) -> None:
    srv, simulator = world
    _idle(srv, golf)
    token = srv.token()
    r = srv.http.post(
        _op(golf, "/executions"),
        headers=auth(token),
        json={"parameters": {"Duration": 0.5, "Target": "FuelPump"}},
    )
    assert r.status_code == 202, r.text
    execution = r.json()["id"]
    # The UDS request in the history, and what the emulated engine decoded from it.
    assert _chunk(srv, execution)["request"] == "310102030102"
    engine = simulator.described_ecu(golf["vehicle_id"], 0x10)
    assert engine.routines[ACTUATOR_TEST].parameters == {"Duration": 0.5, "Target": "FuelPump"}
    assert engine.routines[ACTUATOR_TEST].duration_s == 0.5  # the scenario's rule
    # It ends after its Duration: RequestResults reports it completed.
    deadline = time.monotonic() + DEADLINE_S
    state = None
    while time.monotonic() < deadline:
        polled = srv.http.get(_op(golf, f"/executions/{execution}"), headers=auth(token))
        assert polled.status_code == 200, polled.text
        state = polled.json()["parameters"]["RoutineState"]
        if state == "completed":
            break
        time.sleep(0.1)
    assert state == "completed"
    assert polled.json()["parameters"]["Progress"] == 100
    _idle(srv, golf)


@pytest.mark.parametrize(
    ("parameters", "field", "words"),
    [
        ({"Duration": "long", "Target": "FuelPump"}, "Duration", "must be a number"),
        ({"Duration": 1, "Target": 2}, "Target", "must be a string"),
        (
            {"Duration": 1, "Target": "Horn"},
            "Target",
            "not one of: IdleValve, FuelPump, CoolingFan",
        ),
        ({"Duration": 1, "Target": "FuelPump", "Speed": 3}, "Speed", "is not a parameter"),
        ({"Target": "FuelPump"}, "Duration", "is required"),
        ({"Duration": 200, "Target": "FuelPump"}, "Duration", "does not encode"),  # raw 400
        # Steps of 0.5 s: odxtools would send 0.5 for 0.7.
        ({"Duration": 0.7, "Target": "FuelPump"}, "Duration", "cannot carry exactly"),
    ],
)
def test_a_wrong_parameter_is_400_naming_it_and_nothing_is_sent(
    world: tuple[Server, SimulatedConnector],
    golf: dict[str, Any],
    parameters: dict[str, Any],
    field: str,
    words: str,
) -> None:
    srv = world[0]
    r = srv.http.post(
        _op(golf, "/executions"), headers=auth(srv.token()), json={"parameters": parameters}
    )
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert f"parameters.{field}" in message and words in message, message
    assert "x-command-id" not in r.headers


def test_out_of_range_is_the_ecus_refusal_in_words(
    world: tuple[Server, SimulatedConnector], golf: dict[str, Any]
) -> None:
    srv, simulator = world
    _idle(srv, golf)
    engine_before = simulator.described_ecu(golf["vehicle_id"], 0x10).routines.get(ACTUATOR_TEST)
    r = srv.http.post(
        _op(golf, "/executions"),
        headers=auth(srv.token()),
        json={"parameters": {"Duration": 45, "Target": "CoolingFan"}},
    )
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["error_code"] == "error-response"
    assert body["parameters"]["service_name"] == "ActuatorTest_Start"
    assert body["parameters"]["nrc"] == 0x31
    assert body["parameters"]["nrc_name"] == "requestOutOfRange"
    assert "0x31" in body["message"]
    # It reached the ECU encoded (45 s = raw 90), and the ECU did not run it.
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "310102035A03"
    engine = simulator.described_ecu(golf["vehicle_id"], 0x10)
    assert engine.routines.get(ACTUATOR_TEST) is engine_before
