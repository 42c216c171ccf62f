"""One lane owner per vehicle (issue #23 item 3), end to end: two ``python -m app`` nodes
on one PostgreSQL database and one NATS server. A command submitted on node A for a
vehicle whose lane node B runs is forwarded to B and followed on A; B is killed (-9)
mid-stream; A takes the lane over, ends what B left as interrupted (the stream on A ends
with it; and a command B ran while A started, which A's start left alone), and runs
that vehicle's next command itself. Refusals and cancels come back from B through A.
Nothing acknowledged is lost, no event comes twice.

The simulator answers with latency here (SOVD_SIM_LATENCY_MS), so the command is still
streaming when B dies.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.support.harness import DEADLINE_S, wait_until
from tests.support.nats import NatsServer
from tests.support.process import (
    Process,
    cluster_env,
    submit_command,
    vehicle_with_profile,
)
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket

SWEEP_S = "0.2"


def _node(tmp_path: Path, name: str, database_url: str, bus_url: str) -> Process:
    return Process(
        cluster_env(
            tmp_path / name,
            database_url,
            bus_url,
            SOVD_LANE_SWEEP_S=SWEEP_S,
            SOVD_SIM_LATENCY_MS="300",  # each answer chunk 0.15 to 0.45 s: B dies mid-stream
            SOVD_COMMAND_TIMEOUT_S="30",
        )
    )


def _lanes_owned(node: Process) -> int:
    """The lanes the node says it runs: readiness and the gauge, which must agree."""
    ready = node.http.get("/health/ready")
    assert ready.status_code == 200, ready.text
    owned = ready.json()["lanes_owned"]
    assert value(scrape(node.http), "sovd_lanes_owned") == owned
    return int(owned)


def _status(node: Process, command_id: str, headers: dict[str, str]) -> tuple[str, str | None]:
    stored = node.http.get(f"/api/v1/commands/{command_id}", headers=headers).json()
    return stored["status"], stored["error_code"]


def _events(records: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    return [r for r in records if r.get("event") == event]


def test_a_dead_owners_lane_moves_and_its_stream_ends_once(
    tmp_path: Path, postgres_url: str, nats_server: NatsServer
) -> None:
    b = _node(tmp_path, "b", postgres_url, nats_server.url)  # first: it takes every lane
    a: Process | None = None
    try:
        wait_until(lambda: _events(b.log_records(), "lanes_taken"), "B to take the lanes")
        # A command B runs while A starts (its vehicle never answers): A's start leaves
        # it alone, not ending it as a single node's start would.
        b_token = b.token()
        held = submit_command(b, b_token, vehicle_with_profile(b, b_token, "timeout"))
        b_headers = {"Authorization": f"Bearer {b_token}"}
        wait_until(
            lambda: (
                b.http.get(f"/api/v1/commands/{held}", headers=b_headers).json()["status"]
                == "in_progress"
            ),
            "B to run the held command",
        )
        a = _node(tmp_path, "a", postgres_url, nats_server.url)
        assert not _events(a.log_records(), "lanes_taken")  # B holds them all
        fleet = _lanes_owned(b)
        assert fleet > 0 and _lanes_owned(a) == 0
        token = a.token()
        headers = {"Authorization": f"Bearer {token}"}
        assert _status(a, held, headers) == ("in_progress", None)
        vehicle = vehicle_with_profile(a, token, "healthy")
        # Over NATS to B and back: B's refusal is A's answer, B's cancel A's.
        bad = a.http.post(
            "/api/v1/commands",
            headers=headers,
            json={"vehicle_id": vehicle, "command_name": "ReadDTC", "command_params": {}},
        )
        assert bad.status_code == 400 and "ecuAddress" in bad.json()["message"], bad.text
        stopped = submit_command(a, token, vehicle)
        cancel = a.http.post(f"/api/v1/commands/{stopped}/cancel", headers=headers)
        assert cancel.status_code == 200 and cancel.json()["status"] == "cancelled", cancel.text
        cid = submit_command(a, token, vehicle)  # 201 from A: B stored it, B runs it
        url = a.base_url.replace("http", "ws") + f"/ws/responses/{cid}?token={token}"
        events: list[dict[str, Any]] = []
        with connect(url, open_timeout=DEADLINE_S) as ws:
            while not any(e["event"] == "response" for e in events):
                events.append(json.loads(ws.recv(timeout=DEADLINE_S)))
            b.proc.send_signal(signal.SIGKILL)  # mid-stream: more chunks were to come
            b.proc.wait(DEADLINE_S)
            for message in ws:
                events.append(json.loads(message))
            assert ws.close_code == 1000
        assert events[0] == {**events[0], "event": "status", "status": "in_progress"}
        chunks = [e["sequence_number"] for e in events if e["event"] == "response"]
        assert chunks == list(range(1, len(chunks) + 1))  # none twice, none skipped
        end = events[-1]
        assert [e for e in events if e.get("status") not in ("in_progress", None)] == [end], events
        stored = a.http.get(f"/api/v1/commands/{cid}", headers=headers).json()
        assert stored["status"] == end["status"]
        # What B left (the held command, and the followed one unless it completed in
        # time) A ended as interrupted, each once.
        left = 1
        if end["status"] == "failed":
            assert (end["error_code"], stored["error_code"]) == ("interrupted", "interrupted")
            left = 2
        else:
            assert end["status"] == "completed"
        wait_until(  # logged once A serves the lanes, a moment after the events
            lambda: sum(r["interrupted"] for r in _events(a.log_records(), "lanes_taken")),
            "A to say it ended what B left",
        )
        assert sum(r["interrupted"] for r in _events(a.log_records(), "lanes_taken")) == left
        assert _status(a, held, headers) == ("failed", "interrupted")
        answered = a.http.get(f"/api/v1/commands/{cid}/responses", headers=headers).json()
        assert [c["sequence_number"] for c in answered["items"]][: len(chunks)] == chunks
        # The lane is A's now: the vehicle's next command runs on A, to its end.
        wait_until(lambda: _events(a.log_records(), "lanes_taken"), "A to take the lanes")
        again = submit_command(a, token, vehicle)
        wait_until(
            lambda: (
                a.http.get(f"/api/v1/commands/{again}", headers=headers).json()["status"]
                == "completed"
            ),
            "the next command to complete on A",
        )
        assert _lanes_owned(a) == fleet  # every lane is A's now
        (line,) = wait_until(
            lambda: [r for r in a.log_records() if r.get("command_id") == again],
            "A's line for the command's end",
        )
        assert (line["event"], line["status"]) == ("command_end", "completed")
    finally:
        if a is not None:
            a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)
