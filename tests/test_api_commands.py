import uuid
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
from tests.support.schemas import fields

pytestmark = pytest.mark.fast

READ_DTC = {"ecuAddress": "0x10"}
INITIAL_DTCS = ("P0171", "P0420")  # the simulated engine ECU's at start


def test_submit_returns_201_with_location_and_the_stored_command(server: Server) -> None:
    token = server.token()
    vehicle = server.vehicle(token)
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": vehicle["vehicle_id"],
            "command_name": "ReadDTC",
            "command_params": READ_DTC,
        },
    )
    assert r.status_code == 201
    command = r.json()
    assert r.headers["location"] == f"/api/v1/commands/{command['command_id']}"
    assert set(command) == fields(server, "Command")
    assert "started_at" not in command  # internal: the record declares it so
    # Stored in one spelling: 0x10 is the ECU at 0x0010.
    assert command["status"] == "pending"
    assert command["command_params"] == {"ecuAddress": "0x0010"}
    # Committed before the 201: the row is in the file.
    assert server.query(
        "SELECT count(*) FROM commands WHERE command_id = ?", command["command_id"]
    ) == [(1,)]


@pytest.mark.parametrize(
    ("profile", "status", "error_code"),
    [
        ("healthy", "completed", None),
        ("timeout", "timeout", "not-responding"),
        ("unreachable", "failed", "vehicle-unreachable"),
        ("malformed", "failed", "invalid-response-content"),
    ],
)
def test_each_profile_ends_as_expected(
    server: Server, profile: str, status: str, error_code: str | None
) -> None:
    token = server.token()
    command = server.submit(token, server.vehicle(token, profile)["vehicle_id"])
    done = server.wait_status(token, command["command_id"])
    assert (done["status"], done["error_code"]) == (status, error_code)
    assert done["completed_at"] is not None
    chunks = server.http.get(
        f"/api/v1/commands/{command['command_id']}/responses", headers=auth(token)
    ).json()["items"]
    if status == "completed":
        assert [c["sequence_number"] for c in chunks] == [1, 2, 3]
        assert [c["is_final"] for c in chunks] == [False, False, True]
        assert chunks[-1]["response_payload"] == {
            "ecuAddress": "0x0010",
            "status": "complete",
            "totalDtcs": len(INITIAL_DTCS),
        }
        assert set(chunks[0]) == fields(server, "ResponseChunk")
    else:
        assert chunks == []  # garbage is never stored
        assert done["error_message"]


def test_flaky_profile_outcomes_follow_the_seed(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        sim_p_timeout=0.25,
        sim_p_unreachable=0.25,
        sim_p_malformed=0.25,
        command_timeout_s=0.05,
        sim_seed=5,
    )

    def outcomes() -> list[tuple[str, str | None]]:
        with in_process(config) as srv:
            token = srv.token()
            flaky = srv.vehicle(token, "flaky")["vehicle_id"]
            ids = [srv.submit(token, flaky)["command_id"] for _ in range(12)]
            return [
                (c["status"], c["error_code"]) for c in (srv.wait_status(token, i) for i in ids)
            ]

    first = outcomes()
    assert len(set(first)) >= 3, first  # several outcomes drawn, not one
    config.db_path.unlink()
    assert outcomes() == first  # same seed, same draws


def test_clear_dtc_then_read_dtc_reports_what_is_left(server: Server) -> None:
    token = server.token()
    vehicle_id = server.vehicle(token)["vehicle_id"]
    clear = server.submit(token, vehicle_id, "ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"})
    read = server.submit(token, vehicle_id, "ReadDTC", READ_DTC)
    assert server.wait_status(token, clear["command_id"])["status"] == "completed"
    assert server.wait_status(token, read["command_id"])["status"] == "completed"
    chunks = server.http.get(
        f"/api/v1/commands/{read['command_id']}/responses", headers=auth(token)
    ).json()["items"]
    codes = [c["response_payload"].get("dtcCode") for c in chunks[:-1]]
    assert codes == [code for code in INITIAL_DTCS if code != "P0420"]
    assert chunks[-1]["response_payload"]["totalDtcs"] == len(INITIAL_DTCS) - 1


