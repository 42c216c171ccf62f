"""ECUs bound to their description and the DiagService command (issue #20 items 2 and 5),
in process over the ASGI transport with a real SQLite file and the seeded simulator
(latency 0): the demo PDX (``build_demo_pdx``: ENGINE, TRANSMISSION, ABS, BODY, which
the simulator's ECUs answer as; stored by the service as it seeds the demo fleet),
bound to a vehicle's ECUs, and services sent by name, encoded and decoded by odxtools;
bad input refused with a 400 naming it and nothing stored."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.store.migrations import MIGRATIONS, migrate
from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec
from app.vehicles.pdx.demo import DEMO_ECUS, DEMO_PDX_NAME
from tests.support.harness import Server, auth, in_process, make_config
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.fast

ZIP = {"content-type": "application/zip"}
# A description that gives no logical address, and one at 0x0050.
NO_ADDRESS = PdxSpec((PdxEcu("NOADDR", dids=(PdxDid(0xF190, "VIN", text=True, size=17),)),))
TINY = PdxSpec(
    (PdxEcu("TINY", logical_address=0x50, dids=(PdxDid(0x1234, "Counter", size=2),)),),
    name="TINY_PDX",
)


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    # (a generous deadline: the first command to an unbound demo-address ECU builds its
    # description in the simulator)
    config = make_config(tmp_path_factory.mktemp("diag"), command_timeout_s=2.0)
    with in_process(config) as server:
        admin = server.admin_token()
        # The demo description is there already: the service stored it with the demo fleet.
        listed = server.http.get("/api/v1/descriptions", headers=auth(admin)).json()["items"]
        assert [(d["name"], d["state"]) for d in listed] == [(DEMO_PDX_NAME, "ready")]
        for name, data in (
            ("noaddr.pdx", pdx_of(NO_ADDRESS)),
            ("tiny.pdx", pdx_of(TINY)),
        ):
            r = server.http.post(
                "/api/v1/descriptions",
                params={"name": name},
                content=data,
                headers={**auth(admin), **ZIP},
            )
            assert r.status_code == 201, r.text
        yield server


def _golf(srv: Server) -> dict[str, Any]:
    r = srv.http.get("/api/v1/vehicles", params={"search": "Golf"}, headers=auth(srv.token()))
    return dict(r.json()["items"][0])


BOUND = [
    {"description": "engine"},  # any case; the address is the description's (0x10)
    {"name": "transmission", "address": "0x18"},
    {"description": "ABS", "address": "0x0028"},
    {"name": "body", "address": "0x40"},
]


@pytest.fixture(scope="module")
def golf(srv: Server) -> dict[str, Any]:
    vehicle = _golf(srv)
    r = srv.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        headers=auth(srv.admin_token()),
        json={"ecus": BOUND},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_binding_takes_the_description_address_and_names_the_component(
    srv: Server, golf: dict[str, Any]
) -> None:
    assert golf["ecus"] == [
        {"name": "engine", "address": "0x0010", "description": "ENGINE"},
        {"name": "transmission", "address": "0x0018"},  # unbound: as before
        {"name": "abs", "address": "0x0028", "description": "ABS"},
        {"name": "body", "address": "0x0040"},
    ]
    # Stored: read back by an engineer, and in the SOVD tree as components.
    fetched = srv.http.get(f"/api/v1/vehicles/{golf['vehicle_id']}", headers=auth(srv.token()))
    assert fetched.json()["ecus"] == golf["ecus"]
    components = srv.http.get(
        f"/sovd/vehicles/{golf['vin']}/v1/components", headers=auth(srv.token())
    )
    assert [c["id"] for c in components.json()["items"]] == [
        "engine",
        "transmission",
        "abs",
        "body",
    ]


def test_binding_with_an_address_that_overrides_and_a_new_component_id(srv: Server) -> None:
    admin = srv.admin_token()
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json={
            "vin": "WVWZZZ1KZAW000042",
            "make": "Bench",
            "model": "Rig",
            "year": 2024,
            "ecus": [
                {"description": "TINY"},  # its own address, 0x0050
                {"description": "noaddr", "address": "0x1001"},  # the entry's address
                {"name": "engine", "address": "0x10"},
            ],
        },
    )
    assert r.status_code == 201, r.text
    vehicle = r.json()
    assert vehicle["ecus"] == [
        {"name": "tiny", "address": "0x0050", "description": "TINY"},
        {"name": "noaddr", "address": "0x1001", "description": "NOADDR"},
        {"name": "engine", "address": "0x0010"},
    ]
    components = srv.http.get(
        f"/sovd/vehicles/{vehicle['vin']}/v1/components", headers=auth(srv.token())
    )
    assert [c["id"] for c in components.json()["items"]] == ["tiny", "noaddr", "engine"]


@pytest.mark.parametrize(
    ("ecus", "message"),
    [
        (
            [{"description": "FLXC1000"}],
            "ecus[0].description: no ECU description has a diag layer container named"
            " 'FLXC1000' (known: ABS, BODY, ENGINE, NOADDR, TINY, TRANSMISSION;",
        ),
        (
            [{"description": "NOADDR"}],
            "ecus[0].address: required, as NOADDR (noaddr.pdx) gives no logical address",
        ),
        (
            [{"name": "motor", "description": "ENGINE"}],
            "ecus[0].name: an ECU bound to ENGINE is the component engine",
        ),
        ([{"name": "engine"}], "ecus[0].address: required for an ECU without a description"),
        ([{"address": "0x10"}], "ecus[0].name: required for an ECU without a description"),
        (
            [{"description": "ENGINE"}, {"name": "engine", "address": "0x30"}],
            "ecus[1].name: engine is already the name of ecus[0]",
        ),
        (
            [{"description": "ENGINE"}, {"name": "other", "address": "0x10"}],
            "ecus[1].address: 0x0010 is already the address of ecus[0]",
        ),
    ],
)
def test_bad_bindings_are_400_naming_the_entry_and_nothing_changes(
    srv: Server, golf: dict[str, Any], ecus: list[dict[str, str]], message: str
) -> None:
    url = f"/api/v1/vehicles/{golf['vehicle_id']}"
    r = srv.http.patch(url, headers=auth(srv.admin_token()), json={"ecus": ecus})
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
    assert srv.http.get(url, headers=auth(srv.token())).json()["ecus"] == golf["ecus"]


def test_services_of_the_bound_ecus(srv: Server, golf: dict[str, Any]) -> None:
    r = srv.http.get(f"/api/v1/vehicles/{golf['vehicle_id']}/services", headers=auth(srv.token()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(e["ecu"], e["address"], e["description"]) for e in body["items"]] == [
        ("engine", "0x0010", "ENGINE"),
        ("abs", "0x0028", "ABS"),
    ]
    engine = {s["name"]: s for s in body["items"][0]["services"]}
    assert engine["EngineRpm_Read"]["sid"] == "0x22"
    assert engine["SelfTest_Start"]["sid"] == "0x31"
    assert engine["FaultMem_ClearDTCs"]["params"] == [
        {"name": "GroupOfDTC", "type": "A_UINT32", "required": False, "unit": None, "values": []}
    ]
    # By VIN too.
    by_vin = srv.http.get(f"/api/v1/vehicles/{golf['vin']}/services", headers=auth(srv.token()))
    assert by_vin.json() == body


def _diag(srv: Server, token: str, vehicle_id: str, **params: Any) -> Any:
    return srv.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={"vehicle_id": vehicle_id, "command_name": "DiagService", "command_params": params},
    )


def _chunks(srv: Server, token: str, command_id: str) -> list[dict[str, Any]]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(token))
    return [c["response_payload"] for c in r.json()["items"]]


def test_a_did_read_decoded_to_its_physical_value_with_unit(
    srv: Server, golf: dict[str, Any]
) -> None:
    token = srv.token()
    r = _diag(srv, token, golf["vehicle_id"], ecu="engine", service="enginerpm_read")
    assert r.status_code == 201, r.text
    command = r.json()
    # Stored as checked: the service in the description's spelling, the ECU's address.
    assert command["command_params"] == {
        "ecu": "engine",
        "service": "EngineRpm_Read",
        "params": {},
        "ecuAddress": "0x0010",
        "sid": "0x22",  # whether a lock stands in its way: a read does not
    }
    done = srv.wait_status(token, command["command_id"])
    assert done["status"] == "completed", done
    (chunk,) = _chunks(srv, token, command["command_id"])
    assert chunk["ecuAddress"] == "0x0010"
    assert chunk["service"] == "EngineRpm_Read"
    assert chunk["request"] == "22010C"
    response = bytes.fromhex(chunk["response"])
    assert response[:3] == bytes.fromhex("62010C")
    assert chunk["parameters"] == {"EngineRpm": int.from_bytes(response[3:5], "big") * 0.25}
    assert 650 <= chunk["parameters"]["EngineRpm"] <= 4500
    assert chunk["units"] == {"EngineRpm": "rpm"}


def test_a_routine_start_and_a_text_did(srv: Server, golf: dict[str, Any]) -> None:
    token = srv.token()
    started = _diag(srv, token, golf["vehicle_id"], ecu="engine", service="SelfTest_Start")
    assert started.status_code == 201, started.text
    assert srv.wait_status(token, started.json()["command_id"])["status"] == "completed"
    (chunk,) = _chunks(srv, token, started.json()["command_id"])
    assert chunk["request"] == "31010201"
    assert chunk["parameters"]["RoutineState"] in ("running", "completed")
    assert isinstance(chunk["parameters"]["Progress"], int)
    assert chunk["units"] == {"Progress": "%"}
    assert "RoutineId" not in chunk["parameters"]  # the echoed constant is left out

    vin = _diag(srv, token, golf["vehicle_id"], ecu="abs", service="VIN_Read")
    assert srv.wait_status(token, vin.json()["command_id"])["status"] == "completed"
    (chunk,) = _chunks(srv, token, vin.json()["command_id"])
    assert chunk["parameters"] == {"VIN": golf["vin"]}
    assert chunk["ecuAddress"] == "0x0028"


def test_clear_with_a_parameter_and_a_negative_response(srv: Server, golf: dict[str, Any]) -> None:
    token = srv.token()
    r = _diag(
        srv,
        token,
        golf["vehicle_id"],
        ecu="engine",
        service="FaultMem_ClearDTCs",
        params={"GroupOfDTC": 0x017100},
    )
    assert r.status_code == 201, r.text
    assert srv.wait_status(token, r.json()["command_id"])["status"] == "completed"
    (chunk,) = _chunks(srv, token, r.json()["command_id"])
    assert (chunk["request"], chunk["response"], chunk["parameters"]) == ("14017100", "54", {})

    # The ABS bleed check needs the extended session: the ECU refuses, the description
    # names the NRC, and the command fails as any negative response does.
    r = _diag(srv, token, golf["vehicle_id"], ecu="abs", service="BrakeBleedCheck_Start")
    done = srv.wait_status(token, r.json()["command_id"])
    assert (done["status"], done["error_code"]) == ("failed", "error-response")
    assert "0x22" in done["error_message"]
    (chunk,) = _chunks(srv, token, r.json()["command_id"])
    assert chunk["request"] == "31010202"
    assert chunk["response"] == "7F3122"
    assert chunk["negativeResponse"] == {
        "nrc": "0x22",
        "name": "conditionsNotCorrect",
        "text": "conditionsNotCorrect",
        "service": "0x31",
    }


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"ecu": "engine", "service": "NoSuch_Read"},
            "command_params.service: service 'NoSuch_Read' is not a service of ENGINE",
        ),
        (
            {"ecu": "engine", "service": "FaultMem_ClearDTCs", "params": {"Group": 1}},
            "command_params.params.Group is not a parameter of FaultMem_ClearDTCs"
            " (it takes: GroupOfDTC)",
        ),
        (
            {"ecu": "engine", "service": "FaultMem_ClearDTCs", "params": {"GroupOfDTC": "all"}},
            "command_params.params.GroupOfDTC of FaultMem_ClearDTCs must be an integer"
            " (A_UINT32), got 'all'",
        ),
        (
            {"ecu": "engine", "service": "FaultMem_ClearDTCs", "params": {"GroupOfDTC": 1 << 30}},
            "command_params.params.GroupOfDTC of FaultMem_ClearDTCs does not encode:",
        ),
        (
            {"ecu": "engine", "service": "VIN_Read", "params": {"DID_RQ": 1}},
            "command_params.params.DID_RQ of VIN_Read is fixed by the description",
        ),
        (
            {"ecu": "transmission", "service": "VIN_Read"},
            "command_params.ecu: transmission of vehicle WVWZZZ1KZAW000001 is bound to no"
            " ECU description",
        ),
        (
            {"ecu": "gearbox", "service": "VIN_Read"},
            "command_params.ecu: vehicle WVWZZZ1KZAW000001 has no ECU 'gearbox'"
            " (bound to a description: engine, abs)",
        ),
        (
            {"ecu": "engine", "service": "VIN_Read", "ecuAddress": "0x28"},
            "command_params.ecuAddress: engine is at 0x0010, got 0x0028",
        ),
        ({"ecu": "engine", "service": "VIN_Read", "params": [1]}, "command_params.params must"),
        ({"service": "VIN_Read"}, "command_params.ecu is required for DiagService"),
    ],
)
def test_bad_diag_services_are_400_naming_it_and_nothing_stored(
    srv: Server, golf: dict[str, Any], params: dict[str, Any], message: str
) -> None:
    before = srv.query("SELECT count(*) FROM commands")
    r = _diag(srv, srv.token(), golf["vehicle_id"], **params)
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "incomplete-request"
    assert message in r.json()["message"], r.json()["message"]
    assert srv.query("SELECT count(*) FROM commands") == before


def test_unbound_ecus_and_generic_commands_are_unchanged(srv: Server, golf: dict[str, Any]) -> None:
    token = srv.token()
    for ecu in ("0x18", "0x10"):  # unbound, and bound: the generic conversation either way
        done = srv.wait_status(
            token,
            srv.submit(token, golf["vehicle_id"], "ReadDTC", {"ecuAddress": ecu})["command_id"],
        )
        assert done["status"] == "completed"
    command = srv.submit(
        token, golf["vehicle_id"], "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}
    )
    srv.wait_status(token, command["command_id"])
    (chunk,) = _chunks(srv, token, command["command_id"])
    assert set(chunk) == {"ecuAddress", "dataId", "name", "value", "unit"}
    # A vehicle nobody bound lists no services.
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(srv.admin_token()),
        json={"vin": "1HGCM82633A000123", "make": "a", "model": "b", "year": 2020},
    )
    assert r.status_code == 201, r.text
    other = r.json()
    r = srv.http.get(f"/api/v1/vehicles/{other['vehicle_id']}/services", headers=auth(token))
    assert r.json() == {"vehicle_id": other["vehicle_id"], "items": []}


def test_the_catalogue_lists_diag_service(srv: Server) -> None:
    r = srv.http.get("/api/v1/catalogue", headers=auth(srv.token()))
    items = {i["command_name"]: i for i in r.json()["items"]}
    schema = items["DiagService"]["params_schema"]
    assert schema["required"] == ["ecu", "service"]
    assert schema["properties"]["params"]["type"] == "object"


def test_migration_6_keeps_every_ecu_set(tmp_path: Path) -> None:
    """A database at version 5 with its ECU sets moves to 6 and loses nothing."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    for number, script in enumerate(MIGRATIONS[:5], start=1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at, ecus) VALUES ('v1', 'WVWZZZ1KZAW000099', 'A', 'B',"
        " 2020, 'connected', 'healthy', '2024-01-01T00:00:00Z',"
        ' \'[{"name": "motor", "address": 4097}]\')'
    )
    assert migrate(conn) == len(MIGRATIONS) >= 6  # (7: service accounts, issue #21)
    assert conn.execute("SELECT ecus FROM vehicles").fetchall() == [
        ('[{"name": "motor", "address": 4097}]',)
    ]
    conn.close()


