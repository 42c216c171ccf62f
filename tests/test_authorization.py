"""Who may do what: every route and the WebSocket, for anonymous, engineer A, engineer B
and admin, against A's and B's commands. Another engineer's command is 404 everywhere."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from app.api.routes import ENDPOINTS
from app.vehicles.pdx.demo import DEMO_ECUS
from app.vocabulary import Access
from tests.support.harness import (
    ADMIN_PASSWORD,
    ENGINEER_PASSWORD,
    Server,
    auth,
    make_config,
    running,
)
from tests.support.sovd_paths import OWNED_READS, READS, SELF_TEST

SELF_TEST_B = SELF_TEST.replace("/engine/", "/transmission/")

pytestmark = pytest.mark.socket

_counter = itertools.count()
# The service account the token routes authenticate (its secret: set by ``world``).
_CLIENT: dict[str, str] = {}


def _vin() -> str:
    return f"1HGCM82633A{next(_counter):06d}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    config = make_config(tmp_path_factory.mktemp("authz"), command_timeout_s=2.0)
    # Self-tests that outlast the module: the executions stay running (and stoppable).
    with running(replace(config, sim_self_test_s=60.0)) as srv:
        admin = srv.admin_token()
        a = srv.token()  # the demo "engineer"
        b = srv.create_engineer("bob")
        found = srv.vehicle(admin)
        vehicle, vin = found["vehicle_id"], found["vin"]
        cmd_a = srv.submit(a, vehicle)["command_id"]
        cmd_b = srv.submit(b, vehicle)["command_id"]
        executions = {}
        # One running execution per operation of an ECU (CDA): a's on the engine, b's on
        # the transmission.
        for who, token, path in (("a", a, SELF_TEST), ("b", b, SELF_TEST_B)):
            r = srv.http.post(f"/sovd/vehicles/{vin}{path}", headers=auth(token), json={})
            assert r.status_code == 202, r.text
            executions[who] = r.json()["id"]
        for cid in (cmd_a, cmd_b):
            srv.wait_status(admin, cid)
        r = srv.http.post(
            "/api/v1/service-accounts",
            headers=auth(admin),
            json={"client_id": "matrix-rig", "role": "engineer"},
        )
        assert r.status_code == 201, r.text
        _CLIENT.update(client_id="matrix-rig", client_secret=r.json()["client_secret"])
        yield {
            "srv": srv,
            "tokens": {"anonymous": None, "a": a, "b": b, "admin": admin},
            "vehicle": vehicle,
            "vin": vin,
            "cmd": {"a": cmd_a, "b": cmd_b},
            "execution": executions,
        }


def _fresh_user(srv: Server) -> str:
    r = srv.http.post(
        "/api/v1/users",
        headers=auth(srv.admin_token()),
        json={
            "username": f"temp{next(_counter)}",
            "password": "temp-password-1",
            "role": "engineer",
        },
    )
    return str(r.json()["user_id"])


def _fresh_account(srv: Server) -> str:
    r = srv.http.post(
        "/api/v1/service-accounts",
        headers=auth(srv.admin_token()),
        json={"client_id": f"account{next(_counter)}", "role": "engineer"},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["account"]["account_id"])


_OP = "/v1/components/{component}/operations/{operation}"
# Example calls per endpoint of the route table: (name, path, body, owner, ok status);
# {vehicle}, {cmd_a}, {cmd_b}, {user} are filled in. ``owner`` names whose command the
# call reaches ("a"/"b"): only its owner and admins may; others hear 404.
Example = tuple[str, str, Callable[[], Any] | None, str | None, int]
EXAMPLES: dict[tuple[str, str], list[Example]] = {
    ("GET", "/health/live"): [("live", "/health/live", None, None, 200)],
    ("GET", "/health/ready"): [("ready", "/health/ready", None, None, 200)],
    ("GET", "/openapi.json"): [("openapi", "/openapi.json", None, None, 200)],
    ("POST", "/api/v1/auth/login"): [
        (
            "login",
            "/api/v1/auth/login",
            lambda: {"username": "engineer", "password": ENGINEER_PASSWORD},
            None,
            200,
        )
    ],
    ("GET", "/api/v1/auth/me"): [("me", "/api/v1/auth/me", None, None, 200)],
    # A form (a str body): anyone with the client's credentials gets its token.
    ("POST", "/api/v1/auth/token"): [
        (
            "client-credentials",
            "/api/v1/auth/token",
            lambda: (
                "grant_type=client_credentials&client_id={client_id}&client_secret="
                "{client_secret}".format(**_CLIENT)
            ),
            None,
            200,
        )
    ],
    ("POST", "/sovd/vehicles/{vin}/v1/authorize"): [
        ("sovd-authorize", "/sovd/vehicles/{vin}/v1/authorize", lambda: dict(_CLIENT), None, 200)
    ],
    ("GET", "/api/v1/service-accounts"): [
        ("service-accounts", "/api/v1/service-accounts", None, None, 200)
    ],
    ("POST", "/api/v1/service-accounts"): [
        (
            "create-service-account",
            "/api/v1/service-accounts",
            lambda: {"client_id": f"rig{next(_counter)}", "role": "engineer"},
            None,
            201,
        )
    ],
    ("GET", "/api/v1/service-accounts/{account_id}"): [
        ("service-account", "/api/v1/service-accounts/{account}", None, None, 200)
    ],
    ("PATCH", "/api/v1/service-accounts/{account_id}"): [
        (
            "disable-service-account",
            "/api/v1/service-accounts/{account}",
            lambda: {"disabled": True},
            None,
            200,
        )
    ],
    ("POST", "/api/v1/service-accounts/{account_id}/secret"): [
        ("new-secret", "/api/v1/service-accounts/{account}/secret", None, None, 200)
    ],
    ("DELETE", "/api/v1/service-accounts/{account_id}"): [
        ("delete-service-account", "/api/v1/service-accounts/{account}", None, None, 204)
    ],
    # A wrong current password (403) proves the route's rule without changing anyone's
    # password; tests/test_passwords.py changes them for real.
    ("POST", "/api/v1/auth/password"): [
        (
            "change-password",
            "/api/v1/auth/password",
            lambda: {"current_password": "not-the-password", "new_password": "new-password-1"},
            None,
            403,
        )
    ],
    ("GET", "/api/v1/catalogue"): [("catalogue", "/api/v1/catalogue", None, None, 200)],
    ("GET", "/api/v1/vehicles"): [("vehicles", "/api/v1/vehicles", None, None, 200)],
    ("GET", "/api/v1/vehicles/{vehicle_id}"): [
        ("vehicle", "/api/v1/vehicles/{vehicle}", None, None, 200),
        # By VIN too (a demo fleet vehicle's).
        ("vehicle-by-vin", "/api/v1/vehicles/WVWZZZ1KZAW000001", None, None, 200),
    ],
    ("GET", "/api/v1/vehicles/{vehicle_id}/services"): [
        ("vehicle-services", "/api/v1/vehicles/{vehicle}/services", None, None, 200),
    ],
    ("GET", "/api/v1/commands"): [("commands", "/api/v1/commands", None, None, 200)],
    ("POST", "/api/v1/commands"): [
        (
            "submit",
            "/api/v1/commands",
            lambda: {
                "vehicle_id": "{vehicle}",
                "command_name": "ReadDTC",
                "command_params": {"ecuAddress": "0x10"},
            },
            None,
            201,
        )
    ],
    ("GET", "/api/v1/users"): [("users", "/api/v1/users", None, None, 200)],
    ("POST", "/api/v1/users"): [
        (
            "create-user",
            "/api/v1/users",
            lambda: {
                "username": f"user{next(_counter)}",
                "password": "password-123",
                "role": "engineer",
            },
            None,
            201,
        )
    ],
    ("PATCH", "/api/v1/users/{user_id}"): [
        ("disable-user", "/api/v1/users/{user}", lambda: {"disabled": True}, None, 200),
        (
            "reset-password",
            "/api/v1/users/{user}",
            lambda: {"password": "reset-password-1"},
            None,
            200,
        ),
    ],
    ("DELETE", "/api/v1/users/{user_id}"): [
        ("delete-user", "/api/v1/users/{user}", None, None, 204)
    ],
    ("POST", "/api/v1/vehicles"): [
        (
            "create-vehicle",
            "/api/v1/vehicles",
            lambda: {"vin": _vin(), "make": "a", "model": "b", "year": 2020},
            None,
            201,
        ),
        (
            "create-doip-vehicle",
            "/api/v1/vehicles",
            lambda: {
                "vin": _vin(),
                "make": "a",
                "model": "b",
                "year": 2020,
                "transport": "doip",
                "doip": {"host": "192.0.2.1", "logical_address": "0x0001"},
            },
            None,
            201,
        ),
    ],
    ("PATCH", "/api/v1/vehicles/{vehicle_id}"): [
        (
            "patch-vehicle",
            "/api/v1/vehicles/{vehicle}",
            lambda: {"connection_status": "connected"},
            None,
            200,
        )
    ],
    ("GET", "/api/v1/audit"): [("audit", "/api/v1/audit", None, None, 200)],
    # ECU descriptions: a PDX file of its own per call ({pdx}: a fresh name and ECU; bytes
    # go as application/zip), and one stored for each removal ({stored_pdx}).
    ("GET", "/api/v1/descriptions"): [("descriptions", "/api/v1/descriptions", None, None, 200)],
    ("POST", "/api/v1/descriptions"): [
        ("add-description", "/api/v1/descriptions?name={pdx}.pdx", lambda: _pdx(), None, 201)
    ],
    ("DELETE", "/api/v1/descriptions/{name}"): [
        ("remove-description", "/api/v1/descriptions/{stored_pdx}", None, None, 204)
    ],
    ("GET", "/docs"): [("docs", "/docs", None, None, 200)],
    ("GET", "/docs/swagger-ui.css"): [("docs-css", "/docs/swagger-ui.css", None, None, 200)],
    ("GET", "/docs/swagger-ui-bundle.js"): [
        ("docs-bundle", "/docs/swagger-ui-bundle.js", None, None, 200)
    ],
    ("GET", "/docs/swagger-initializer.js"): [
        ("docs-init", "/docs/swagger-initializer.js", None, None, 200)
    ],
    ("GET", "/api/v1/commands/{command_id}"): [
        ("command-a", "/api/v1/commands/{cmd_a}", None, "a", 200),
        ("command-b", "/api/v1/commands/{cmd_b}", None, "b", 200),
    ],
    ("GET", "/api/v1/commands/{command_id}/responses"): [
        ("responses-a", "/api/v1/commands/{cmd_a}/responses", None, "a", 200),
        ("responses-b", "/api/v1/commands/{cmd_b}/responses", None, "b", 200),
    ],
    **{
        ("GET", f"/sovd/vehicles/{{vin}}{tail}"): [
            (f"sovd-get{tail.replace('/', '-')}", f"/sovd/vehicles/{{vin}}{path}", None, None, 200)
        ]
        for tail, path in READS.items()
        if tail not in OWNED_READS  # below: whose lock or execution it is matters
    },
    # State changes act on a vehicle of their own ({fresh}): each caller's call succeeds.
    ("DELETE", "/sovd/vehicles/{vin}/v1/components/{component}/faults"): [
        ("sovd-clear", "/sovd/vehicles/{fresh}/v1/components/engine/faults", None, None, 204)
    ],
    ("DELETE", "/sovd/vehicles/{vin}/v1/components/{component}/faults/{fault_code}"): [
        (
            "sovd-clear-one",
            "/sovd/vehicles/{fresh}/v1/components/engine/faults/P0171",
            None,
            None,
            204,
        )
    ],
    # The demo fleet's ECUs are bound to the demo description (as {fresh} vehicles are):
    # variant detection and writes work for every user.
    ("PUT", "/sovd/vehicles/{vin}/v1/components/{component}"): [
        ("sovd-detect-variant", "/sovd/vehicles/{fresh}/v1/components/engine", None, None, 201)
    ],
    ("PUT", "/sovd/vehicles/{vin}/v1/components/{component}/data/{data_id}"): [
        (
            "sovd-write-data",
            "/sovd/vehicles/{fresh}/v1/components/engine/data/Coding",
            lambda: {"data": {"Coding": 1}},
            None,
            204,
        )
    ],
    ("PUT", "/sovd/vehicles/{vin}/v1/components/{component}/configurations/{data_id}"): [
        (
            "sovd-write-configuration",
            "/sovd/vehicles/{fresh}/v1/components/engine/configurations/coding",
            lambda: {"data": {"Coding": 1}},
            None,
            204,
        )
    ],
    ("POST", f"/sovd/vehicles/{{vin}}{_OP}/executions"): [
        ("sovd-execute", f"/sovd/vehicles/{{fresh}}{SELF_TEST}", lambda: {}, None, 202)
    ],
    ("PUT", "/sovd/vehicles/{vin}/v1/components/{component}/modes/{mode}"): [
        (
            "sovd-session",
            "/sovd/vehicles/{fresh}/v1/components/engine/modes/session",
            lambda: {"value": "extended"},
            None,
            200,
        )
    ],
    ("POST", "/sovd/vehicles/{vin}/v1/locks"): [
        ("sovd-lock", "/sovd/vehicles/{fresh}/v1/locks", lambda: {"lock_expiration": 60}, None, 201)
    ],
    # Breaking every lock of a vehicle is an admin's (a vehicle of its own: nothing else
    # there is touched).
    ("DELETE", "/sovd/vehicles/{vin}/v1/locks"): [
        ("sovd-break-all", "/sovd/vehicles/{fresh}/v1/locks", None, None, 204)
    ],
    ("POST", "/sovd/vehicles/{vin}/v1/components/{component}/locks"): [
        (
            "sovd-lock-ecu",
            "/sovd/vehicles/{fresh}/v1/components/engine/locks",
            lambda: {"lock_expiration": 60},
            None,
            201,
        )
    ],
    # A lock the caller holds ({own_lock}: taken for the caller on a vehicle of its own).
    ("PUT", "/sovd/vehicles/{vin}/v1/locks/{lock_id}"): [
        ("sovd-extend", "/sovd/vehicles/{own_lock}", lambda: {"lock_expiration": 90}, None, 204)
    ],
    ("DELETE", "/sovd/vehicles/{vin}/v1/locks/{lock_id}"): [
        ("sovd-release", "/sovd/vehicles/{own_lock}", None, None, 204)
    ],
    ("PUT", "/sovd/vehicles/{vin}/v1/components/{component}/locks/{lock_id}"): [
        (
            "sovd-extend-ecu",
            "/sovd/vehicles/{own_ecu_lock}",
            lambda: {"lock_expiration": 90},
            None,
            204,
        )
    ],
    ("DELETE", "/sovd/vehicles/{vin}/v1/components/{component}/locks/{lock_id}"): [
        ("sovd-release-ecu", "/sovd/vehicles/{own_ecu_lock}", None, None, 204)
    ],
    ("GET", "/sovd/vehicles/{vin}/v1/locks/{lock_id}"): [
        ("sovd-lock-get", "/sovd/vehicles/{own_lock}", None, None, 200)
    ],
    ("GET", "/sovd/vehicles/{vin}/v1/components/{component}/locks/{lock_id}"): [
        ("sovd-lock-get-ecu", "/sovd/vehicles/{own_ecu_lock}", None, None, 200)
    ],
    # An execution is its user's and the admins': others hear 404.
    ("GET", f"/sovd/vehicles/{{vin}}{_OP}/executions/{{execution_id}}"): [
        ("sovd-execution-a", f"/sovd/vehicles/{{vin}}{SELF_TEST}/{{exec_a}}", None, "a", 200),
        ("sovd-execution-b", f"/sovd/vehicles/{{vin}}{SELF_TEST_B}/{{exec_b}}", None, "b", 200),
    ],
    # Stopping one (it is gone then): a running execution of its own per call, started
    # by its owner on a vehicle of its own ({run_a}, {run_b}).
    ("DELETE", f"/sovd/vehicles/{{vin}}{_OP}/executions/{{execution_id}}"): [
        ("sovd-stop-a", "/sovd/vehicles/{run_a}", None, "a", 204),
        ("sovd-stop-b", "/sovd/vehicles/{run_b}", None, "b", 204),
    ],
    # The commands have ended: whoever may cancel them hears 409, anyone else 404.
    ("POST", "/api/v1/commands/{command_id}/cancel"): [
        ("cancel-a", "/api/v1/commands/{cmd_a}/cancel", None, "a", 409),
        ("cancel-b", "/api/v1/commands/{cmd_b}/cancel", None, "b", 409),
    ],
}
# Logout and refresh end or rotate sessions: test_token_routes_and_logout covers them.
SESSION_ROUTES = {("POST", "/api/v1/auth/logout"), ("POST", "/api/v1/auth/refresh")}
_RULES = {Access.ANONYMOUS: "public", Access.USER: "user", Access.ADMIN: "admin"}


def _routes() -> list[tuple[str, str, str, Callable[[], Any] | None, str, int]]:
    """The matrix rows: every endpoint of the route table, its rule from the table."""
    rows = []
    for e in ENDPOINTS:
        if (e.method, e.path) in SESSION_ROUTES:
            continue
        for name, path, body, owner, ok in EXAMPLES[(e.method, e.path)]:
            rule = f"owner-{owner}" if owner else _RULES[e.access]
            rows.append((name, e.method, path, body, rule, ok))
    # /metrics is outside the table (text exposition, its own optional token).
    rows.append(("metrics", "GET", "/metrics", None, "public", 200))
    return rows


ROUTES = _routes()


def test_every_endpoint_of_the_table_is_in_the_matrix() -> None:
    table = {(e.method, e.path) for e in ENDPOINTS}
    assert set(EXAMPLES) | SESSION_ROUTES == table


def _expected(rule: str, who: str, ok: int) -> int:
    if rule == "public":
        return ok
    if who == "anonymous":
        return 401
    if rule == "user" or who == "admin":
        return ok
    if rule == "admin":
        return 403
    return ok if rule == f"owner-{who}" else 404


def _fresh_vin(srv: Server) -> str:
    """A vehicle of its own for one call that changes state, its ECUs bound to the demo
    description as the demo fleet's are."""
    vin = _vin()
    r = srv.http.post(
        "/api/v1/vehicles",
        headers=auth(srv.admin_token()),
        json={
            "vin": vin,
            "make": "a",
            "model": "b",
            "year": 2020,
            "ecus": [{"description": e.short_name} for e in DEMO_ECUS],
        },
    )
    assert r.status_code == 201, r.text
    return vin


