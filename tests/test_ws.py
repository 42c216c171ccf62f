import json
import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.events import ResponseEvent
from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    make_config,
    running,
    start_server,
    wait_until,
)
from tests.support.schemas import frame_fields

pytestmark = pytest.mark.socket


def _kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["event"] if e["event"] != "status" else e["status"] for e in events]


def test_replay_after_completion(server: Server) -> None:
    token = server.token()
    command = server.submit(token, server.vehicle(token)["vehicle_id"])
    server.wait_status(token, command["command_id"])
    events, code = server.stream(command["command_id"], token)
    assert code == 1000
    assert _kinds(events) == ["in_progress", "response", "response", "response", "completed"]
    assert [e["sequence_number"] for e in events if e["event"] == "response"] == [1, 2, 3]
    assert all(e["command_id"] == command["command_id"] for e in events)
    assert events[3]["is_final"] is True
    assert set(events[1]) == frame_fields(server, "response")
    assert not {"negative", "raw", "dtc"} & set(events[1])  # the typed reading is internal
    assert set(events[-1]) == frame_fields(server, "status")


def test_failed_command_replays_its_error_event(server: Server) -> None:
    token = server.token()
    command = server.submit(token, server.vehicle(token, "timeout")["vehicle_id"])
    server.wait_status(token, command["command_id"])
    events, code = server.stream(command["command_id"], token)
    assert code == 1000
    assert events[-1]["event"] == "error"
    assert {k: events[-1][k] for k in ("status", "error_code")} == {
        "status": "timeout",
        "error_code": "not-responding",
    }
    assert set(events[-1]) == frame_fields(server, "error")


def test_since_resumes_after_a_sequence_number(server: Server) -> None:
    token = server.token()
    command = server.submit(token, server.vehicle(token)["vehicle_id"])
    server.wait_status(token, command["command_id"])
    events, _ = server.stream(command["command_id"], token, "since=2")
    assert [e.get("sequence_number") for e in events if e["event"] == "response"] == [3]
    assert events[-1]["status"] == "completed"
    events, code = server.stream(command["command_id"], token, "since=x")
    assert (events, code) == ([], 4400)


def test_token_in_header_works_and_bad_tokens_close_1008(server: Server) -> None:
    token = server.token()
    command = server.submit(token, server.vehicle(token)["vehicle_id"])
    server.wait_status(token, command["command_id"])
    events, code = server.stream(
        command["command_id"], None, headers={"Authorization": f"Bearer {token}"}
    )
    assert code == 1000 and events[-1]["status"] == "completed"
    for bad in (None, "garbage"):
        events, code = server.stream(command["command_id"], bad)
        assert (events, code) == ([], 1008)


def test_absent_or_invisible_commands_close_4404(server: Server) -> None:
    alice = server.token()
    bob = server.create_engineer("bob")
    command = server.submit(alice, server.vehicle(alice)["vehicle_id"])
    server.wait_status(alice, command["command_id"])
    for cid, token in (
        (command["command_id"], bob),
        (str(uuid.uuid4()), alice),
        ("not-a-uuid", alice),
    ):
        events, code = server.stream(cid, token)
        assert (events, code) == ([], 4404)
    events, code = server.stream(command["command_id"], server.admin_token())
    assert code == 1000 and events


def test_client_connecting_mid_stream_sees_every_chunk_once(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=10), connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        fake.feed(cid, {"n": 1})
        fake.feed(cid, {"n": 2})
        wait_until(
            lambda: (
                srv.query("SELECT count(*) FROM command_responses WHERE command_id = ?", cid)
                == [(2,)]
            ),
            "two chunks stored",
        )
        url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
        with connect(url, open_timeout=DEADLINE_S) as early:
            replayed = [json.loads(early.recv(timeout=DEADLINE_S)) for _ in range(3)]
            assert _kinds(replayed) == ["in_progress", "response", "response"]
            # A second client joins while the command runs.
            with connect(url, open_timeout=DEADLINE_S) as late:
                late_replay = [json.loads(late.recv(timeout=DEADLINE_S)) for _ in range(3)]
                assert late_replay == replayed
                fake.feed(cid, {"n": 3})
                fake.feed(cid, {"n": 4}, final=True)
                for ws in (early, late):
                    rest = []
                    try:
                        while True:
                            rest.append(json.loads(ws.recv(timeout=DEADLINE_S)))
                    except ConnectionClosed:
                        pass
                    assert ws.close_code == 1000
                    assert _kinds(rest) == ["response", "response", "completed"]
                    seqs = [
                        e["sequence_number"] for e in [*replayed, *rest] if e["event"] == "response"
                    ]
                    assert seqs == [1, 2, 3, 4]
                    assert [e["response_payload"]["n"] for e in rest[:2]] == [3, 4]


def test_many_clients_racing_a_running_command_get_no_gap_and_no_duplicate(tmp_path: Path) -> None:
    """Clients connect while chunks are being produced; each must see 1..N exactly once."""
    fake = ScriptedConnector()
    with running(make_config(tmp_path, command_timeout_s=10), connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        total = 60
        results: list[list[int]] = []

        def client() -> None:
            events, code = srv.stream(cid, token)
            assert code == 1000
            results.append([e["sequence_number"] for e in events if e["event"] == "response"])

        threads = []
        for n in range(1, total + 1):
            fake.feed(cid, {"n": n}, final=n == total)
            if n % 10 == 0:
                thread = threading.Thread(target=client)
                thread.start()
                threads.append(thread)
        for thread in threads:
            thread.join(DEADLINE_S)
        assert len(results) == len(threads)
        for seqs in results:
            assert seqs == list(range(1, total + 1))


def test_a_client_that_falls_behind_is_closed_1013(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=10, ws_queue_size=4)
    with running(config, connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
        with connect(url, open_timeout=DEADLINE_S) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            wait_until(lambda: srv.services.bus.subscriber_count(cid) == 1, "subscription")

            def burst() -> None:  # more events at once than the socket's queue holds
                for n in range(1, 20):
                    srv.services.bus.publish(
                        ResponseEvent(
                            command_id=cid,
                            sequence_number=100 + n,
                            response_payload={},
                            is_final=False,
                            received_at="t",
                        )
                    )

            srv.call(burst)
            try:
                while True:
                    ws.recv(timeout=DEADLINE_S)
            except ConnectionClosed:
                pass
            assert ws.close_code == 1013
        # The pipeline is unaffected: the command still completes.
        fake.feed(cid, {"n": 1}, final=True)
        assert srv.wait_status(token, cid)["status"] == "completed"


def test_sockets_are_closed_1001_on_shutdown_and_running_commands_interrupted(
    tmp_path: Path,
) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30, shutdown_grace_s=0.2)
    srv = start_server(config, connector=fake)
    try:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        with connect(
            f"{srv.ws_url}/ws/responses/{cid}?token={token}", open_timeout=DEADLINE_S
        ) as ws:
            assert json.loads(ws.recv(timeout=DEADLINE_S))["status"] == "in_progress"
            stopper = threading.Thread(target=srv.stop)
            stopper.start()
            try:
                while True:
                    ws.recv(timeout=DEADLINE_S)
            except ConnectionClosed:
                pass
            assert ws.close_code == 1001
            stopper.join(DEADLINE_S * 2)
    finally:
        srv.stop()
    with sqlite3.connect(config.db_path) as conn:
        assert conn.execute("SELECT status, error_code FROM commands").fetchall() == [
            ("failed", "interrupted")
        ]
