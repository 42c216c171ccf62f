"""Security round 3 (#19 item 3): an answer has a bounded number of chunks, and its stored
chunks are read a page at a time (the real app in process, a scripted vehicle)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import (
    ScriptedConnector,
    Server,
    auth,
    in_process,
    make_config,
    wait_until,
)

pytestmark = pytest.mark.fast

CAP = 5


@pytest.fixture
def scripted(tmp_path: Path) -> Iterator[tuple[Server, ScriptedConnector]]:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=30, max_chunks_per_command=CAP)
    with in_process(config, connector=fake) as srv:
        yield srv, fake


def _responses(srv: Server, token: str, command_id: str, **query: int) -> dict[str, object]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(token), params=query)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_an_answer_longer_than_the_cap_fails_and_keeps_the_first_chunks(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    srv, fake = scripted
    token = srv.token()
    cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
    wait_until(lambda: cid in fake.started, "the command to start")
    for n in range(CAP + 1):  # one chunk too many, none of them final
        fake.feed(cid, {"n": n})
    done = srv.wait_status(token, cid)
    assert (done["status"], done["error_code"]) == ("failed", "invalid-response-content")
    assert f"more than {CAP} chunks" in done["error_message"]
    assert "SOVD_MAX_CHUNKS_PER_COMMAND" in done["error_message"]
    page = _responses(srv, token, cid)
    assert [c["response_payload"]["n"] for c in page["items"]] == list(range(CAP))  # type: ignore[index, union-attr]


def test_an_answer_at_the_cap_completes(scripted: tuple[Server, ScriptedConnector]) -> None:
    srv, fake = scripted
    token = srv.token()
    cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
    wait_until(lambda: cid in fake.started, "the command to start")
    for n in range(CAP):
        fake.feed(cid, {"n": n}, final=n == CAP - 1)
    assert srv.wait_status(token, cid)["status"] == "completed"


def test_responses_come_a_page_at_a_time(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    total = 1234
    config = make_config(tmp_path, command_timeout_s=30, max_chunks_per_command=total)
    with in_process(config, connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        for n in range(1, total + 1):
            fake.feed(cid, {"n": n}, final=n == total)
        assert srv.wait_status(token, cid)["status"] == "completed"

        def numbers(page: dict[str, object]) -> list[int]:
            return [c["sequence_number"] for c in page["items"]]  # type: ignore[index, union-attr]

        first = _responses(srv, token, cid)  # the default page: 100
        assert numbers(first) == list(range(1, 101)) and first["next_after"] == 100
        big = _responses(srv, token, cid, after=100, limit=1000)
        assert numbers(big) == list(range(101, 1101)) and big["next_after"] == 1100
        last = _responses(srv, token, cid, after=1100, limit=1000)
        assert numbers(last) == list(range(1101, total + 1)) and last["next_after"] is None
        exact = _responses(srv, token, cid, after=total - 10, limit=10)
        assert len(numbers(exact)) == 10 and exact["next_after"] is None
        assert _responses(srv, token, cid, after=total)["items"] == []

        for query, name in (
            ({"limit": 1001}, "limit"),
            ({"limit": 0}, "limit"),
            ({"after": -1}, "after"),
        ):
            r = srv.http.get(f"/api/v1/commands/{cid}/responses", headers=auth(token), params=query)
            assert r.status_code == 400, r.text
            assert f"query parameter {name}" in r.json()["message"]
