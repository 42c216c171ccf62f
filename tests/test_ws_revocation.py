"""An open response stream ends with its credentials (issue #8, item 9).

Logout (or a reused refresh token) closes the session's sockets with 1008 at once; the
user's commands keep running. Disabling a user closes all their sockets with 1008 and
cancels their queued and running commands unless the admin's PATCH says
``"cancel_commands": false``. Deleting a user closes their sockets too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.harness import (
    ADMIN_PASSWORD,
    DEADLINE_S,
    ScriptedConnector,
    Server,
    auth,
    make_config,
    running,
    wait_until,
)

pytestmark = pytest.mark.socket

# Far below the command deadline: the socket closed because of the revocation.
PROMPT_S = 3.0


@contextmanager
def _open(srv: Server, cid: str, token: str) -> Iterator[ClientConnection]:
    url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
    with connect(url, open_timeout=DEADLINE_S) as ws:
        assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
        yield ws


def _closed_with(ws: ClientConnection, timeout_s: float = PROMPT_S) -> tuple[list[Any], int | None]:
    """Read until the server closes; the events seen and the close code."""
    events: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            events.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
    except ConnectionClosed:
        return events, ws.close_code
    except TimeoutError:
        raise AssertionError(f"the socket stayed open for {timeout_s} s") from None


def _still_open(ws: ClientConnection) -> bool:
    try:
        ws.recv(timeout=0.2)
    except TimeoutError:
        return True
    except ConnectionClosed:
        return False
    return True


def _start(srv: Server, fake: ScriptedConnector, token: str, index: int = 0) -> str:
    vehicles = srv.http.get(
        "/api/v1/vehicles", headers=auth(token), params={"status": "connected"}
    ).json()["items"]
    cid = str(srv.submit(token, vehicles[index]["vehicle_id"])["command_id"])
    wait_until(lambda: cid in fake.started, "the command to start")
    return cid


def test_logout_closes_that_sessions_sockets_and_the_command_runs_on(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        first, second = srv.token(), srv.token()  # two sessions of one user
        cid = _start(srv, fake, first)
        with _open(srv, cid, first) as mine, _open(srv, cid, second) as other:
            r = srv.http.post("/api/v1/auth/logout", headers=auth(first))
            assert r.status_code == 204
            assert _closed_with(mine) == ([], 1008)
            assert _still_open(other)
            fake.feed(cid, {"n": 1}, final=True)
            events, code = _closed_with(other, DEADLINE_S)
            assert code == 1000 and events[-1]["status"] == "completed"
        assert srv.command(second, cid)["status"] == "completed"


def test_a_reused_refresh_token_closes_the_sessions_sockets(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        first = srv.login("engineer", "engineer-password-1")
        latest = first
        for _ in range(2):  # two rotations: the first token is no client's retry any more
            r = srv.http.post(
                "/api/v1/auth/refresh", json={"refresh_token": latest["refresh_token"]}
            )
            latest = r.json()
        fresh = latest["access_token"]
        cid = _start(srv, fake, fresh)
        with _open(srv, cid, fresh) as ws:
            # The stale refresh token again: someone holds a copy, the session ends.
            r = srv.http.post(
                "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
            )
            assert r.status_code == 401
            assert _closed_with(ws) == ([], 1008)
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(srv.token(), cid)


def _user_id(srv: Server, admin: str, username: str) -> str:
    users = srv.http.get("/api/v1/users", headers=auth(admin)).json()["items"]
    return str(next(u["user_id"] for u in users if u["username"] == username))


def test_disable_closes_the_users_sockets_and_cancels_their_commands(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30)
    with running(config, connector=fake) as srv:
        admin = srv.admin_token()
        bob = srv.create_engineer("bob")
        alice = srv.token()
        running_cid = _start(srv, fake, bob)
        # Queued behind it on the same vehicle.
        vehicle_id = srv.command(bob, running_cid)["vehicle_id"]
        queued_cid = srv.submit(bob, vehicle_id)["command_id"]
        alices = _start(srv, fake, alice, index=1)
        with (
            _open(srv, running_cid, bob) as bobs_socket,
            _open(srv, alices, alice) as alices_socket,
            _open(srv, running_cid, admin) as admins_socket,
        ):
            r = srv.http.patch(
                f"/api/v1/users/{_user_id(srv, admin, 'bob')}",
                headers=auth(admin),
                json={"disabled": True},
            )
            assert r.status_code == 200, r.text
            assert _closed_with(bobs_socket) == ([], 1008)
            # The admin watching bob's command sees it end as cancelled.
            events, code = _closed_with(admins_socket)
            assert code == 1000
            assert {k: events[-1][k] for k in ("event", "status", "error_code")} == {
                "event": "error",
                "status": "cancelled",
                "error_code": "cancelled",
            }
            assert _still_open(alices_socket)
        for cid in (running_cid, queued_cid):
            assert srv.command(admin, cid)["status"] == "cancelled"
        assert queued_cid not in fake.started  # never sent to the vehicle
        fake.feed(alices, {"n": 1}, final=True)
        assert srv.wait_status(alice, alices)["status"] == "completed"


def test_disable_can_leave_the_users_commands_running(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        admin = srv.admin_token()
        bob = srv.create_engineer("bob")
        cid = _start(srv, fake, bob)
        with _open(srv, cid, bob) as ws:
            r = srv.http.patch(
                f"/api/v1/users/{_user_id(srv, admin, 'bob')}",
                headers=auth(admin),
                json={"disabled": True, "cancel_commands": False},
            )
            assert r.status_code == 200, r.text
            assert _closed_with(ws) == ([], 1008)
        fake.feed(cid, {"n": 1}, final=True)
        assert srv.wait_status(admin, cid)["status"] == "completed"
        # cancel_commands only goes with disabling.
        r = srv.http.patch(
            f"/api/v1/users/{_user_id(srv, admin, 'bob')}",
            headers=auth(admin),
            json={"disabled": False, "cancel_commands": True},
        )
        assert r.status_code == 400 and "cancel_commands" in r.json()["message"]


def test_deleting_a_user_closes_their_sockets(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        admin = srv.admin_token()
        r = srv.http.post(
            "/api/v1/users",
            headers=auth(admin),
            json={"username": "watcher", "password": "watcher-password-1", "role": "admin"},
        )
        watcher_id = r.json()["user_id"]
        watcher = srv.token("watcher", "watcher-password-1")
        cid = _start(srv, fake, srv.token())
        with _open(srv, cid, watcher) as ws, _open(srv, cid, admin) as admins:
            r = srv.http.delete(f"/api/v1/users/{watcher_id}", headers=auth(admin))
            assert r.status_code == 204
            assert _closed_with(ws) == ([], 1008)
            assert _still_open(admins)
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(admin, cid)
        assert srv.login("admin", ADMIN_PASSWORD)  # the deleting admin is unaffected