def test_read_data_by_id_and_a_negative_response(server: Server) -> None:
    token = server.token()
    vehicle_id = server.vehicle(token)["vehicle_id"]
    rpm = server.submit(
        token, vehicle_id, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}
    )
    bad = server.submit(
        token, vehicle_id, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xBEEF"}
    )
    assert server.wait_status(token, rpm["command_id"])["status"] == "completed"
    chunks = server.http.get(
        f"/api/v1/commands/{rpm['command_id']}/responses", headers=auth(token)
    ).json()["items"]
    assert len(chunks) == 1  # one chunk, as from a DoIP vehicle
    assert chunks[0]["response_payload"]["name"] == "engineRpm" and chunks[0]["is_final"]
    failed = server.wait_status(token, bad["command_id"])
    assert (failed["status"], failed["error_code"]) == ("failed", "request-out-of-range")
    assert "0x31" in failed["error_message"]


def test_last_seen_is_set_when_the_vehicle_answers(server: Server) -> None:
    token = server.token()
    vehicle = server.vehicle(token)
    assert vehicle["last_seen_at"] is None
    server.wait_status(token, server.submit(token, vehicle["vehicle_id"])["command_id"])
    assert server.vehicle(token)["last_seen_at"] is not None


def test_unknown_and_disconnected_vehicles(server: Server) -> None:
    token = server.token()
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": str(uuid.uuid4()),
            "command_name": "ReadDTC",
            "command_params": READ_DTC,
        },
    )
    assert r.status_code == 404 and r.json()["error_code"] == "not-found"
    offline = server.vehicle(token, status="disconnected")
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": offline["vehicle_id"],
            "command_name": "ReadDTC",
            "command_params": READ_DTC,
        },
    )
    assert r.status_code == 409 and r.json()["error_code"] == "vehicle-disconnected"
    assert server.query("SELECT count(*) FROM commands") == [(0,)]


@pytest.mark.parametrize(
    ("name", "params", "named"),
    [
        ("FlashECU", READ_DTC, "FlashECU"),
        ("ReadDTC", {}, "ecuAddress"),
        ("ReadDTC", {"ecuAddress": "0xZZ"}, "ecuAddress"),
        ("ReadDTC", {"ecuAddress": "0x10", "extra": "1"}, "extra"),
        ("ReadDataByID", {"ecuAddress": "0x10"}, "dataId"),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P04"}, "dtcCode"),
    ],
)
def test_invalid_commands_are_400_naming_the_problem(
    shared_server: Server, name: str, params: dict[str, str], named: str
) -> None:
    token = shared_server.token()
    r = shared_server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": shared_server.vehicle(token)["vehicle_id"],
            "command_name": name,
            "command_params": params,
        },
    )
    assert r.status_code == 400 and r.json()["error_code"] == "incomplete-request"
    assert named in r.json()["message"]
    assert shared_server.query("SELECT count(*) FROM commands") == [(0,)]


