"""The SOVD tree driven as a SOVD client drives it: list, get, act, read back.

The app runs in process on a real SQLite file, with the per-ECU simulator seeded and at
latency 0. The demo vehicles' ECUs are bound to the demo description (stored in the
description library as the demo fleet is seeded), so their tree is the description's by
CDA's mapping: expected ids, values, DTCs and sessions are read from the description
(``DEMO_ECUS``) and the demo scenario (``DEMO_SCENARIO``), not copied. The generic tree
of an ECU bound to no description is driven on an ECU at a non-demo address. Every call
that reaches the vehicle is a command: the tests follow the ``X-Command-ID`` into
``/api/v1/commands``, the audit log and ``/metrics``.
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
from app.descriptions.fault_status import STATUS_KEYS
from app.errors import Conflict
from app.services.sovd.data import IDENTIFICATION
from app.services.sovd.entities import Target, components
from app.vehicles import trouble_codes, uds
from app.vehicles.pdx.demo import BLEED_CHECK, DEMO_ECUS, SELF_TEST
from app.vehicles.pdx.scenario import DEMO_SCENARIO
from app.vehicles.pdx.spec import PdxEcu
from app.vehicles.simulator import SimulatedConnector
from tests.support.fake_clock import FakeClock
from tests.support.harness import (
    Server,
    auth,
    in_process,
    make_config,
    quick_simulator,
    wait_until,
)
from tests.support.scrape import scrape, total
from tests.support.sovd_paths import READS, fill

pytestmark = pytest.mark.fast

GENERIC_ERROR_FIELDS = {"error_code", "message", "vendor_code", "translation_id", "parameters"}


@pytest.fixture
def sovd(tmp_path: Path) -> Iterator[Server]:
    # Self-tests finish well within the command deadline.
    config = make_config(tmp_path, command_timeout_s=2.0, sim_self_test_s=0.3)
    with in_process(config, connector=quick_simulator(config)) as srv:
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
        """The display codes of the faults the ECU reports stored (a bound ECU lists
        every DTC of its description, those not stored with status 0, as CDA)."""
        return sorted(
            f["display_code"] for f in self.faults(component) if f["status"]["mask"] != "00"
        )


def engineer(server: Server, token: str | None = None) -> Client:
    token = token or server.token()
    return Client(server, token, server.vehicle(token)["vin"])


# An ECU bound to no description, at an address no demo ECU has.
GENERIC_ADDRESS = "0x0077"


def generic(server: Server, vin: str = "1HGCM82633A000077") -> Client:
    """An engineer's client on a vehicle of its own whose one ECU, ``gateway``, is bound
    to no description: the generic UDS tree."""
    r = server.http.post(
        "/api/v1/vehicles",
        headers=auth(server.admin_token()),
        json={
            "vin": vin,
            "make": "Bench",
            "model": "Gateway",
            "year": 2024,
            "ecus": [{"name": "gateway", "address": GENERIC_ADDRESS}],
        },
    )
    assert r.status_code == 201, r.text
    return Client(server, server.token(), vin)


def demo(component: str) -> PdxEcu:
    """The demo description's ECU behind a demo vehicle's component."""
    return next(e for e in DEMO_ECUS if e.short_name.lower() == component)


def stored(component: str) -> list[str]:
    """The display codes the demo scenario stores at start on that ECU."""
    return sorted(d.code for d in DEMO_SCENARIO[component.upper()].dtcs)


def status_of(byte: int) -> dict[str, Any]:
    """A status byte as CDA's status object."""
    return {k: bool(byte & (1 << i)) for i, k in enumerate(STATUS_KEYS)} | {"mask": f"{byte:02X}"}


def executions(component: str, routine: int) -> str:
    op = next(r for r in demo(component).routines if r.routine_id == routine)
    return f"/components/{component}/operations/{op.name}/executions"


