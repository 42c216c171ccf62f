"""A SOVD call's command streams like any other: the X-Command-ID of a fault read (a
DiagService of the demo engine's description), followed over a real WebSocket, replays
the same answer the SOVD response was built from."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.harness import auth, make_config, running

pytestmark = pytest.mark.socket


def test_a_sovd_read_is_a_command_that_streams_over_the_websocket(tmp_path: Path) -> None:
    with running(make_config(tmp_path, command_timeout_s=2.0)) as srv:
        token = srv.token()
        vin = srv.vehicle(token)["vin"]
        r = srv.http.get(f"/sovd/vehicles/{vin}/v1/components/engine/faults", headers=auth(token))
        assert r.status_code == 200, r.text
        # The demo engine is bound to the demo description: the faults are what its
        # 0x19 0x02 answer reported (those with a status), decoded by the description.
        reported = [f["display_code"] for f in r.json()["items"] if f["status"]["mask"] != "00"]
        assert reported
        events, close = srv.stream(r.headers["x-command-id"], token)
        assert close == 1000
        (chunk,) = [e["response_payload"] for e in events if e["event"] == "response"]
        assert chunk["service"] == "FaultMem_ReportDTCByStatusMask"
        records = chunk["parameters"]["DTCAndStatusRecord"]
        assert [rec["DTC"]["code"] for rec in records] == reported
        assert chunk["request"] == "1902FF" and chunk["response"].startswith("5902")
        assert events[-1] == {**events[-1], "event": "status", "status": "completed"}