def _own_run(srv: Server, owner: str | None) -> str:
    """``<vin>/v1/components/engine/operations/SelfTest/executions/<id>``: a running
    execution ``owner`` started on a vehicle of its own."""
    vin = _fresh_vin(srv)
    path = f"{vin}{SELF_TEST}"
    r = srv.http.post(f"/sovd/vehicles/{path}", headers=auth(owner or ""), json={})
    assert r.status_code == 202, r.text
    return f"{path}/{r.json()['id']}"


def _own_lock(srv: Server, token: str | None, where: str) -> str:
    """``<vin>/v1[/components/engine]/locks/<id>``: a lock the caller holds (anonymous
    callers get an admin's, which they must not reach)."""
    vin = _fresh_vin(srv)
    path = f"/sovd/vehicles/{vin}/v1{where}/locks"
    r = srv.http.post(path, headers=auth(token or srv.admin_token()), json={"lock_expiration": 60})
    assert r.status_code == 201, r.text
    return f"{vin}/v1{where}/locks/{r.json()['id']}"


def _pdx() -> bytes:
    from tests.test_descriptions import pdx

    return pdx(f"AUTHZ{next(_counter)}")


def _stored_pdx(srv: Server) -> str:
    name = f"stored{next(_counter)}.pdx"
    r = srv.http.post(
        f"/api/v1/descriptions?name={name}",
        content=_pdx(),
        headers={**auth(srv.admin_token()), "content-type": "application/zip"},
    )
    assert r.status_code == 201, r.text
    return name


