"""Stopping commands, and one engineer's share of a vehicle's queue (issue #8, item 8).

``POST /api/v1/commands/{id}/cancel`` (owner or admin): a queued command ends at once and
never reaches the vehicle; a running one is stopped (the connector's answer is closed, its
deadline ends). Both end ``cancelled``, shown on the stream as a terminal ``error`` event,
counted in ``commands_executed_total{status="cancelled"}`` and audited. A user may hold at
most ``SOVD_VEHICLE_QUEUE_PER_USER`` places of one vehicle's queue (429 beyond, others still
get in); ``Retry-After`` on a full queue estimates the real wait.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.builders import simulator_for
from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    auth,
    make_config,
    running,
    wait_until,
)
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket

READ_DTC = {"ecuAddress": "0x10"}


def _cancel(srv: Server, token: str, cid: str) -> httpx.Response:
    return srv.http.post(f"/api/v1/commands/{cid}/cancel", headers=auth(token))


def _post(srv: Server, token: str, vehicle_id: str) -> httpx.Response:
    return srv.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={"vehicle_id": vehicle_id, "command_name": "ReadDTC", "command_params": READ_DTC},
    )


def _rest_of_stream(ws: Any) -> tuple[list[dict[str, Any]], int | None]:
    events = []
    try:
        while True:
            events.append(json.loads(ws.recv(timeout=DEADLINE_S)))
    except ConnectionClosed:
        return events, ws.close_code


def _tasks_naming(srv: Server, cid: str) -> list[str]:
    """The server's asyncio tasks whose name mentions the command."""
    names = srv.call(lambda: [t.get_name() for t in asyncio.all_tasks()])
    return [name for name in names if cid in name]


def test_a_queued_command_ends_at_once_and_never_reaches_the_vehicle(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        assert (
            value(
                scrape(srv.http), "commands_executed_total", command="ReadDTC", status="cancelled"
            )
            == 0
        )
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        first = srv.submit(token, vehicle_id)["command_id"]
        queued = srv.submit(token, vehicle_id)["command_id"]
        wait_until(lambda: first in fake.started, "the first command to start")
        with connect(
            f"{srv.ws_url}/ws/responses/{queued}?token={token}", open_timeout=DEADLINE_S
        ) as ws:
            wait_until(lambda: srv.services.bus.subscriber_count(queued) == 1, "the subscription")
            r = _cancel(srv, token, queued)
            assert r.status_code == 200, r.text
            body = r.json()
            assert (body["status"], body["error_code"]) == ("cancelled", "cancelled")
            assert body["completed_at"] is not None
            events, code = _rest_of_stream(ws)
        assert code == 1000
        assert [(e["event"], e["status"], e["error_code"]) for e in events] == [
            ("error", "cancelled", "cancelled")
        ]
        # The vehicle's lane goes on with nothing of it.
        fake.feed(first, {"n": 1}, final=True)
        assert srv.wait_status(token, first)["status"] == "completed"
        assert queued not in fake.started
        assert srv.command(token, queued)["status"] == "cancelled"
        samples = scrape(srv.http)
        assert value(samples, "commands_executed_total", command="ReadDTC", status="cancelled") == 1
        assert (
            value(
                samples,
                "command_execution_duration_seconds_count",
                command="ReadDTC",
                status="cancelled",
            )
            == 1
        )
        assert value(samples, "sovd_commands_in_flight") == 0
        audit = srv.http.get(
            "/api/v1/audit", headers=auth(srv.admin_token()), params={"action": "command.cancel"}
        ).json()["items"]
        assert [(a["entity_id"], a["username"]) for a in audit] == [(queued, "engineer")]


def test_a_running_command_is_stopped_and_the_vehicle_is_told(tmp_path: Path) -> None:
    config = make_config(tmp_path, command_timeout_s=30)
    sim = simulator_for(config)
    with running(config, connector=sim) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token, "timeout")["vehicle_id"]  # never answers
        stuck = srv.submit(token, vehicle_id)["command_id"]
        behind = srv.submit(token, vehicle_id)["command_id"]
        srv.wait_status(token, stuck, "in_progress")
        assert _tasks_naming(srv, stuck)  # its execution, under the deadline
        with connect(
            f"{srv.ws_url}/ws/responses/{stuck}?token={token}", open_timeout=DEADLINE_S
        ) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            r = _cancel(srv, token, stuck)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "cancelled"
            events, code = _rest_of_stream(ws)
        assert code == 1000 and events[-1]["status"] == "cancelled"
        assert list(sim.aborted) == [stuck]  # the connector was told
        assert _tasks_naming(srv, stuck) == []  # the execution and its deadline are gone
        # The lane is free at once, not after the 30 s deadline.
        srv.wait_status(token, behind, "in_progress")
        # Cancelling again: it has ended.
        r = _cancel(srv, token, stuck)
        assert r.status_code == 409 and r.json()["error_code"] == "conflict"
        r = _cancel(srv, srv.admin_token(), behind)  # an admin may stop anyone's
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert list(sim.aborted) == [stuck, behind]
        samples = scrape(srv.http)
        assert value(samples, "commands_executed_total", command="ReadDTC", status="cancelled") == 2
        assert value(samples, "commands_executed_total", command="ReadDTC", status="timeout") == 0
        assert value(samples, "sovd_commands_in_flight") == 0


