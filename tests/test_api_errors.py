"""The error contract, request ids and headers, across routes."""

import pytest

from tests.support.harness import Server, auth

pytestmark = pytest.mark.fast

ERROR_KEYS = {"error_code", "message", "request_id"}


def test_unknown_route_and_method(server: Server) -> None:
    r = server.http.get("/api/v1/nothing-here")
    assert r.status_code == 404 and set(r.json()) == ERROR_KEYS
    assert r.json()["error_code"] == "not-found"
    r = server.http.delete("/api/v1/vehicles", headers=auth(server.token()))
    assert r.status_code == 405 and r.json()["error_code"] == "method-not-allowed"


def test_request_id_is_echoed_when_sane_and_made_up_otherwise(server: Server) -> None:
    r = server.http.get("/api/v1/vehicles", headers={"X-Request-ID": "trace-42.a:b"})
    assert r.headers["x-request-id"] == "trace-42.a:b"
    assert r.json()["request_id"] == "trace-42.a:b"
    r = server.http.get("/api/v1/vehicles", headers={"X-Request-ID": "bad id <script>"})
    assert r.headers["x-request-id"] != "bad id <script>"
    assert r.json()["request_id"] == r.headers["x-request-id"]
    assert len(r.headers["x-request-id"]) == 32
    assert server.http.get("/health/live").headers["x-request-id"]


def test_security_headers_on_every_response(server: Server) -> None:
    for r in (server.http.get("/health/live"), server.http.get("/api/v1/vehicles")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
    assert server.http.get("/api/v1/vehicles").headers["cache-control"] == "no-store"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code", "named"),
    [
        (b"{not json", "application/json", 400, "incomplete-request", "JSON"),
        (b'{"username": "a"}', "text/plain", 400, "incomplete-request", "Content-Type"),
        (b"[1, 2]", "application/json", 400, "incomplete-request", "object"),
        (
            b'{"username": 5, "password": "x"}',
            "application/json",
            400,
            "incomplete-request",
            "username",
        ),
        (b'{"password": "x"}', "application/json", 400, "incomplete-request", "username"),
        (
            b'{"username": "a", "password": "b", "otp": 1}',
            "application/json",
            400,
            "incomplete-request",
            "otp",
        ),
        (
            b'{"username": "a\\u0000", "password": "b"}',
            "application/json",
            400,
            "incomplete-request",
            "NUL",
        ),
        (
            b'{"username": "' + b"a" * 70_000 + b'", "password": "b"}',
            "application/json",
            413,
            "payload-too-large",
            "bytes",
        ),
        (b'{"a":' * 20 + b"1" + b"}" * 20, "application/json", 400, "incomplete-request", "nested"),
        (b"\xff\xfe", "application/json", 400, "incomplete-request", "JSON"),
    ],
)
def test_bad_bodies_get_clear_errors(
    shared_server: Server, content: bytes, content_type: str, status: int, code: str, named: str
) -> None:
    r = shared_server.http.post(
        "/api/v1/auth/login", content=content, headers={"Content-Type": content_type}
    )
    assert r.status_code == status, r.text
    assert set(r.json()) == ERROR_KEYS
    assert r.json()["error_code"] == code
    assert named in r.json()["message"]
    # The connection (or a new one) still serves the next request.
    assert shared_server.http.get("/health/live").status_code == 200


@pytest.mark.socket  # the connection is a real one
def test_unread_body_on_an_early_error_keeps_the_connection_usable(server: Server) -> None:
    for _ in range(5):
        r = server.http.post("/api/v1/vehicles", json={"vin": "x"})  # 401 before the body
        assert r.status_code == 401
        assert server.http.get("/health/live").status_code == 200


def test_health(server: Server) -> None:
    assert server.http.get("/health/live").json() == {"status": "ok"}
    assert server.http.get("/health/ready").json() == {
        "status": "ok",
        "database": "sqlite",
        "bus": "in-process",
        "descriptions_loading": [],
        "lanes_owned": None,
    }


def test_ready_is_503_once_draining(server: Server) -> None:
    server.run(server.services.pipeline.drain(0))
    r = server.http.get("/health/ready")
    assert r.status_code == 503 and set(r.json()) == ERROR_KEYS
    assert server.http.get("/health/live").status_code == 200
    token = server.token()
    r = server.http.post(
        "/api/v1/commands",
        headers=auth(token),
        json={
            "vehicle_id": server.vehicle(token)["vehicle_id"],
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    assert r.status_code == 503 and r.json()["error_code"] == "overloaded"
    assert "retry-after" in r.headers