def _fill(text: str, world: dict[str, Any], srv: Server, token: str | None = None) -> str:
    text = text.replace("{vehicle}", world["vehicle"]).replace("{vin}", world["vin"])
    text = text.replace("{cmd_a}", world["cmd"]["a"]).replace("{cmd_b}", world["cmd"]["b"])
    text = text.replace("{exec_a}", world["execution"]["a"])
    text = text.replace("{exec_b}", world["execution"]["b"])
    if "{user}" in text:
        text = text.replace("{user}", _fresh_user(srv))
    if "{account}" in text:
        text = text.replace("{account}", _fresh_account(srv))
    if "{fresh}" in text:
        text = text.replace("{fresh}", _fresh_vin(srv))
    for who in ("a", "b"):
        if f"{{run_{who}}}" in text:
            text = text.replace(f"{{run_{who}}}", _own_run(srv, world["tokens"][who]))
    if "{own_lock}" in text:
        text = text.replace("{own_lock}", _own_lock(srv, token, ""))
    if "{pdx}" in text:
        text = text.replace("{pdx}", f"authz{next(_counter)}")
    if "{stored_pdx}" in text:
        text = text.replace("{stored_pdx}", _stored_pdx(srv))
    if "{own_ecu_lock}" in text:
        text = text.replace("{own_ecu_lock}", _own_lock(srv, token, "/components/engine"))
    return text