@pytest.mark.socket
def test_diag_service_over_doip_to_the_emulator(tmp_path: Path) -> None:
    """The demo's DoIP vehicle (the emulator on loopback TCP), its ECUs bound to the demo
    PDX as it is added, bound again to two of them."""
    config = make_config(tmp_path, demo_emulator=True, command_timeout_s=5.0)
    with in_process(config) as server:
        admin, token = server.admin_token(), server.token()
        vehicle = server.http.get("/api/v1/vehicles/WAUZZZ8V0KDP00007", headers=auth(token)).json()
        assert [e.get("description") for e in vehicle["ecus"]] == [e.short_name for e in DEMO_ECUS]
        r = server.http.patch(
            f"/api/v1/vehicles/{vehicle['vehicle_id']}",
            headers=auth(admin),
            json={"ecus": [{"description": "ENGINE"}, {"description": "BODY"}]},
        )
        assert r.status_code == 200, r.text
        assert [(e["name"], e["address"]) for e in r.json()["ecus"]] == [
            ("engine", "0x0010"),
            ("body", "0x0040"),
        ]
        r = _diag(server, token, vehicle["vehicle_id"], ecu="engine", service="VIN_Read")
        assert server.wait_status(token, r.json()["command_id"])["status"] == "completed"
        (chunk,) = _chunks(server, token, r.json()["command_id"])
        assert (chunk["request"], chunk["parameters"]) == ("22F190", {"VIN": vehicle["vin"]})
        r = _diag(
            server,
            token,
            vehicle["vehicle_id"],
            ecu="engine",
            service="FaultMem_ReportDTCByStatusMask",
        )
        assert server.wait_status(token, r.json()["command_id"])["status"] == "completed"
        (chunk,) = _chunks(server, token, r.json()["command_id"])
        codes = [rec["DTC"]["code"] for rec in chunk["parameters"]["DTCAndStatusRecord"]]
        assert codes == ["P0171", "P0420"]
        # The body clears only in the extended session: the description names the NRC.
        r = _diag(server, token, vehicle["vehicle_id"], ecu="body", service="FaultMem_ClearDTCs")
        done = server.wait_status(token, r.json()["command_id"])
        assert (done["status"], done["error_code"]) == ("failed", "error-response")
        (chunk,) = _chunks(server, token, r.json()["command_id"])
        assert chunk["negativeResponse"]["text"] == "serviceNotSupportedInActiveSession"
