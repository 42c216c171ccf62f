"""ECU descriptions on a cluster (issue #23): one library every node shares. Real
``python -m app`` nodes on one PostgreSQL database and one NATS server.

A PDX uploaded through node A is bound and read (a described SOVD call) through node B;
removed through B, A lists it no more; the demo description, built by the node that
seeded the demo, reads on the other; two uploads of one name through both nodes at once
are one 201 and one 409, and both nodes then hold the winner's bytes; a node started
after an upload has it, and a node that was down while a file was removed and another
added has caught up when it is back.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec
from app.vehicles.pdx.demo import DEMO_PDX_NAME
from tests.support.harness import wait_until
from tests.support.nats import NatsServer
from tests.support.pdx_files import pdx_of
from tests.support.process import Process, admin_headers, cluster_env

pytestmark = pytest.mark.socket

ADMIN_PASSWORD = "admin-password-1"  # server_env's
ZIP = {"content-type": "application/zip"}
GOLF = "WVWZZZ1KZAW000001"  # a demo vehicle: its ECUs are bound to the demo description


def _spec(ecu: str, address: int, name: str) -> PdxSpec:
    did = PdxDid(0x2A01, "OilTemperature", "Oil temperature", 1, 0.5, -40, "degC")
    return PdxSpec(
        (PdxEcu(ecu, long_name=f"{ecu} ECU", logical_address=address, dids=(did,)),), name=name
    )


FLUX = pdx_of(_spec("FLUX", 0x50, "FLUX_PDX"))
GAMMA = pdx_of(_spec("GAMMA", 0x51, "GAMMA_PDX"))


def _node(tmp_path: Path, name: str, database_url: str, bus_url: str) -> Process:
    return Process(
        cluster_env(
            tmp_path / name,
            database_url,
            bus_url,
            # No periodic pass within the test: what a running node learns, it learns
            # from the notices (the pass is tests/test_description_sync.py's).
            SOVD_DESCRIPTION_SYNC_S="3600",
        )
    )


def _listed(node: Process, headers: dict[str, str]) -> dict[str, dict[str, Any]]:
    r = node.http.get("/api/v1/descriptions", headers=headers)
    assert r.status_code == 200, r.text
    return {d["name"]: d for d in r.json()["items"]}


def _ready(node: Process, headers: dict[str, str], name: str) -> dict[str, Any]:
    """The file once the node has it ready (it may come over the bus a moment later)."""

    def found() -> dict[str, Any] | None:
        listed = _listed(node, headers).get(name)
        assert listed is None or listed["state"] != "failed", listed
        return listed if listed is not None and listed["state"] == "ready" else None

    result: dict[str, Any] = wait_until(found, f"{name} ready on {node.base_url}")
    return result


def _gone(node: Process, headers: dict[str, str], name: str) -> None:
    wait_until(lambda: name not in _listed(node, headers), f"{name} gone on {node.base_url}")


def _upload(http: httpx.Client, headers: dict[str, str], name: str, data: bytes) -> httpx.Response:
    return http.post(
        "/api/v1/descriptions", params={"name": name}, content=data, headers={**headers, **ZIP}
    )


def test_a_description_added_through_one_node_is_used_through_the_other(
    tmp_path: Path, postgres_url: str, nats_server: NatsServer
) -> None:
    a = _node(tmp_path, "a", postgres_url, nats_server.url)  # first: it seeds the demo
    b: Process | None = None
    c: Process | None = None
    try:
        b = _node(tmp_path, "b", postgres_url, nats_server.url)
        on_a, on_b = admin_headers(a), admin_headers(b)
        # The demo description A built is B's too, and reads there.
        demo = _ready(a, on_a, DEMO_PDX_NAME)
        assert _ready(b, on_b, DEMO_PDX_NAME)["sha256"] == demo["sha256"]
        r = b.http.get(f"/sovd/vehicles/{GOLF}/v1/components/engine/data/VIN", headers=on_b)
        assert r.status_code == 200, r.text
        assert r.json() == {"id": "vin", "data": {"VIN": GOLF}}

        # Uploaded through A, bound and read through B.
        r = _upload(a.http, on_a, "flux.pdx", FLUX)
        assert r.status_code == 201, r.text
        assert _ready(b, on_b, "flux.pdx")["sha256"] == r.json()["sha256"]
        r = b.http.post(
            "/api/v1/vehicles",
            headers=on_b,
            json={
                "vin": "WVWZZZ1KZAW000701",
                "make": "Bench",
                "model": "Rig",
                "year": 2024,
                "ecus": [{"description": "FLUX"}],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["ecus"] == [{"name": "flux", "address": "0x0050", "description": "FLUX"}]
        r = b.http.get(
            "/sovd/vehicles/WVWZZZ1KZAW000701/v1/components/flux/data/OilTemperature",
            headers=on_b,
        )
        assert r.status_code == 200, r.text
        value = r.json()["data"]["OilTemperature"]
        assert -40 <= value <= 87.5 and (value + 40) * 2 == int((value + 40) * 2)  # the DOP's

        # Removed through B: gone on A.
        r = b.http.delete("/api/v1/descriptions/flux.pdx", headers=on_b)
        assert r.status_code == 204, r.text
        _gone(a, on_a, "flux.pdx")
        assert not (tmp_path / "a" / "data" / "descriptions" / "flux.pdx").exists()

        # One name through both nodes at once: the database decides.
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda job: _upload(job[0], job[1], "race.pdx", job[2]),
                    [(a.http, on_a, FLUX), (b.http, on_b, GAMMA)],
                )
            )
        codes = sorted(r.status_code for r in answers)
        assert codes == [201, 409], [r.text for r in answers]
        won = next(r for r in answers if r.status_code == 201).json()["sha256"]
        lost = next(r for r in answers if r.status_code == 409).json()
        assert "race.pdx exists" in lost["message"], lost
        assert _ready(a, on_a, "race.pdx")["sha256"] == won
        assert _ready(b, on_b, "race.pdx")["sha256"] == won

        # B down: a file removed and one added through A meanwhile.
        assert b.stop() == 0
        b = None
        assert a.http.delete("/api/v1/descriptions/race.pdx", headers=on_a).status_code == 204
        r = _upload(a.http, on_a, "late.pdx", GAMMA)
        assert r.status_code == 201, r.text
        late = r.json()["sha256"]
        # A new node has it from the start; B, back, has caught up.
        c = _node(tmp_path, "c", postgres_url, nats_server.url)
        b = _node(tmp_path, "b", postgres_url, nats_server.url)
        for node in (b, c):
            headers = admin_headers(node)
            assert "race.pdx" not in _listed(node, headers)
            assert _ready(node, headers, "late.pdx")["sha256"] == late
            assert _ready(node, headers, DEMO_PDX_NAME)["sha256"] == demo["sha256"]
        assert not (tmp_path / "b" / "data" / "descriptions" / "race.pdx").exists()
    finally:
        for node in (c, b, a):
            if node is not None:
                node.stop(signal.SIGKILL)
