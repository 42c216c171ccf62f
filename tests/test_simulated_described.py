"""A simulated vehicle's ECU bound to a description is emulated from it (issue #20 item 6):
the simulator's ``DescribedEcu`` answers every service of the description, encoded by
odxtools, so a custom PDX's services the demo ECUs do not have (a scaled DID, a writable
DID, a routine, DTC setting) answer on a simulated vehicle as they would on the DoIP
emulator. In process over the ASGI transport, a real SQLite file, the seeded simulator
(latency 0); the custom PDX is made with ``build_pdx`` (``pdx_of``: once)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.builders import simulator_for
from app.vehicles.pdx import (
    DTC_SETTING_ON_OFF,
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
)
from app.vehicles.pdx.scenario import DEMO_SCENARIO
from app.vehicles.simulator import SimulatedConnector
from tests.support.harness import Server, auth, in_process, make_config
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.fast

ZIP = {"content-type": "application/zip"}
VIN = "WVWZZZ1KZAW000601"
# One ECU the demo description knows nothing of, at 0x0050 (no demo ECU there).
FLUX = PdxSpec(
    (
        PdxEcu(
            "FLUX",
            long_name="Flux ECU",
            logical_address=0x50,
            dids=(
                # raw * 0.5 - 40 degC, one byte: -40 .. 87.5 degC
                PdxDid(0x2A01, "OilTemperature", "Oil temperature", 1, 0.5, -40, "degC"),
                PdxDid(0x2A02, "Calibration", "Calibration", size=1, writable=True),
            ),
            dtcs=(
                PdxDtc("P0300", "Random misfire", 2),
                PdxDtc("P0301", "Cylinder 1 misfire", 2),
                PdxDtc("U0100", "Lost communication with ECM", 1),
                PdxDtc("B1234", "Seat heater open", 4),
            ),
            routines=(PdxRoutine(0x0301, "Purge", "Canister purge"),),
            dtc_settings=DTC_SETTING_ON_OFF,
        ),
    ),
    name="FLUX_PDX",
)
CODES = {"P0300", "P0301", "U0100", "B1234"}
SELF_TEST_S = 0.3  # the simulator's self-test time: how long a described routine runs


def _upload(srv: Server) -> None:
    r = srv.http.post(
        "/api/v1/descriptions",
        params={"name": "flux.pdx"},
        content=pdx_of(FLUX),
        headers={**auth(srv.admin_token()), **ZIP},
    )
    assert r.status_code == 201, r.text


def _vehicle(srv: Server, vin: str, ecus: list[dict[str, str]]) -> dict[str, Any]:
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(srv.admin_token()),
        json={"vin": vin, "make": "Bench", "model": "Rig", "year": 2024, "ecus": ecus},
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


# The engine unbound (the demo engine at 0x0010), the custom ECU bound at its 0x0050.
ECUS = [{"name": "engine", "address": "0x10"}, {"description": "FLUX"}]


@pytest.fixture(scope="module")
def world(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, SimulatedConnector]]:
    config = make_config(tmp_path_factory.mktemp("simdesc"), sim_self_test_s=SELF_TEST_S)
    simulator = simulator_for(config)
    with in_process(config, connector=simulator) as server:
        _upload(server)
        yield server, simulator


@pytest.fixture(scope="module")
def srv(world: tuple[Server, SimulatedConnector]) -> Server:
    return world[0]


@pytest.fixture(scope="module")
def car(srv: Server) -> dict[str, Any]:
    return _vehicle(srv, VIN, ECUS)


def _diag(
    srv: Server, vehicle: dict[str, Any], service: str, params: dict[str, Any] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A DiagService to the bound ECU, run to its end: the command and its last chunk."""
    token = srv.token()
    r = srv.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": vehicle["vehicle_id"],
            "command_name": "DiagService",
            "command_params": {"ecu": "flux", "service": service, "params": params or {}},
        },
    )
    assert r.status_code == 201, r.text
    done = srv.wait_status(token, r.json()["command_id"])
    return done, _chunk(srv, done["command_id"])


def _chunk(srv: Server, command_id: str) -> dict[str, Any]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(srv.admin_token()))
    assert r.status_code == 200, r.text
    return dict(r.json()["items"][-1]["response_payload"])


def _url(vehicle: dict[str, Any], path: str) -> str:
    return f"/sovd/vehicles/{vehicle['vin']}/v1/components/flux{path}"


