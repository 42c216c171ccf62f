"""Caps on open response streams, overall and per user (issue #8, item 5).

A socket over the overall cap is closed 4503 before its token is even looked at; one over
the user's cap is closed 4429 right after the token check. Other users still get in.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    make_config,
    running,
    wait_until,
)

pytestmark = pytest.mark.socket


def _open(srv: Server, cid: str, token: str | None) -> ClientConnection:
    query = f"?token={token}" if token else ""
    return connect(f"{srv.ws_url}/ws/responses/{cid}{query}", open_timeout=DEADLINE_S)


def _live(ws: ClientConnection) -> None:
    """The stream replayed ``in_progress``: it is open and past its checks."""
    assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"


def _refused(ws: ClientConnection) -> int | None:
    """The close code of a socket the server closes without sending anything."""
    try:
        message = ws.recv(timeout=DEADLINE_S)
    except ConnectionClosed:
        return ws.close_code
    raise AssertionError(f"expected a close, got {message!r}")


def test_sockets_over_the_overall_cap_close_4503_before_authentication(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30, ws_max_connections=2)
    with running(config, connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        with ExitStack() as stack:
            for _ in range(2):
                _live(stack.enter_context(_open(srv, cid, token)))
            # No token at all: refused for the cap (4503), not for the token (1008), so
            # nothing was looked up for it.
            with _open(srv, cid, None) as ws:
                assert _refused(ws) == 4503
            with _open(srv, cid, token) as ws:
                assert _refused(ws) == 4503
        # Room again once they are closed.
        wait_until(lambda: srv.app.state.streams.open == 0, "the sockets to be gone")
        with _open(srv, cid, token) as ws:
            _live(ws)
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(token, cid)


def test_sockets_over_the_per_user_cap_close_4429_and_others_get_in(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30, ws_max_per_user=2)
    with running(config, connector=fake) as srv:
        alice = srv.token()
        cid = srv.submit(alice, srv.vehicle(alice)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        admin = srv.admin_token()
        with ExitStack() as stack:
            held = [stack.enter_context(_open(srv, cid, alice)) for _ in range(2)]
            for ws in held:
                _live(ws)
            # A second session of the same user counts against the same cap.
            with _open(srv, cid, srv.token()) as ws:
                assert _refused(ws) == 4429
            # Someone else still gets in.
            with _open(srv, cid, admin) as ws:
                _live(ws)
            held[0].close()
            wait_until(lambda: srv.app.state.streams.open == 1, "one socket to be gone")
            with _open(srv, cid, alice) as ws:
                _live(ws)
        fake.feed(cid, {"n": 1}, final=True)
        srv.wait_status(alice, cid)
