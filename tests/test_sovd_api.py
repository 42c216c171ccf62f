"""The SOVD tree driven as a SOVD client drives it: list, get, act, read back.

The app runs in process on a real SQLite file, with the per-ECU simulator seeded and at
latency 0. Every call that reaches the vehicle is a command: the tests follow the
``X-Command-ID`` into ``/api/v1/commands``, the audit log and ``/metrics``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.api.contract import schema_of
from app.api.routes import ENDPOINTS
from app.api.sovd import types
from app.builders import simulator_for
from app.errors import Conflict
from app.services.sovd.entities import Target, components
from app.services.sovd.operations import operation
from app.vehicles.simulator import SimulatedConnector
from tests.support.fake_clock import FakeClock
from tests.support.harness import Server, auth, in_process, make_config, wait_until
from tests.support.schemas import dtc_status
from tests.support.scrape import scrape, total
from tests.support.sovd_paths import READS, fill

pytestmark = pytest.mark.fast

GENERIC_ERROR_FIELDS = {"error_code", "message", "vendor_code", "translation_id", "parameters"}


@pytest.fixture
def sovd(tmp_path: Path) -> Iterator[Server]:
    # Self-tests finish well within the command deadline.
    with in_process(make_config(tmp_path, command_timeout_s=2.0, sim_self_test_s=0.3)) as srv:
        yield srv


class Client:
    """A SOVD client for one user on one vehicle."""

    def __init__(self, server: Server, token: str, vin: str) -> None:
        self.server, self.token, self.vin = server, token, vin
        self.root = f"/sovd/vehicles/{vin}/v1"

    def url(self, path: str) -> str:
        return f"{self.root}{path}"

    def get(self, path: str, status: int = 200, **params: str) -> Any:
        r = self.server.http.get(self.url(path), headers=auth(self.token), params=params)
        assert r.status_code == status, r.text
        return r

    def send(self, method: str, path: str, status: int, body: Any = None) -> Any:
        r = self.server.http.request(method, self.url(path), headers=auth(self.token), json=body)
        assert r.status_code == status, r.text
        return r

    def faults(self, component: str, **params: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(f"/components/{component}/faults", **params).json()[
            "items"
        ]
        return items

    def codes(self, component: str) -> list[str]:
        return [f["display_code"] for f in self.faults(component)]


def engineer(server: Server, token: str | None = None) -> Client:
    token = token or server.token()
    return Client(server, token, server.vehicle(token)["vin"])


@contextmanager
def long_self_tests(
    tmp_path: Path, **overrides: Any
) -> Iterator[tuple[Server, SimulatedConnector, Client]]:
    """The app with self-tests that outlast the test (30 s), its simulator (to look at
    the emulated ECUs) and an engineer's client."""
    config = make_config(tmp_path, command_timeout_s=30.0, sim_self_test_s=30.0, **overrides)
    simulator = simulator_for(config)
    with in_process(config, connector=simulator) as srv:
        yield srv, simulator, engineer(srv)


def generic_error(r: Any, status: int, code: str) -> dict[str, Any]:
    """The body is SOVD's GenericError exactly, with this code."""
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    assert set(body) <= GENERIC_ERROR_FIELDS and {"error_code", "message"} <= set(body)
    assert body["error_code"] == code, body
    assert r.headers["x-request-id"]
    return body


# -- discovery ---------------------------------------------------------------------------


