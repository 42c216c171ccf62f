"""The SOVD tree of ECUs bound to their description (issue #20 item 4), by CDA's mapping:
in process over the ASGI transport, a real SQLite file, the seeded simulator (latency 0)
whose ECUs answer as the demo PDX describes them (``build_demo_pdx``, which the service
stores as it seeds the demo fleet: ENGINE, ABS and BODY bound here, TRANSMISSION left
unbound). Every call that reaches an ECU is a
``DiagService`` command (in the history), refused before anything is sent when the
service's ODX precondition is not met."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from app.vehicles.pdx.demo import DEMO_PDX_NAME
from tests.support.harness import Server, auth, in_process, make_config, quick_simulator
from tests.support.schemas import dtc_status

pytestmark = pytest.mark.fast

ZIP = {"content-type": "application/zip"}
BOUND = [
    {"description": "engine"},
    {"name": "transmission", "address": "0x18"},
    {"description": "ABS"},
    {"description": "BODY"},
]
STATUS_2F = dtc_status(0x2F)
NO_STATUS = dtc_status(0x00)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # The ABS bleed check works 50 ms before it answers (quick_simulator).
    config = make_config(
        tmp_path_factory.mktemp("described"), command_timeout_s=3.0, sim_self_test_s=0.3
    )
    with in_process(config, connector=quick_simulator(config)) as server:
        # The service stored the demo PDX as it seeded the demo fleet.
        r = server.http.get("/api/v1/descriptions", headers=auth(server.admin_token()))
        assert [d["name"] for d in r.json()["items"]] == [DEMO_PDX_NAME]
        yield server


def _bind(srv: Server, search: str) -> dict[str, Any]:
    """A vehicle with the demo PDX's ECUs bound: the Golf, or a new one (a VIN)."""
    admin = srv.admin_token()
    found = srv.http.get("/api/v1/vehicles", params={"search": search}, headers=auth(admin))
    if not found.json()["items"]:
        made = srv.http.post(
            "/api/v1/vehicles",
            headers=auth(admin),
            json={"vin": search, "make": "Bench", "model": "Rig", "year": 2024},
        )
        assert made.status_code == 201, made.text
        found = srv.http.get("/api/v1/vehicles", params={"search": search}, headers=auth(admin))
    vehicle = found.json()["items"][0]
    r = srv.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(admin), json={"ecus": BOUND}
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def golf(srv: Server) -> dict[str, Any]:
    return _bind(srv, "Golf")


def _url(vehicle: dict[str, Any], path: str) -> str:
    return f"/sovd/vehicles/{vehicle['vin']}/v1/components{path}"


def _commands(srv: Server, vehicle: dict[str, Any]) -> list[dict[str, Any]]:
    r = srv.http.get(
        "/api/v1/commands",
        params={"vehicle_id": vehicle["vehicle_id"], "limit": 200},
        headers=auth(srv.admin_token()),
    )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _chunk(srv: Server, command_id: str) -> dict[str, Any]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(srv.admin_token()))
    return dict(r.json()["items"][-1]["response_payload"])


def test_components_are_named_by_the_containers(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, ""), headers=auth(srv.token()))
    assert [c["id"] for c in r.json()["items"]] == ["engine", "transmission", "abs", "body"]
    engine = srv.http.get(_url(golf, "/engine"), headers=auth(srv.token())).json()
    assert {"data", "faults", "operations", "modes", "locks"} <= engine.keys()


def test_data_list_has_the_descriptions_ids_names_and_units(
    srv: Server, golf: dict[str, Any]
) -> None:
    r = srv.http.get(_url(golf, "/engine/data"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"id": "VIN", "name": "Vehicle identification number", "category": ""},
        {"id": "SoftwareVersion", "name": "ECU software version", "category": ""},
        {"id": "SerialNumber", "name": "ECU serial number", "category": ""},
        {"id": "ActiveSession", "name": "Active diagnostic session", "category": ""},
        {"id": "EngineRpm", "name": "Engine speed", "category": "", "unit": "rpm"},
        {"id": "VehicleSpeed", "name": "Vehicle speed", "category": "", "unit": "km/h"},
        {"id": "CoolantTemperature", "name": "Coolant temperature", "category": "", "unit": "degC"},
        {"id": "Coding", "name": "Engine variant coding", "category": ""},
    ]
    # include-schema as everywhere in the tree
    r = srv.http.get(
        _url(golf, "/engine/data"), params={"include-schema": "true"}, headers=auth(srv.token())
    )
    assert "unit" in r.json()["schema"]["$defs"]["DataRef"]["properties"]


