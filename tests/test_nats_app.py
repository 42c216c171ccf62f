"""The app on the NATS bus (issue #23 item 2), end to end on real sockets: one app with
``SOVD_BUS_URL`` pointing at a real ``nats-server``, and a bare ``NatsBus`` on its own
loop standing for another node (two apps cannot share one data directory).

A command's stream is followed to its end as ever; the other node gets the command's
events off NATS; the app's logout reaches the other node; another node's revocation
closes the app's open stream with 1008 at once; losing NATS closes it with 1013 "events
missed" (the command runs on, stored, and is replayed); a lock taken here is heard there, and one
taken there withdraws the covered commands queued here; readiness names the bus.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import jwt
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.api.ws_closes import MISSED
from app.bus import LockChanged, Notice, SessionRevoked, UserRevoked
from app.bus.nats_bus import NatsBus
from app.events import Event, ResponseChunk
from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    auth,
    make_config,
    running,
    wait_until,
)
from tests.support.nats import NatsServer

pytestmark = pytest.mark.socket

PROMPT_S = 3.0  # far below the command deadline: closed by the revocation


class OtherNode:
    """A bare NATS bus on its own event loop and thread: what another node would see and
    send."""

    def __init__(self, url: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.bus = NatsBus((url,))
        self.heard: list[Notice] = []
        self.run(self.bus.start())
        self.bus.on_notice(self.heard.append)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE_S)

    def broadcast(self, notice: Notice) -> None:
        self.loop.call_soon_threadsafe(self.bus.broadcast, notice)

    def follow(self, command_id: str) -> Future[list[Event]]:
        """Subscribe now; the future holds the command's events up to the terminal one."""
        subscribed = threading.Event()

        async def collect() -> list[Event]:
            events: list[Event] = []
            async with self.bus.subscribe(command_id) as sub:
                subscribed.set()
                while not events or not events[-1].is_terminal:
                    events.append(await sub.get())
            return events

        future = asyncio.run_coroutine_threadsafe(collect(), self.loop)
        assert subscribed.wait(DEADLINE_S), "the other node did not subscribe"
        return future

    def close(self) -> None:
        self.run(self.bus.aclose())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(DEADLINE_S)
        self.loop.close()


@pytest.fixture
def other(nats_server: NatsServer) -> Iterator[OtherNode]:
    node = OtherNode(nats_server.url)
    try:
        yield node
    finally:
        node.close()


def _on_nats(tmp_path: Path, nats_server: NatsServer, fake: ScriptedConnector) -> Any:
    config = make_config(tmp_path, command_timeout_s=30, bus_servers=(nats_server.url,))
    return running(config, connector=fake)


def _start(srv: Server, fake: ScriptedConnector, token: str) -> str:
    vehicle = srv.vehicle(token)
    cid = str(srv.submit(token, vehicle["vehicle_id"])["command_id"])
    wait_until(lambda: cid in fake.started, "the command to start")
    return cid


def _closed_with(url: str, token: str, act: Any) -> tuple[list[Any], int | None]:
    """Open the stream, wait for ``in_progress``, ``act()``, then read until closed."""
    events: list[Any] = []
    with connect(f"{url}?token={token}", open_timeout=DEADLINE_S) as ws:
        assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
        act()
        deadline = time.monotonic() + PROMPT_S
        try:
            while True:
                events.append(json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic()))))
        except ConnectionClosed:
            return events, ws.close_code
        except TimeoutError:
            raise AssertionError(f"the stream stayed open for {PROMPT_S} s") from None


def test_a_command_is_followed_to_its_end_here_and_on_another_node(
    tmp_path: Path, nats_server: NatsServer, other: OtherNode
) -> None:
    fake = ScriptedConnector()
    with _on_nats(tmp_path, nats_server, fake) as srv:
        ready = srv.http.get("/health/ready")
        assert ready.status_code == 200 and ready.json()["bus"] == "nats"
        token = srv.token()
        cid = _start(srv, fake, token)
        there = other.follow(cid)
        fake.feed(cid, {"n": 1})
        fake.feed(cid, {"n": 2}, final=True)
        events, code = srv.stream(cid, token)
        assert code == 1000
        assert [e.get("sequence_number") for e in events] == [None, 1, 2, None]
        assert events[0]["status"] == "in_progress" and events[-1]["status"] == "completed"
        remote = there.result(DEADLINE_S)
        # The other node got the live events (it subscribed after the start).
        assert [e.sequence_number for e in remote if isinstance(e, ResponseChunk)] == [1, 2]
        assert remote[-1].is_terminal
        assert srv.command(token, cid)["status"] == "completed"


