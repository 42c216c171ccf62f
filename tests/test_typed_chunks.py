"""Issue #20 item 7: connectors yield typed chunks; the pipeline stores their payloads as
they are and fails a command by a chunk's type (``Negative``), never by its payload; the
SOVD services map the typed fields (``Negative``, ``DtcRecord``) to resources, never
re-reading hex strings from the payload."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from app.events import ResponseEvent, encode
from app.models import Principal, Role
from app.vehicles.connector import Chunk, DtcRecord, Negative
from app.vehicles.history import Reading, reading
from tests.support.harness import (
    DEADLINE_S,
    ScriptedConnector,
    Server,
    auth,
    in_process,
    make_config,
    wait_until,
)
from tests.support.schemas import dtc_status

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


# -- the SOVD services read the typed fields, not the payload ------------------------------


def _sovd_call(
    srv: Server, fake: ScriptedConnector, token: str, path: str
) -> tuple[Future[httpx.Response], str]:
    """Start a SOVD GET on the first component of the vehicle (in a thread: it waits for
    its command's answer), and return it with the command the call submitted, once the
    call follows it live: a chunk fed before would reach it replayed from the store, whose
    payload is all a replay can read (these tests feed typed fields the payload lacks)."""
    before = len(fake.started)
    pool = ThreadPoolExecutor(1)
    future = pool.submit(srv.http.get, path, headers=auth(token))
    pool.shutdown(wait=False)
    wait_until(lambda: len(fake.started) > before, "the SOVD call's command to start")
    command_id = fake.started[-1]
    bus = srv.services.bus
    wait_until(lambda: bus.subscriber_count(command_id) > 0, "the SOVD call to follow")
    return future, command_id


def _component(srv: Server, token: str) -> tuple[str, str]:
    """A vehicle of its own whose one ECU is bound to no description (at a non-demo
    address): its faults are the generic ReadDTC's, read from the typed chunks."""
    vin = "1HGCM82633A000077"
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(srv.admin_token()),
        json={
            "vin": vin,
            "make": "Bench",
            "model": "Gateway",
            "year": 2024,
            "ecus": [{"name": "gateway", "address": "0x0077"}],
        },
    )
    assert r.status_code == 201, r.text
    r = srv.http.get(f"/sovd/vehicles/{vin}/v1/components", headers=auth(token))
    assert r.status_code == 200, r.text
    return f"/sovd/vehicles/{vin}/v1/components", r.json()["items"][0]["id"]