@pytest.mark.parametrize("data_id", ["VIN", "vin", "Vin"])
def test_reading_the_vin_in_any_case(srv: Server, golf: dict[str, Any], data_id: str) -> None:
    r = srv.http.get(_url(golf, f"/engine/data/{data_id}"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "vin", "data": {"VIN": golf["vin"]}}
    # It was a DiagService command of the caller, in the history.
    command_id = r.headers["x-command-id"]
    command = next(c for c in _commands(srv, golf) if c["command_id"] == command_id)
    assert command["command_name"] == "DiagService"
    assert command["command_params"]["service"] == "VIN_Read"
    assert command["status"] == "completed"


def test_engine_rpm_is_scaled(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, "/engine/data/enginerpm"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "enginerpm"
    rpm = body["data"]["EngineRpm"]
    assert isinstance(rpm, float)
    # raw * 0.25: the response's two bytes, scaled by the DOP
    raw = int(_chunk(srv, r.headers["x-command-id"])["response"][6:10], 16)
    assert rpm == raw * 0.25


def test_unknown_data_is_404(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, "/engine/data/NoSuch"), headers=auth(srv.token()))
    assert r.status_code == 404
    assert "it has: VIN, SoftwareVersion" in r.json()["message"]


def test_operations_list_by_cdas_rule(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, "/abs/operations"), headers=auth(srv.token()))
    assert r.json()["items"] == [
        {
            "id": "SelfTest",
            "name": "Self-test",
            "proximity_proof_required": False,
            "asynchronous_execution": True,
            "has_stop": True,
            "has_request_results": True,
        },
        {
            # Start and RequestResults, no Stop: asynchronous all the same (CDA's rule)
            "id": "BrakeBleedCheck",
            "name": "Brake bleed check",
            "proximity_proof_required": False,
            "asynchronous_execution": True,
            "has_stop": False,
            "has_request_results": True,
        },
    ]
    one = srv.http.get(_url(golf, "/abs/operations/brakebleedcheck"), headers=auth(srv.token()))
    assert one.json()["modes"] == {"session": "extended"}


def test_an_execution_start_poll_stop(srv: Server, golf: dict[str, Any]) -> None:
    token = srv.token()
    base = _url(golf, "/engine/operations/SelfTest/executions")
    r = srv.http.post(base, headers=auth(token), json={"parameters": {}})
    assert r.status_code == 202, r.text
    execution = r.json()
    assert execution["status"] == "running"
    assert r.headers["location"].endswith(
        f"/engine/operations/SelfTest/executions/{execution['id']}"
    )
    assert _chunk(srv, execution["id"])["request"] == "31010201"
    # a second start while it runs
    again = srv.http.post(base, headers=auth(token), json={})
    assert again.status_code == 409, again.text
    listed = srv.http.get(base, headers=auth(token)).json()["items"]
    assert [e["id"] for e in listed] == [execution["id"]]

    # GET sends RequestResults
    polled = srv.http.get(f"{base}/{execution['id']}", headers=auth(token))
    assert polled.status_code == 200, polled.text
    assert polled.json()["status"] == "completed"
    assert polled.json()["capability"] == "execute"
    assert "RoutineState" in polled.json()["parameters"]
    assert _chunk(srv, polled.headers["x-command-id"])["request"] == "31030201"

    # DELETE sends Stop; the execution is gone afterwards
    stopped = srv.http.delete(f"{base}/{execution['id']}", headers=auth(token))
    assert stopped.status_code == 204, stopped.text
    assert _chunk(srv, stopped.headers["x-command-id"])["request"] == "31020201"
    gone = srv.http.get(f"{base}/{execution['id']}", headers=auth(token))
    assert gone.status_code == 404
    assert srv.http.get(base, headers=auth(token)).json()["items"] == []


def test_an_unknown_execution_parameter_is_400_naming_it(srv: Server, golf: dict[str, Any]) -> None:
    before = len(_commands(srv, golf))
    r = srv.http.post(
        _url(golf, "/engine/operations/selftest/executions"),
        headers=auth(srv.token()),
        json={"parameters": {"Speed": 3}},
    )
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "body.parameters.Speed is not a parameter of SelfTest_Start (it takes: none)"
    )
    assert len(_commands(srv, golf)) == before