def _temperature(chunk: dict[str, Any]) -> float:
    """The DID's value, checked against its answer's byte and the DOP's limits."""
    response = bytes.fromhex(chunk["response"])
    assert response[:3] == bytes.fromhex("622A01")
    value = chunk["parameters"]["OilTemperature"]
    assert value == response[3] * 0.5 - 40  # the DOP's scaling of the coded byte
    assert -40 <= value <= 87.5
    return float(value)


def test_diag_service_reads_a_did_the_demo_ecus_lack(srv: Server, car: dict[str, Any]) -> None:
    done, chunk = _diag(srv, car, "OilTemperature_Read")
    assert done["status"] == "completed", done
    assert (chunk["ecuAddress"], chunk["request"]) == ("0x0050", "222A01")
    _temperature(chunk)
    assert chunk["units"] == {"OilTemperature": "degC"}


def test_the_sovd_tree_reads_it(srv: Server, car: dict[str, Any]) -> None:
    r = srv.http.get(_url(car, "/data/OilTemperature"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "oiltemperature"
    chunk = _chunk(srv, r.headers["x-command-id"])
    assert body["data"] == {"OilTemperature": _temperature(chunk)}


def test_a_write_then_a_read(srv: Server, car: dict[str, Any]) -> None:
    token = srv.token()
    r = srv.http.put(
        _url(car, "/data/Calibration"), headers=auth(token), json={"data": {"Calibration": 7}}
    )
    assert r.status_code == 204, r.text
    chunk = _chunk(srv, r.headers["x-command-id"])
    assert (chunk["service"], chunk["request"], chunk["response"]) == (
        "Calibration_Write",
        "2E2A0207",
        "6E2A02",
    )
    r = srv.http.get(_url(car, "/data/Calibration"), headers=auth(token))
    assert r.status_code == 200, r.text
    # The described ECU remembers what was written: the read answers it.
    assert r.json()["data"] == {"Calibration": 7}
    read = _chunk(srv, r.headers["x-command-id"])
    assert (read["request"], read["response"]) == ("222A02", "622A0207")
    # Written again: the new value, read after read.
    r = srv.http.put(
        _url(car, "/data/Calibration"), headers=auth(token), json={"data": {"Calibration": 200}}
    )
    assert r.status_code == 204, r.text
    for _ in range(2):
        r = srv.http.get(_url(car, "/data/Calibration"), headers=auth(token))
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"Calibration": 200}


def test_a_routine_start_and_its_results(srv: Server, car: dict[str, Any]) -> None:
    done, chunk = _diag(srv, car, "Purge_Start")
    assert done["status"] == "completed", done
    assert chunk["request"] == "31010301"
    assert chunk["parameters"]["RoutineState"] == "running"
    assert 0 <= chunk["parameters"]["Progress"] < 100
    # Again while it runs: conditionsNotCorrect, as the description's NRC.
    again, refused = _diag(srv, car, "Purge_Start")
    assert (again["status"], refused["response"]) == ("failed", "7F3122")
    time.sleep(SELF_TEST_S + 0.1)
    done, chunk = _diag(srv, car, "Purge_RequestResults")
    assert done["status"] == "completed", done
    assert chunk["request"] == "31030301"
    assert (chunk["parameters"]["RoutineState"], chunk["parameters"]["Progress"]) == (
        "completed",
        100,
    )
    # The same routine as a SOVD operation: started, polled.
    base = _url(car, "/operations/Purge/executions")
    r = srv.http.post(base, headers=auth(srv.token()), json={"parameters": {}})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "running"
    polled = srv.http.get(f"{base}/{r.json()['id']}", headers=auth(srv.token()))
    assert polled.status_code == 200, polled.text
    assert polled.json()["parameters"]["RoutineState"] in ("running", "completed")


def test_dtc_setting_and_the_descriptions_faults(srv: Server, car: dict[str, Any]) -> None:
    done, chunk = _diag(srv, car, "DTC_Setting_Mode_Off")
    assert done["status"] == "completed", done
    assert (chunk["request"], chunk["response"]) == ("8502", "C502")
    r = srv.http.get(_url(car, "/faults"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    codes = {f["display_code"] for f in r.json()["items"]}
    assert codes and codes <= CODES  # a seeded subset of the description's DTCs


def test_an_unbound_ecu_of_the_vehicle_answers_as_the_demo_ecu(
    srv: Server, car: dict[str, Any]
) -> None:
    token = srv.token()
    command = srv.submit(token, car["vehicle_id"], "ReadDTC", {"ecuAddress": "0x10"})
    assert srv.wait_status(token, command["command_id"])["status"] == "completed"
    r = srv.http.get(f"/api/v1/commands/{command['command_id']}/responses", headers=auth(token))
    chunks = [c["response_payload"] for c in r.json()["items"]]
    assert [c.get("dtcCode") for c in chunks[:-1]] == ["P0171", "P0420"]
    assert chunks[-1]["totalDtcs"] == 2


def test_bound_at_a_demo_address_the_description_answers_with_the_demo_scenario(
    world: tuple[Server, SimulatedConnector],
) -> None:
    """FLUX bound at 0x0018, where the demo transmission is: FLUX answers everything (its
    DIDs, its sessions); the transmission's scenario applies to what FLUX has of it, and
    its start DTC (P0700) is one FLUX does not describe, so none is stored."""
    srv, simulator = world
    vehicle = _vehicle(srv, "WVWZZZ1KZAW000602", [{"description": "FLUX", "address": "0x18"}])
    done, chunk = _diag(srv, vehicle, "OilTemperature_Read")
    assert done["status"] == "completed", done
    assert chunk["ecuAddress"] == "0x0018"
    _temperature(chunk)
    done, chunk = _diag(srv, vehicle, "FaultMem_ReportDTCByStatusMask")
    assert done["status"] == "completed", done
    assert chunk["parameters"]["DTCAndStatusRecord"] == []
    assert DEMO_SCENARIO["TRANSMISSION"].dtcs[0].code not in CODES
    emulated = simulator.described_ecu(vehicle["vehicle_id"], 0x18)
    assert emulated.session == "Default"
    done, chunk = _diag(srv, vehicle, "Extended_Start")
    assert (done["status"], chunk["response"][:4]) == ("completed", "5003")
    assert emulated.session == "Extended"


def test_rebinding_makes_the_described_ecu_anew(world: tuple[Server, SimulatedConnector]) -> None:
    srv, simulator = world
    vehicle = _vehicle(srv, "WVWZZZ1KZAW000603", ECUS)
    assert _diag(srv, vehicle, "OilTemperature_Read")[0]["status"] == "completed"
    first = simulator.described_ecu(vehicle["vehicle_id"], 0x50)
    assert _diag(srv, vehicle, "Calibration_Read")[0]["status"] == "completed"
    assert simulator.described_ecu(vehicle["vehicle_id"], 0x50) is first  # kept
    admin = auth(srv.admin_token())
    url = f"/api/v1/vehicles/{vehicle['vehicle_id']}"
    # Unbound: a generic ECU at 0x0050 (identification only, no DTCs) answers.
    r = srv.http.patch(url, headers=admin, json={"ecus": [{"name": "flux", "address": "0x50"}]})
    assert r.status_code == 200, r.text
    token = srv.token()
    command = srv.submit(token, vehicle["vehicle_id"], "ReadDTC", {"ecuAddress": "0x50"})
    assert srv.wait_status(token, command["command_id"])["status"] == "completed"
    assert simulator.stored_dtcs(vehicle["vehicle_id"], 0x50) == ()
    r = srv.http.patch(url, headers=admin, json={"ecus": ECUS})
    assert r.status_code == 200, r.text
    assert _diag(srv, vehicle, "OilTemperature_Read")[0]["status"] == "completed"
    assert simulator.described_ecu(vehicle["vehicle_id"], 0x50) is not first  # made anew


def _readings(tmp: Path) -> list[Any]:
    """What a fresh service's simulated FLUX answers to the same requests."""
    with in_process(make_config(tmp, sim_self_test_s=SELF_TEST_S)) as server:
        _upload(server)
        vehicle = _vehicle(server, VIN, ECUS)
        seen: list[Any] = []
        for service in ("OilTemperature_Read", "OilTemperature_Read", "Calibration_Read"):
            seen.append(_diag(server, vehicle, service)[1]["response"])
        _, faults = _diag(server, vehicle, "FaultMem_ReportDTCByStatusMask")
        seen.append(faults["parameters"])
        return seen


def test_the_same_seed_gives_the_same_values(tmp_path: Path) -> None:
    first = _readings(tmp_path / "one")
    assert first == _readings(tmp_path / "two")
    assert {rec["DTC"]["code"] for rec in first[-1]["DTCAndStatusRecord"]} <= CODES