def test_faults_come_from_the_typed_dtc_not_the_payload(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    """The chunks hold no DTC fields at all: the faults are read from ``Chunk.dtc``."""
    srv, fake = scripted
    token = srv.token()
    root, component = _component(srv, token)
    call, cid = _sovd_call(srv, fake, token, f"{root}/{component}/faults")
    fake.feed(cid, {"ecuAddress": "0x0010"}, dtc=DtcRecord(0x017100, 0x2F))
    fake.feed(cid, {"ecuAddress": "0x0010"}, dtc=DtcRecord(0xC07301, 0x08))
    fake.feed(cid, {"ecuAddress": "0x0010", "status": "complete"}, final=True)
    r = call.result(timeout=DEADLINE_S)
    assert r.status_code == 200, r.text
    faults = {f["code"]: f for f in r.json()["items"]}
    assert sorted(faults) == ["017100", "C07301"]
    assert faults["017100"]["display_code"] == "P0171"
    assert faults["017100"]["status"]["mask"] == "2F"
    assert faults["017100"]["status"]["confirmed_dtc"] is True
    assert faults["C07301"]["display_code"] == "U0073"
    assert faults["017100"]["status"] == dtc_status(0x2F)
    assert faults["C07301"]["status"] == dtc_status(0x08)  # confirmed_dtc alone


def test_a_refusal_comes_from_the_typed_negative_not_the_payload(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    """The refusal's payload says nothing of it (no ``negativeResponse``): SOVD's error
    carries the typed ``Negative``'s service and NRC."""
    srv, fake = scripted
    token = srv.token()
    root, component = _component(srv, token)
    call, cid = _sovd_call(srv, fake, token, f"{root}/{component}/faults")
    fake.feed(cid, {"ecuAddress": "0x0010"}, negative=Negative(0x22, "conditionsNotCorrect", 0x19))
    r = call.result(timeout=DEADLINE_S)
    assert r.status_code == 502, r.text
    body = r.json()
    assert body["error_code"] == "error-response"
    assert body["parameters"] == {
        "service": 0x19,
        "service_name": "ReadDTCInformation",
        "nrc": 0x22,
        "nrc_name": "conditionsNotCorrect",
    }

    # A DoIP NACK: the layer comes from the type as well.
    call, cid = _sovd_call(srv, fake, token, f"{root}/{component}/faults")
    fake.feed(cid, {}, negative=Negative(0x03, "outOfMemory", 0x19, "doip"))
    r = call.result(timeout=DEADLINE_S)
    assert r.status_code == 502, r.text
    assert r.json()["parameters"]["layer"] == "doip"
    assert r.json()["parameters"]["nrc"] == 0x03


def test_a_payload_that_looks_refused_is_no_refusal_to_sovd(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    """Nothing is sniffed upward either: a positive chunk whose payload carries a
    ``negativeResponse`` object is a positive answer (no DTCs) to the faults read."""
    srv, fake = scripted
    token = srv.token()
    root, component = _component(srv, token)
    call, cid = _sovd_call(srv, fake, token, f"{root}/{component}/faults")
    fake.feed(cid, REFUSED, final=True)
    r = call.result(timeout=DEADLINE_S)
    assert r.status_code == 200, r.text
    assert r.json()["items"] == []


def test_a_replayed_chunk_carries_the_typed_fields_read_back_from_the_stored_form() -> None:
    """A reader that arrives after a chunk was stored gets it replayed from the history
    (``app.services.follow``): the same typed fields, read back from the form the
    conversations store (``app.vehicles.history``), so the services read only those."""
    assert reading(REFUSED) == Reading(negative=Negative(0x31, "requestOutOfRange", 0x22))
    nack = {"negativeResponse": {"nrc": "0x03", "name": "x", "service": "0x31", "layer": "doip"}}
    assert reading(nack).negative == Negative(0x03, "x", 0x31, "doip")
    texted = {
        "negativeResponse": {"nrc": "0x12", "name": "n", "text": "Sub", "service": "0x31"},
        "response": "7F3112",
    }
    assert reading(texted) == Reading(Negative(0x12, "n", 0x31, text="Sub"), b"\x7f\x31\x12")
    dtc = {"dtcCode": "P0171", "statusByte": "0x2F", "failureType": "0x13"}
    assert reading(dtc).dtc == DtcRecord(0x017113, 0x2F)
    assert reading({"value": 1}) == Reading()
    assert reading({"negativeResponse": {"nrc": "zz"}, "response": "XY"}) == Reading()
    event = ResponseEvent.replayed("c", 1, True, dict(REFUSED), "t")
    assert event.negative == Negative(0x31, "requestOutOfRange", 0x22)
    # The frame is the stored form: the typed reading stays inside the service.
    assert json.loads(encode(event)) == {
        "event": "response",
        "command_id": "c",
        "sequence_number": 1,
        "response_payload": REFUSED,
        "is_final": True,
        "received_at": "t",
    }


def test_faults_replayed_to_a_late_reader_are_typed(
    scripted: tuple[Server, ScriptedConnector],
) -> None:
    """The chunks are stored before the SOVD call follows them (the first one at once):
    whatever the reader gets replayed is typed as the live events are."""
    srv, fake = scripted
    token = srv.token()
    root, component = _component(srv, token)
    call, cid = _sovd_call(srv, fake, token, f"{root}/{component}/faults")
    p0171 = {"ecuAddress": "0x0010", "dtcCode": "P0171", "statusByte": "0x2F"}
    fake.feed(cid, p0171, dtc=DtcRecord(0x017100, 0x2F))
    wait_until(lambda: len(_payloads(srv, token, cid)) == 1, "the first chunk to be stored")
    # A late follower of the same command gets the stored chunk replayed, typed.
    replayed = srv.run(_first_event(srv, cid))
    assert replayed.dtc == DtcRecord(0x017100, 0x2F)
    fake.feed(cid, {"ecuAddress": "0x0010", "status": "complete"}, final=True)
    r = call.result(timeout=DEADLINE_S)
    assert r.status_code == 200, r.text
    assert [f["code"] for f in r.json()["items"]] == ["017100"]


async def _first_event(srv: Server, command_id: str) -> ResponseEvent:
    admin = Principal(user_id="a", username="admin", role=Role.ADMIN, session_id="s")
    async with srv.services.commands.follow(admin, command_id) as events:
        async for event in events:
            if isinstance(event, ResponseEvent):
                return event
    raise AssertionError("no chunk")