def wait_results(client: Client, location: str, state: str = "completed") -> dict[str, Any]:
    """GET the execution (each sends RequestResults) until the routine says ``state``."""
    path = location.split("/v1", 1)[1]
    return dict(
        wait_until(
            lambda: (e := client.get(path).json())["parameters"].get("RoutineState") == state and e,
            f"the routine to be {state}",
        )
    )


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
    assert engine["x-ecu-address"] == f"0x{demo('engine').logical_address:04X}"
    # Bound to the demo description: its base variant (it declares no ECU variants).
    assert engine["variant"] == {
        "name": demo("engine").short_name,
        "is_base_variant": True,
        "state": "Online",
        "logical_address": engine["x-ecu-address"],
    }
    for capability in ("data", "faults", "operations", "modes", "locks", "configurations"):
        assert engine[capability].endswith(f"/components/engine/{capability}")
    transmission = client.get("/components/transmission").json()
    assert "operations" in transmission  # every demo ECU has the self-test
    assert "configurations" not in transmission  # no varcoding service
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


def test_faults_per_ecu_as_the_description_names_them_with_iso_status_bits(sovd: Server) -> None:
    client = engineer(sovd)
    for component in ("engine", "transmission", "abs", "body"):
        faults = {f["display_code"]: f for f in client.faults(component)}
        # Every DTC of the description, those stored with their status byte (CDA).
        assert sorted(faults) == sorted(d.code for d in demo(component).dtcs)
        start = {d.code: d.status for d in DEMO_SCENARIO[component.upper()].dtcs}
        for dtc in demo(component).dtcs:
            assert faults[dtc.code] == {
                "code": f"{trouble_codes.dtc_number(dtc.code):06X}",
                "scope": "FaultMem",
                "display_code": dtc.code,
                "fault_name": dtc.text,
                "severity": dtc.level,
                # The status object's keys are CDA's spelling of the ISO 14229-1 bits.
                "status": status_of(start.get(dtc.code, 0)),
            }
        assert client.codes(component) == stored(component)


