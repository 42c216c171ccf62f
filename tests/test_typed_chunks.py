"""Issue #20 item 7: connectors yield typed chunks; the pipeline stores their payloads as
they are and fails a command by a chunk's type (``Negative``), never by its payload."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.vehicles.connector import Chunk, Negative
from tests.support.harness import (
    ScriptedConnector,
    Server,
    auth,
    in_process,
    make_config,
    wait_until,
)

pytestmark = pytest.mark.fast

REFUSED = {
    "ecuAddress": "0x0010",
    "dataId": "0x0105",
    "negativeResponse": {"nrc": "0x31", "name": "requestOutOfRange", "service": "0x22"},
}


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Server, ScriptedConnector]]:
    fake = ScriptedConnector()
    with in_process(make_config(tmp_path, command_timeout_s=30), connector=fake) as srv:
        yield srv, fake


def _started(srv: Server, fake: ScriptedConnector, token: str) -> str:
    cid: str = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
    wait_until(lambda: cid in fake.started, "the command to start")
    return cid


def _payloads(srv: Server, token: str, cid: str) -> list[object]:
    r = srv.http.get(f"/api/v1/commands/{cid}/responses", headers=auth(token))
    assert r.status_code == 200, r.text
    return [c["response_payload"] for c in r.json()["items"]]


def test_a_negative_chunk_fails_the_command_by_its_type(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    srv, fake = scripted
    token = srv.token()
    out_of_range = _started(srv, fake, token)
    fake.feed(out_of_range, REFUSED, negative=Negative(0x31, "requestOutOfRange", 0x22))
    done = srv.wait_status(token, out_of_range)
    assert (done["status"], done["error_code"]) == ("failed", "request-out-of-range")
    assert done["error_message"] == (
        "vehicle answered with negative response 0x31 (requestOutOfRange)"
    )
    assert _payloads(srv, token, out_of_range) == [REFUSED]  # stored as the connector sent it

    nack = _started(srv, fake, token)
    fake.feed(nack, {"ecuAddress": "0x0099"}, negative=Negative(0x03, "unknown", 0x19, "doip"))
    done = srv.wait_status(token, nack)
    assert (done["status"], done["error_code"]) == ("failed", "error-response")
    assert done["error_message"] == "vehicle answered with negative response 0x03 (unknown)"


def test_a_payload_is_not_sniffed_for_a_negative_response(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    srv, fake = scripted
    token = srv.token()
    cid = _started(srv, fake, token)
    fake.feed(cid, REFUSED, final=True)  # no Negative: a positive answer, whatever it says
    assert srv.wait_status(token, cid)["status"] == "completed"
    assert _payloads(srv, token, cid) == [REFUSED]


def test_a_negative_chunk_is_final() -> None:
    with pytest.raises(ValueError, match="final chunk"):
        Chunk({}, False, Negative(0x22, "conditionsNotCorrect", 0x31))
    assert Chunk({}, True, Negative(0x22, "conditionsNotCorrect", 0x31)).raw == b""
