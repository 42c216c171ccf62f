"""Issue #20: the demo description is in the description library whenever demo data is
seeded (``SOVD_DEMO_DATA`` on a new database, the emulator's DoIP demo vehicle), stored as
an upload is, never over a file a user put there, and the demo vehicles' ECUs bound to
its containers (in process, a real SQLite file and data directory)."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec, build_demo_pdx
from app.vehicles.pdx.demo import DEMO_ECUS, DEMO_PDX_NAME
from tests.support.harness import auth, in_process, make_config, wait_until
from tests.support.pdx_files import pdx_of

pytestmark = pytest.mark.fast

BOUND = [
    {
        "name": e.short_name.lower(),
        "address": f"0x{e.logical_address:04X}",
        "description": e.short_name,
    }
    for e in DEMO_ECUS
    if e.logical_address is not None
]
# A user's own description of an ECU the demo also has (ENGINE), with one DID.
USERS_ENGINE = PdxSpec(
    (PdxEcu("ENGINE", logical_address=0x10, dids=(PdxDid(0x1234, "Counter", size=2),)),),
    name="USERS_ENGINE",
)


def _descriptions(tmp_path: Path) -> Path:
    return tmp_path / "data" / "descriptions"


def test_seeding_stores_the_demo_description_and_binds_the_demo_vehicles(tmp_path: Path) -> None:
    with in_process(make_config(tmp_path)) as srv:
        admin = srv.admin_token()
        listed = srv.http.get("/api/v1/descriptions", headers=auth(admin)).json()["items"]
        assert [(d["name"], d["state"]) for d in listed] == [(DEMO_PDX_NAME, "ready")]
        assert [c["name"] for c in listed[0]["containers"]] == [e.short_name for e in DEMO_ECUS]
        stored = _descriptions(tmp_path) / DEMO_PDX_NAME
        assert stored.read_bytes() == build_demo_pdx()
        assert stat.S_IMODE(stored.stat().st_mode) == 0o600
        assert srv.http.get("/health/ready").json()["descriptions_loading"] == []
        vehicles = srv.http.get("/api/v1/vehicles", headers=auth(admin)).json()["items"]
        assert vehicles and all(v["ecus"] == BOUND for v in vehicles)
        vin = vehicles[0]["vin"]
        engine = srv.http.get(
            f"/sovd/vehicles/{vin}/v1/components/engine", headers=auth(srv.token())
        ).json()
        assert engine["variant"]["name"] == "ENGINE"
    # A restart seeds nothing: the file is the same, loaded from the library's cache.
    with in_process(make_config(tmp_path)) as srv:
        listed = srv.http.get("/api/v1/descriptions", headers=auth(srv.admin_token())).json()
        assert [(d["name"], d["state"]) for d in listed["items"]] == [(DEMO_PDX_NAME, "ready")]
        assert (_descriptions(tmp_path) / DEMO_PDX_NAME).read_bytes() == build_demo_pdx()


def test_a_users_file_of_that_name_is_left_as_it_is(tmp_path: Path) -> None:
    directory = _descriptions(tmp_path)
    directory.mkdir(parents=True)
    mine = pdx_of(USERS_ENGINE)
    (directory / DEMO_PDX_NAME).write_bytes(mine)
    with in_process(make_config(tmp_path)) as srv:
        assert (directory / DEMO_PDX_NAME).read_bytes() == mine
        admin = srv.admin_token()
        listed = srv.http.get("/api/v1/descriptions", headers=auth(admin)).json()["items"]
        assert [d["name"] for d in listed] == [DEMO_PDX_NAME]
        # The demo vehicles stay bound to the demo's containers by name.
        vehicle = srv.vehicle(admin)
        assert vehicle["ecus"] == BOUND


def test_a_stored_file_that_provides_a_demo_ecu_wins(tmp_path: Path) -> None:
    directory = _descriptions(tmp_path)
    directory.mkdir(parents=True)
    (directory / "engine.pdx").write_bytes(pdx_of(USERS_ENGINE))
    with in_process(make_config(tmp_path)) as srv:
        admin = srv.admin_token()

        def settled() -> list[tuple[str, str]] | None:
            r = srv.http.get("/api/v1/descriptions", headers=auth(admin)).json()["items"]
            states = [(d["name"], d["state"]) for d in r]
            return None if any(s == "loading" for _, s in states) else states

        assert wait_until(settled, "the descriptions to load") == [("engine.pdx", "ready")]
        assert not (directory / DEMO_PDX_NAME).exists()  # not stored: no conflict made
        # The demo engine is bound to ENGINE: the user's now.
        vin = srv.vehicle(admin)["vin"]
        data = srv.http.get(
            f"/sovd/vehicles/{vin}/v1/components/engine/data", headers=auth(srv.token())
        ).json()["items"]
        assert [d["id"] for d in data] == ["Counter"]


def test_without_demo_data_nothing_is_stored(tmp_path: Path) -> None:
    with in_process(make_config(tmp_path, demo_data=False)) as srv:
        listed = srv.http.get("/api/v1/descriptions", headers=auth(srv.admin_token())).json()
        assert listed["items"] == []
        assert not (_descriptions(tmp_path) / DEMO_PDX_NAME).exists()