def test_fault_filters_by_status_and_severity(sovd: Server) -> None:
    client = engineer(sovd)
    codes = lambda **q: sorted(f["display_code"] for f in client.faults("engine", **q))  # noqa: E731
    start = {d.code: d.status for d in DEMO_SCENARIO["ENGINE"].dtcs}
    bit = lambda name: STATUS_KEYS.index(name)  # noqa: E731

    def having(name: str, value: bool) -> list[str]:
        return sorted(
            d.code
            for d in demo("engine").dtcs
            if bool(start.get(d.code, 0) >> bit(name) & 1) is value
        )

    confirmed = having("confirmed_dtc", True)
    assert confirmed and having("confirmed_dtc", False)  # the scenario has both kinds
    # CDA's names, the ISO names (the earlier spelling), each in any case.
    for name in ("confirmed_dtc", "CONFIRMED_DTC", "Confirmed_Dtc", "confirmedDTC"):
        assert codes(**{f"status[{name}]": "true"}) == confirmed, name
        assert codes(**{f"status[{name}]": "false"}) == having("confirmed_dtc", False), name
    assert codes(**{"STATUS[CONFIRMEDDTC]": "1"}) == confirmed
    assert codes(**{"status[pendingdtc]": "0"}) == having("pending_dtc", False)
    # Several keys are OR'd, whichever spelling each has.
    either = sorted(set(confirmed) | set(having("pending_dtc", True)))
    assert codes(**{"status[confirmedDTC]": "1", "status[pendingDTC]": "1"}) == either
    assert codes(**{"status[confirmed_dtc]": "1", "status[PendingDTC]": "1"}) == either
    lamp = having("warning_indicator_requested", True)
    assert codes(**{"status[warning_indicator_requested]": "1"}) == lamp
    severities = {d.code: d.level for d in demo("engine").dtcs}
    most = min(severities.values())
    assert codes(severity=str(most)) == sorted(c for c, s in severities.items() if s <= most)
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
    first, second = demo("engine").dtcs[:2]
    native = f"{trouble_codes.dtc_number(first.code):06X}"
    one = client.get(f"/components/engine/faults/{native}").json()
    assert one["item"]["display_code"] == first.code
    by_display = client.get(f"/components/engine/faults/{second.code}").json()
    assert by_display["item"]["code"] == f"{trouble_codes.dtc_number(second.code):06X}"
    r = sovd.http.get(client.url("/components/engine/faults/070000"), headers=auth(client.token))
    assert generic_error(r, 404, "vendor-specific")["vendor_code"] == "not-found"
    r = sovd.http.delete(client.url("/components/engine/faults/070000"), headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")
    assert client.codes("engine") == stored("engine")  # nothing was cleared


def test_clearing_one_ecu_leaves_the_others_and_a_self_test_brings_faults_back(
    sovd: Server,
) -> None:
    client = engineer(sovd)
    r = client.send("DELETE", "/components/engine/faults", 204)
    cleared = r.headers["x-command-id"]
    assert client.codes("engine") == []
    assert client.codes("transmission") == stored("transmission")
    assert client.codes("abs") == stored("abs")
    # Nothing comes back behind the user's back: only a self-test re-runs the tests.
    assert client.codes("engine") == []
    r = client.send("POST", executions("engine", SELF_TEST), 202, {})
    done = wait_results(client, r.headers["location"])
    assert done["status"] == "completed" and done["parameters"]["Progress"] == 100
    failing = sorted(d.code for d in DEMO_SCENARIO["ENGINE"].dtcs if d.failing)
    assert client.codes("engine") == failing
    # Ended on the ECU: its Stop is refused (requestSequenceError), the execution ends
    # all the same, and the operation can run again.
    done_path = r.headers["location"].split("/v1", 1)[1]
    client.send("DELETE", done_path, 204)
    client.get(done_path, status=404)
    again = client.send("POST", executions("engine", SELF_TEST), 202, {})
    client.send("DELETE", again.headers["location"].split("/v1", 1)[1], 204)
    # One fault at a time.
    client.send("DELETE", f"/components/engine/faults/{failing[-1]}", 204)
    assert client.codes("engine") == failing[:-1]
    # The clear is a command like any other: in the history with its parameters.
    command = sovd.command(client.token, cleared)
    assert (command["command_name"], command["status"]) == ("DiagService", "completed")
    assert command["command_params"] == {
        "ecu": "engine",
        "service": "FaultMem_ClearDTCs",
        "params": {},
        "ecuAddress": "0x0010",
        "sid": "0x14",
    }


def test_clearing_where_the_ecu_needs_another_session_names_it(sovd: Server) -> None:
    client = engineer(sovd)
    (needed,) = demo("body").clear_sessions
    r = sovd.http.delete(client.url("/components/body/faults"), headers=auth(client.token))
    body = generic_error(r, 409, "precondition-not-fulfilled")
    assert needed.lower() in body["message"]
    assert body["parameters"] == {
        "service": "FaultMem_ClearDTCs",
        "chart": "Session",
        "needed": [needed],
        "current": "Default",
    }
    assert "x-command-id" not in r.headers  # refused before anything was sent
    assert client.codes("body") == stored("body")
    switched = client.send("PUT", "/components/body/modes/session", 200, {"value": needed})
    assert switched.json() == {"id": "session", "value": needed.lower()}
    assert client.get("/components/body/modes/session").json()["value"] == needed.lower()
    assert client.get("/components/engine/modes/session").json()["value"] == "default"
    client.send("DELETE", "/components/body/faults", 204)
    assert client.codes("body") == []


def test_an_ecu_bound_to_no_description_reports_its_faults_by_generic_read_dtc(
    sovd: Server,
) -> None:
    client = generic(sovd)
    r = client.get("/components/gateway/faults")
    assert r.json() == {"items": []}  # the generic ECU stores none
    command = sovd.command(client.token, r.headers["x-command-id"])
    assert (command["command_name"], command["command_params"]) == (
        "ReadDTC",
        {"ecuAddress": GENERIC_ADDRESS},
    )
    client.send("DELETE", "/components/gateway/faults", 204)
    r = sovd.http.get(client.url("/components/gateway/faults/P0171"), headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")


# -- data --------------------------------------------------------------------------------


def test_data_are_the_described_dids_read_now(sovd: Server) -> None:
    client = engineer(sovd)
    items = {i["id"]: i for i in client.get("/components/engine/data").json()["items"]}
    dids = {d.name: d for d in demo("engine").dids}
    assert sorted(items) == sorted(dids)
    for name, did in dids.items():
        assert items[name]["name"] == did.long_name
        assert items[name].get("unit") == did.unit
    vin = client.get("/components/engine/data/VIN")
    assert vin.json() == {"id": "vin", "data": {"VIN": client.vin}}
    rpm_did = next(d for d in demo("engine").dids if d.did == uds.ENGINE_RPM)
    walk = DEMO_SCENARIO["ENGINE"].sensors[uds.ENGINE_RPM]
    rpm = client.get(f"/components/engine/data/{rpm_did.name.lower()}").json()
    assert rpm["id"] == rpm_did.name.lower()
    assert walk.low <= rpm["data"][rpm_did.name] <= walk.high
    command = sovd.command(client.token, vin.headers["x-command-id"])
    assert command["command_name"] == "DiagService"
    assert command["command_params"] == {
        "ecu": "engine",
        "service": "VIN_Read",
        "params": {},
        "ecuAddress": "0x0010",
        "sid": "0x22",
    }
    r = sovd.http.get(
        client.url(f"/components/body/data/{rpm_did.name}"), headers=auth(client.token)
    )
    generic_error(r, 404, "vendor-specific")


def test_a_varcoding_did_is_a_configuration_written_and_read_back(sovd: Server) -> None:
    client = engineer(sovd)
    (coding,) = [d for d in demo("engine").dids if (d.category or "").lower() == "varcoding"]
    listed = client.get("/components/engine/configurations").json()["items"]
    assert listed == [
        {
            "id": coding.name,
            "name": coding.long_name,
            "configurations_type": "parameter",
            "x-sovd2uds-ServiceAbstract": [f"22{coding.did:04X}", f"2E{coding.did:04X}"],
        }
    ]
    assert coding.size is not None
    wanted = 2 ** (8 * coding.size) - 2
    client.send(
        "PUT", f"/components/engine/data/{coding.name}", 204, {"data": {coding.name: wanted}}
    )
    read = client.get(f"/components/engine/configurations/{coding.name}").json()
    assert read == {"id": coding.name.lower(), "data": {coding.name: wanted}}
    r = sovd.http.put(
        client.url(f"/components/engine/data/{coding.name}"),
        headers=auth(client.token),
        json={"data": {"Speed": 1}},
    )
    assert "Speed" in generic_error(r, 400, "incomplete-request")["message"]


def test_an_ecu_bound_to_no_description_has_the_identification_items(sovd: Server) -> None:
    client = generic(sovd)
    component = client.get("/components/gateway").json()
    assert component["x-ecu-address"] == GENERIC_ADDRESS
    assert "variant" not in component and "operations" not in component
    items = client.get("/components/gateway/data").json()["items"]
    assert [(i["id"], i["category"]) for i in items] == [
        (d.id, d.category.value) for d in IDENTIFICATION
    ]
    vin = client.get("/components/gateway/data/vin")
    assert vin.json() == {"id": "vin", "data": {"value": client.vin}}
    command = sovd.command(client.token, vin.headers["x-command-id"])
    assert command["command_name"] == "ReadDataByID"
    assert command["command_params"] == {"ecuAddress": GENERIC_ADDRESS, "dataId": "0xF190"}
    categories = [
        c["item"] for c in client.get("/components/gateway/data-categories").json()["items"]
    ]
    assert categories == list(dict.fromkeys(d.category.value for d in IDENTIFICATION))
    groups = client.get("/components/gateway/data-groups").json()["items"]
    assert {g["category"] for g in groups} == set(categories)
    assert client.get("/components/gateway/operations").json() == {"items": []}
    r = sovd.http.get(
        client.url("/components/gateway/operations/SelfTest"), headers=auth(client.token)
    )
    generic_error(r, 404, "vendor-specific")
    r = sovd.http.put(
        client.url("/components/gateway/data/vin"),
        headers=auth(client.token),
        json={"data": {"VIN": "X"}},
    )
    generic_error(r, 405, "vendor-specific")
    r = sovd.http.get(client.url("/components/gateway/data/engineRpm"), headers=auth(client.token))
    generic_error(r, 404, "vendor-specific")


def test_a_vehicle_that_does_not_answer_is_not_responding(tmp_path: Path) -> None:
    # The harness's short deadline (0.3 s): the call waits all of it.
    with in_process(make_config(tmp_path)) as srv:
        token = srv.token()
        client = Client(srv, token, srv.vehicle(token, "timeout")["vin"])
        r = srv.http.get(client.url("/components/engine/data/VIN"), headers=auth(token))
        generic_error(r, 504, "not-responding")
        command = srv.command(token, r.headers["x-command-id"])
        assert (command["status"], command["error_code"]) == ("timeout", "not-responding")


# -- operations and executions -------------------------------------------------------------


def test_operations_and_the_session_they_need(sovd: Server) -> None:
    client = engineer(sovd)
    ops = {o["id"]: o for o in client.get("/components/abs/operations").json()["items"]}
    routines = {r.name: r for r in demo("abs").routines}
    assert sorted(ops) == sorted(routines)
    for name, routine in routines.items():
        has_stop, has_results = "Stop" in routine.actions, "RequestResults" in routine.actions
        assert ops[name] == {
            "id": name,
            "name": routine.long_name,
            "proximity_proof_required": False,
            # CDA's rule: asynchronous when a stop or request-results service exists.
            "asynchronous_execution": has_stop or has_results,
            "has_stop": has_stop,
            "has_request_results": has_results,
        }
    bleed = next(r for r in demo("abs").routines if r.routine_id == BLEED_CHECK)
    got = client.get(f"/components/abs/operations/{bleed.name}").json()
    assert got["modes"] == {"session": " or ".join(s.lower() for s in bleed.sessions)}
    self_test = next(r for r in demo("engine").routines if r.routine_id == SELF_TEST)
    assert not self_test.sessions
    assert "modes" not in client.get(f"/components/engine/operations/{self_test.name}").json()
    r = sovd.http.post(
        client.url(executions("abs", BLEED_CHECK)), headers=auth(client.token), json={}
    )
    refused = generic_error(r, 409, "precondition-not-fulfilled")
    assert refused["parameters"]["needed"] == list(bleed.sessions)


def test_a_negative_response_is_error_response_with_service_and_nrc(sovd: Server) -> None:
    client = engineer(sovd)
    bleed = next(r for r in demo("abs").routines if r.routine_id == BLEED_CHECK)
    client.send("PUT", "/components/abs/modes/session", 200, {"value": bleed.sessions[0]})
    # The bleed check cannot run while the wheel speed sensor fault is stored.
    blocker = DEMO_SCENARIO["ABS"].routines[BLEED_CHECK].blocked_by
    assert blocker in client.codes("abs")
    path = executions("abs", BLEED_CHECK)
    r = sovd.http.post(client.url(path), headers=auth(client.token), json={})
    body = generic_error(r, 502, "error-response")
    assert body["parameters"]["service"] == 0x31 and body["parameters"]["nrc"] == 0x26
    assert body["parameters"]["service_name"] == f"{bleed.name}_Start"
    assert body["parameters"]["nrc_name"] == "failurePreventsExecutionOfRequestedAction"
    command = sovd.command(client.token, r.headers["x-command-id"])
    assert (command["status"], command["error_code"]) == ("failed", "error-response")
    # Cleared, it runs (asynchronous: it has a request-results service).
    client.send("DELETE", "/components/abs/faults", 204)
    started = client.send("POST", path, 202, {})
    done = wait_results(client, started.headers["location"])
    assert done["capability"] == "execute"


def test_executions_are_listed_and_visible_to_their_user_and_admins_only(sovd: Server) -> None:
    client = engineer(sovd)
    path = executions("engine", SELF_TEST)
    r = client.send("POST", path, 202, {})
    execution_id = r.json()["id"]
    assert r.json() == {"id": execution_id, "status": "running"}
    assert r.headers["location"].endswith(f"{path}/{execution_id}")
    assert [i["id"] for i in client.get(path).json()["items"]] == [execution_id]
    other = Client(sovd, sovd.create_engineer("other"), client.vin)
    assert other.get(path).json()["items"] == []
    other.get(f"{path}/{execution_id}", status=404)
    admin = Client(sovd, sovd.admin_token(), client.vin)
    admin.get(f"{path}/{execution_id}")
    # Another operation's path does not reach it.
    client.get(f"{executions('abs', SELF_TEST)}/{execution_id}", status=404)
    r = sovd.http.post(client.url(path), headers=auth(client.token), json={"parameters": {"x": 1}})
    assert "body.parameters.x" in generic_error(r, 400, "incomplete-request")["message"]


def test_commands_stored_with_one_byte_addresses_still_count(sovd: Server) -> None:
    # Rows from before two-byte addresses say 0x10 where today's say 0x0010: kept as
    # written, read as the same ECU (the history, a session's expiry).
    client = engineer(sovd)
    read = client.get("/components/engine/data/VIN").headers["x-command-id"]
    with sovd.db() as conn:
        conn.execute(
            "UPDATE commands SET command_params = json_set(command_params, '$.ecuAddress',"
            " '0x10') WHERE command_id = ?",
            (read,),
        )
    assert sovd.query(
        "SELECT json_extract(command_params, '$.ecuAddress') FROM commands WHERE command_id = ?",
        read,
    ) == [("0x10",)]
    command = sovd.command(client.token, read)
    assert command["command_params"]["ecuAddress"] == "0x0010"


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


def test_an_execution_stopped_mid_run_sends_stop_and_is_gone(tmp_path: Path) -> None:
    with long_self_tests(tmp_path) as (srv, simulator, client):
        path = executions("engine", SELF_TEST)
        execution_id = client.send("POST", path, 202, {}).json()["id"]
        # Running: a second start of the same operation is refused.
        r = srv.http.post(client.url(path), headers=auth(client.token), json={})
        generic_error(r, 409, "vendor-specific")
        running = client.get(f"{path}/{execution_id}").json()
        assert running["parameters"]["RoutineState"] == "running"
        stop = client.send("DELETE", f"{path}/{execution_id}", 204)
        command = srv.command(client.token, stop.headers["x-command-id"])
        assert command["command_params"]["service"].endswith("_Stop")
        # The ECU itself was told: its routine is stopped, not left running.
        vehicle_id = srv.vehicle(client.token)["vehicle_id"]
        assert simulator.ecu(vehicle_id, 0x10).routines[SELF_TEST].state == "stopped"
        # Gone, as in CDA: neither read nor stopped again; a new start is allowed.
        client.get(f"{path}/{execution_id}", status=404)
        r = srv.http.delete(client.url(f"{path}/{execution_id}"), headers=auth(client.token))
        generic_error(r, 404, "vendor-specific")
        client.send("POST", path, 202, {})


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
    assert bob.codes("engine") == stored("engine")
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
        ("POST", executions("engine", SELF_TEST), {}),
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
    alice.send("DELETE", f"/components/engine/faults/{stored('engine')[-1]}", 204)
    alice.send("DELETE", f"/components/engine/locks/{lock_id}", 204)
    bob.send("DELETE", "/components/engine/faults", 204)
    assert alice.codes("engine") == []


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
    run = client.send("POST", executions("engine", SELF_TEST), 202).json()
    started = client.send("POST", executions("transmission", SELF_TEST), 202)
    stop = client.send("DELETE", started.headers["location"].split("/v1", 1)[1], 204)
    after = scrape(sovd.http)

    def added(**labels: str) -> float:
        return total(after, "commands_executed_total", **labels) - total(
            before, "commands_executed_total", **labels
        )

    # Each SOVD call of a bound ECU is a DiagService command (the `command` label).
    assert added(status="completed") == added(command="DiagService", status="completed") == 6
    ids = {
        read,
        clear,
        session,
        run["id"],
        started.json()["id"],
        stop.headers["x-command-id"],
    }
    listed = sovd.http.get(
        "/api/v1/commands", headers=auth(client.token), params={"limit": 10}
    ).json()["items"]
    by_id = {c["command_id"]: c for c in listed}
    assert ids <= set(by_id)
    self_test = next(r for r in demo("engine").routines if r.routine_id == SELF_TEST)
    assert by_id[run["id"]]["command_params"] == {
        "ecu": "engine",
        "service": f"{self_test.name}_Start",
        "params": {},
        "ecuAddress": "0x0010",
        "sid": "0x31",
    }
    (chunk,) = sovd.http.get(
        f"/api/v1/commands/{read}/responses", headers=auth(client.token)
    ).json()["items"]
    assert chunk["response_payload"]["service"] == "FaultMem_ReportDTCByStatusMask"
    assert str(trouble_codes.dtc_number(stored("transmission")[0])) in str(
        chunk["response_payload"]
    ) or (stored("transmission")[0] in str(chunk["response_payload"]))
    audit = sovd.http.get("/api/v1/audit", headers=auth(sovd.admin_token()), params={"limit": 200})
    assert audit.status_code == 200, audit.text
    for command_id in ids:
        actions = {e["action"] for e in audit.json()["items"] if e["entity_id"] == command_id}
        assert {"command.submit", "command.start", "command.finish"} <= actions, command_id


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
        executions = services.sovd.executions
        name = next(r.name for r in demo("engine").routines if r.routine_id == SELF_TEST)
        layer, op = await services.sovd.described.operation(at, name)
        return await asyncio.gather(
            executions.start(at, layer, op, None),
            executions.start(at, layer, op, None),
            return_exceptions=True,
        )

    outcomes = sovd.run(both())
    started = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, Conflict)]
    assert len(started) == 1 and len(refused) == 1, outcomes


