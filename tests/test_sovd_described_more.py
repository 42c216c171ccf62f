"""The SOVD tree of a bound ECU, the rest of issue #20 item 4: PUT data (0x2E) and
configurations (varcoding), the component's variant and forced detection, dtcsetting
(0x85), a fault's environment data (0x19 0x04 / 0x06), a 0x19 0x02 answer holding a DTC
the description lacks, and locks letting a bound ECU's reads through.

In process over the ASGI transport; the ECU is a DoIP vehicle's, the described emulator
on loopback (``EmulatorSettings.described``) answering a custom PDX built with
``build_pdx`` (the simulator's table ECUs answer 0x2E, 0x85 and 0x19 0x04 with 0x11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.vehicles.emulator.described import described_specs, load_pdx
from app.vehicles.emulator.server import DoipEmulator, EmulatorSettings
from app.vehicles.pdx import (
    DTC_SETTING_ON_OFF,
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxSpec,
)
from tests.support.harness import Server, auth, in_process, make_config
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.socket

ZIP = {"content-type": "application/zip"}
VIN = "WVWZZZ1KZAW000777"
FLX = PdxSpec(
    (
        PdxEcu(
            "FLX",
            long_name="Flux ECU",
            logical_address=0x50,
            dids=(
                PdxDid(0x1234, "Counter", long_name="Counter", size=2, writable=True),
                PdxDid(
                    0x0600,
                    "Coding",
                    long_name="Coding",
                    size=1,
                    category="VarCoding",
                    writable=True,
                ),
                PdxDid(0xF190, "VIN", long_name="VIN", size=17, text=True),
            ),
            dtcs=(PdxDtc("P0171", "System too lean", 2),),
            dtc_settings=(*DTC_SETTING_ON_OFF, ("TimeTravelDTCsOn", 0x42)),
            snapshots=True,
            extended_data=True,
        ),
    ),
    name="FLX_PDX",
)


def _add_doip_vehicle(
    srv: Server, admin: str, vin: str, port: int, ecu: str, description: str
) -> None:
    """A DoIP vehicle at the emulator on ``port``, its ECU ``ecu`` bound to ``description``."""
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json={
            "vin": vin,
            "make": "Bench",
            "model": description.title(),
            "year": 2024,
            "transport": "doip",
            "doip": {
                "host": "127.0.0.1",
                "port": port,
                "logical_address": "0x0001",
                "ecu_addresses": [ecu],
            },
            "ecus": [{"description": description}],
        },
    )
    assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, DoipEmulator]]:
    tmp = tmp_path_factory.mktemp("described-more")
    data = pdx_of(FLX)
    path = Path(tmp) / "flx.pdx"
    path.write_bytes(data)
    specs = described_specs([load_pdx(path)])
    with in_process(make_config(tmp, command_timeout_s=5.0)) as srv:
        admin = srv.admin_token()
        r = srv.http.post(
            "/api/v1/descriptions",
            params={"name": "flx.pdx"},
            content=data,
            headers={**auth(admin), **ZIP},
        )
        assert r.status_code == 201, r.text
        emulator = DoipEmulator(EmulatorSettings(vin=VIN, seed=3, ecus=(), described=specs))
        srv.run(emulator.start("127.0.0.1", 0))
        try:
            _add_doip_vehicle(srv, admin, VIN, emulator.port, "0x50", "FLX")
            yield srv, emulator
        finally:
            srv.run(emulator.close())


@pytest.fixture
def srv(world: tuple[Server, DoipEmulator]) -> Server:
    return world[0]


def _url(path: str) -> str:
    return f"/sovd/vehicles/{VIN}/v1/components/flx{path}"


def _commands(srv: Server) -> list[dict[str, Any]]:
    vehicle = srv.http.get(f"/api/v1/vehicles/{VIN}", headers=auth(srv.admin_token())).json()
    r = srv.http.get(
        "/api/v1/commands",
        params={"vehicle_id": vehicle["vehicle_id"], "limit": 200},
        headers=auth(srv.admin_token()),
    )
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def _chunk(srv: Server, command_id: str) -> dict[str, Any]:
    r = srv.http.get(f"/api/v1/commands/{command_id}/responses", headers=auth(srv.admin_token()))
    return dict(r.json()["items"][-1]["response_payload"])


# -- 1. PUT data and configurations -------------------------------------------------------


def test_put_data_sends_the_write_service(srv: Server) -> None:
    token = srv.token()
    r = srv.http.put(_url("/data/counter"), headers=auth(token), json={"data": {"Counter": 0x0A0B}})
    # 6E 12 34: a positive answer without values
    assert r.status_code == 204, r.text
    chunk = _chunk(srv, r.headers["x-command-id"])
    assert (chunk["service"], chunk["request"], chunk["response"]) == (
        "Counter_Write",
        "2E12340A0B",
        "6E1234",
    )
    command = next(c for c in _commands(srv) if c["command_id"] == r.headers["x-command-id"])
    assert command["command_params"]["sid"] == "0x2E"


def test_put_data_refuses_an_unknown_or_ill_typed_parameter_before_sending(srv: Server) -> None:
    token = srv.token()
    before = len(_commands(srv))
    r = srv.http.put(_url("/data/Counter"), headers=auth(token), json={"data": {"Speed": 1}})
    assert r.status_code == 400, r.text
    assert r.json()["message"] == (
        "body.data.Speed is not a parameter of Counter_Write (it takes: Counter)"
    )
    r = srv.http.put(_url("/data/Counter"), headers=auth(token), json={"data": {"Counter": "x"}})
    assert r.status_code == 400, r.text
    assert r.json()["message"].startswith(
        "body.data.Counter of Counter_Write must be an integer (A_UINT32)"
    )
    r = srv.http.put(_url("/data/VIN"), headers=auth(token), json={"data": {"VIN": "x"}})
    assert r.status_code == 404, r.text
    assert "no writable data VIN (it has: Counter, Coding)" in r.json()["message"]
    assert len(_commands(srv)) == before  # nothing was sent


def test_configurations_are_the_varcoding_items(srv: Server) -> None:
    token = srv.token()
    r = srv.http.get(_url("/configurations"), headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json() == {
        "items": [
            {
                "id": "Coding",
                "name": "Coding",
                "configurations_type": "parameter",
                "x-sovd2uds-ServiceAbstract": ["220600", "2E0600"],
            }
        ]
    }
    # listed under data as well (CDA)
    data = srv.http.get(_url("/data"), headers=auth(token)).json()["items"]
    assert [d["id"] for d in data] == ["Counter", "Coding", "VIN"]
    r = srv.http.put(
        _url("/configurations/coding"), headers=auth(token), json={"data": {"Coding": 7}}
    )
    assert r.status_code == 204, r.text
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "2E060007"
    # Counter is no configuration: not written there; GET reads any data item (CDA)
    r = srv.http.put(_url("/configurations/counter"), headers=auth(token), json={"data": {}})
    assert r.status_code == 404, r.text
    assert "(it has: Coding)" in r.json()["message"]
    r = srv.http.get(_url("/configurations/Coding"), headers=auth(token))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == "coding"
    assert list(r.json()["data"]) == ["Coding"]
    assert _chunk(srv, r.headers["x-command-id"])["request"] == "220600"


# -- 2. the variant ------------------------------------------------------------------------


def test_the_component_shows_its_variant_and_put_detects_it(srv: Server) -> None:
    token = srv.token()
    r = srv.http.get(_url(""), headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    # One base variant and no ECU variant to match: Online (CDA's state)
    assert body["variant"] == {
        "name": "FLX",
        "is_base_variant": True,
        "state": "Online",
        "logical_address": "0x0050",
    }
    assert body["configurations"].endswith(f"/sovd/vehicles/{VIN}/v1/components/flx/configurations")
    r = srv.http.put(_url(""), headers=auth(token))
    assert r.status_code == 201, r.text
    assert r.content == b""
    assert srv.http.get(_url(""), headers=auth(token)).json()["variant"]["state"] == "Online"


# -- 3. dtcsetting, environment data ---------------------------------------------------------


def test_dtcsetting_modes_send_0x85(srv: Server) -> None:
    token = srv.token()
    modes = srv.http.get(_url("/modes"), headers=auth(token)).json()["items"]
    assert modes == [
        {"id": "session", "name": "Diagnostic session"},
        {"id": "dtcsetting", "name": "DTC setting"},
    ]
    r = srv.http.get(_url("/modes/dtcsetting"), headers=auth(token))
    assert r.json() == {"id": "dtcsetting", "name": "DTC setting", "value": "on"}
    for value, request in (("off", "8502"), ("TimeTravelDTCsOn", "8542"), ("on", "8501")):
        r = srv.http.put(_url("/modes/dtcsetting"), headers=auth(token), json={"value": value})
        assert r.status_code == 200, r.text
        assert r.json() == {"id": "dtcsetting", "value": value.lower()}
        chunk = _chunk(srv, r.headers["x-command-id"])
        assert (chunk["request"], chunk["response"]) == (request, "C5" + request[2:])
        now = srv.http.get(_url("/modes/dtcsetting"), headers=auth(token)).json()
        assert now["value"] == value.lower()
    r = srv.http.put(_url("/modes/dtcsetting"), headers=auth(token), json={"value": "sometimes"})
    assert r.status_code == 400, r.text
    assert r.json()["parameters"]["possiblevalues"] == ["on", "off", "timetraveldtcson"]


def test_a_fault_has_its_snapshots_and_extended_data(srv: Server) -> None:
    token = srv.token()
    before = {c["command_id"] for c in _commands(srv)}
    r = srv.http.get(_url("/faults/P0171"), headers=auth(token))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["item"]["code"] == "017100"
    environment = body["environment_data"]
    assert set(environment["snapshots"]["data"]) == {
        "StatusOfDTC",
        "DTCSnapshotRecordNumber",
        "DTCSnapshotRecordNumberOfIdentifiers",
        "DTCSnapshotRecordDid",
        "DTCSnapshotRecordDidData",
    }
    assert set(environment["extended_data_records"]["data"]) == {
        "StatusOfDTC",
        "DTCExtDataRecordNumber",
        "OccurrenceCounter",
    }
    sent = {
        c["command_params"]["service"]: _chunk(srv, c["command_id"])["request"]
        for c in _commands(srv)
        if c["command_id"] not in before
    }
    assert sent == {
        "FaultMem_ReportDTCByStatusMask": "1902FF",
        "FaultMem_ReportDTCSnapshotRecordByDTCNumber": "1904017100FF",
        "FaultMem_ReportDTCExtDataRecordByDTCNumber": "1906017100FF",
    }


# -- 5. a DTC the description lacks ------------------------------------------------------------

# The demo engine (0x10, the DoIP emulator's) stores P0171 and P0420 (its scenario); the
# description the service binds it to knows P0171 only.
DEMO_VIN = "WVWZZZ1KZAW000077"
ENGINE_P0171_ONLY = PdxSpec(
    # Not named ENGINE: the demo description in the library provides that one.
    (PdxEcu("LEANENGINE", logical_address=0x10, dtcs=(PdxDtc("P0171", "System too lean", 2),)),),
    name="LEANENGINE_PDX",
)


def test_a_reported_dtc_the_description_lacks_is_listed_by_the_iso_layout(srv: Server) -> None:
    admin = srv.admin_token()
    r = srv.http.post(
        "/api/v1/descriptions",
        params={"name": "engine.pdx"},
        content=pdx_of(ENGINE_P0171_ONLY),
        headers={**auth(admin), **ZIP},
    )
    assert r.status_code == 201, r.text
    # A described ECU reports only DTCs its own description has: the emulator's engine is
    # the demo one, the service reads it with ENGINE_P0171_ONLY.
    emulator = DoipEmulator(EmulatorSettings(vin=DEMO_VIN, seed=3))
    srv.run(emulator.start("127.0.0.1", 0))
    try:
        _add_doip_vehicle(srv, admin, DEMO_VIN, emulator.port, "0x10", "LEANENGINE")
        url = f"/sovd/vehicles/{DEMO_VIN}/v1/components/leanengine/faults"
        r = srv.http.get(url, headers=auth(srv.token()))
    finally:
        srv.run(emulator.close())
    assert r.status_code == 200, r.text
    items = {f["code"]: f for f in r.json()["items"]}
    assert list(items) == ["017100", "042000"]
    assert items["017100"]["display_code"] == "P0171"
    p0420 = items["042000"]
    # its code and status only: no display code, name or level in the description
    assert set(p0420) == {"code", "scope", "severity", "status"}
    assert (p0420["severity"], p0420["status"]["test_failed"]) == (0, True)
    # The DiagService itself completed, its answer read by the ISO layout.
    chunk = _chunk(srv, r.headers["x-command-id"])
    assert chunk["request"] == "1902FF"
    records = chunk["parameters"]["DTCAndStatusRecord"]
    assert [rec["DTC"] for rec in records] == [
        {"code": "P0171", "troubleCode": "0x017100", "text": "System too lean", "level": 2},
        {"code": "042000", "troubleCode": "0x042000", "text": None, "level": None},
    ]
    assert records[1]["statusOfDTC"] == int(p0420["status"]["mask"], 16)


# -- 4. locks: reads of a bound ECU go through another user's lock -----------------------------


def test_another_users_lock_lets_bound_reads_through_and_refuses_a_clear(srv: Server) -> None:
    holder = srv.create_engineer("holder")
    r = srv.http.post(_url("/locks"), headers=auth(holder), json={"lock_expiration": 60})
    assert r.status_code == 201, r.text
    lock_id = r.json()["id"]
    token = srv.token()
    try:
        read = srv.http.get(_url("/data/Counter"), headers=auth(token))
        assert read.status_code == 200, read.text
        assert _chunk(srv, read.headers["x-command-id"])["request"] == "221234"
        faults = srv.http.get(_url("/faults"), headers=auth(token))
        assert faults.status_code == 200, faults.text
        before = len(_commands(srv))
        cleared = srv.http.delete(_url("/faults"), headers=auth(token))
        assert cleared.status_code == 409, cleared.text
        assert cleared.json()["error_code"] == "precondition-not-fulfilled"
        written = srv.http.put(
            _url("/data/Counter"), headers=auth(token), json={"data": {"Counter": 1}}
        )
        assert written.status_code == 409, written.text
        assert len(_commands(srv)) == before  # refused before anything was stored
    finally:
        r = srv.http.delete(_url(f"/locks/{lock_id}"), headers=auth(holder))
        assert r.status_code == 204, r.text