def test_version_info_and_root_answer_with_absolute_links(sovd: Server) -> None:
    token = sovd.token()
    vin = sovd.vehicle(token)["vin"]
    r = sovd.http.get(
        f"/sovd/vehicles/{vin.lower()}/version-info",
        headers={**auth(token), "Host": "sovd.lab.example:8443"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["sovd_info"] == [
        {
            "version": "1.1",
            # The server's own address, not the Host header (tests/test_sovd_links.py).
            "base_uri": f"http://in-process.invalid/sovd/vehicles/{vin}/v1",
            "vendor_info": {
                "name": "sovd-command-service",
                "version": r.json()["sovd_info"][0]["vendor_info"]["version"],
            },
        }
    ]
    client = Client(sovd, token, vin)
    root = client.get("").json()
    base = f"http://in-process.invalid/sovd/vehicles/{vin}/v1"
    assert {k: root[k] for k in ("components", "apps", "areas", "functions", "locks")} == {
        k: f"{base}/{k}" for k in ("components", "apps", "areas", "functions", "locks")
    }
    for empty in ("apps", "areas", "functions"):
        assert client.get(f"/{empty}").json() == {"items": []}
    # The vehicle_id names the same server.
    by_id = sovd.http.get(
        f"/sovd/vehicles/{sovd.vehicle(token)['vehicle_id']}/v1", headers=auth(token)
    )
    assert by_id.json() == root


def test_components_are_the_vehicles_ecus_with_only_the_capabilities_they_have(
    sovd: Server,
) -> None:
    client = engineer(sovd)
    items = client.get("/components").json()["items"]
    assert [(i["id"], i["name"]) for i in items] == [
        ("engine", "engine"),
        ("transmission", "transmission"),
        ("abs", "abs"),
        ("body", "body"),
    ]
    for item in items:
        assert item["href"] == f"http://in-process.invalid{client.root}/components/{item['id']}"
        assert sovd.http.get(item["href"], headers=auth(client.token)).status_code == 200
    engine = client.get("/components/engine").json()
    assert engine["x-ecu-address"] == "0x0010"
    for capability in ("data", "faults", "operations", "modes", "locks", "data-categories"):
        assert engine[capability].endswith(f"/components/engine/{capability}")
    transmission = client.get("/components/transmission").json()
    assert "operations" in transmission  # every default ECU has the self-test
    assert client.get("/components/engine/hosts").json() == {"items": []}
    assert client.get("/components/engine/belongs-to").json() == {"items": []}


def test_an_unknown_vehicle_or_component_is_a_vendor_specific_404(sovd: Server) -> None:
    client = engineer(sovd)
    r = sovd.http.get(f"{client.root}/components/gateway", headers=auth(client.token))
    body = generic_error(r, 404, "vendor-specific")
    assert body["vendor_code"] == "not-found" and "gateway" in body["message"]
    r = sovd.http.get("/sovd/vehicles/WAUZZZ0000000000X/v1", headers=auth(client.token))
    assert generic_error(r, 404, "vendor-specific")["vendor_code"] == "not-found"
    r = sovd.http.get(f"{client.root}/nothing-here", headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")
    r = sovd.http.get(f"{client.root}/components")
    assert generic_error(r, 401, "vendor-specific")["vendor_code"] == "unauthorized"


def test_include_schema_adds_the_openapi_schema_of_the_same_type(sovd: Server) -> None:
    client = engineer(sovd)
    plain = client.get("/components").json()
    assert "schema" not in plain
    with_schema = client.get("/components", **{"include-schema": "true"}).json()
    assert with_schema["schema"] == schema_of(types.Entities)
    assert with_schema["items"] == plain["items"]
    assert "schema" not in client.get("/components", **{"include-schema": "0"}).json()
    # The OpenAPI document describes the response with the same type.
    document = sovd.http.get("/openapi.json").json()
    ref = document["paths"]["/sovd/vehicles/{vin}/v1/components"]["get"]["responses"]["200"]
    name = ref["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert name == "Entities"
    assert set(document["components"]["schemas"][name]["properties"]) == set(
        with_schema["schema"]["$defs"]["Entities"]["properties"]
    )
    r = sovd.http.get(
        client.url("/components"), headers=auth(client.token), params={"include-schema": "maybe"}
    )
    assert "include-schema" in generic_error(r, 400, "incomplete-request")["message"]


# -- faults ------------------------------------------------------------------------------


def test_faults_per_ecu_with_iso_status_bits(sovd: Server) -> None:
    client = engineer(sovd)
    engine = client.faults("engine")
    assert [(f["code"], f["display_code"]) for f in engine] == [
        ("017100", "P0171"),
        ("042000", "P0420"),
    ]
    p0171, p0420 = engine
    # The status object's keys are CDA's spelling of the ISO 14229-1 bits.
    assert p0171["status"] == dtc_status(0x2F)
    assert p0420["status"]["confirmed_dtc"] is False and p0420["status"]["pending_dtc"] is True
    assert p0420["status"]["mask"] == "27"
    assert p0171["fault_name"] == "System too lean (bank 1)"
    assert all(1 <= f["severity"] <= 4 for f in engine)
    assert client.codes("transmission") == ["P0700"]
    assert client.codes("abs") == ["C0035"]
    (abs_fault,) = client.faults("abs")
    assert abs_fault["status"]["warning_indicator_requested"] is True
    (b1000,) = client.faults("body")
    assert b1000["status"]["confirmed_dtc"] is True and b1000["status"]["test_failed"] is False


def test_fault_filters_by_status_and_severity(sovd: Server) -> None:
    client = engineer(sovd)
    codes = lambda **q: [f["display_code"] for f in client.faults("engine", **q)]  # noqa: E731
    # CDA's names, the ISO names (the earlier spelling), each in any case.
    for name in ("confirmed_dtc", "CONFIRMED_DTC", "Confirmed_Dtc", "confirmedDTC"):
        assert codes(**{f"status[{name}]": "true"}) == ["P0171"], name
        assert codes(**{f"status[{name}]": "false"}) == ["P0420"], name
    assert codes(**{"STATUS[CONFIRMEDDTC]": "1"}) == ["P0171"]
    assert codes(**{"status[pendingdtc]": "0"}) == []
    assert codes(**{"status[Test_Not_Completed_Since_Last_Clear]": "1"}) == []
    # Several keys are OR'd, whichever spelling each has.
    assert codes(**{"status[confirmedDTC]": "1", "status[pendingDTC]": "1"}) == ["P0171", "P0420"]
    assert codes(**{"status[confirmed_dtc]": "1", "status[PendingDTC]": "1"}) == [
        "P0171",
        "P0420",
    ]
    assert codes(**{"status[warning_indicator_requested]": "1"}) == []
    severities = {f["display_code"]: f["severity"] for f in client.faults("engine")}
    most = min(severities.values())
    assert codes(severity=str(most)) == [c for c, s in severities.items() if s <= most]
    for bad in (
        {"severity": "9"},
        {"status[bogus]": "1"},
        {"status[confirmedDTC]": "yes"},
        {"status[confirmed_dtc]": "yes"},
        {"status[confirmed-dtc]": "1"},
    ):
        r = sovd.http.get(
            client.url("/components/engine/faults"), headers=auth(client.token), params=bad
        )
        generic_error(r, 400, "incomplete-request")


def test_one_fault_and_a_code_it_does_not_have(sovd: Server) -> None:
    client = engineer(sovd)
    one = client.get("/components/engine/faults/017100").json()
    assert one["item"]["display_code"] == "P0171"
    assert client.get("/components/engine/faults/P0420").json()["item"]["code"] == "042000"
    r = sovd.http.get(client.url("/components/engine/faults/070000"), headers=auth(client.token))
    assert generic_error(r, 404, "vendor-specific")["vendor_code"] == "not-found"
    r = sovd.http.delete(client.url("/components/engine/faults/070000"), headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")
    assert client.codes("engine") == ["P0171", "P0420"]  # nothing was cleared


def test_clearing_one_ecu_leaves_the_others_and_a_self_test_brings_faults_back(
    sovd: Server,
) -> None:
    client = engineer(sovd)
    r = client.send("DELETE", "/components/engine/faults", 204)
    cleared = r.headers["x-command-id"]
    assert client.faults("engine") == []
    assert client.codes("transmission") == ["P0700"] and client.codes("abs") == ["C0035"]
    # Nothing comes back behind the user's back: only a self-test re-runs the tests.
    assert client.faults("engine") == []
    r = client.send("POST", "/components/engine/operations/selfTest/executions", 202, {})
    location = r.headers["location"]
    done = wait_until(
        lambda: (
            (e := sovd.http.get(location, headers=auth(client.token)).json())["status"] != "running"
            and e
        ),
        "the self-test to end",
    )
    assert done["status"] == "completed" and done["progress"] == 100
    assert client.codes("engine") == ["P0171", "P0420"]
    # One fault at a time.
    client.send("DELETE", "/components/engine/faults/P0420", 204)
    assert client.codes("engine") == ["P0171"]
    # The clear is a command like any other: in the history with its parameters.
    command = sovd.command(client.token, cleared)
    assert (command["command_name"], command["command_params"], command["status"]) == (
        "ClearDTC",
        {"ecuAddress": "0x0010"},
        "completed",
    )


def test_clearing_where_the_ecu_needs_another_session_names_it(sovd: Server) -> None:
    client = engineer(sovd)
    r = sovd.http.delete(client.url("/components/body/faults"), headers=auth(client.token))
    body = generic_error(r, 409, "precondition-not-fulfilled")
    assert "extended" in body["message"]
    assert body["parameters"]["service"] == 0x14 and body["parameters"]["nrc"] == 0x7F
    assert client.codes("body") == ["B1000"]
    assert client.send(
        "PUT", "/components/body/modes/session", 200, {"value": "extended"}
    ).json() == {
        "id": "session",
        "value": "extended",
    }
    assert client.get("/components/body/modes/session").json()["value"] == "extended"
    assert client.get("/components/engine/modes/session").json()["value"] == "default"
    client.send("DELETE", "/components/body/faults", 204)
    assert client.faults("body") == []


# -- data --------------------------------------------------------------------------------


def test_data_lists_identification_and_live_values_read_now(sovd: Server) -> None:
    client = engineer(sovd)
    items = {i["id"]: i for i in client.get("/components/engine/data").json()["items"]}
    assert {"vin", "softwareVersion", "serialNumber", "engineRpm"} <= set(items)
    assert items["vin"]["category"] == "identData"
    assert items["engineRpm"]["category"] == "currentData"
    vin = client.get("/components/engine/data/vin")
    assert vin.json() == {"id": "vin", "data": {"value": client.vin}}
    rpm = client.get("/components/engine/data/engineRpm").json()
    assert rpm["data"]["unit"] == "rpm" and 650 <= rpm["data"]["value"] <= 4500
    command = sovd.command(client.token, vin.headers["x-command-id"])
    assert command["command_name"] == "ReadDataByID"
    assert command["command_params"] == {"ecuAddress": "0x0010", "dataId": "0xF190"}
    categories = [
        c["item"] for c in client.get("/components/engine/data-categories").json()["items"]
    ]
    assert "identData" in categories and "currentData" in categories
    groups = client.get("/components/engine/data-groups").json()["items"]
    assert {g["category"] for g in groups} == set(categories)
    r = sovd.http.get(client.url("/components/body/data/engineRpm"), headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")


def test_a_vehicle_that_does_not_answer_is_not_responding(sovd: Server) -> None:
    token = sovd.token()
    client = Client(sovd, token, sovd.vehicle(token, "timeout")["vin"])
    r = sovd.http.get(client.url("/components/engine/data/vin"), headers=auth(token))
    generic_error(r, 504, "not-responding")
    command = sovd.command(token, r.headers["x-command-id"])
    assert (command["status"], command["error_code"]) == ("timeout", "not-responding")


# -- operations and executions -------------------------------------------------------------


def test_operations_and_the_session_they_need(sovd: Server) -> None:
    client = engineer(sovd)
    ops = {o["id"]: o for o in client.get("/components/abs/operations").json()["items"]}
    assert ops["selfTest"] == {
        "id": "selfTest",
        "name": ops["selfTest"]["name"],
        "proximity_proof_required": False,
        "asynchronous_execution": True,
    }
    assert ops["brakeBleedCheck"]["asynchronous_execution"] is False
    bleed = client.get("/components/abs/operations/brakeBleedCheck").json()
    assert bleed["modes"] == {"session": "EXTENDED"}
    assert "modes" not in client.get("/components/engine/operations/selfTest").json()
    r = sovd.http.post(
        client.url("/components/abs/operations/brakeBleedCheck/executions"),
        headers=auth(client.token),
        json={},
    )
    assert "extended" in generic_error(r, 409, "precondition-not-fulfilled")["message"]


def test_a_negative_response_is_error_response_with_service_and_nrc(sovd: Server) -> None:
    client = engineer(sovd)
    client.send("PUT", "/components/abs/modes/session", 200, {"value": "extended"})
    # The bleed check cannot run while the wheel speed sensor fault C0035 is stored.
    r = sovd.http.post(
        client.url("/components/abs/operations/brakeBleedCheck/executions"),
        headers=auth(client.token),
        json={},
    )
    body = generic_error(r, 502, "error-response")
    assert body["parameters"]["service"] == 0x31 and body["parameters"]["nrc"] == 0x26
    assert body["parameters"]["nrc_name"] == "failurePreventsExecutionOfRequestedAction"
    command = sovd.command(client.token, r.headers["x-command-id"])
    assert (command["status"], command["error_code"]) == ("failed", "error-response")
    # Cleared, it runs: synchronous, so 200 with the result.
    client.send("DELETE", "/components/abs/faults", 204)
    done = client.send(
        "POST", "/components/abs/operations/brakeBleedCheck/executions", 200, {}
    ).json()
    assert done["status"] == "completed" and done["capability"] == "execute"


def test_executions_are_listed_and_visible_to_their_user_and_admins_only(sovd: Server) -> None:
    client = engineer(sovd)
    r = client.send("POST", "/components/engine/operations/selfTest/executions", 202, {})
    execution_id = r.json()["id"]
    assert r.json()["status"] == "running"
    assert r.headers["location"].endswith(f"/operations/selfTest/executions/{execution_id}")
    listed = client.get("/components/engine/operations/selfTest/executions").json()["items"]
    assert [i["id"] for i in listed] == [execution_id]
    other = Client(sovd, sovd.create_engineer("other"), client.vin)
    assert other.get("/components/engine/operations/selfTest/executions").json()["items"] == []
    other.get(f"/components/engine/operations/selfTest/executions/{execution_id}", status=404)
    admin = Client(sovd, sovd.admin_token(), client.vin)
    admin.get(f"/components/engine/operations/selfTest/executions/{execution_id}")
    # Another operation's path does not reach it.
    client.get(f"/components/abs/operations/selfTest/executions/{execution_id}", status=404)
    r = sovd.http.post(
        client.url("/components/engine/operations/selfTest/executions"),
        headers=auth(client.token),
        json={"parameters": {"x": 1}},
    )
    generic_error(r, 400, "incomplete-request")


def test_commands_stored_with_one_byte_addresses_still_count(sovd: Server) -> None:
    # Rows from before two-byte addresses say 0x10 where today's say 0x0010: kept as
    # written, read as the same ECU (the history, an operation's executions).
    client = engineer(sovd)
    path = "/components/engine/operations/selfTest/executions"
    execution_id = client.send("POST", path, 202, {}).json()["id"]
    wait_until(
        lambda: client.get(f"{path}/{execution_id}").json()["status"] == "completed",
        "the self-test to end",
    )
    with sovd.db() as conn:
        conn.execute(
            "UPDATE commands SET command_params = json_set(command_params, '$.ecuAddress',"
            " '0x10') WHERE command_id = ?",
            (execution_id,),
        )
    assert sovd.query(
        "SELECT json_extract(command_params, '$.ecuAddress') FROM commands WHERE command_id = ?",
        execution_id,
    ) == [("0x10",)]
    assert [i["id"] for i in client.get(path).json()["items"]] == [execution_id]
    assert client.get(f"{path}/{execution_id}").json()["status"] == "completed"
    command = sovd.command(client.token, execution_id)
    assert command["command_params"]["ecuAddress"] == "0x0010"
    # Another ECU's executions are not the engine's (0x0018 is not 0x0010 nor 0x10).
    assert (
        client.get("/components/transmission/operations/selfTest/executions").json()["items"] == []
    )


def test_an_ecu_lock_is_the_same_whichever_spelling_its_commands_use(sovd: Server) -> None:
    client = engineer(sovd)
    vehicle_id = sovd.vehicle(client.token)["vehicle_id"]
    client.send("POST", "/components/engine/locks", 201, {"lock_expiration": 60})
    other = sovd.create_engineer("other")
    for spelling in ("0x10", "0x0010", "0X010"):
        r = sovd.http.post(
            "/api/v1/commands",
            headers=auth(other),
            json={
                "vehicle_id": vehicle_id,
                "command_name": "ClearDTC",
                "command_params": {"ecuAddress": spelling},
            },
        )
        assert r.status_code == 409, r.text
        assert "ECU 0x0010 of vehicle" in r.json()["message"]


def test_an_execution_stopped_mid_run_sends_stop_and_ends_stopped(tmp_path: Path) -> None:
    with long_self_tests(tmp_path) as (srv, simulator, client):
        path = "/components/engine/operations/selfTest/executions"
        execution_id = client.send("POST", path, 202, {}).json()["id"]
        # Running: a second start of the same operation is refused.
        r = srv.http.post(client.url(path), headers=auth(client.token), json={})
        generic_error(r, 409, "vendor-specific")
        client.send("DELETE", f"{path}/{execution_id}", 204)
        stopped = client.get(f"{path}/{execution_id}").json()
        assert stopped["status"] == "stopped"
        assert srv.command(client.token, execution_id)["status"] == "cancelled"
        # The ECU itself was told: its routine is stopped, not left running.
        vehicle_id = srv.vehicle(client.token)["vehicle_id"]
        assert simulator.ecu(vehicle_id, 0x10).routines[0x0201].state == "stopped"
        r = srv.http.delete(client.url(f"{path}/{execution_id}"), headers=auth(client.token))
        generic_error(r, 409, "vendor-specific")


# -- locks --------------------------------------------------------------------------------


def test_a_lock_keeps_other_engineers_out_until_released(sovd: Server) -> None:
    alice = engineer(sovd)
    bob = Client(sovd, sovd.create_engineer("bob"), alice.vin)
    r = alice.send("POST", "/components/engine/locks", 201, {"lock_expiration": 60})
    lock_id = r.json()["id"]
    assert r.headers["location"].endswith(f"/components/engine/locks/{lock_id}")
    assert alice.get("/components/engine/locks").json()["items"] == [{"id": lock_id, "owned": True}]
    assert bob.get("/components/engine/locks").json()["items"] == [{"id": lock_id, "owned": False}]
    expires = alice.get(f"/components/engine/locks/{lock_id}").json()["lock_expiration"]
    assert expires.endswith("Z") or "+" in expires
    # Bob may read, not change: SOVD calls and the same command on /api/v1/commands.
    assert bob.codes("engine") == ["P0171", "P0420"]
    r = sovd.http.delete(bob.url("/components/engine/faults"), headers=auth(bob.token))
    assert "engineer" in generic_error(r, 409, "precondition-not-fulfilled")["message"]
    vehicle_id = sovd.vehicle(bob.token)["vehicle_id"]
    r = sovd.http.post(
        "/api/v1/commands",
        headers=auth(bob.token),
        json={
            "vehicle_id": vehicle_id,
            "command_name": "ClearDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    assert r.status_code == 409 and r.json()["error_code"] == "precondition-not-fulfilled"
    # Another ECU is not locked; nor is a whole-vehicle lock possible for bob now.
    # Executions and session changes on the locked ECU are refused too; reads are not.
    for method, path, body in (
        ("POST", "/components/engine/operations/selfTest/executions", {}),
        ("PUT", "/components/engine/modes/session", {"value": "extended"}),
    ):
        r = sovd.http.request(method, bob.url(path), headers=auth(bob.token), json=body)
        assert "engineer" in generic_error(r, 409, "precondition-not-fulfilled")["message"]
    assert bob.get("/components/engine/modes/session").json()["value"] == "default"
    bob.send("DELETE", "/components/transmission/faults", 204)
    r = sovd.http.post(bob.url("/locks"), headers=auth(bob.token), json={"lock_expiration": 60})
    generic_error(r, 409, "precondition-not-fulfilled")
    # The holder works as usual, extends and releases; then bob may clear.
    alice.send("PUT", f"/components/engine/locks/{lock_id}", 204, {"lock_expiration": 120})
    alice.send("DELETE", "/components/engine/faults/P0420", 204)
    alice.send("DELETE", f"/components/engine/locks/{lock_id}", 204)
    bob.send("DELETE", "/components/engine/faults", 204)
    assert alice.faults("engine") == []


def test_an_admin_breaks_a_lock_and_the_holder_is_told_once(sovd: Server) -> None:
    alice = engineer(sovd)
    lock_id = alice.send("POST", "/locks", 201, {"lock_expiration": 60}).json()["id"]
    admin = Client(sovd, sovd.admin_token(), alice.vin)
    admin.send("DELETE", f"/locks/{lock_id}", 204)
    r = sovd.http.delete(alice.url("/components/engine/faults"), headers=auth(alice.token))
    generic_error(r, 409, "lock-broken")
    alice.send("DELETE", "/components/engine/faults", 204)  # told once, then as usual


# -- the same pipeline -------------------------------------------------------------------


def test_sovd_calls_are_commands_with_audit_and_metrics(sovd: Server) -> None:
    client = engineer(sovd)
    before = scrape(sovd.http)
    read = client.get("/components/transmission/faults").headers["x-command-id"]
    clear = client.send("DELETE", "/components/transmission/faults", 204).headers["x-command-id"]
    session = client.send(
        "PUT", "/components/engine/modes/session", 200, {"value": "extended"}
    ).headers["x-command-id"]
    run = client.send("POST", "/components/engine/operations/selfTest/executions", 202).json()
    stopped = client.send("POST", "/components/transmission/operations/selfTest/executions", 202)
    client.send("DELETE", stopped.headers["location"].split("/v1", 1)[1], 204)
    sovd.wait_status(client.token, run["id"])
    after = scrape(sovd.http)

    def added(**labels: str) -> float:
        return total(after, "commands_executed_total", **labels) - total(
            before, "commands_executed_total", **labels
        )

    assert (added(status="completed"), added(status="cancelled")) == (4, 1)
    # Each SOVD call under its command's name (the `command` label).
    assert added(command="ReadDTC", status="completed") == 1
    assert added(command="ClearDTC", status="completed") == 1
    assert added(command="DiagnosticSessionControl", status="completed") == 1
    assert added(command="RoutineControl", status="completed") == 1
    assert added(command="RoutineControl", status="cancelled") == 1
    ids = {read, clear, session, run["id"], stopped.json()["id"]}
    listed = sovd.http.get(
        "/api/v1/commands", headers=auth(client.token), params={"limit": 10}
    ).json()["items"]
    by_id = {c["command_id"]: c for c in listed}
    assert ids <= set(by_id)
    assert by_id[run["id"]]["command_params"] == {
        "ecuAddress": "0x0010",
        "routineId": "0x0201",
        "action": "run",
    }
    assert by_id[stopped.json()["id"]]["status"] == "cancelled"
    chunks = sovd.http.get(f"/api/v1/commands/{read}/responses", headers=auth(client.token)).json()[
        "items"
    ]
    assert [c["response_payload"].get("dtcCode") for c in chunks] == ["P0700", None]
    progress = sovd.http.get(
        f"/api/v1/commands/{run['id']}/responses", headers=auth(client.token)
    ).json()["items"]
    assert progress[-1]["response_payload"]["status"] == "completed"
    audit = sovd.http.get("/api/v1/audit", headers=auth(sovd.admin_token()), params={"limit": 200})
    assert audit.status_code == 200, audit.text
    for command_id in ids - {stopped.json()["id"]}:
        actions = {e["action"] for e in audit.json()["items"] if e["entity_id"] == command_id}
        assert {"command.submit", "command.start", "command.finish"} <= actions, command_id
    actions = {e["action"] for e in audit.json()["items"] if e["entity_id"] == stopped.json()["id"]}
    assert "command.cancel" in actions


def test_the_openapi_document_holds_the_sovd_tree_with_generic_errors(sovd: Server) -> None:
    document = sovd.http.get("/openapi.json").json()
    faults = document["paths"]["/sovd/vehicles/{vin}/v1/components/{component}/faults"]
    assert set(faults) == {"get", "delete"}
    error = faults["get"]["responses"]["502"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/GenericError"}
    generic = document["components"]["schemas"]["GenericError"]
    assert set(generic["properties"]) == GENERIC_ERROR_FIELDS
    names = {p["name"] for p in faults["get"]["parameters"]}
    assert {"include-schema", "severity", "status[confirmed_dtc]", "status[confirmedDTC]"} <= names
    decoded = msgspec.json.decode(msgspec.json.encode(generic))
    assert decoded["required"] == ["error_code", "message"]


def test_a_forged_host_header_is_not_echoed_into_links(sovd: Server) -> None:
    client = engineer(sovd)
    for forged in ('evil.example"><script>', "a b", "x" * 300):
        r = sovd.http.get(client.url("/components"), headers={**auth(client.token), "Host": forged})
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            assert item["href"].startswith("http://") and forged not in item["href"]


def test_two_starts_of_one_operation_at_once_run_it_once(sovd: Server) -> None:
    client = engineer(sovd)
    vehicle_id = sovd.vehicle(client.token)["vehicle_id"]
    who = sovd.run(sovd.services.auth.authenticate(client.token))
    services = sovd.services

    async def both() -> list[Any]:
        vehicle = await services.vehicles.get(vehicle_id)
        (ecu,) = [c for c in components(vehicle) if c.name == "engine"]
        at = Target(who, None, vehicle, ecu)
        op = operation(ecu, "selfTest")
        start = services.sovd.operations.start
        return await asyncio.gather(
            start(at, op, None), start(at, op, None), return_exceptions=True
        )

    outcomes = sovd.run(both())
    started = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(started) == 1 and len(refused) == 1, outcomes


def test_a_session_with_mode_expiration_goes_back_to_default(sovd: Server) -> None:
    client = engineer(sovd)
    r = client.send(
        "PUT", "/components/abs/modes/session", 200, {"value": "extended", "mode_expiration": 1}
    )
    assert r.json() == {"id": "session", "value": "extended"}
    assert client.get("/components/abs/modes/session").json()["value"] == "extended"
    wait_until(
        lambda: client.get("/components/abs/modes/session").json()["value"] == "default",
        "the session to expire",
    )
    # The switch back is a command of the same user, in their history.
    names = [
        (c["command_name"], c["command_params"].get("session"))
        for c in sovd.http.get(
            "/api/v1/commands", headers=auth(client.token), params={"limit": 20}
        ).json()["items"]
    ]
    assert ("DiagnosticSessionControl", "default") in names
    r = sovd.http.put(
        client.url("/components/abs/modes/session"),
        headers=auth(client.token),
        json={"value": "turbo"},
    )
    assert "turbo" in generic_error(r, 400, "incomplete-request")["message"]
    r = sovd.http.put(
        client.url("/components/abs/modes/security"),
        headers=auth(client.token),
        json={"value": "unlocked"},
    )
    generic_error(r, 405, "vendor-specific")
    assert client.get("/components/abs/modes/security").json()["value"] == "locked"


def test_a_failed_execution_shows_its_error_as_a_data_error(sovd: Server) -> None:
    client = engineer(sovd)
    # The body's self-test needs the extended session: refused at start, 409 naming it.
    r = sovd.http.post(
        client.url("/components/body/operations/selfTest/executions"), headers=auth(client.token)
    )  # no body at all: every field is optional
    refused = generic_error(r, 409, "precondition-not-fulfilled")
    failed = client.get(
        f"/components/body/operations/selfTest/executions/{r.headers['x-command-id']}"
    ).json()
    assert failed["status"] == "failed"
    # The execution tells the same error its start was answered with.
    assert failed["error"] == [{"path": "", "error": refused}]
    assert refused["parameters"]["nrc"] == 0x7F and refused["parameters"]["service"] == 0x31


def test_a_call_that_waits_too_long_for_its_turn_is_not_sent(tmp_path: Path) -> None:
    # A self-test holds the vehicle's lane longer than a call waits for its turn.
    with long_self_tests(tmp_path, call_queue_wait_s=0.3) as (srv, simulator, client):
        client.send("POST", "/components/engine/operations/selfTest/executions", 202, {})
        r = srv.http.delete(client.url("/components/abs/faults"), headers=auth(client.token))
        body = generic_error(r, 503, "vendor-specific")
        assert body["vendor_code"] == "overloaded" and "not sent" in body["message"]
        assert int(r.headers["retry-after"]) >= 1
        command = srv.command(client.token, r.headers["x-command-id"])
        assert command["status"] == "cancelled"
        assert command["command_name"] == "ClearDTC"
        # Nothing of it reached the vehicle: no answer, and the abs ECU keeps its fault.
        answer = srv.http.get(
            f"/api/v1/commands/{r.headers['x-command-id']}/responses", headers=auth(client.token)
        ).json()["items"]
        assert answer == []
        vehicle_id = srv.vehicle(client.token)["vehicle_id"]
        assert simulator.stored_dtcs(vehicle_id, 0x28) == ("C0035",)


def test_a_disabled_users_locks_are_released(sovd: Server) -> None:
    alice = engineer(sovd, sovd.create_engineer("alice"))
    bob = Client(sovd, sovd.create_engineer("bob"), alice.vin)
    alice.send("POST", "/locks", 201, {"lock_expiration": 600})
    r = sovd.http.delete(bob.url("/components/engine/faults"), headers=auth(bob.token))
    assert "alice" in generic_error(r, 409, "precondition-not-fulfilled")["message"]
    admin = sovd.admin_token()
    users = sovd.http.get("/api/v1/users", headers=auth(admin)).json()["items"]
    (alice_user,) = [u for u in users if u["username"] == "alice"]
    r = sovd.http.patch(
        f"/api/v1/users/{alice_user['user_id']}", headers=auth(admin), json={"disabled": True}
    )
    assert r.status_code == 200, r.text
    bob.send("DELETE", "/components/engine/faults", 204)
    assert bob.get("/locks").json()["items"] == []


# -- every GET of the tree, and the vehicle's own locks ---------------------------------------


def test_every_get_of_the_tree_adds_the_schema_of_its_declared_type(sovd: Server) -> None:
    client = engineer(sovd)
    lock = client.send("POST", "/locks", 201, {"lock_expiration": 60}).json()["id"]
    ecu_lock = client.send("POST", "/components/engine/locks", 201, {"lock_expiration": 60})
    ecu_lock_id = ecu_lock.json()["id"]
    execution = client.send(
        "POST", "/components/engine/operations/selfTest/executions", 202, {}
    ).json()["id"]
    gets = [e for e in ENDPOINTS if e.path.startswith("/sovd/") and e.method == "GET"]
    assert {e.path.removeprefix("/sovd/vehicles/{vin}") for e in gets} == set(READS)
    for e in gets:
        example = READS[e.path.removeprefix("/sovd/vehicles/{vin}")]
        path = fill(example, lock=lock, ecu_lock=ecu_lock_id, execution=execution)
        url = f"/sovd/vehicles/{client.vin}{path}"
        r = sovd.http.get(url, headers=auth(client.token), params={"include-schema": "true"})
        assert r.status_code == 200, (url, r.text)
        if e.path.endswith("/{data_id}"):  # a data item's describes its data (schemas.py)
            assert r.json()["schema"]["properties"]["value"]["type"] == "number", url
        else:
            assert r.json()["schema"] == schema_of(e.responses[200]), url
        assert r.json()["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        plain = sovd.http.get(url, headers=auth(client.token))
        assert "schema" not in plain.json(), url


def test_modes_are_listed_and_security_is_shown_as_state(sovd: Server) -> None:
    client = engineer(sovd)
    modes = client.get("/components/engine/modes").json()["items"]
    assert [m["id"] for m in modes] == ["session", "security"]
    assert all(m["name"] for m in modes)
    security = client.get("/components/engine/modes/security")
    assert security.json()["value"] == "locked" and "x-command-id" not in security.headers


def test_a_vehicle_lock_is_listed_read_extended_released_and_expires(tmp_path: Path) -> None:
    clock = FakeClock()
    with in_process(make_config(tmp_path, command_timeout_s=2.0), clock=clock) as srv:
        alice = engineer(srv)
        bob = Client(srv, srv.create_engineer("bob"), alice.vin)
        lock_id = alice.send("POST", "/locks", 201, {"lock_expiration": 30}).json()["id"]
        assert alice.get("/locks").json()["items"] == [{"id": lock_id, "owned": True}]
        # A vehicle lock is not listed among a component's locks, and covers them all.
        assert alice.get("/components/abs/locks").json()["items"] == []
        first = alice.get(f"/locks/{lock_id}").json()["lock_expiration"]
        r = srv.http.delete(bob.url("/components/abs/faults"), headers=auth(bob.token))
        generic_error(r, 409, "precondition-not-fulfilled")
        r = srv.http.put(
            bob.url(f"/locks/{lock_id}"), headers=auth(bob.token), json={"lock_expiration": 60}
        )
        generic_error(r, 403, "insufficient-access-rights")
        alice.send("PUT", f"/locks/{lock_id}", 204, {"lock_expiration": 60})
        assert alice.get(f"/locks/{lock_id}").json()["lock_expiration"] > first
        clock.advance(61)  # past its end: the lock is gone for everyone
        assert bob.get("/locks").json()["items"] == []
        alice.get(f"/locks/{lock_id}", status=404)
        bob.send("DELETE", "/components/abs/faults", 204)
        # Released by its owner before its end: gone at once.
        lock_id = bob.send("POST", "/locks", 201, {"lock_expiration": 30}).json()["id"]
        bob.send("DELETE", f"/locks/{lock_id}", 204)
        alice.send("DELETE", "/components/engine/faults", 204)
        r = srv.http.post(
            alice.url("/locks"), headers=auth(alice.token), json={"lock_expiration": 3601}
        )
        generic_error(r, 400, "incomplete-request")


def test_an_execution_timeout_ends_it_sooner_and_stops_it_on_the_ecu(tmp_path: Path) -> None:
    with long_self_tests(tmp_path) as (srv, simulator, client):
        path = "/components/engine/operations/selfTest/executions"
        execution_id = client.send("POST", path, 202, {"timeout": 1}).json()["id"]
        ended = wait_until(
            lambda: (e := client.get(f"{path}/{execution_id}").json())["status"] != "running" and e,
            "the execution to reach its timeout",
        )
        assert ended["status"] == "failed"
        (error,) = ended["error"]
        assert error["error"]["error_code"] == "not-responding"
        command = srv.command(client.token, execution_id)
        assert (command["status"], command["error_message"]) == (
            "timeout",
            "vehicle did not answer within 1 s",
        )
        vehicle_id = srv.vehicle(client.token)["vehicle_id"]
        assert simulator.ecu(vehicle_id, 0x10).routines[0x0201].state == "stopped"


def test_head_never_runs_a_command(sovd: Server) -> None:
    client = engineer(sovd)
    r = sovd.http.head(client.url("/components/engine/faults"), headers=auth(client.token))
    assert r.status_code == 405 and "x-command-id" not in r.headers
    listed = sovd.http.get("/api/v1/commands", headers=auth(client.token)).json()
    assert listed["total"] == 0
    assert sovd.http.head("/health/live").status_code == 200  # anonymous ones keep HEAD


def test_links_use_the_scheme_a_trusted_proxy_forwards(tmp_path: Path) -> None:
    proxied = make_config(tmp_path, trusted_proxies=(ip_network("127.0.0.1/32"),))
    with in_process(proxied) as srv:
        client = engineer(srv)
        r = srv.http.get(
            client.url("/components"),
            headers={**auth(client.token), "X-Forwarded-Proto": "https"},
        )
        assert r.json()["items"][0]["href"].startswith("https://")
    with in_process(make_config(tmp_path / "direct")) as srv:
        client = engineer(srv)
        r = srv.http.get(
            client.url("/components"),
            headers={**auth(client.token), "X-Forwarded-Proto": "https"},
        )
        assert r.json()["items"][0]["href"].startswith("http://")  # not from a proxy


def test_a_session_changed_elsewhere_is_not_reverted_by_an_old_expiry(sovd: Server) -> None:
    client = engineer(sovd)
    client.send(
        "PUT", "/components/abs/modes/session", 200, {"value": "extended", "mode_expiration": 1}
    )
    # The same switch again, through /api/v1/commands: the newer change owns the session.
    vehicle_id = sovd.vehicle(client.token)["vehicle_id"]
    again = sovd.submit(
        client.token,
        vehicle_id,
        "DiagnosticSessionControl",
        {"ecuAddress": "0x28", "session": "extended"},
    )
    sovd.wait_status(client.token, again["command_id"])
    modes = sovd.services.sovd.modes
    wait_until(lambda: sovd.call(lambda: modes.pending_expiries) == 0, "the expiry to pass")
    assert client.get("/components/abs/modes/session").json()["value"] == "extended"
    names = [
        (c["command_name"], c["command_params"].get("session"))
        for c in sovd.http.get("/api/v1/commands", headers=auth(client.token)).json()["items"]
    ]
    assert ("DiagnosticSessionControl", "default") not in names