def test_a_session_with_mode_expiration_goes_back_to_default(sovd: Server) -> None:
    bound = engineer(sovd)
    client = generic(sovd)
    path = "/components/gateway/modes/session"
    r = client.send("PUT", path, 200, {"value": "extended", "mode_expiration": 1})
    assert r.json() == {"id": "session", "value": "extended"}
    assert client.get(path).json()["value"] == "extended"
    wait_until(lambda: client.get(path).json()["value"] == "default", "the session to expire")
    # The switch back is a command of the same user, in their history.
    names = [
        (c["command_name"], c["command_params"].get("session"))
        for c in sovd.http.get(
            "/api/v1/commands", headers=auth(client.token), params={"limit": 20}
        ).json()["items"]
    ]
    assert ("DiagnosticSessionControl", "default") in names
    r = sovd.http.put(client.url(path), headers=auth(client.token), json={"value": "turbo"})
    assert "turbo" in generic_error(r, 400, "incomplete-request")["message"]
    r = sovd.http.put(
        client.url("/components/gateway/modes/security"),
        headers=auth(client.token),
        json={"value": "unlocked"},
    )
    generic_error(r, 405, "vendor-specific")
    assert client.get("/components/gateway/modes/security").json()["value"] == "locked"
    # A bound ECU's session does not expire yet: refused, nothing sent.
    r = sovd.http.put(
        bound.url("/components/abs/modes/session"),
        headers=auth(bound.token),
        json={"value": "extended", "mode_expiration": 1},
    )
    assert "mode_expiration" in generic_error(r, 400, "incomplete-request")["message"]


