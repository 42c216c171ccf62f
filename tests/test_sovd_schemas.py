"""``include-schema=true`` as SOVD clients read it (#21 item 7): every resource of a seeded
vehicle, its ECUs bound to the demo description and unbound, is read with and without the
schema, by following the links the tree advertises (as opensovd-core's traversal does);
each schema is a JSON Schema 2020-12 document and a real validator (jsonschema_rs, Draft
2020-12 chosen by ``$schema``) accepts the body against it, a data item's ``data`` against
its schema. In process over the ASGI transport, a real SQLite file, the simulator seeded
with latency 0."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from tests.support.harness import Server, auth, in_process, make_config

pytestmark = pytest.mark.fast

DIALECT = "https://json-schema.org/draft/2020-12/schema"
ZIP = {"content-type": "application/zip"}
BOUND = [
    {"description": "engine"},
    {"name": "transmission", "address": "0x18"},
    {"description": "ABS"},
    {"description": "BODY"},
]
# Links of a component that lead to collections whose items are read one by one.
_COLLECTIONS = ("data", "configurations", "faults", "operations", "modes", "locks")


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = make_config(
        tmp_path_factory.mktemp("schemas"), command_timeout_s=3.0, sim_self_test_s=0.3
    )
    with in_process(config) as server:  # the demo description is there with the demo data
        yield server


def _vehicle(srv: Server, search: str, ecus: list[dict[str, Any]] | None) -> str:
    admin = srv.admin_token()
    found = srv.http.get("/api/v1/vehicles", params={"search": search}, headers=auth(admin))
    if not found.json()["items"]:  # a new vehicle with the default ECUs (a VIN)
        made = srv.http.post(
            "/api/v1/vehicles",
            headers=auth(admin),
            json={"vin": search, "make": "Bench", "model": "Rig", "year": 2024},
        )
        assert made.status_code == 201, made.text
        found = srv.http.get("/api/v1/vehicles", params={"search": search}, headers=auth(admin))
    vehicle = found.json()["items"][0]
    if ecus is not None:
        r = srv.http.patch(
            f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(admin), json={"ecus": ecus}
        )
        assert r.status_code == 200, r.text
    return str(vehicle["vin"])


class Walk:
    """Reads resources with ``include-schema=true`` and validates each against its schema."""

    def __init__(self, srv: Server, vin: str) -> None:
        self.srv = srv
        self.token = srv.token()
        self.root = f"/sovd/vehicles/{vin}"
        self.seen: dict[str, str] = {}  # path -> what was validated ("body" or "data")

    def path(self, href: str) -> str:
        return href[href.index("/sovd/") :] if "://" in href else href

    def get(self, href: str) -> dict[str, Any]:
        path = self.path(href)
        headers = auth(self.token)
        plain = self.srv.http.get(path, headers=headers)
        assert plain.status_code == 200, (path, plain.text)
        assert "schema" not in plain.json(), path
        r = self.srv.http.get(path, headers=headers, params={"include-schema": "true"})
        assert r.status_code == 200, (path, r.text)
        body: dict[str, Any] = r.json()
        schema = body["schema"]
        assert schema["$schema"] == DIALECT, path
        validator = jsonschema_rs.validator_for(schema)
        assert isinstance(validator, jsonschema_rs.Draft202012Validator), path
        is_data_item = "/data/" in path or "/configurations/" in path
        instance = body["data"] if is_data_item else body
        errors = [e.message for e in validator.iter_errors(instance)]
        assert not errors, (path, errors, instance)
        self.seen[path] = "data" if is_data_item else "body"
        return body

    def component(self, href: str) -> None:
        component = self.get(href)
        for link in ("data-categories", "data-groups", "hosts", "belongs-to"):
            if link in component:
                self.get(component[link])
        for link in _COLLECTIONS:
            if link not in component:
                continue
            for item in self.get(component[link])["items"]:
                if link == "faults":
                    self.get(f"{self.path(component[link])}/{item['code']}")
                elif link == "locks":
                    self.get(f"{self.path(component[link])}/{item['id']}")
                else:
                    self.get(f"{self.path(component[link])}/{item['id']}")
                    if link == "operations":
                        self.get(f"{self.path(component[link])}/{item['id']}/executions")

    def everything(self) -> None:
        self.get(f"{self.root}/version-info")
        root = self.get(f"{self.root}/v1")
        for link in ("apps", "areas", "functions", "locks"):
            self.get(root[link])
        for item in self.get(root["components"])["items"]:
            self.component(item["href"])


def test_every_resource_of_bound_and_unbound_ecus_validates_against_its_schema(
    srv: Server,
) -> None:
    vin = _vehicle(srv, "Golf", BOUND)
    walk = Walk(srv, vin)
    token = walk.token
    # Something to find under locks and executions.
    lock = srv.http.post(
        f"{walk.root}/v1/components/transmission/locks",
        headers=auth(token),
        json={"lock_expiration": 60},
    )
    assert lock.status_code == 201, lock.text
    walk.everything()
    bound_items = [p for p, what in walk.seen.items() if what == "data" and "/engine/" in p]
    unbound_items = [p for p, what in walk.seen.items() if what == "data" and "/transmission/" in p]
    assert len(bound_items) >= 6 and len(unbound_items) >= 3, walk.seen
    assert any("/faults/" in p for p in walk.seen), walk.seen
    assert any("/locks/" in p for p in walk.seen), walk.seen
    assert any("/modes/" in p for p in walk.seen), walk.seen
    assert len(walk.seen) >= 60, len(walk.seen)


def test_a_vehicle_without_descriptions_validates_too(srv: Server) -> None:
    """A vehicle of the default ECUs with no description bound (the generic UDS tree:
    identification data, faults, modes, no operations): every resource."""
    vin = _vehicle(srv, "WVWZZZ1KZAW000099", None)
    walk = Walk(srv, vin)
    walk.everything()
    assert any("/data/vin" in p for p in walk.seen)
    assert any(p.endswith("/faults") for p in walk.seen)
    assert len(walk.seen) >= 40, len(walk.seen)


def test_a_data_items_schema_describes_its_data_not_the_body(srv: Server) -> None:
    vin = _vehicle(srv, "Golf", BOUND)
    token = srv.token()
    params = {"include-schema": "true"}
    for path, value in (
        ("engine/data/EngineRpm", "EngineRpm"),  # bound: the response's parameter names
        ("transmission/data/vin", "value"),  # unbound: value (and unit)
    ):
        r = srv.http.get(
            f"/sovd/vehicles/{vin}/v1/components/{path}", headers=auth(token), params=params
        )
        assert r.status_code == 200, r.text
        body = r.json()
        validator = jsonschema_rs.validator_for(body["schema"])
        assert validator.is_valid(body["data"])
        assert value in body["schema"]["properties"]
        # The whole body is not what it describes: the check can fail.
        assert not validator.is_valid({k: v for k, v in body.items() if k != "schema"})
        assert not validator.is_valid({**body["data"], value: [1, 2]})
    rpm = srv.http.get(
        f"/sovd/vehicles/{vin}/v1/components/engine/data/EngineRpm",
        headers=auth(token),
        params=params,
    ).json()["schema"]["properties"]["EngineRpm"]
    assert rpm.get("x-unit") == "rpm", rpm
