import uuid

import pytest

from app.services.vehicles import DEMO_FLEET
from tests.support.harness import Server, auth

pytestmark = pytest.mark.fast

VIN = "1HGCM82633A004352"


def test_demo_fleet_has_one_connected_vehicle_per_profile_and_a_disconnected_one(
    server: Server,
) -> None:
    r = server.http.get("/api/v1/vehicles", headers=auth(server.token()))
    assert r.status_code == 200
    body = r.json()
    assert (body["total"], body["limit"], body["offset"]) == (len(DEMO_FLEET), 50, 0)
    items = body["items"]
    assert [v["vin"] for v in items] == sorted(v["vin"] for v in items)
    connected = {v["simulator_profile"] for v in items if v["connection_status"] == "connected"}
    assert connected == {"healthy", "flaky", "timeout", "unreachable", "malformed"}
    assert [
        (v["simulator_profile"]) for v in items if v["connection_status"] == "disconnected"
    ] == ["healthy"]
    assert set(items[0]) == {
        "vehicle_id",
        "vin",
        "make",
        "model",
        "year",
        "connection_status",
        "simulator_profile",
        "last_seen_at",
        "transport",
        "doip",
        "ecus",
    }
    # Bound to the demo description, which the service stored as it seeded them.
    assert items[0]["ecus"] == [
        {"name": "engine", "address": "0x0010", "description": "ENGINE"},
        {"name": "transmission", "address": "0x0018", "description": "TRANSMISSION"},
        {"name": "abs", "address": "0x0028", "description": "ABS"},
        {"name": "body", "address": "0x0040", "description": "BODY"},
    ]
    assert all(v["ecus"] == items[0]["ecus"] for v in items)


def test_filters_search_and_pagination(server: Server) -> None:
    token = server.token()

    def get(**params: object) -> dict:  # type: ignore[type-arg]
        r = server.http.get("/api/v1/vehicles", headers=auth(token), params=params)
        assert r.status_code == 200, r.text
        return dict(r.json())

    assert get(status="disconnected")["total"] == 1
    assert get(status="connected")["total"] == len(DEMO_FLEET) - 1
    assert [v["make"] for v in get(search="volvo")["items"]] == ["Volvo"]
    assert get(search="%")["total"] == 0  # LIKE wildcards are matched literally
    assert get(search="' OR 1=1 --")["total"] == 0
    page = get(limit=2, offset=1)
    everything = get()["items"]
    assert [v["vin"] for v in page["items"]] == [v["vin"] for v in everything[1:3]]
    assert (page["total"], page["limit"], page["offset"]) == (len(DEMO_FLEET), 2, 1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "online"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_query_values_are_rejected(
    shared_server: Server, params: dict[str, str], field: str
) -> None:
    r = shared_server.http.get(
        "/api/v1/vehicles", headers=auth(shared_server.token()), params=params
    )
    assert r.status_code == 400
    assert r.json()["error_code"] == "incomplete-request"
    assert field in r.json()["message"]


def test_get_one_vehicle_and_404(server: Server) -> None:
    token = server.token()
    vehicle = server.vehicle(token)
    r = server.http.get(f"/api/v1/vehicles/{vehicle['vehicle_id']}", headers=auth(token))
    assert r.status_code == 200 and r.json() == vehicle
    for missing in (str(uuid.uuid4()), "not-a-uuid"):
        r = server.http.get(f"/api/v1/vehicles/{missing}", headers=auth(token))
        assert r.status_code == 404 and r.json()["error_code"] == "not-found"


def test_admin_registers_a_vehicle(server: Server) -> None:
    admin = server.admin_token()
    r = server.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json={"vin": VIN, "make": "Honda", "model": "Accord", "year": 2003},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert r.headers["location"] == f"/api/v1/vehicles/{created['vehicle_id']}"
    assert created["simulator_profile"] == "healthy"
    assert created["connection_status"] == "connected"
    fetched = server.http.get(r.headers["location"], headers=auth(admin)).json()
    assert fetched == created
    dup = server.http.post(
        "/api/v1/vehicles",
        headers=auth(admin),
        json={"vin": VIN, "make": "X", "model": "Y", "year": 2003},
    )
    assert dup.status_code == 409 and dup.json()["error_code"] == "conflict"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"vin": "1HGCM82633A00435", "make": "a", "model": "b", "year": 2000}, "vin"),
        ({"vin": "1HGCM82633A00435I", "make": "a", "model": "b", "year": 2000}, "vin"),
        ({"vin": "1HGCM82633A00435O", "make": "a", "model": "b", "year": 2000}, "vin"),
        ({"vin": VIN, "make": "", "model": "b", "year": 2000}, "make"),
        ({"vin": VIN, "make": "a", "model": "b", "year": "2000"}, "year"),
        ({"vin": VIN, "make": "a", "model": "b", "year": 1200}, "year"),
        (
            {"vin": VIN, "make": "a", "model": "b", "year": 2000, "simulator_profile": "x"},
            "simulator_profile",
        ),
        ({"vin": VIN, "make": "a", "model": "b"}, "year"),
        ({"vin": VIN, "make": "a", "model": "b", "year": 2000, "owner": "me"}, "owner"),
    ],
)
def test_bad_vehicles_are_rejected_naming_the_field(
    shared_server: Server, body: dict[str, object], field: str
) -> None:
    r = shared_server.http.post(
        "/api/v1/vehicles", headers=auth(shared_server.admin_token()), json=body
    )
    assert r.status_code == 400, r.text
    assert r.json()["error_code"] == "incomplete-request"
    assert field in r.json()["message"]
    assert shared_server.query("SELECT count(*) FROM vehicles") == [(len(DEMO_FLEET),)]


def test_admin_patches_connection_and_profile(server: Server) -> None:
    admin = server.admin_token()
    vehicle = server.vehicle(admin)
    url = f"/api/v1/vehicles/{vehicle['vehicle_id']}"
    r = server.http.patch(url, headers=auth(admin), json={"connection_status": "disconnected"})
    assert r.status_code == 200 and r.json()["connection_status"] == "disconnected"
    r = server.http.patch(
        url,
        headers=auth(admin),
        json={"simulator_profile": "timeout", "connection_status": "connected"},
    )
    assert r.json()["simulator_profile"] == "timeout"
    assert r.json()["connection_status"] == "connected"
    for bad in ({}, {"connection_status": "gone"}, {"vin": VIN}):
        r = server.http.patch(url, headers=auth(admin), json=bad)
        assert r.status_code == 400, bad
    r = server.http.patch(
        f"/api/v1/vehicles/{uuid.uuid4()}",
        headers=auth(admin),
        json={"connection_status": "connected"},
    )
    assert r.status_code == 404


def test_engineers_cannot_change_the_fleet(server: Server) -> None:
    token = server.token()
    vehicle = server.vehicle(token)
    r = server.http.post(
        "/api/v1/vehicles",
        headers=auth(token),
        json={"vin": VIN, "make": "a", "model": "b", "year": 2000},
    )
    assert r.status_code == 403
    r = server.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        headers=auth(token),
        json={"connection_status": "disconnected"},
    )
    assert r.status_code == 403 and r.json()["error_code"] == "insufficient-access-rights"
    assert server.vehicle(token)["connection_status"] == "connected"


def test_anonymous_callers_are_turned_away(server: Server) -> None:
    r = server.http.get("/api/v1/vehicles")
    assert r.status_code == 401 and r.json()["error_code"] == "unauthorized"