def test_a_start_refused_for_its_session_sends_nothing(sovd: Server) -> None:
    client = engineer(sovd)
    self_test = next(r for r in demo("body").routines if r.routine_id == SELF_TEST)
    assert self_test.sessions  # the body's self-test needs the extended session
    r = sovd.http.post(
        client.url(executions("body", SELF_TEST)), headers=auth(client.token)
    )  # no body at all: every field is optional
    refused = generic_error(r, 409, "precondition-not-fulfilled")
    assert refused["parameters"]["service"] == f"{self_test.name}_Start"
    assert refused["parameters"]["needed"] == list(self_test.sessions)
    assert "x-command-id" not in r.headers
    listed = sovd.http.get("/api/v1/commands", headers=auth(client.token)).json()
    assert listed["total"] == 0
    assert client.get(executions("body", SELF_TEST)).json()["items"] == []


def test_a_call_that_waits_too_long_for_its_turn_is_not_sent(tmp_path: Path) -> None:
    # A self-test run to its end (RoutineControl run on /api/v1/commands) holds the
    # vehicle's lane longer than a call waits for its turn.
    with long_self_tests(tmp_path, call_queue_wait_s=0.3) as (srv, simulator, client):
        vehicle_id = srv.vehicle(client.token)["vehicle_id"]
        srv.submit(
            client.token,
            vehicle_id,
            "RoutineControl",
            {"ecuAddress": "0x0010", "routineId": uds.format_did(SELF_TEST), "action": "run"},
        )
        r = srv.http.delete(client.url("/components/abs/faults"), headers=auth(client.token))
        body = generic_error(r, 503, "vendor-specific")
        assert body["vendor_code"] == "overloaded" and "not sent" in body["message"]
        assert int(r.headers["retry-after"]) >= 1
        command = srv.command(client.token, r.headers["x-command-id"])
        assert command["status"] == "cancelled"
        assert command["command_params"]["service"] == "FaultMem_ClearDTCs"
        # Nothing of it reached the vehicle: no answer, and the abs ECU keeps its fault.
        answer = srv.http.get(
            f"/api/v1/commands/{r.headers['x-command-id']}/responses", headers=auth(client.token)
        ).json()["items"]
        assert answer == []
        assert list(simulator.stored_dtcs(vehicle_id, 0x28)) == stored("abs")


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
    execution = client.send("POST", executions("engine", SELF_TEST), 202, {}).json()["id"]
    gets = [e for e in ENDPOINTS if e.path.startswith("/sovd/") and e.method == "GET"]
    assert {e.path.removeprefix("/sovd/vehicles/{vin}") for e in gets} == set(READS)
    for e in gets:
        example = READS[e.path.removeprefix("/sovd/vehicles/{vin}")]
        path = fill(example, lock=lock, ecu_lock=ecu_lock_id, execution=execution)
        url = f"/sovd/vehicles/{client.vin}{path}"
        r = sovd.http.get(url, headers=auth(client.token), params={"include-schema": "true"})
        assert r.status_code == 200, (url, r.text)
        if e.path.endswith("/{data_id}"):  # a data item's describes its data (schemas.py)
            body = r.json()
            assert set(body["schema"]["properties"]) == set(body["data"]), url
        elif e.path.endswith("/operations/{operation}"):  # plus its start's parameters
            schema = dict(r.json()["schema"])
            defs = dict(schema.pop("$defs"))
            assert defs.pop("ExecutionParameters")["type"] == "object", url
            assert {**schema, "$defs": defs} == schema_of(e.responses[200]), url
        else:
            assert r.json()["schema"] == schema_of(e.responses[200]), url
        assert r.json()["schema"]["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        plain = sovd.http.get(url, headers=auth(client.token))
        assert "schema" not in plain.json(), url


def test_modes_are_listed_and_security_is_shown_as_state(sovd: Server) -> None:
    bound = engineer(sovd)
    client = generic(sovd)
    modes = client.get("/components/gateway/modes").json()["items"]
    assert [m["id"] for m in modes] == ["session", "security"]
    assert all(m["name"] for m in modes)
    security = client.get("/components/gateway/modes/security")
    assert security.json()["value"] == "locked" and "x-command-id" not in security.headers
    # A bound ECU's modes are its description's: its 0x10 services (no DTC setting here).
    assert [m["id"] for m in bound.get("/components/engine/modes").json()["items"]] == ["session"]
    bound.get("/components/engine/modes/security", status=404)


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
    client = generic(sovd)
    path = "/components/gateway/modes/session"
    client.send("PUT", path, 200, {"value": "extended", "mode_expiration": 1})
    # The same switch again, through /api/v1/commands: the newer change owns the session.
    vehicle_id = sovd.http.get(f"/api/v1/vehicles/{client.vin}", headers=auth(client.token)).json()[
        "vehicle_id"
    ]
    again = sovd.submit(
        client.token,
        vehicle_id,
        "DiagnosticSessionControl",
        {"ecuAddress": GENERIC_ADDRESS, "session": "extended"},
    )
    sovd.wait_status(client.token, again["command_id"])
    modes = sovd.services.sovd.modes
    wait_until(lambda: sovd.call(lambda: modes.pending_expiries) == 0, "the expiry to pass")
    assert client.get(path).json()["value"] == "extended"
    names = [
        (c["command_name"], c["command_params"].get("session"))
        for c in sovd.http.get("/api/v1/commands", headers=auth(client.token)).json()["items"]
    ]
    assert ("DiagnosticSessionControl", "default") not in names