def test_faults_with_cdas_fields(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, "/engine/faults"), headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [f["display_code"] for f in items] == ["P0171", "P0420"]
    p0171, p0420 = items
    assert p0171 == {
        "code": "017100",
        "scope": "FaultMem",
        "display_code": "P0171",
        "fault_name": "System too lean (bank 1)",
        "severity": 2,
        "status": STATUS_2F,
    }
    assert p0420["code"] == "042000"
    assert p0420["severity"] == 3
    assert p0420["status"]["test_failed"] is True
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "1902FF"
    # filtered as the tree filters
    confirmed = srv.http.get(
        _url(golf, "/engine/faults"),
        params={"status[confirmed_dtc]": "true"},
        headers=auth(srv.token()),
    )
    assert [f["code"] for f in confirmed.json()["items"]] == ["017100"]

    one = srv.http.get(_url(golf, "/engine/faults/P0171"), headers=auth(srv.token()))
    assert one.status_code == 200, one.text
    # the demo description has no 0x19 0x04 / 0x06 services: no environment data
    assert one.json() == {"item": p0171}
    assert srv.http.get(_url(golf, "/engine/faults/017100"), headers=auth(srv.token())).json() == {
        "item": p0171
    }


def test_a_precondition_refuses_before_anything_is_sent_then_the_session_opens_it(
    srv: Server,
) -> None:
    vehicle = _bind(srv, "WVWZZZ1KZAW000101")
    token = srv.token()
    session = srv.http.get(_url(vehicle, "/body/modes/session"), headers=auth(token))
    assert session.json() == {"id": "session", "name": "Diagnostic session", "value": "default"}
    before = len(_commands(srv, vehicle))

    for method, path in (
        ("POST", "/body/operations/SelfTest/executions"),
        ("DELETE", "/body/faults"),
    ):
        r = srv.http.request(method, _url(vehicle, path), headers=auth(token), json=None)
        assert r.status_code == 409, r.text
        body = r.json()
        assert body["error_code"] == "precondition-not-fulfilled"
        assert "needs the session Extended (now: Default)" in body["message"]
        assert body["parameters"]["needed"] == ["Extended"]
        assert "x-command-id" not in r.headers
    assert len(_commands(srv, vehicle)) == before  # nothing was sent

    r = srv.http.put(
        _url(vehicle, "/body/modes/session"), headers=auth(token), json={"value": "Extended"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"id": "session", "value": "extended"}
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "1003"
    session = srv.http.get(_url(vehicle, "/body/modes/session"), headers=auth(token))
    assert session.json()["value"] == "extended"

    cleared = srv.http.delete(_url(vehicle, "/body/faults"), headers=auth(token))
    assert cleared.status_code == 204, cleared.text
    assert _chunk(srv, cleared.headers["x-command-id"])["request"] == "14FFFFFF"
    started = srv.http.post(
        _url(vehicle, "/body/operations/SelfTest/executions"), headers=auth(token), json={}
    )
    assert started.status_code == 202, started.text
    stop = srv.http.delete(
        _url(vehicle, f"/body/operations/SelfTest/executions/{started.json()['id']}"),
        headers=auth(token),
    )
    assert stop.status_code == 204, stop.text

    # A session switch sent as DiagService on /api/v1/commands counts as well.
    r = srv.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": vehicle["vehicle_id"],
            "command_name": "DiagService",
            "command_params": {"ecu": "body", "service": "Default_Start"},
        },
    )
    assert r.status_code == 201, r.text
    assert srv.wait_status(token, r.json()["command_id"])["status"] == "completed"
    session = srv.http.get(_url(vehicle, "/body/modes/session"), headers=auth(token))
    assert session.json()["value"] == "default"
    refused = srv.http.delete(_url(vehicle, "/body/faults"), headers=auth(token))
    assert refused.status_code == 409, refused.text

    # An unknown session: 404 (CDA)
    r = srv.http.put(
        _url(vehicle, "/body/modes/session"), headers=auth(token), json={"value": "programming"}
    )
    assert r.status_code == 404, r.text
    assert "default, extended" in r.json()["message"]

    # A session that expires: not supported for a bound component (docs/cda-mapping.md),
    # refused before anything is sent, the session unchanged.
    before = len(_commands(srv, vehicle))
    r = srv.http.put(
        _url(vehicle, "/body/modes/session"),
        headers=auth(token),
        json={"value": "extended", "mode_expiration": 30},
    )
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "body.mode_expiration: not supported yet for a component bound to a description"
    )
    assert "x-command-id" not in r.headers
    assert len(_commands(srv, vehicle)) == before
    session = srv.http.get(_url(vehicle, "/body/modes/session"), headers=auth(token))
    assert session.json()["value"] == "default"