@pytest.mark.parametrize("who", ["anonymous", "a", "b", "admin"])
@pytest.mark.parametrize(
    ("name", "method", "path", "body", "rule", "ok"), ROUTES, ids=[r[0] for r in ROUTES]
)
def test_http_matrix(
    world: dict[str, Any],
    who: str,
    name: str,
    method: str,
    path: str,
    body: Callable[[], Any] | None,
    rule: str,
    ok: int,
) -> None:
    srv: Server = world["srv"]
    token = world["tokens"][who]
    payload = body() if body else None
    if isinstance(payload, dict) and payload.get("vehicle_id") == "{vehicle}":
        payload["vehicle_id"] = world["vehicle"]
    headers = auth(token) if token else {}
    if isinstance(payload, bytes | str):  # a raw body: a PDX file, or a form
        form = isinstance(payload, str)
        headers["content-type"] = "application/x-www-form-urlencoded" if form else "application/zip"
        r = srv.http.request(
            method, _fill(path, world, srv, token), content=payload, headers=headers
        )
    else:
        r = srv.http.request(method, _fill(path, world, srv, token), json=payload, headers=headers)
    expected = _expected(rule, who, ok)
    assert r.status_code == expected, r.text
    if expected >= 400:
        error = r.json()  # the SOVD tree's GenericError names ours in vendor_code
        assert (
            error.get("vendor_code", error["error_code"])
            == {
                400: "incomplete-request",
                401: "unauthorized",
                403: "insufficient-access-rights",
                404: "not-found",
                405: "method-not-allowed",
                409: "conflict",
            }[expected]
        )


