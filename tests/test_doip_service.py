"""The DoIP path through the whole service (issue #11): a command submitted over HTTP to a
vehicle with transport doip reaches the ECU emulator over real TCP on loopback and its
answer streams over a real WebSocket as a simulated vehicle's does; the vehicle's
connection_status, last_seen_at and the metrics follow the real link."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.services.vehicles import DEMO_DOIP_VIN
from app.vehicles.emulator import DEFAULT_SPECS
from app.vehicles.emulator.server import DoipEmulator, EmulatorSettings
from tests.support.doip_helpers import ThreadedEmulator
from tests.support.harness import Server, auth, make_config, running, wait_until
from tests.support.scrape import scrape, total, value

pytestmark = pytest.mark.socket

VIN = "WAUZZZ8V0KDP00042"
GAUGE = "vehicle_connections_active"
LOSSES = "sovd_vehicle_connection_losses_total"
LATENCY = "sovd_vehicle_request_duration_seconds"


@pytest.fixture
def srv(tmp_path: Path) -> Iterator[Server]:
    config = make_config(
        tmp_path,
        command_timeout_s=5.0,
        # Watch the links often and retry soon, so the tests see losses and returns fast.
        doip_tester_present_s=0.05,
        doip_backoff_first_s=0.05,
        doip_backoff_max_s=0.2,
    )
    with running(config) as server:
        yield server


def _emulator(srv: Server, port: int = 0) -> DoipEmulator:
    """An emulator on the server's event loop, listening on loopback."""
    emulator = DoipEmulator(EmulatorSettings(vin=VIN, seed=7))
    srv.run(emulator.start("127.0.0.1", port))
    return emulator


def _register(srv: Server, port: int, always_on: bool = False) -> dict[str, Any]:
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(srv.admin_token()),
        json={
            "vin": VIN,
            "make": "Emulated",
            "model": "Bench",
            "year": 2024,
            "transport": "doip",
            "doip": {
                "host": "127.0.0.1",
                "port": port,
                "logical_address": "0x0001",
                "ecu_addresses": ["0x10", "0x18"],
                "always_on": always_on,
            },
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def _status(srv: Server, vehicle_id: str) -> dict[str, Any]:
    r = srv.http.get(f"/api/v1/vehicles/{vehicle_id}", headers=auth(srv.admin_token()))
    return dict(r.json())


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] if e["event"] != "status" else e["status"] for e in events]


