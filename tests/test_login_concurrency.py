"""Issue #8 item 1: parallel requests cannot get past the login throttle or the command rate.

Every attack here is real concurrency: many requests at once on their own connections to
the real server, or HTTP/2 streams reset right after sending. The password verifications
that actually ran are counted by wrapping the service's own argon2 hasher.
"""

from __future__ import annotations

import asyncio
import json
import socket
from ipaddress import ip_network
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import pytest

from tests.support.harness import (
    ADMIN_PASSWORD,
    DEADLINE_S,
    ENGINEER_PASSWORD,
    Server,
    auth,
    make_config,
    running,
    wait_until,
)
from tests.support.login_helpers import (
    LOGIN,
    Clock,
    count_verifications,
    fire,
    from_address,
    login_body,
    logins,
    statuses,
)
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket


@pytest.mark.parametrize("wrong", [30, 100])
def test_parallel_wrong_passwords_get_at_most_the_limit_of_verifications(
    tmp_path: Path, wrong: int
) -> None:
    clock = Clock()
    with running(make_config(tmp_path, password_hash_profile="fast"), clock=clock) as srv:
        hasher = count_verifications(srv)
        attempts = [("admin", f"wrong-password-{n}", None) for n in range(wrong)]
        responses = logins(srv, [*attempts, ("admin", ADMIN_PASSWORD, None)])
        counts = statuses(responses)
        assert set(counts) <= {200, 401, 429, 503}, counts
        # SOVD_LOGIN_MAX_FAILURES (5) wrong passwords were checked, whatever the concurrency.
        assert counts.get(401, 0) <= 5, counts
        assert hasher.started == counts.get(401, 0) + counts.get(200, 0), counts
        assert counts.get(429, 0) >= wrong - 5
        for r in responses:
            if r.status_code == 429:
                assert r.json()["error_code"] == "rate-limited"
                assert r.headers["retry-after"] == "60"  # the fake clock has not moved
            elif r.status_code == 503:
                assert r.json()["error_code"] == "overloaded"
                assert r.headers["retry-after"] == "1"
        clock.now += 25
        r = srv.http.post(LOGIN, json=login_body("admin", "wrong-again"))
        assert (r.status_code, r.headers["retry-after"]) == (429, "35")  # the real remainder
        clock.now += 35
        assert srv.login("admin", ADMIN_PASSWORD)["token_type"] == "bearer"


def test_parallel_submits_cannot_pass_the_command_rate(tmp_path: Path) -> None:
    clock = Clock()
    with running(make_config(tmp_path, command_rate_per_min=5), clock=clock) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        body = {
            "vehicle_id": vehicle_id,
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        }
        responses = fire(srv, [("/api/v1/commands", body, auth(token))] * 40)
        assert statuses(responses) == {201: 5, 429: 35}
        assert {r.headers["retry-after"] for r in responses if r.status_code == 429} == {"60"}
        assert srv.query("SELECT count(*) FROM commands") == [(5,)]
        clock.now += 60
        srv.submit(token, vehicle_id)


def _http2_logins_reset_at_once(srv: Server, count: int) -> int:
    """Send ``count`` logins with a wrong password on one HTTP/2 connection, resetting each
    stream right after its body; then one more that is not reset. Its status."""
    port = int(srv.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        body = json.dumps(login_body("admin", "wrong-password")).encode()
        headers = [
            (":method", "POST"),
            (":path", LOGIN),
            (":scheme", "http"),
            (":authority", f"127.0.0.1:{port}"),
            ("content-type", "application/json"),
            ("content-length", str(len(body))),
        ]
        for _ in range(count):
            stream = conn.get_next_available_stream_id()
            conn.send_headers(stream, headers)
            conn.send_data(stream, body, end_stream=True)
            conn.reset_stream(stream)
        probe = conn.get_next_available_stream_id()
        conn.send_headers(probe, headers)
        conn.send_data(probe, body, end_stream=True)
        sock.sendall(conn.data_to_send())
        status: int | None = None
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == probe:
                    status = int(dict(event.headers)[b":status"])
                if isinstance(event, h2.events.StreamEnded) and event.stream_id == probe:
                    assert status is not None
                    return status
            sock.sendall(conn.data_to_send())


def test_http2_streams_reset_right_after_sending_count_as_attempts(tmp_path: Path) -> None:
    with running(make_config(tmp_path, password_hash_profile="fast"), clock=Clock()) as srv:
        hasher = count_verifications(srv)
        assert _http2_logins_reset_at_once(srv, 30) == 429
        # Every stream was dispatched before the probe; wait until all have been handled.
        wait_until(
            lambda: (
                value(scrape(srv.http), "http_server_active_requests", http_request_method="POST")
                == 0
            ),
            "the reset streams to be handled",
        )
        assert 1 <= hasher.started <= 5


def test_password_checks_beyond_the_process_cap_get_503_not_a_queue(tmp_path: Path) -> None:
    config = make_config(
        tmp_path,
        trusted_proxies=(ip_network("127.0.0.1/32"),),
        login_max_concurrent=3,
        password_hash_profile="fast",
    )
    with running(config, clock=Clock()) as srv:
        hasher = count_verifications(srv, hold=True)

        async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
            limits = httpx.Limits(max_connections=20)
            async with httpx.AsyncClient(
                base_url=srv.base_url, timeout=DEADLINE_S, limits=limits
            ) as http:
                tasks = [
                    asyncio.create_task(
                        http.post(
                            LOGIN,
                            json=login_body(f"nobody{n}", "wrong-password"),
                            headers=from_address(f"10.0.0.{n + 1}"),
                        )
                    )
                    for n in range(20)
                ]
                # Three checks hold the hashing threads; the other 17 are answered at once.
                loop = asyncio.get_running_loop()
                deadline = loop.time() + DEADLINE_S
                while sum(t.done() for t in tasks) < 17:
                    assert loop.time() < deadline, "logins beyond the cap were not refused"
                    await asyncio.sleep(0.01)
                early = [t.result() for t in tasks if t.done()]
                # The three admitted checks reach the hasher's threads a moment later.
                while hasher.running < 3:
                    assert loop.time() < deadline, f"only {hasher.running} checks started"
                    await asyncio.sleep(0.01)
                hasher.release.set()
                return early, list(await asyncio.gather(*tasks))

        early, every = asyncio.run(scenario())
        assert statuses(early) == {503: 17}
        for r in early:
            assert r.json()["error_code"] == "overloaded"
            assert r.headers["retry-after"] == "1"
        assert statuses(every) == {503: 17, 401: 3}
        assert (hasher.started, hasher.max_running) == (3, 3)
        # The slots came back, and the refused logins were not counted as failures.
        assert srv.login("engineer", ENGINEER_PASSWORD)["token_type"] == "bearer"
        r = srv.http.post(
            LOGIN, json=login_body("nobody4", "wrong-password"), headers=from_address("10.0.0.5")
        )
        assert r.status_code == 401


def test_right_passwords_sent_together_from_one_address_all_get_in(tmp_path: Path) -> None:
    # Successes do not count: twenty at once from one address (a lab behind one NAT) are
    # checked one after the other, and none is throttled by the others still in flight.
    config = make_config(tmp_path, password_hash_profile="fast")
    with running(config, clock=Clock()) as srv:
        hasher = count_verifications(srv)
        responses = logins(srv, [("engineer", ENGINEER_PASSWORD, None)] * 20)
        assert statuses(responses) == {200: 20}
        assert hasher.started == 20 and hasher.max_running == 1