def test_cancel_is_for_the_owner_and_admins_and_only_while_active(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        alice = srv.token()
        bob = srv.create_engineer("bob")
        cid = srv.submit(alice, srv.vehicle(alice)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        for token, target in ((bob, cid), (alice, str(uuid.uuid4())), (alice, "not-a-uuid")):
            r = _cancel(srv, token, target)
            assert r.status_code == 404 and r.json()["error_code"] == "not-found"
        assert srv.http.post(f"/api/v1/commands/{cid}/cancel").status_code == 401
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(alice, cid)
        r = _cancel(srv, alice, cid)
        assert r.status_code == 409 and r.json()["error_code"] == "conflict"
        assert "completed" in r.json()["message"]
        assert srv.command(alice, cid)["status"] == "completed"


def test_a_user_gets_a_share_of_a_vehicles_queue_and_others_still_get_in(
    tmp_path: Path,
) -> None:
    config = make_config(
        tmp_path, command_timeout_s=30, vehicle_queue_size=4, vehicle_queue_per_user=2
    )
    with running(config) as srv:
        alice = srv.token()
        bob = srv.create_engineer("bob")
        admin = srv.admin_token()
        vehicle_id = srv.vehicle(alice, "timeout")["vehicle_id"]  # never answers
        mine = [srv.submit(alice, vehicle_id)["command_id"] for _ in range(2)]
        srv.wait_status(alice, mine[0], "in_progress")
        r = _post(srv, alice, vehicle_id)
        assert r.status_code == 429 and r.json()["error_code"] == "rate-limited"
        assert "2" in r.json()["message"]
        # Alice's first place frees when her running command ends: up to its 30 s deadline,
        # not "1".
        assert 25 <= int(r.headers["retry-after"]) <= 30
        theirs = [srv.submit(bob, vehicle_id)["command_id"] for _ in range(2)]
        r = _post(srv, admin, vehicle_id)  # the whole queue is full now
        assert r.status_code == 503 and r.json()["error_code"] == "overloaded"
        assert 25 <= int(r.headers["retry-after"]) <= 30
        assert srv.query("SELECT count(*) FROM commands") == [(4,)]
        # Stopping one of hers gives her a place again.
        assert _cancel(srv, alice, mine[1]).status_code == 200
        again = srv.submit(alice, vehicle_id)["command_id"]
        for cid in [mine[0], again, *theirs]:
            assert _cancel(srv, admin, cid).status_code == 200


def test_retry_after_follows_the_vehicles_recent_execution_times(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30, vehicle_queue_size=2)
    with running(config, connector=fake) as srv:
        token = srv.token()
        vehicles = srv.http.get(
            "/api/v1/vehicles", headers=auth(token), params={"status": "connected"}
        ).json()["items"]
        quick, fresh = vehicles[0]["vehicle_id"], vehicles[1]["vehicle_id"]
        # The quick vehicle has answered fast before.
        cid = srv.submit(token, quick)["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(token, cid)
        held = []
        for vehicle_id in (quick, fresh):
            for _ in range(2):
                held.append(srv.submit(token, vehicle_id)["command_id"])
        r = _post(srv, token, quick)
        assert (r.status_code, r.headers["retry-after"]) == (503, "1")
        # Without history, the estimate is the deadline.
        r = _post(srv, token, fresh)
        assert r.status_code == 503 and 25 <= int(r.headers["retry-after"]) <= 30
        for cid in held:
            _cancel(srv, token, cid)