def test_a_doip_command_streams_like_a_simulated_one_and_the_link_is_measured(
    srv: Server,
) -> None:
    emulator = _emulator(srv)
    try:
        simulated_connected = value(scrape(srv.http), GAUGE)
        vehicle = _register(srv, emulator.port)
        vid = vehicle["vehicle_id"]
        assert value(scrape(srv.http), GAUGE) == simulated_connected  # no link yet
        token = srv.token()
        command = srv.submit(token, vid, "ReadDTC", {"ecuAddress": "0x10"})
        done = srv.wait_status(token, command["command_id"])
        assert done["status"] == "completed", done
        events, code = srv.stream(command["command_id"], token)
        assert code == 1000
        assert _kinds(events) == ["in_progress", "response", "response", "response", "completed"]
        answers = [e["response_payload"] for e in events if e["event"] == "response"]
        assert [a.get("dtcCode") for a in answers] == ["P0171", "P0420", None]
        assert answers[0]["statusByte"] == "0x2F" and answers[-1]["totalDtcs"] == 2
        assert [e["is_final"] for e in events if e["event"] == "response"] == [
            False,
            False,
            True,
        ]

        # The link is up: the vehicle says so, and the gauge counts it.
        state = wait_until(
            lambda: (
                (s := _status(srv, vid))["connection_status"] == "connected"
                and s["last_seen_at"]
                and s
            ),
            "the vehicle to show its link",
        )
        assert state["last_seen_at"] >= done["submitted_at"]
        samples = scrape(srv.http)
        assert value(samples, GAUGE) == simulated_connected + 1
        assert (
            value(samples, f"{LATENCY}_count", service="ReadDTCInformation", outcome="positive")
            == 1
        )
        assert total(samples, f"{LATENCY}_count", service="ReadDataByIdentifier") == 0
        assert value(samples, LOSSES) == 0

        # A DoIP-only command, and a negative response keeping its NRC.
        routine = srv.submit(
            token,
            vid,
            "RoutineControl",
            {"ecuAddress": "0x10", "routineId": "0x0201", "action": "start"},
        )
        assert srv.wait_status(token, routine["command_id"])["status"] == "completed"
        refused = srv.submit(token, vid, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x1234"})
        failed = srv.wait_status(token, refused["command_id"])
        assert (failed["status"], failed["error_code"]) == ("failed", "request-out-of-range")
        assert "0x31" in failed["error_message"] and "requestOutOfRange" in failed["error_message"]
        samples = scrape(srv.http)
        assert value(samples, f"{LATENCY}_count", service="RoutineControl", outcome="positive") == 1
        assert (
            value(samples, f"{LATENCY}_count", service="ReadDataByIdentifier", outcome="negative")
            == 1
        )

        # The vehicle goes away: noticed by the link watch, not only at the next command.
        srv.run(emulator.close())
        wait_until(
            lambda: _status(srv, vid)["connection_status"] == "disconnected",
            "the vehicle to be disconnected after the loss",
        )
        samples = scrape(srv.http)
        assert value(samples, LOSSES) == 1
        assert value(samples, GAUGE) == simulated_connected
    finally:
        srv.run(emulator.close())


def test_an_always_on_vehicle_connects_by_itself_and_comes_back_after_a_loss(
    srv: Server,
) -> None:
    emulator = _emulator(srv)
    port = emulator.port
    try:
        simulated_connected = value(scrape(srv.http), GAUGE)
        vid = _register(srv, port, always_on=True)["vehicle_id"]
        wait_until(
            lambda: _status(srv, vid)["connection_status"] == "connected",
            "the always-on vehicle to connect without a command",
        )
        assert emulator.connections_accepted == 1 and not emulator.requests
        assert value(scrape(srv.http), GAUGE) == simulated_connected + 1
        srv.run(emulator.close())
        wait_until(
            lambda: _status(srv, vid)["connection_status"] == "disconnected",
            "the loss to show",
        )
        assert value(scrape(srv.http), LOSSES) == 1
        emulator = _emulator(srv, port)  # the vehicle is back on the network
        wait_until(
            lambda: _status(srv, vid)["connection_status"] == "connected",
            "the vehicle to be reconnected",
        )
        assert value(scrape(srv.http), GAUGE) == simulated_connected + 1
    finally:
        srv.run(emulator.close())


def test_changing_the_target_drops_the_link_and_the_next_command_uses_the_new_one(
    srv: Server,
) -> None:
    old, new = _emulator(srv), _emulator(srv)
    try:
        vid = _register(srv, old.port)["vehicle_id"]
        token = srv.token()
        first = srv.submit(token, vid, "ReadDTC", {"ecuAddress": "0x18"})
        assert srv.wait_status(token, first["command_id"])["status"] == "completed"
        assert old.active_connections == 1
        r = srv.http.patch(
            f"/api/v1/vehicles/{vid}",
            headers=auth(srv.admin_token()),
            json={"doip": {"host": "127.0.0.1", "port": new.port, "logical_address": "0x0001"}},
        )
        assert r.status_code == 200, r.text
        wait_until(lambda: old.active_connections == 0, "the old link to be closed")
        wait_until(
            lambda: _status(srv, vid)["connection_status"] == "disconnected",
            "the vehicle to show the dropped link",
        )
        second = srv.submit(token, vid, "ReadDTC", {"ecuAddress": "0x18"})
        assert srv.wait_status(token, second["command_id"])["status"] == "completed"
        assert (old.connections_accepted, new.connections_accepted) == (1, 1)
    finally:
        srv.run(old.close())
        srv.run(new.close())


def test_ecus_at_two_byte_addresses_are_reached_over_doip(srv: Server) -> None:
    # Reported: a peer's ECUs at 0x1001 and 0x1028 could not even be registered. Here the
    # emulator has the engine at 0x1001, abs at 0x1028 and the transmission at 0x0018.
    engine, transmission, abs_ecu = (DEFAULT_SPECS[a] for a in (0x10, 0x18, 0x28))
    ecus = (replace(engine, address=0x1001), transmission, replace(abs_ecu, address=0x1028))
    emulator = DoipEmulator(EmulatorSettings(vin=VIN, seed=7, ecus=ecus))
    srv.run(emulator.start("127.0.0.1", 0))
    try:
        r = srv.http.post(
            "/api/v1/vehicles",
            headers=auth(srv.admin_token()),
            json={
                "vin": VIN,
                "make": "Peer",
                "model": "Bench",
                "year": 2024,
                "transport": "doip",
                "doip": {
                    "host": "127.0.0.1",
                    "port": emulator.port,
                    "logical_address": "0x0001",
                    "ecu_addresses": ["0x1001", "0x1028", "0x18"],
                },
                "ecus": [
                    {"name": "engine", "address": "0x1001"},
                    {"name": "abs", "address": "0x1028"},
                    {"name": "transmission", "address": "0x18"},
                ],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["ecus"][2] == {"name": "transmission", "address": "0x0018"}
        vid = r.json()["vehicle_id"]
        token = srv.token()

        def answers(address: str) -> list[tuple[str, str | None]]:
            command = srv.submit(token, vid, "ReadDTC", {"ecuAddress": address})
            done = srv.wait_status(token, command["command_id"])
            assert done["status"] == "completed", done
            assert done["command_params"] == {"ecuAddress": f"0x{int(address, 16):04X}"}
            chunks = srv.http.get(
                f"/api/v1/commands/{command['command_id']}/responses", headers=auth(token)
            ).json()["items"]
            return [
                (c["response_payload"]["ecuAddress"], c["response_payload"].get("dtcCode"))
                for c in chunks
            ]

        assert answers("0x1001") == [("0x1001", "P0171"), ("0x1001", "P0420"), ("0x1001", None)]
        assert answers("0x1028") == [("0x1028", "C0035"), ("0x1028", None)]
        # 0x18 and 0x0018 are the same ECU.
        assert answers("0x18") == answers("0x0018") == [("0x0018", "P0700"), ("0x0018", None)]
        # 0x10 is 0x0010, where this vehicle has no ECU: the entity says so.
        nowhere = srv.submit(token, vid, "ReadDTC", {"ecuAddress": "0x10"})
        assert srv.wait_status(token, nowhere["command_id"])["status"] == "failed"

        # The SOVD tree finds the components by name and talks to them at their address.
        root = f"/sovd/vehicles/{VIN}/v1/components"
        component = srv.http.get(f"{root}/abs", headers=auth(token)).json()
        assert component["x-ecu-address"] == "0x1028"
        faults = srv.http.get(f"{root}/abs/faults", headers=auth(token)).json()["items"]
        assert [f["display_code"] for f in faults] == ["C0035"]
        r = srv.http.delete(f"{root}/engine/faults/P0420", headers=auth(token))
        assert r.status_code == 204, r.text
        assert emulator.ecu(0x1001).stored_codes() == ("P0171",)
        assert emulator.ecu(0x1028).stored_codes() == ("C0035",)
    finally:
        srv.run(emulator.close())


def test_the_demo_emulator_backs_a_doip_vehicle_of_the_demo_fleet(tmp_path: Path) -> None:
    config = make_config(tmp_path, demo_emulator=True, command_timeout_s=5.0)
    ports = []
    for _ in range(2):  # a restart finds the vehicle and points it at the new port
        with running(config) as srv:
            token = srv.token()
            r = srv.http.get(f"/api/v1/vehicles/{DEMO_DOIP_VIN}", headers=auth(srv.admin_token()))
            assert r.status_code == 200, r.text
            vehicle = r.json()
            assert vehicle["transport"] == "doip"
            emulator = srv.app.state.lifecycle.emulator
            assert vehicle["doip"]["port"] == emulator.port
            ports.append(emulator.port)
            command = srv.submit(
                token,
                vehicle["vehicle_id"],
                "ReadDataByID",
                {"ecuAddress": "0x10", "dataId": "0xF190"},
            )
            assert srv.wait_status(token, command["command_id"])["status"] == "completed"
            events, code = srv.stream(command["command_id"], token)
            answer = next(e["response_payload"] for e in events if e["event"] == "response")
            assert (code, answer["value"]) == (1000, DEMO_DOIP_VIN)
            assert srv.query("SELECT count(*) FROM vehicles WHERE transport = 'doip'") == [(1,)]
        assert emulator.active_connections == 0  # closed with the service


def test_always_on_vehicles_connect_at_start(tmp_path: Path) -> None:
    ecu = ThreadedEmulator("healthy")
    config = make_config(tmp_path, doip_tester_present_s=0.05)
    try:
        with running(config) as srv:
            vid = _register(srv, ecu.port, always_on=True)["vehicle_id"]
            wait_until(lambda: ecu.emulator.active_connections == 1, "the first link")
        # Stopped: the link is closed and the vehicle stored as disconnected.
        wait_until(lambda: ecu.emulator.active_connections == 0, "the link to close")
        with sqlite3.connect(config.db_path) as conn:
            status = conn.execute(
                "SELECT connection_status FROM vehicles WHERE vehicle_id = ?", (vid,)
            ).fetchone()
        assert status == ("disconnected",)
        with running(config) as srv:
            # No command, no request: the start alone brings the link up.
            wait_until(
                lambda: _status(srv, vid)["connection_status"] == "connected",
                "the always-on vehicle to connect at start",
            )
            assert ecu.emulator.connections_accepted == 2
            assert value(scrape(srv.http), GAUGE) == _simulated_connected(srv) + 1
    finally:
        ecu.close()


def _simulated_connected(srv: Server) -> int:
    rows = srv.query(
        "SELECT count(*) FROM vehicles WHERE transport = 'simulator'"
        " AND connection_status = 'connected'"
    )
    return int(rows[0][0])