@pytest.mark.parametrize("who", ["anonymous", "a", "b", "admin"])
def test_token_routes_and_logout(world: dict[str, Any], who: str) -> None:
    srv: Server = world["srv"]
    tokens = (
        srv.login("engineer", ENGINEER_PASSWORD)
        if who in ("anonymous", "a")
        else (
            srv.login("bob", "other-password-1")
            if who == "b"
            else srv.login("admin", ADMIN_PASSWORD)
        )
    )
    r = srv.http.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200  # the refresh token itself is the credential
    fresh = r.json()["access_token"]
    r = srv.http.post("/api/v1/auth/logout", headers=auth(fresh) if who != "anonymous" else {})
    assert r.status_code == (401 if who == "anonymous" else 204)


@pytest.mark.parametrize(
    ("who", "command", "close"),
    [
        ("anonymous", "a", 1008),
        ("a", "a", 1000),
        ("b", "a", 4404),
        ("admin", "a", 1000),
        ("anonymous", "b", 1008),
        ("a", "b", 4404),
        ("b", "b", 1000),
        ("admin", "b", 1000),
    ],
)
def test_websocket_matrix(world: dict[str, Any], who: str, command: str, close: int) -> None:
    srv: Server = world["srv"]
    events, code = srv.stream(world["cmd"][command], world["tokens"][who])
    assert code == close
    assert bool(events) == (close == 1000)
