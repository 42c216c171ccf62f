"""Vehicles reached over DoIP, through the vehicles API (issue #11), and a VIN given where
a vehicle's id is expected (issue #14). In process: no DoIP link is opened here."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.config import Config, ConfigError
from app.store.migrations import MIGRATIONS, migrate
from tests.support.harness import Server, auth

pytestmark = pytest.mark.fast

VIN = "WAUZZZ8V0KDP00099"
TARGET = {"host": "192.0.2.10", "logical_address": "0x1fff", "ecu_addresses": ["0x10", "0x7e"]}


def _register(server: Server, **body: Any) -> Any:
    payload = {"vin": VIN, "make": "Audi", "model": "A4", "year": 2022, **body}
    return server.http.post("/api/v1/vehicles", headers=auth(server.admin_token()), json=payload)


def _doip_vehicle(server: Server) -> dict[str, Any]:
    r = _register(server, transport="doip", doip=TARGET)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_an_admin_registers_a_doip_vehicle_and_sees_its_target(server: Server) -> None:
    vehicle = _doip_vehicle(server)
    assert vehicle["transport"] == "doip"
    # Defaults filled in, addresses in one spelling whatever was sent.
    assert vehicle["doip"] == {
        "host": "192.0.2.10",
        "port": 13400,
        "logical_address": "0x1FFF",
        "tester_address": "0x0E00",
        "ecu_addresses": ["0x0010", "0x007E"],
        "always_on": False,
    }
    # Connected only once its link is up: nothing has used it yet.
    assert vehicle["connection_status"] == "disconnected"
    got = server.http.get(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(server.admin_token())
    )
    assert got.json() == vehicle
    stored = server.query(
        "SELECT transport, doip_logical_address, doip_tester_address, doip_ecu_addresses"
        " FROM vehicles WHERE vin = ?",
        VIN,
    )
    assert stored == [("doip", 0x1FFF, 0x0E00, "[16, 126]")]


def test_ecus_at_two_byte_addresses_are_registered(server: Server) -> None:
    # Reported: 0x1001 and 0x1028 were refused with an example (0x0E00) the check refused
    # too. Every logical address has two bytes.
    target = {
        "host": "192.0.2.10",
        "logical_address": "0x1000",
        "tester_address": "0x0e80",
        "ecu_addresses": ["0x1001", "0x1028"],
    }
    r = _register(
        server,
        transport="doip",
        doip=target,
        ecus=[{"name": "engine", "address": "0x1001"}, {"name": "brakes", "address": "0x1028"}],
    )
    assert r.status_code == 201, r.text
    vehicle = r.json()
    assert vehicle["doip"]["ecu_addresses"] == ["0x1001", "0x1028"]
    assert (vehicle["doip"]["logical_address"], vehicle["doip"]["tester_address"]) == (
        "0x1000",
        "0x0E80",
    )
    assert vehicle["ecus"] == [
        {"name": "engine", "address": "0x1001"},
        {"name": "brakes", "address": "0x1028"},
    ]
    stored = server.query("SELECT doip_ecu_addresses, ecus FROM vehicles WHERE vin = ?", VIN)
    assert stored[0][0] == "[4097, 4136]"
    # Without ecus, the listed addresses are the ECUs.
    r = _register(server, vin="WAUZZZ8V0KDP00098", transport="doip", doip=target)
    assert r.status_code == 201, r.text
    assert r.json()["ecus"] == [
        {"name": "ecu-0x1001", "address": "0x1001"},
        {"name": "ecu-0x1028", "address": "0x1028"},
    ]


def test_engineers_see_the_transport_but_not_the_target(server: Server) -> None:
    vehicle = _doip_vehicle(server)
    token = server.token()
    one = server.http.get(f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(token))
    assert (one.json()["transport"], one.json()["doip"]) == ("doip", None)
    page = server.http.get("/api/v1/vehicles", headers=auth(token), params={"search": VIN})
    assert [(v["transport"], v["doip"]) for v in page.json()["items"]] == [("doip", None)]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"transport": "doip"}, "doip: required when transport is doip"),
        ({"doip": TARGET}, "doip: only for transport doip"),
        ({"transport": "can"}, "body.transport: Invalid enum value 'can'"),
        (
            {"transport": "doip", "doip": {**TARGET, "logical_address": "0x12345"}},
            "doip.logical_address must be a logical address, two bytes in hex from 0x0001 to"
            " 0xFFFF such as 0x0001 (0x10 is 0x0010), got '0x12345'",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "logical_address": "0x0000"}},
            "doip.logical_address must be a logical address",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "tester_address": "0x0"}},
            "doip.tester_address must be a logical address, two bytes in hex from 0x0001 to"
            " 0xFFFF such as 0x0E00",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "ecu_addresses": ["0x10", "0x10000"]}},
            "doip.ecu_addresses[1] must be a logical address, two bytes in hex from 0x0001 to"
            " 0xFFFF such as 0x0010 (0x10 is 0x0010), got '0x10000'",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "ecu_addresses": ["0x0000"]}},
            "doip.ecu_addresses[0] must be a logical address",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "ecu_addresses": ["1001"]}},
            "doip.ecu_addresses[0] must be a logical address",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "port": 70000}},
            "body.doip.port: Expected `int` <= 65535",
        ),
        (
            {"transport": "doip", "doip": {**TARGET, "host": "bad host/name"}},
            "doip.host must be a host name or IP address",
        ),
        (
            {"transport": "doip", "doip": {"host": "192.0.2.10"}},
            "body.doip: Object missing required field `logical_address`",
        ),
    ],
)
def test_bad_doip_registrations_get_a_400_naming_the_field(
    shared_server: Server, body: dict[str, Any], message: str
) -> None:
    r = _register(shared_server, **body)
    assert r.status_code == 400, r.text
    assert message in r.json()["message"], r.json()
    assert shared_server.query("SELECT count(*) FROM vehicles WHERE vin = ?", VIN) == [(0,)]


def test_patch_switches_transport_and_refuses_a_status_for_a_doip_vehicle(
    server: Server,
) -> None:
    token = server.admin_token()
    vehicle = server.vehicle(token)  # a connected simulated one
    url = f"/api/v1/vehicles/{vehicle['vehicle_id']}"
    r = server.http.patch(url, headers=auth(token), json={"transport": "doip"})
    assert r.status_code == 400 and "doip: required" in r.json()["message"]
    r = server.http.patch(url, headers=auth(token), json={"transport": "doip", "doip": TARGET})
    assert r.status_code == 200, r.text
    assert (r.json()["transport"], r.json()["connection_status"]) == ("doip", "disconnected")
    r = server.http.patch(url, headers=auth(token), json={"connection_status": "connected"})
    assert r.status_code == 400
    assert "connection_status of a doip vehicle follows its link" in r.json()["message"]
    r = server.http.patch(url, headers=auth(token), json={"doip": {**TARGET, "port": 13401}})
    assert r.json()["doip"]["port"] == 13401
    # Back to the simulator: the target is forgotten and the vehicle usable again.
    r = server.http.patch(url, headers=auth(token), json={"transport": "simulator"})
    assert r.status_code == 200
    assert (r.json()["transport"], r.json()["doip"], r.json()["connection_status"]) == (
        "simulator",
        None,
        "connected",
    )
    audit = server.http.get(
        "/api/v1/audit", headers=auth(token), params={"action": "vehicle.update"}
    ).json()["items"]
    assert any("doip" in entry["details"] for entry in audit)


def test_session_and_routine_commands_run_on_a_simulated_vehicle_too(server: Server) -> None:
    # They were DoIP-only; the simulator now runs the same UDS conversations.
    token = server.token()
    vehicle_id = server.vehicle(token)["vehicle_id"]
    session = server.submit(
        token,
        vehicle_id,
        "DiagnosticSessionControl",
        {"ecuAddress": "0x40", "session": "extended"},
    )
    routine = server.submit(
        token,
        vehicle_id,
        "RoutineControl",
        {"ecuAddress": "0x40", "routineId": "0x0201", "action": "start"},
    )
    for command in (session, routine):
        assert server.wait_status(token, command["command_id"])["status"] == "completed"
    chunks = server.http.get(
        f"/api/v1/commands/{routine['command_id']}/responses", headers=auth(token)
    ).json()["items"]
    assert chunks[-1]["response_payload"]["status"] == "running"


@pytest.mark.socket
def test_a_doip_vehicle_takes_commands_while_its_link_is_down(server: Server) -> None:
    # Disconnected means "no link yet": the command opens it. Here the target does not
    # answer (TEST-NET address, port closed on loopback): the command fails unreachable.
    token = server.admin_token()
    r = _register(
        server, transport="doip", doip={**TARGET, "host": "127.0.0.1", "port": _closed_port()}
    )
    vehicle = r.json()
    command = server.submit(token, vehicle["vehicle_id"])
    done = server.wait_status(token, command["command_id"], "failed")
    assert done["error_code"] == "vehicle-unreachable"
    assert "cannot connect to 127.0.0.1" in done["error_message"]


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # closed again: connecting is refused


# -- a VIN where a vehicle id is expected (issue #14) -----------------------------------


def test_a_vehicle_is_found_by_its_vin_too(server: Server) -> None:
    token = server.token()
    vehicle = server.vehicle(token)
    r = server.http.get(f"/api/v1/vehicles/{vehicle['vin']}", headers=auth(token))
    assert r.status_code == 200 and r.json() == vehicle
    r = server.http.get(f"/api/v1/vehicles/{vehicle['vin'].lower()}", headers=auth(token))
    assert r.status_code == 200 and r.json()["vehicle_id"] == vehicle["vehicle_id"]
    r = server.http.get(f"/api/v1/vehicles/{VIN}", headers=auth(token))
    assert r.status_code == 404 and r.json()["message"] == f"no vehicle has vin {VIN}"


def test_a_vin_given_as_vehicle_id_says_where_the_id_is(server: Server) -> None:
    token = server.admin_token()
    vin = server.vehicle(token)["vin"]
    hint = f"looks like a VIN; use the vehicle_id from /api/v1/vehicles?search={vin}"
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={"vehicle_id": vin, "command_name": "ReadDTC", "command_params": {}},
    )
    assert r.status_code == 400 and r.json()["message"] == f"body.vehicle_id {vin} {hint}"
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={"vehicle_id": "nope", "command_name": "ReadDTC", "command_params": {}},
    )
    assert r.status_code == 400 and r.json()["message"] == "body.vehicle_id must be a UUID"


def test_a_vin_in_the_address_of_a_change_is_resolved(server: Server) -> None:
    # Issue #21 item 4: pasted where the id goes, a VIN (any case) names its vehicle.
    token = server.admin_token()
    vehicle = server.vehicle(token)
    for ref in (vehicle["vin"], vehicle["vin"].lower()):
        r = server.http.patch(
            f"/api/v1/vehicles/{ref}", headers=auth(token), json={"connection_status": "connected"}
        )
        assert r.status_code == 200, r.text
        assert r.json()["vehicle_id"] == vehicle["vehicle_id"]
    r = server.http.patch(
        f"/api/v1/vehicles/{VIN}", headers=auth(token), json={"connection_status": "connected"}
    )
    assert r.status_code == 404 and r.json()["message"] == f"no vehicle has vin {VIN}"


def test_the_document_says_a_vehicle_is_found_by_vin() -> None:
    from app.api.routes import ENDPOINTS
    from app.services.vehicle_inputs import VIN_ANY_CASE

    get = next(e for e in ENDPOINTS if e.method == "GET" and e.path.endswith("{vehicle_id}"))
    assert get.path_also == {"vehicle_id": VIN_ANY_CASE}


# -- schema and configuration ------------------------------------------------------------


def test_migration_4_keeps_existing_vehicles_simulated(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "old.db")
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at) VALUES ('v1', ?, 'VW', 'Golf', 2020, 'connected',"
        " 'healthy', '2026-01-01T00:00:00Z')",
        (VIN,),
    )
    conn.commit()
    assert migrate(conn) == len(MIGRATIONS) >= 4
    row = conn.execute(
        "SELECT transport, doip_host, doip_always_on, connection_status FROM vehicles"
    ).fetchone()
    assert row == ("simulator", None, 0, "connected")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE vehicles SET transport = 'can'")


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"SOVD_DOIP_P2_MS": "0"}, "SOVD_DOIP_P2_MS"),
        ({"SOVD_DOIP_P2_STAR_MS": "x"}, "SOVD_DOIP_P2_STAR_MS"),
        ({"SOVD_DOIP_CONNECT_TIMEOUT_S": "-1"}, "SOVD_DOIP_CONNECT_TIMEOUT_S"),
        ({"SOVD_DOIP_IDLE_CLOSE_S": "0"}, "SOVD_DOIP_IDLE_CLOSE_S"),
        ({"SOVD_DOIP_TESTER_PRESENT_S": "y"}, "SOVD_DOIP_TESTER_PRESENT_S"),
        (
            {"SOVD_DOIP_BACKOFF_FIRST_S": "10", "SOVD_DOIP_BACKOFF_MAX_S": "5"},
            "SOVD_DOIP_BACKOFF_FIRST_S",
        ),
        ({"SOVD_DEMO_EMULATOR": "maybe"}, "SOVD_DEMO_EMULATOR"),
    ],
)
def test_doip_settings_are_checked_naming_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        Config.from_env(env)


def test_doip_settings_reach_the_connector() -> None:
    from app.builders import doip_settings

    config = Config.from_env(
        {"SOVD_DOIP_P2_MS": "150", "SOVD_DOIP_P2_STAR_MS": "4000", "SOVD_DOIP_IDLE_CLOSE_S": "7"}
    )
    settings = doip_settings(config)
    assert (settings.p2_s, settings.p2_star_s, settings.idle_close_s) == (0.15, 4.0, 7.0)
    assert (settings.backoff_first_s, settings.backoff_max_s) == (0.5, 30.0)