def test_a_logout_here_is_heard_on_the_other_node(
    tmp_path: Path, nats_server: NatsServer, other: OtherNode
) -> None:
    with _on_nats(tmp_path, nats_server, ScriptedConnector()) as srv:
        token = srv.token()
        sid = jwt.decode(token, options={"verify_signature": False})["sid"]
        assert srv.http.post("/api/v1/auth/logout", headers=auth(token)).status_code == 204
        wait_until(lambda: other.heard, "the other node to hear the logout")
        assert other.heard == [SessionRevoked(session_id=sid)]


def test_another_nodes_revocation_closes_the_stream_here_at_once(
    tmp_path: Path, nats_server: NatsServer, other: OtherNode
) -> None:
    fake = ScriptedConnector()
    with _on_nats(tmp_path, nats_server, fake) as srv:
        token = srv.token()
        claims = jwt.decode(token, options={"verify_signature": False})
        cid = _start(srv, fake, token)
        url = f"{srv.ws_url}/ws/responses/{cid}"
        session = SessionRevoked(session_id=claims["sid"])
        assert _closed_with(url, token, lambda: other.broadcast(session)) == ([], 1008)
        user = UserRevoked(user_id=claims["sub"])
        assert _closed_with(url, token, lambda: other.broadcast(user)) == ([], 1008)
        # What was heard is applied once and not sent back.
        time.sleep(0.1)
        assert other.heard == []
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(token, cid)


def test_locks_taken_on_one_node_are_heard_and_withdraw_queued_commands_on_the_other(
    tmp_path: Path, nats_server: NatsServer, other: OtherNode
) -> None:
    fake = ScriptedConnector()
    with _on_nats(tmp_path, nats_server, fake) as srv:
        token = srv.token()
        vehicle = srv.vehicle(token)
        running_cid = _start(srv, fake, token)  # holds the vehicle's lane
        queued = srv.submit(token, vehicle["vehicle_id"], "ClearDTC", {"ecuAddress": "0x10"})
        taken = LockChanged(
            change="taken",
            vehicle_id=vehicle["vehicle_id"],
            lock_id="elsewhere-1",
            ecu_address=None,
            user_id="someone-on-the-other-node",
            username="alice",
            expires_at="2030-01-01T00:00:00Z",
        )
        other.broadcast(taken)
        ended = srv.wait_status(token, queued["command_id"], "cancelled")
        assert ended["error_code"] == "locked-out" and "alice" in ended["error_message"]
        assert srv.command(token, running_cid)["status"] == "in_progress"  # left to finish
        # A lock taken here is told to the other node.
        r = srv.http.post(
            f"/sovd/vehicles/{vehicle['vin']}/v1/locks",
            headers=auth(token),
            json={"lock_expiration": 60},
        )
        assert r.status_code == 201, r.text
        wait_until(lambda: other.heard, "the other node to hear the lock")
        (heard,) = other.heard
        assert isinstance(heard, LockChanged)
        assert (heard.change, heard.vehicle_id, heard.lock_id, heard.username) == (
            "taken",
            vehicle["vehicle_id"],
            r.json()["id"],
            "engineer",
        )
        fake.feed(running_cid, {"n": 1}, final=True)
        srv.wait_status(token, running_cid)


def test_while_nats_is_down_commands_run_and_are_stored_and_ready_says_so(
    tmp_path: Path,
) -> None:
    nats = NatsServer(tmp_path / "nats").start()
    fake = ScriptedConnector()
    try:
        with _on_nats(tmp_path, nats, fake) as srv:
            token = srv.token()
            assert srv.http.get("/health/ready").status_code == 200
            cid = _start(srv, fake, token)
            url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
            with connect(url, open_timeout=DEADLINE_S) as ws:
                assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
                nats.stop()  # the stream may miss events of other nodes from now on
                with pytest.raises(ConnectionClosed):
                    ws.recv(timeout=PROMPT_S)
                assert (ws.close_code, ws.close_reason) == (1013, MISSED.reason)
            ready = srv.http.get("/health/ready")
            assert ready.status_code == 503
            assert "the bus (nats) did not answer" in ready.json()["message"]
            fake.feed(cid, {"n": 1}, final=True)
            assert srv.wait_status(token, cid)["status"] == "completed"
            events, code = srv.stream(cid, token)  # replayed from the database
            assert code == 1000 and [e.get("sequence_number") for e in events] == [None, 1, None]
            nats.start()  # the same port: the app reconnects on its own
            wait_until(lambda: srv.http.get("/health/ready").status_code == 200, "ready again")
    finally:
        nats.stop()
