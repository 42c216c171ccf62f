"""SIGTERM and kill -9 with a DoIP request in flight (issue #11), through a real
``python -m app``: the command ends ``interrupted`` and the request is never sent again.
The ECU (the emulator, profile ``timeout``: it never answers) runs in this process, so
the test counts what reached it."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect

from app.vehicles import uds
from tests.support.doip_helpers import ThreadedEmulator
from tests.support.harness import DEADLINE_S, wait_until
from tests.support.process import Process, server_env, submit_command

pytestmark = pytest.mark.socket

VIN = "WAUZZZ8V0KDP00077"


@pytest.fixture
def silent_ecu() -> Iterator[ThreadedEmulator]:
    emulator = ThreadedEmulator("timeout", VIN)
    try:
        yield emulator
    finally:
        emulator.close()


def _doip_vehicle(proc: Process, port: int) -> str:
    admin = proc.http.post(
        "/api/v1/auth/login", json={"username": "admin", "password": "admin-password-1"}
    ).json()["access_token"]
    r = proc.http.post(
        "/api/v1/vehicles",
        headers={"Authorization": f"Bearer {admin}"},
        json={
            "vin": VIN,
            "make": "Bench",
            "model": "ECU",
            "year": 2024,
            "transport": "doip",
            "doip": {"host": "127.0.0.1", "port": port, "logical_address": "0x0001"},
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["vehicle_id"])


def _command(proc: Process, token: str, cid: str) -> tuple[str, str | None]:
    r = proc.http.get(f"/api/v1/commands/{cid}", headers={"Authorization": f"Bearer {token}"})
    body = r.json()
    return body["status"], body["error_code"]


# A P2 longer than the test: the request stays in flight until the process stops.
_ENV = {"SOVD_COMMAND_TIMEOUT_S": "60", "SOVD_DOIP_P2_MS": "60000"}


def test_sigterm_ends_an_in_flight_doip_request_interrupted(
    tmp_path: Path, silent_ecu: ThreadedEmulator
) -> None:
    proc = Process(server_env(tmp_path, SOVD_SHUTDOWN_GRACE_S="0.5", **_ENV))
    try:
        token = proc.token()
        cid = submit_command(proc, token, _doip_vehicle(proc, silent_ecu.port))
        url = proc.base_url.replace("http", "ws") + f"/ws/responses/{cid}?token={token}"
        with connect(url, open_timeout=DEADLINE_S) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            wait_until(
                lambda: silent_ecu.requests(uds.READ_DTC_INFORMATION) == 1,
                "the request to reach the ECU",
            )
            proc.proc.send_signal(signal.SIGTERM)
            for _ in ws:
                pass
            assert ws.close_code == 1001
        assert proc.proc.wait(DEADLINE_S) == 0
    finally:
        proc.stop(signal.SIGKILL)
    restarted = Process(server_env(tmp_path, **_ENV))
    try:
        token = restarted.token()
        assert _command(restarted, token, cid) == ("failed", "interrupted")
        # Never sent again: not by the drain, not by the next start.
        assert silent_ecu.requests(uds.READ_DTC_INFORMATION) == 1
    finally:
        restarted.stop()


def test_kill_9_with_an_in_flight_doip_request_leaves_it_interrupted_not_resent(
    tmp_path: Path, silent_ecu: ThreadedEmulator
) -> None:
    proc = Process(server_env(tmp_path, **_ENV))
    token = proc.token()
    cid = submit_command(proc, token, _doip_vehicle(proc, silent_ecu.port))
    wait_until(
        lambda: silent_ecu.requests(uds.READ_DTC_INFORMATION) == 1,
        "the request to reach the ECU",
    )
    assert _command(proc, token, cid) == ("in_progress", None)
    assert proc.stop(signal.SIGKILL) == -signal.SIGKILL
    again = Process(server_env(tmp_path, **_ENV))
    try:
        token = again.token()
        assert _command(again, token, cid) == ("failed", "interrupted")
        assert silent_ecu.requests(uds.READ_DTC_INFORMATION) == 1
    finally:
        again.stop()
