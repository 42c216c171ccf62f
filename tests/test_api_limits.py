"""Login throttling, the per-user command limit, trusted proxies and CORS, over HTTP.

Time is a fake clock the test moves: no sleeps.
"""

from __future__ import annotations

from ipaddress import ip_network
from pathlib import Path

import httpx
import pytest

from tests.support.fake_clock import FakeClock as Clock
from tests.support.harness import ENGINEER_PASSWORD, Server, auth, in_process, make_config
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.fast


def _login(srv: Server, username: str, password: str, **headers: str) -> int:
    r = srv.http.post(
        "/api/v1/auth/login", json={"username": username, "password": password}, headers=headers
    )
    if r.status_code == 429:
        assert r.json()["error_code"] == "rate-limited"
        return int(r.headers["retry-after"]) * 1000 + 429
    return r.status_code


def test_five_failures_a_minute_then_429_with_the_real_retry_after(tmp_path: Path) -> None:
    clock = Clock()
    with in_process(make_config(tmp_path), clock=clock) as srv:
        for _ in range(5):
            assert _login(srv, "engineer", "wrong-password") == 401
            clock.now += 6  # failures at t, t+6, ... t+24
        # Now t+30: the first failure leaves the window at t+60, in 30 s.
        assert _login(srv, "engineer", "wrong-password") == 30 * 1000 + 429
        # Even the right password is refused while throttled.
        assert _login(srv, "engineer", ENGINEER_PASSWORD) == 30 * 1000 + 429
        clock.now += 30
        assert _login(srv, "engineer", ENGINEER_PASSWORD) == 200
        samples = scrape(srv.http)
        assert value(samples, "sovd_authentication_failures_total", reason="bad_credentials") == 5
        assert value(samples, "sovd_authentication_failures_total", reason="throttled") == 2
        admin = srv.admin_token()
        audit = srv.http.get("/api/v1/audit", headers=auth(admin), params={"limit": 200}).json()
        actions = [e["action"] for e in audit["items"]]
        assert actions.count("auth.login_failed") == 5
        # Refusals are audited once per limit per window: the address and the username.
        assert actions.count("auth.login_throttled") == 2


def test_successes_do_not_count_and_the_address_limit_covers_every_username(
    tmp_path: Path,
) -> None:
    clock = Clock()
    with in_process(make_config(tmp_path), clock=clock) as srv:
        for _ in range(10):
            assert _login(srv, "engineer", ENGINEER_PASSWORD) == 200
        # Five different unknown usernames from one address: the address is throttled.
        for n in range(5):
            assert _login(srv, f"nobody{n}", "wrong-password") == 401
        assert _login(srv, "admin", "wrong-password") > 1000  # 429, whatever the name
        assert _login(srv, "engineer", ENGINEER_PASSWORD) > 1000


def test_forwarded_for_counts_only_from_a_trusted_proxy(tmp_path: Path) -> None:
    clock = Clock()
    config = make_config(tmp_path, trusted_proxies=(ip_network("127.0.0.1/32"),))
    with in_process(config, clock=clock) as srv:
        # Behind the trusted proxy, two clients are two addresses.
        for _ in range(5):
            assert _login(srv, f"x{_}", "wrong-password", **{"X-Forwarded-For": "10.1.1.1"}) == 401
        assert _login(srv, "y", "wrong-password", **{"X-Forwarded-For": "10.1.1.1"}) > 1000
        assert _login(srv, "engineer", ENGINEER_PASSWORD, **{"X-Forwarded-For": "10.2.2.2"}) == 200
        admin = srv.admin_token()
        audit = srv.http.get(
            "/api/v1/audit", headers=auth(admin), params={"action": "auth.login_failed"}
        ).json()
        assert {e["client_address"] for e in audit["items"]} == {"10.1.1.1"}
    clock = Clock()
    with in_process(make_config(tmp_path / "untrusted"), clock=clock) as srv:
        # Without trusted proxies the header is ignored: one address, one limit.
        for n in range(5):
            assert _login(srv, f"x{n}", "wrong", **{"X-Forwarded-For": f"10.0.0.{n}"}) == 401
        assert _login(srv, "engineer", ENGINEER_PASSWORD, **{"X-Forwarded-For": "10.9.9.9"}) > 1000


def test_a_forged_forwarded_for_line_before_the_proxys_own_is_not_believed(
    tmp_path: Path,
) -> None:
    """A proxy that appends its own X-Forwarded-For line (HAProxy's ``option forwardfor``)
    after one the client sent: the client's address is the proxy's line, not the forged
    one, so forging cannot spread one client's failures over made-up addresses."""
    config = make_config(tmp_path, trusted_proxies=(ip_network("127.0.0.1/32"),))
    with in_process(config, clock=Clock()) as srv:
        for n in range(5):
            lines = [("X-Forwarded-For", f"203.0.113.{n}"), ("X-Forwarded-For", "10.1.1.1")]
            r = srv.http.post(
                "/api/v1/auth/login",
                json={"username": f"x{n}", "password": "wrong-password"},
                headers=httpx.Headers(lines),
            )
            assert r.status_code == 401, r.text
        forged = [("X-Forwarded-For", "203.0.113.99"), ("X-Forwarded-For", "10.1.1.1")]
        r = srv.http.post(
            "/api/v1/auth/login",
            json={"username": "y", "password": "wrong-password"},
            headers=httpx.Headers(forged),
        )
        assert r.status_code == 429, r.text  # the one real address, at its limit
        audit = srv.http.get(
            "/api/v1/audit", headers=auth(srv.admin_token()), params={"action": "auth.login_failed"}
        ).json()
        assert {e["client_address"] for e in audit["items"]} == {"10.1.1.1"}


def test_per_user_command_limit(tmp_path: Path) -> None:
    clock = Clock()
    with in_process(make_config(tmp_path, command_rate_per_min=3), clock=clock) as srv:
        alice = srv.token()
        bob = srv.create_engineer("bob")
        vehicle_id = srv.vehicle(alice)["vehicle_id"]
        for _ in range(3):
            srv.submit(alice, vehicle_id)
            clock.now += 1
        r = srv.http.post(
            "/api/v1/commands",
            headers=auth(alice),
            json={
                "vehicle_id": vehicle_id,
                "command_name": "ReadDTC",
                "command_params": {"ecuAddress": "0x10"},
            },
        )
        assert r.status_code == 429 and r.json()["error_code"] == "rate-limited"
        assert r.headers["retry-after"] == "57"
        srv.submit(bob, vehicle_id)  # other users are not affected
        clock.now += 57
        srv.submit(alice, vehicle_id)
        assert srv.query("SELECT count(*) FROM commands") == [(5,)]


def test_cors_is_off_unless_origins_are_listed(tmp_path: Path) -> None:
    preflight = {"Origin": "https://lab.example", "Access-Control-Request-Method": "POST"}
    with in_process(make_config(tmp_path)) as srv:
        r = srv.http.get("/health/live", headers={"Origin": "https://lab.example"})
        assert "access-control-allow-origin" not in r.headers
    config = make_config(tmp_path / "cors", cors_origins=("https://lab.example",))
    with in_process(config) as srv:
        r = srv.http.options("/api/v1/commands", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://lab.example"
        r = srv.http.options(
            "/api/v1/users/x", headers={**preflight, "Access-Control-Request-Method": "DELETE"}
        )
        assert r.status_code == 200
        assert "DELETE" in r.headers["access-control-allow-methods"]
        r = srv.http.get("/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        r = srv.http.options(
            "/api/v1/commands", headers={**preflight, "Origin": "https://evil.example"}
        )
        assert r.status_code == 400