def test_commands_to_one_vehicle_run_one_at_a_time_in_order(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    with in_process(make_config(tmp_path, command_timeout_s=10), connector=fake) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        other_id = srv.vehicle(token, "flaky")["vehicle_id"]
        first, second = (srv.submit(token, vehicle_id)["command_id"] for _ in range(2))
        other = srv.submit(token, other_id)["command_id"]
        wait_until(lambda: set(fake.started) == {first, other}, "first and other to start")
        assert srv.command(token, second)["status"] == "pending"  # waits for the first
        fake.feed(first, {"n": 1}, final=True)
        srv.wait_status(token, first)
        wait_until(lambda: second in fake.started, "second to start")
        assert fake.started.index(first) < fake.started.index(second)
        fake.feed(second, {"n": 2}, final=True)
        fake.feed(other, {"n": 3}, final=True)
        assert srv.wait_status(token, second)["status"] == "completed"
        assert srv.wait_status(token, other)["status"] == "completed"


def test_a_full_vehicle_queue_is_503_and_stores_nothing(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=10, vehicle_queue_size=2)
    with in_process(config, connector=fake) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        accepted = [srv.submit(token, vehicle_id)["command_id"] for _ in range(2)]
        r = srv.http.post(
            "/api/v1/commands",
            headers=auth(token),
            json={"vehicle_id": vehicle_id, "command_name": "ReadDTC", "command_params": READ_DTC},
        )
        assert r.status_code == 503 and r.json()["error_code"] == "overloaded"
        assert int(r.headers["retry-after"]) >= 1
        assert srv.query("SELECT count(*) FROM commands") == [(2,)]
        wait_until(lambda: accepted[0] in fake.started, "first to start")
        fake.feed(accepted[0], {"n": 1}, final=True)
        srv.wait_status(token, accepted[0])
        third = srv.submit(token, vehicle_id)["command_id"]  # room again
        # Answer the rest, so the shutdown finds nothing in flight (it would wait its grace).
        for command_id in (accepted[1], third):
            wait_until(lambda c=command_id: c in fake.started, f"{command_id} to start")
            fake.feed(command_id, {"n": 1}, final=True)
            srv.wait_status(token, command_id)


def test_history_filters_and_order(server: Server) -> None:
    token = server.token()
    healthy = server.vehicle(token)["vehicle_id"]
    unreachable = server.vehicle(token, "unreachable")["vehicle_id"]
    ids = [server.submit(token, v)["command_id"] for v in (healthy, unreachable, healthy)]
    for i in ids:
        server.wait_status(token, i)

    def page(**params: object) -> dict:  # type: ignore[type-arg]
        r = server.http.get("/api/v1/commands", headers=auth(token), params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    everything = page()
    assert [c["command_id"] for c in everything["items"]] == ids[::-1]  # newest first
    assert (everything["total"], everything["limit"], everything["offset"]) == (3, 50, 0)
    assert page(vehicle_id=healthy)["total"] == 2
    assert [c["command_id"] for c in page(status="failed")["items"]] == [ids[1]]
    first_at = everything["items"][-1]["submitted_at"]
    assert page(since=first_at)["total"] == 3
    assert page(until=first_at)["total"] == 0
    assert page(since="2000-01-01T00:00:00Z", until="2100-01-01T00:00:00+02:00")["total"] == 3
    assert [c["command_id"] for c in page(limit=1, offset=1)["items"]] == [ids[1]]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "running"},
        {"since": "yesterday"},
        {"since": "2026-01-01T00:00:00"},  # no zone
        {"until": "2026-13-01T00:00:00Z"},
        {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        {"vehicle_id": "abc"},
        {"limit": "500"},
        {"offset": "-3"},
    ],
)
def test_bad_history_queries_are_400(shared_server: Server, params: dict[str, str]) -> None:
    r = shared_server.http.get(
        "/api/v1/commands", headers=auth(shared_server.token()), params=params
    )
    assert r.status_code == 400, params
    assert r.json()["error_code"] == "incomplete-request"


def test_engineers_see_only_their_own_commands_admins_see_all(server: Server) -> None:
    alice = server.token()
    bob = server.create_engineer("bob")
    admin = server.admin_token()
    vehicle_id = server.vehicle(alice)["vehicle_id"]
    mine = server.submit(alice, vehicle_id)
    theirs = server.submit(bob, vehicle_id)
    for cid in (mine["command_id"], theirs["command_id"]):
        server.wait_status(admin, cid)
    hidden = theirs["command_id"]
    for path in (f"/api/v1/commands/{hidden}", f"/api/v1/commands/{hidden}/responses"):
        r = server.http.get(path, headers=auth(alice))
        assert r.status_code == 404 and r.json()["error_code"] == "not-found"
    listed = server.http.get("/api/v1/commands", headers=auth(alice)).json()
    assert [c["command_id"] for c in listed["items"]] == [mine["command_id"]]
    assert (
        server.http.get(
            "/api/v1/commands", headers=auth(alice), params={"user_id": theirs["user_id"]}
        ).json()["total"]
        == 0
    )
    everything = server.http.get("/api/v1/commands", headers=auth(admin)).json()
    assert everything["total"] == 2
    bobs = server.http.get(
        "/api/v1/commands", headers=auth(admin), params={"user_id": theirs["user_id"]}
    ).json()
    assert [c["command_id"] for c in bobs["items"]] == [hidden]
    assert server.http.get(f"/api/v1/commands/{hidden}", headers=auth(admin)).status_code == 200


def test_catalogue(server: Server) -> None:
    r = server.http.get("/api/v1/catalogue", headers=auth(server.token()))
    assert r.status_code == 200
    items = {i["command_name"]: i for i in r.json()["items"]}
    assert set(items) == {
        "ReadDTC",
        "ClearDTC",
        "ReadDataByID",
        "DiagnosticSessionControl",
        "RoutineControl",
        "DiagService",
    }
    assert items["ReadDataByID"]["params_schema"]["properties"]["dataId"]["pattern"] == (
        "^0x[0-9A-Fa-f]{4}$"
    )
    assert server.http.get("/api/v1/catalogue").status_code == 401
