"""Issue #10: a vehicle's ECU set is data (its SOVD components).

Every vehicle has ``ecus`` (default engine 0x10, transmission 0x18, abs 0x28, body 0x40),
shown to engineers and admins; admins set it on POST and PATCH /api/v1/vehicles (checked,
400 naming the field); the change is audited; a DoIP vehicle registered without it takes
its ECUs from ``doip.ecu_addresses``; migration 5 gives existing vehicles the default set;
and every command carries the vehicle's ECUs to its connector.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.models import DEFAULT_ECU_REFS
from app.store.migrations import MIGRATIONS, migrate
from app.vehicles.connector import Chunk, DiagnosticRequest
from app.vehicles.pdx.demo import DEFAULT_ECUS
from tests.support.harness import Server, auth, in_process, make_config, wait_until

pytestmark = pytest.mark.fast

VIN = "1HGCM82633A004352"
# Addresses are shown in four digits (given as 0x10 or 0x0010 alike).
DEFAULT = [
    {"name": "engine", "address": "0x0010"},
    {"name": "transmission", "address": "0x0018"},
    {"name": "abs", "address": "0x0028"},
    {"name": "body", "address": "0x0040"},
]
DOIP = {"host": "192.0.2.10", "logical_address": "0x0001"}


def _new(**extra: Any) -> dict[str, Any]:
    return {"vin": VIN, "make": "Honda", "model": "Accord", "year": 2003, **extra}


def _audit(server: Server, action: str) -> list[dict[str, Any]]:
    r = server.http.get(
        "/api/v1/audit", headers=auth(server.admin_token()), params={"action": action}
    )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def test_the_default_set_is_the_four_described_ecus() -> None:
    assert DEFAULT_ECUS == (("engine", 0x10), ("transmission", 0x18), ("abs", 0x28), ("body", 0x40))
    assert [{"name": e.name, "address": e.address} for e in DEFAULT_ECU_REFS] == DEFAULT


# The demo fleet's: the default four bound to the demo description's containers.
DEMO_BOUND = [{**e, "description": e["name"].upper()} for e in DEFAULT]


def test_every_vehicle_shows_its_ecus_to_engineers_and_admins(server: Server) -> None:
    for token in (server.token(), server.admin_token()):
        r = server.http.get("/api/v1/vehicles", headers=auth(token), params={"limit": 200})
        assert r.status_code == 200, r.text
        assert {json.dumps(v["ecus"]) for v in r.json()["items"]} == {json.dumps(DEMO_BOUND)}


def test_an_admin_registers_a_vehicle_with_its_ecus(server: Server) -> None:
    admin = server.admin_token()
    given = [
        {"name": "gateway", "address": "0x1"},
        {"name": "engine", "address": "0x10"},
        {"name": "hvac-2", "address": "0X6a"},
        {"name": "adas", "address": "0x1001"},
        {"name": "top", "address": "0xffff"},
    ]
    r = server.http.post("/api/v1/vehicles", headers=auth(admin), json=_new(ecus=given))
    assert r.status_code == 201, r.text
    expected = [
        {"name": "gateway", "address": "0x0001"},
        {"name": "engine", "address": "0x0010"},
        {"name": "hvac-2", "address": "0x006A"},
        {"name": "adas", "address": "0x1001"},
        {"name": "top", "address": "0xFFFF"},
    ]
    assert r.json()["ecus"] == expected
    engineer = server.token()
    fetched = server.http.get(r.headers["location"], headers=auth(engineer))
    assert fetched.json()["ecus"] == expected
    [created] = _audit(server, "vehicle.create")
    assert created["details"]["ecus"] == expected


def test_a_vehicle_registered_without_ecus_has_the_default_four(server: Server) -> None:
    r = server.http.post("/api/v1/vehicles", headers=auth(server.admin_token()), json=_new())
    assert r.status_code == 201, r.text
    assert r.json()["ecus"] == DEFAULT


def test_an_admin_changes_the_ecus_and_the_audit_shows_the_change(server: Server) -> None:
    admin = server.admin_token()
    vehicle = server.vehicle(admin)
    url = f"/api/v1/vehicles/{vehicle['vehicle_id']}"
    new = [{"name": "engine", "address": "0x10"}, {"name": "adas", "address": "0x7f"}]
    r = server.http.patch(url, headers=auth(admin), json={"ecus": new})
    assert r.status_code == 200, r.text
    after = [{"name": "engine", "address": "0x0010"}, {"name": "adas", "address": "0x007F"}]
    assert r.json()["ecus"] == after
    assert server.http.get(url, headers=auth(server.token())).json()["ecus"] == after
    [update] = _audit(server, "vehicle.update")
    assert update["entity_id"] == vehicle["vehicle_id"]
    assert update["details"] == {"ecus": {"from": DEMO_BOUND, "to": after}}
    # Another change leaves the ECU set alone.
    r = server.http.patch(url, headers=auth(admin), json={"simulator_profile": "flaky"})
    assert r.json()["ecus"] == after


@pytest.mark.parametrize(
    ("ecus", "message"),
    [
        ([], "body.ecus: Expected `array` of length >= 1"),
        ([{"name": f"e{n}", "address": f"0x{n:02X}"} for n in range(33)], "body.ecus: Expected"),
        (
            [*DEFAULT[:2], {"name": "abs", "address": "0x10000"}],
            "ecus[2].address must be a logical address, two bytes in hex from 0x0001 to 0xFFFF"
            " such as 0x0010 (0x10 is 0x0010), got '0x10000'",
        ),
        ([{"name": "abs", "address": "0x0000"}], "ecus[0].address must be a logical address"),
        ([{"name": "abs", "address": "0x0"}], "ecus[0].address must be a logical address"),
        ([{"name": "abs", "address": "40"}], "ecus[0].address must be a logical address"),
        ([{"name": "abs", "address": "0x" + "1" * 20}], "body.ecus[0].address"),
        ([{"name": "Engine", "address": "0x10"}], "body.ecus[0].name"),
        ([{"name": "1st", "address": "0x10"}], "body.ecus[0].name"),
        ([{"name": "e" * 33, "address": "0x10"}], "body.ecus[0].name"),
        # (the address may be left out only with a description: issue #20)
        ([{"name": "engine"}], "ecus[0].address: required for an ECU without a description"),
        ([{"name": "engine", "address": "0x10", "x": 1}], "body.ecus[0]: unknown field `x`"),
        ([{"name": "engine", "address": 16}], "body.ecus[0].address: Expected `str | null`"),
        (
            [{"name": "engine", "address": "0x10"}, {"name": "engine", "address": "0x11"}],
            "ecus[1].name: engine is already the name of ecus[0]",
        ),
        (
            [{"name": "engine", "address": "0x10"}, {"name": "motor", "address": "0X10"}],
            "ecus[1].address: 0x0010 is already the address of ecus[0]",
        ),
        (
            [{"name": "engine", "address": "0x10"}, {"name": "motor", "address": "0x0010"}],
            "ecus[1].address: 0x0010 is already the address of ecus[0]",
        ),
        (None, "body.ecus: Expected `array`, got `null`"),
    ],
)
def test_bad_ecu_sets_are_refused_naming_the_field(
    shared_server: Server, ecus: object, message: str
) -> None:
    admin = shared_server.admin_token()
    before = shared_server.query("SELECT vehicle_id, ecus FROM vehicles ORDER BY vin")
    vehicle = shared_server.vehicle(admin)
    patch = shared_server.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(admin), json={"ecus": ecus}
    )
    if ecus is not None:  # POST takes null as "the default set"
        post = shared_server.http.post(
            "/api/v1/vehicles", headers=auth(admin), json=_new(ecus=ecus)
        )
        assert post.status_code == 400, post.text
        assert message in post.json()["message"], post.json()["message"]
    assert patch.status_code == 400, patch.text
    assert patch.json()["error_code"] == "incomplete-request"
    assert message in patch.json()["message"], patch.json()["message"]
    assert shared_server.query("SELECT vehicle_id, ecus FROM vehicles ORDER BY vin") == before


def test_a_doip_vehicle_takes_its_ecus_from_its_ecu_addresses(server: Server) -> None:
    admin = server.admin_token()
    doip = {**DOIP, "ecu_addresses": ["0x10", "0x50", "0x28", "0x0010", "0x1001"]}
    r = server.http.post(
        "/api/v1/vehicles", headers=auth(admin), json=_new(transport="doip", doip=doip)
    )
    assert r.status_code == 201, r.text
    derived = [
        {"name": "engine", "address": "0x0010"},
        {"name": "ecu-0x50", "address": "0x0050"},
        {"name": "abs", "address": "0x0028"},
        {"name": "ecu-0x1001", "address": "0x1001"},
    ]
    assert r.json()["ecus"] == derived
    # As given (each in four digits): 0x10 and 0x0010 are the same ECU.
    assert r.json()["doip"]["ecu_addresses"] == ["0x0010", "0x0050", "0x0028", "0x0010", "0x1001"]
    # A new target leaves the ECU set as it is.
    url = r.headers["location"]
    moved = server.http.patch(
        url, headers=auth(admin), json={"doip": {**DOIP, "ecu_addresses": ["0x18"]}}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["ecus"] == derived


def test_a_doip_vehicle_keeps_the_ecus_it_is_given_or_the_default(server: Server) -> None:
    admin = server.admin_token()
    doip = {**DOIP, "ecu_addresses": ["0x10", "0x50"]}
    given = [{"name": "ecm", "address": "0x10"}]
    r = server.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json=_new(transport="doip", doip=doip, ecus=given),
    )
    assert r.status_code == 201, r.text
    assert r.json()["ecus"] == [{"name": "ecm", "address": "0x0010"}]
    r = server.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json=_new(vin="1HGCM82633A004353", transport="doip", doip=DOIP),
    )
    assert r.status_code == 201, r.text
    assert r.json()["ecus"] == DEFAULT


def _version_4_database(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path)
    for number, script in enumerate(MIGRATIONS[:4], start=1):
        conn.executescript(f"BEGIN; {script} PRAGMA user_version={number}; COMMIT;")
    at = "2026-01-01T00:00:00+00:00"
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at) VALUES ('sim', ?, 'VW', 'Golf', 2020, 'connected',"
        " 'healthy', ?)",
        (VIN, at),
    )
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at, transport, doip_host, doip_port,"
        " doip_logical_address, doip_tester_address, doip_ecu_addresses)"
        " VALUES ('doip', '1HGCM82633A004353', 'Bench', 'Rig', 2024, 'disconnected',"
        " 'healthy', ?, 'doip', '192.0.2.1', 13400, 1, 3584, '[16, 80]')",
        (at,),
    )
    conn.execute(
        "INSERT INTO vehicles (vehicle_id, vin, make, model, year, connection_status,"
        " simulator_profile, created_at, transport, doip_host, doip_port,"
        " doip_logical_address, doip_tester_address, doip_ecu_addresses)"
        " VALUES ('bare', '1HGCM82633A004354', 'Bench', 'Rig', 2024, 'disconnected',"
        " 'healthy', ?, 'doip', '192.0.2.2', 13400, 1, 3584, '[]')",
        (at,),
    )
    conn.commit()
    return conn


def test_migration_5_gives_existing_vehicles_their_ecus(tmp_path: Path) -> None:
    conn = _version_4_database(tmp_path / "sovd.db")
    assert migrate(conn) == len(MIGRATIONS) >= 5
    stored = {
        vehicle_id: json.loads(raw)
        for vehicle_id, raw in conn.execute("SELECT vehicle_id, ecus FROM vehicles")
    }
    default = [{"name": name, "address": address} for name, address in DEFAULT_ECUS]
    assert stored == {
        "sim": default,
        "doip": [{"name": "engine", "address": 16}, {"name": "ecu-0x50", "address": 80}],
        "bare": default,
    }
    # Nothing else about the vehicles changed.
    assert conn.execute("SELECT vin, doip_ecu_addresses FROM vehicles ORDER BY vin").fetchall() == [
        (VIN, None),
        ("1HGCM82633A004353", "[16, 80]"),
        ("1HGCM82633A004354", "[]"),
    ]


def test_a_migrated_database_serves_the_ecus(tmp_path: Path) -> None:
    config = make_config(tmp_path, demo_data=False)
    config.db_path.parent.mkdir(parents=True)
    _version_4_database(config.db_path).close()
    with in_process(config) as server:
        r = server.http.get(f"/api/v1/vehicles/{VIN}", headers=auth(server.token()))
        assert r.status_code == 200, r.text
        assert r.json()["ecus"] == DEFAULT
        # The stored numbers are shown in today's spelling.
        r = server.http.get(
            "/api/v1/vehicles/1HGCM82633A004353", headers=auth(server.admin_token())
        )
        assert r.json()["ecus"] == [
            {"name": "engine", "address": "0x0010"},
            {"name": "ecu-0x50", "address": "0x0050"},
        ]
        assert r.json()["doip"]["ecu_addresses"] == ["0x0010", "0x0050"]
        assert r.json()["doip"]["tester_address"] == "0x0E00"


class RecordingVehicle:
    """A vehicle that answers every command at once and keeps the requests it got."""

    def __init__(self) -> None:
        self.requests: list[DiagnosticRequest] = []

    async def execute(self, request: DiagnosticRequest) -> AsyncIterator[Chunk]:
        self.requests.append(request)
        yield Chunk({"ok": True}, True)


def test_a_command_carries_the_vehicles_ecus_to_the_vehicle(tmp_path: Path) -> None:
    vehicle = RecordingVehicle()
    with in_process(make_config(tmp_path), connector=vehicle) as server:
        admin = server.admin_token()
        target = server.vehicle(admin)
        given = [{"name": "engine", "address": "0x10"}, {"name": "ecu-0x5a", "address": "0x5a"}]
        r = server.http.patch(
            f"/api/v1/vehicles/{target['vehicle_id']}", headers=auth(admin), json={"ecus": given}
        )
        assert r.status_code == 200, r.text
        command = server.submit(admin, target["vehicle_id"])
        server.wait_status(admin, command["command_id"], "completed")
        wait_until(lambda: vehicle.requests, "the vehicle to get the command")
        [request] = vehicle.requests
        assert request.ecus == (("engine", 0x10), ("ecu-0x5a", 0x5A))
