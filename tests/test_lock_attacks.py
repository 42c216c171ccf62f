"""Issue #19, locks as an attacker meets them over the SOVD tree (in process, the per-ECU
simulator seeded and at latency 0).

Item 5: a lock covers what is already queued. Another user's state-changing command
waiting in the vehicle's lane for the locked ECU is withdrawn when the lock is taken
(never sent; the SOVD call waiting on it is 409 ``precondition-not-fulfilled``), while
reads queued there still run and a command already running is left to finish. A session
expiry that meets another user's lock ends with one warning line, no traceback.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.builders import simulator_for
from app.vehicles import uds
from app.vehicles.pdx.demo import SELF_TEST
from tests.support.harness import (
    DEADLINE_S,
    LoopTransport,
    Server,
    auth,
    in_process,
    make_config,
    wait_until,
)
from tests.test_sovd_api import Client, engineer, generic, generic_error, stored

pytestmark = pytest.mark.fast


def _queued(srv: Server, token: str, name: str) -> str | None:
    """The id of the caller's pending command ``name``, once there is one."""
    r = srv.http.get("/api/v1/commands", headers=auth(token), params={"status": "pending"})
    assert r.status_code == 200, r.text
    found = [c["command_id"] for c in r.json()["items"] if c["command_name"] == name]
    return found[0] if found else None


def test_a_lock_withdraws_another_engineers_queued_clear_and_the_faults_stay(
    tmp_path: Path,
) -> None:
    # Self-tests that outlast the test: engineer 2's holds the vehicle's lane.
    config = make_config(tmp_path, command_timeout_s=30.0, sim_self_test_s=30.0)
    simulator = simulator_for(config)
    with in_process(config, connector=simulator) as srv:
        two = engineer(srv)  # the seeded "engineer"
        one = Client(srv, srv.create_engineer("alice"), two.vin)
        vehicle_id = srv.vehicle(two.token)["vehicle_id"]
        # A self-test run to its end (RoutineControl run) holds the vehicle's lane.
        run = srv.submit(
            two.token,
            vehicle_id,
            "RoutineControl",
            {"ecuAddress": "0x0010", "routineId": uds.format_did(SELF_TEST), "action": "run"},
        )["command_id"]
        lane = httpx.Client(base_url=srv.base_url, transport=LoopTransport(srv.app, srv.loop))
        with lane, ThreadPoolExecutor(1) as pool:
            # Engineer 2's clear (the engine is bound: a DiagService FaultMem_ClearDTCs)
            # waits behind the self-test; so do a read of theirs and a ClearDTC of another
            # ECU.
            clearing = pool.submit(
                lane.delete, two.url("/components/engine/faults"), headers=auth(two.token)
            )
            clear_id = wait_until(
                lambda: _queued(srv, two.token, "DiagService"), "the clear to be queued"
            )
            read_id = srv.submit(two.token, vehicle_id, "ReadDTC")["command_id"]
            other_ecu = srv.submit(two.token, vehicle_id, "ClearDTC", {"ecuAddress": "0x18"})
            # Engineer 1 locks the engine: the queued clear is withdrawn at once.
            one.send("POST", "/components/engine/locks", 201, {"lock_expiration": 60})
            cleared = srv.wait_status(two.token, clear_id, "cancelled")
            message = cleared["error_message"]
            assert cleared["error_code"] == "locked-out"
            assert message.startswith("cancelled before it ran: ECU 0x0010 of vehicle")
            assert "was locked by alice until" in message
            r = clearing.result(DEADLINE_S)
            body = generic_error(r, 409, "precondition-not-fulfilled")
            assert body["message"] == message
            assert r.headers["x-command-id"] == clear_id
        # The self-test went to the vehicle before the lock: left running.
        assert srv.command(two.token, run)["status"] == "in_progress"
        assert srv.command(two.token, read_id)["status"] == "pending"
        r = srv.http.post(f"/api/v1/commands/{run}/cancel", headers=auth(two.token))
        assert r.status_code == 200, r.text  # stopping it is not a state change
        # The lane moves on: the read and the other ECU's clear run.
        assert srv.wait_status(two.token, read_id)["status"] == "completed"
        assert srv.wait_status(two.token, other_ecu["command_id"])["status"] == "completed"
        # Nothing of the withdrawn clear reached the vehicle: the engine keeps its faults.
        answer = srv.http.get(
            f"/api/v1/commands/{clear_id}/responses", headers=auth(two.token)
        ).json()["items"]
        assert answer == []
        assert sorted(simulator.stored_dtcs(vehicle_id, 0x10)) == stored("engine")
        assert one.codes("engine") == stored("engine")
        # The withdrawal is audited as the lock holder's cancel.
        rows = srv.query(
            "SELECT username FROM audit_log WHERE action = 'command.cancel' AND entity_id = ?",
            clear_id,
        )
        assert rows == [("alice",)]
        # The holder works as usual under the lock.
        one.send("DELETE", "/components/engine/faults", 204)
        assert simulator.stored_dtcs(vehicle_id, 0x10) == ()


