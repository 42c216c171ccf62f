"""WebSocket close frames carry a short reason, unknown paths close with a documented code,
and each stream's acceptance, refusal and close is logged (issue #14)."""

from __future__ import annotations

import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    make_config,
    running,
    wait_until,
)

pytestmark = pytest.mark.socket


def _close(url: str) -> tuple[int | None, str | None]:
    with connect(url, open_timeout=DEADLINE_S) as ws:
        try:
            while True:
                ws.recv(timeout=DEADLINE_S)
        except ConnectionClosed:
            pass
        return ws.close_code, ws.close_reason


def _records(caplog: pytest.LogCaptureFixture, event: str) -> list[Any]:
    return [r for r in caplog.records if getattr(r, "event", None) == event]


@pytest.mark.parametrize("path", ["/ws/nowhere", "/api/v1/commands", "/ws/responses"])
def test_an_unknown_path_closes_with_4404_and_says_why(
    server: Server, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    code, reason = _close(server.ws_url + path)
    assert (code, reason) == (4404, "unknown path; streams are /ws/responses/{command_id}")
    assert any(r.path == path and r.code == 4404 for r in _records(caplog, "ws_rejected"))


def test_refusals_say_what_is_wrong(server: Server, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    token = server.token()
    base = f"{server.ws_url}/ws/responses"
    absent = str(uuid.uuid4())
    assert _close(f"{base}/{absent}") == (
        1008,
        "no bearer token; send Authorization: Bearer <access_token>",
    )
    assert _close(f"{base}/{absent}?token=forged") == (1008, "invalid token")
    assert _close(f"{base}/{absent}?token={token}") == (4404, "not found")
    assert _close(f"{base}/{absent}?token={token}&since=x") == (
        4400,
        "bad since: a whole number, at most 9 digits",
    )
    rejected = _records(caplog, "ws_rejected")
    assert [r.code for r in rejected] == [1008, 1008, 4404, 4400]
    assert rejected[1].reason == "invalid token"
    assert all(token not in r.getMessage() and token not in str(vars(r)) for r in caplog.records)


def test_a_stream_logs_its_acceptance_and_its_end(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    """Both at DEBUG when the stream ends as expected (issue #22 item 7: at INFO a command
    is its ``command_end`` line)."""
    caplog.set_level(logging.DEBUG)
    token = server.token()
    cid = server.submit(token, server.vehicle(token)["vehicle_id"])["command_id"]
    server.wait_status(token, cid)
    assert _close(f"{server.ws_url}/ws/responses/{cid}?token={token}") == (
        1000,
        "command finished",
    )
    (accepted,) = [r for r in _records(caplog, "ws_accept") if r.command_id == cid]
    assert accepted.user == "engineer"
    (closed,) = [r for r in _records(caplog, "ws_closed") if r.command_id == cid]
    assert (closed.code, closed.reason) == (1000, "command finished")
    assert (accepted.levelno, closed.levelno) == (logging.DEBUG, logging.DEBUG)


def test_shutdown_closes_streams_with_service_stopping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    fake = ScriptedConnector()
    with running(
        make_config(tmp_path, command_timeout_s=30, shutdown_grace_s=0), connector=fake
    ) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        with connect(
            f"{srv.ws_url}/ws/responses/{cid}?token={token}", open_timeout=DEADLINE_S
        ) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            srv.loop.call_soon_threadsafe(srv._stop.set)
            with pytest.raises(ConnectionClosed):
                while True:
                    ws.recv(timeout=DEADLINE_S)
            assert (ws.close_code, ws.close_reason) == (1001, "service stopping")
    # A stream that ends other than with its command keeps its line at INFO, with what
    # the (DEBUG) accept line said.
    (closed,) = [r for r in _records(caplog, "ws_closed") if r.command_id == cid]
    assert (closed.levelno, closed.code, closed.user) == (logging.INFO, 1001, "engineer")
    assert not [r for r in _records(caplog, "ws_accept") if r.command_id == cid]