def test_clearing_one_fault_and_all(srv: Server) -> None:
    vehicle = _bind(srv, "WVWZZZ1KZAW000102")
    token = srv.token()
    r = srv.http.delete(_url(vehicle, "/engine/faults/P0420"), headers=auth(token))
    assert r.status_code == 204, r.text
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "14042000"
    faults = srv.http.get(_url(vehicle, "/engine/faults"), headers=auth(token)).json()["items"]
    by_code = {f["display_code"]: f["status"] for f in faults}
    # still listed (the description defines it), with status 0 (CDA)
    assert by_code["P0420"] == NO_STATUS
    r = srv.http.delete(_url(vehicle, "/engine/faults"), headers=auth(token))
    assert r.status_code == 204, r.text
    faults = srv.http.get(_url(vehicle, "/engine/faults"), headers=auth(token)).json()["items"]
    assert [f["status"] for f in faults] == [NO_STATUS, NO_STATUS]


def test_a_negative_response_is_decoded_by_the_description(srv: Server) -> None:
    vehicle = _bind(srv, "WVWZZZ1KZAW000103")
    token = srv.token()
    r = srv.http.put(
        _url(vehicle, "/abs/modes/session"), headers=auth(token), json={"value": "extended"}
    )
    assert r.status_code == 200, r.text
    # The bleed check fails while C0035 is stored (NRC 0x26 from the emulated ABS).
    faults = srv.http.get(_url(vehicle, "/abs/faults"), headers=auth(token)).json()["items"]
    assert [f["display_code"] for f in faults if f["status"]["test_failed"]] == ["C0035"]
    r = srv.http.post(
        _url(vehicle, "/abs/operations/BrakeBleedCheck/executions"), headers=auth(token), json={}
    )
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["error_code"] == "error-response"
    assert body["parameters"]["service"] == 0x31
    assert body["parameters"]["service_name"] == "BrakeBleedCheck_Start"
    assert body["parameters"]["nrc"] == 0x26
    assert body["parameters"]["nrc_name"] == "failurePreventsExecutionOfRequestedAction"
    assert body["parameters"]["nrc_text"]  # the description's word for it
    assert "0x26" in body["message"]


def test_modes_of_a_bound_ecu(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(_url(golf, "/engine/modes"), headers=auth(srv.token()))
    # the demo description has no 0x85 services: no dtcsetting
    assert r.json()["items"] == [{"id": "session", "name": "Diagnostic session"}]
    r = srv.http.get(_url(golf, "/engine/modes/dtcsetting"), headers=auth(srv.token()))
    assert r.status_code == 404


def test_unbound_ecus_keep_the_generic_tree(srv: Server, golf: dict[str, Any]) -> None:
    """An ECU bound to no description (the transmission here) has the generic UDS tree:
    the ISO 14229-1 identification items, no operations, sessions and security state."""
    token = srv.token()
    r = srv.http.get(_url(golf, "/transmission/data"), headers=auth(token))
    assert [d["id"] for d in r.json()["items"]] == [
        "vin",
        "softwareVersion",
        "serialNumber",
        "activeSession",
    ]
    assert all("unit" not in d for d in r.json()["items"])
    r = srv.http.get(_url(golf, "/transmission/data/vin"), headers=auth(token))
    assert r.json()["data"] == {"value": golf["vin"]}
    command = next(c for c in _commands(srv, golf) if c["command_id"] == r.headers["x-command-id"])
    assert command["command_name"] == "ReadDataByID"
    ops = srv.http.get(_url(golf, "/transmission/operations"), headers=auth(token)).json()
    assert ops == {"items": []}
    modes = srv.http.get(_url(golf, "/transmission/modes"), headers=auth(token)).json()
    assert [m["id"] for m in modes["items"]] == ["session", "security"]