def test_a_session_expiry_refused_by_another_users_lock_is_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    with in_process(make_config(tmp_path, command_timeout_s=2.0)) as srv:
        # (an ECU bound to no description: a bound one's session takes no expiration yet)
        bob = generic(srv)
        alice = Client(srv, srv.create_engineer("alice"), bob.vin)
        bob.send(
            "PUT",
            "/components/gateway/modes/session",
            200,
            {"value": "extended", "mode_expiration": 1},
        )
        alice.send("POST", "/components/gateway/locks", 201, {"lock_expiration": 600})

        def refused() -> list[Any]:
            return [
                r for r in caplog.records if getattr(r, "event", None) == "session_expiry_refused"
            ]

        (line,) = wait_until(refused, "the session expiry to meet alice's lock")
        assert line.levelno == logging.WARNING
        assert line.exc_info is None
        assert "locked by alice" in line.getMessage()
        assert "gateway" in line.getMessage()
        assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
        # The holder decides: the session stays until she (or the ECU's S3) ends it.
        assert alice.get("/components/gateway/modes/session").json()["value"] == "extended"


# -- item 9c: one user cannot hold every lock slot; an admin breaks them all at once ------


def test_one_engineer_cannot_take_every_lock_of_a_vehicle(tmp_path: Path) -> None:
    with in_process(make_config(tmp_path)) as srv:  # SOVD_LOCKS_PER_USER: its default, 8
        alice = engineer(srv, srv.create_engineer("alice"))
        bob = Client(srv, srv.token(), alice.vin)
        for n in range(8):  # her own locks never block her: four each on two ECUs
            alice.send(
                "POST",
                f"/components/{('engine', 'abs')[n % 2]}/locks",
                201,
                {"lock_expiration": 60},
            )
        r = srv.http.post(
            alice.url("/components/body/locks"),
            headers=auth(alice.token),
            json={"lock_expiration": 60},
        )
        body = generic_error(r, 409, "vendor-specific")
        assert body["vendor_code"] == "conflict"
        assert "you hold 8 locks" in body["message"]
        assert "SOVD_LOCKS_PER_USER=8" in body["message"]
        assert bob.get("/components/body/locks").json()["items"] == []
        # The vehicle's other slots are still there for everyone else.
        bob.send("POST", "/components/body/locks", 201, {"lock_expiration": 60})
        bob.send("POST", "/components/transmission/locks", 201, {"lock_expiration": 60})


def test_an_admin_breaks_every_lock_of_a_vehicle_at_once(tmp_path: Path) -> None:
    with in_process(make_config(tmp_path, command_timeout_s=2.0)) as srv:
        alice = engineer(srv, srv.create_engineer("alice"))
        bob = Client(srv, srv.token(), alice.vin)
        admin = Client(srv, srv.admin_token(), alice.vin)
        for path in ("/components/engine/locks", "/components/abs/locks"):
            alice.send("POST", path, 201, {"lock_expiration": 600})
        bob.send("POST", "/components/transmission/locks", 201, {"lock_expiration": 600})
        # An engineer may not: 403, and every lock stays.
        r = srv.http.delete(bob.url("/locks"), headers=auth(bob.token))
        generic_error(r, 403, "insufficient-access-rights")
        held = ("engine", "abs", "transmission")
        assert [len(bob.get(f"/components/{c}/locks").json()["items"]) for c in held] == [1, 1, 1]
        admin.send("DELETE", "/locks", 204)
        for scope in ("", "/components/engine", "/components/abs", "/components/transmission"):
            assert bob.get(f"{scope}/locks").json()["items"] == []
        # Each holder is told once, on their next call there, however many they held.
        r = srv.http.delete(alice.url("/components/abs/faults"), headers=auth(alice.token))
        assert "with every lock of vehicle" in generic_error(r, 409, "lock-broken")["message"]
        alice.send("DELETE", "/components/engine/faults", 204)
        alice.send("DELETE", "/components/abs/faults", 204)
        r = srv.http.delete(bob.url("/components/transmission/faults"), headers=auth(bob.token))
        generic_error(r, 409, "lock-broken")
        bob.send("DELETE", "/components/transmission/faults", 204)
