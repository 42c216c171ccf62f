"""Limits hold across nodes (issue #23 item 4): the round-2 race tests against two real
``python -m app`` nodes on one PostgreSQL database and one NATS server, every burst of
requests sent at once and spread over both nodes (even ones to A, odd ones to B).

- Failed logins for one username and address beyond SOVD_LOGIN_MAX_FAILURES are refused
  whichever node they reach, and no more password checks run than that (both nodes'
  ``sovd_authentication_failures_total{reason="bad_credentials"}`` summed).
- A user's command rate (SOVD_COMMAND_RATE_PER_MIN) holds over both.
- A user's share of a vehicle's lane (SOVD_VEHICLE_QUEUE_PER_USER) holds over both: only
  the lane's owner admits, the other node forwards to it.
- SOVD locks: two users racing for conflicting locks on one vehicle through two nodes,
  exactly one wins; a lock taken through A refuses another user's state-changing call
  through B, and its release through B lets it through A.

B starts first and takes every lane; A runs none, so everything for a vehicle sent to A
is forwarded to B. The nodes share a signing key: a token from one is good on the other.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.harness import ADMIN_PASSWORD, DEADLINE_S, ENGINEER_PASSWORD, wait_until
from tests.support.login_helpers import LOGIN, from_address, login_body, statuses
from tests.support.nats import NatsServer
from tests.support.postgres import PostgresServer
from tests.support.process import Process, cluster_env, vehicle_with_profile
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket

MAX_FAILURES = 5
RATE_PER_MIN = 10
SHARE = 3
COMMANDS = "/api/v1/commands"
Request = tuple[str, dict[str, Any], dict[str, str]]


class Cluster:
    def __init__(self, a: Process, b: Process, database: str, server: PostgresServer) -> None:
        self.a, self.b = a, b
        self.nodes = (a, b)
        self._database = database
        self._server = server

    def sql(self, query: str) -> str:
        return self._server.psql(query, self._database)

    def token(self, node: Process, username: str, password: str) -> str:
        r = node.http.post(LOGIN, json=login_body(username, password))
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def engineer(self, username: str) -> str:
        """A new engineer (a command rate of their own); their token."""
        admin = self.token(self.b, "admin", ADMIN_PASSWORD)
        r = self.b.http.post(
            "/api/v1/users",
            headers={"Authorization": f"Bearer {admin}"},
            json={"username": username, "password": "other-password-1", "role": "engineer"},
        )
        assert r.status_code == 201, r.text
        return self.token(self.a, username, "other-password-1")

    def spread(self, requests: list[Request]) -> list[httpx.Response]:
        """Every request at once, on its own connection, the even ones to A, the odd
        ones to B; the responses in order."""
        return asyncio.run(self._send(requests))

    async def _send(self, requests: list[Request]) -> list[httpx.Response]:
        limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
        async with (
            httpx.AsyncClient(base_url=self.a.base_url, timeout=DEADLINE_S, limits=limits) as a,
            httpx.AsyncClient(base_url=self.b.base_url, timeout=DEADLINE_S, limits=limits) as b,
        ):
            return list(
                await asyncio.gather(
                    *(
                        (a, b)[i % 2].post(path, json=body, headers=headers)
                        for i, (path, body, headers) in enumerate(requests)
                    )
                )
            )


def _node(folder: Any, database_url: str, bus_url: str, signing_key: str) -> Process:
    return Process(
        cluster_env(
            folder,
            database_url,
            bus_url,
            SOVD_JWT_SECRET=signing_key,
            SOVD_LANE_SWEEP_S="0.2",
            SOVD_TRUSTED_PROXIES="127.0.0.1/32",  # the tests name the client's address
            SOVD_LOGIN_MAX_FAILURES=str(MAX_FAILURES),
            SOVD_COMMAND_RATE_PER_MIN=str(RATE_PER_MIN),
            SOVD_VEHICLE_QUEUE_PER_USER=str(SHARE),
            SOVD_COMMAND_TIMEOUT_S="30",  # the "timeout" vehicle's commands stay queued
        )
    )


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory,
    postgres_server: PostgresServer,
    nats_server: NatsServer,
) -> Iterator[Cluster]:
    url = postgres_server.fresh_database()
    folder = tmp_path_factory.mktemp("cluster")
    key = secrets.token_hex(32)
    b = _node(folder / "b", url, nats_server.url, key)
    a: Process | None = None
    try:
        wait_until(
            lambda: any(r.get("event") == "lanes_taken" for r in b.log_records()),
            "B to take the lanes",
        )
        a = _node(folder / "a", url, nats_server.url, key)
        yield Cluster(a, b, url.rsplit("/", 1)[1], postgres_server)
    finally:
        if a is not None:
            a.stop(signal.SIGKILL)
        b.stop(signal.SIGKILL)


def _failures(node: Process, reason: str) -> float:
    return value(scrape(node.http), "sovd_authentication_failures_total", reason=reason)


def test_failed_logins_beyond_the_limit_are_refused_on_either_node(cluster: Cluster) -> None:
    checked = sum(_failures(n, "bad_credentials") for n in cluster.nodes)
    attacker = from_address("203.0.113.7")
    attempts = [(LOGIN, login_body("admin", f"wrong-password-{n}"), attacker) for n in range(40)]
    responses = cluster.spread(attempts)
    counts = statuses(responses)
    assert set(counts) <= {401, 429, 503}, counts
    # At most the limit of wrong passwords was checked over both nodes together (one
    # node's throttle alone would let each node check that many).
    assert 1 <= counts.get(401, 0) <= MAX_FAILURES, counts
    assert counts.get(429, 0) >= 40 - MAX_FAILURES - counts.get(503, 0), counts
    ran = sum(_failures(n, "bad_credentials") for n in cluster.nodes) - checked
    assert ran == counts.get(401, 0)
    # The address is refused now on both nodes, even for another username.
    for node in cluster.nodes:
        r = node.http.post(LOGIN, json=login_body("engineer", "wrong-again"), headers=attacker)
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 1, r.text
    # The right password from an address that has not failed still gets in, on either.
    for node in cluster.nodes:
        cluster.token(node, "engineer", ENGINEER_PASSWORD)


def test_a_username_guessed_from_many_addresses_on_both_nodes_gets_twice_the_limit(
    cluster: Cluster,
) -> None:
    cluster.engineer("henry")  # logged in once from 127.0.0.1: a known address
    checked = sum(_failures(n, "bad_credentials") for n in cluster.nodes)
    attempts = [
        (LOGIN, login_body("henry", f"wrong-password-{n}"), from_address(f"198.51.100.{n}"))
        for n in range(40)
    ]
    counts = statuses(cluster.spread(attempts))
    # N on the username's window and N more from addresses with no failure (the
    # clean-address allowance), over both nodes together.
    assert counts.get(401, 0) <= 2 * MAX_FAILURES, counts
    assert counts.get(401, 0) + counts.get(503, 0) >= 2 * MAX_FAILURES, counts
    ran = sum(_failures(n, "bad_credentials") for n in cluster.nodes) - checked
    assert ran == counts.get(401, 0)
    for node in cluster.nodes:  # a fresh address is refused now, on either node
        r = node.http.post(
            LOGIN, json=login_body("henry", "other-password-1"), headers=from_address("192.0.2.1")
        )
        assert r.status_code == 429, r.text
    # The known address still gets in, whichever node it calls.
    for node in cluster.nodes:
        cluster.token(node, "henry", "other-password-1")


def test_the_command_rate_holds_over_both_nodes(cluster: Cluster) -> None:
    token = cluster.token(cluster.a, "engineer", ENGINEER_PASSWORD)
    vehicle = vehicle_with_profile(cluster.a, token, "healthy")
    before = int(cluster.sql("SELECT count(*) FROM commands"))
    body = {
        "vehicle_id": vehicle,
        "command_name": "ReadDTC",
        "command_params": {"ecuAddress": "0x10"},
    }
    headers = {"Authorization": f"Bearer {token}"}
    responses = cluster.spread([(COMMANDS, body, headers)] * 40)
    # Exactly the rate passed its check over both nodes; of those, the ones beyond the
    # user's share of the vehicle's lane were refused there (429 saying so).
    over_rate = [r for r in responses if "commands per minute" in r.text]
    assert len(over_rate) == 40 - RATE_PER_MIN, statuses(responses)
    assert {r.status_code for r in over_rate} == {429}
    assert all(1 <= int(r.headers["retry-after"]) <= 60 for r in over_rate)
    accepted = [r for r in responses if r.status_code == 201]
    over_share = [r for r in responses if "commands queued" in r.text]
    assert len(accepted) + len(over_share) == RATE_PER_MIN, statuses(responses)
    assert len(accepted) >= SHARE
    assert int(cluster.sql("SELECT count(*) FROM commands")) == before + len(accepted)
    # Another user has a rate of their own.
    admin = cluster.token(cluster.b, "admin", ADMIN_PASSWORD)
    r = cluster.b.http.post(COMMANDS, json=body, headers={"Authorization": f"Bearer {admin}"})
    assert r.status_code == 201, r.text


def test_a_users_share_of_a_lane_holds_over_both_nodes(cluster: Cluster) -> None:
    token = cluster.token(cluster.b, "admin", ADMIN_PASSWORD)
    vehicle = vehicle_with_profile(cluster.b, token, "timeout")  # its commands wait
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "vehicle_id": vehicle,
        "command_name": "ReadDTC",
        "command_params": {"ecuAddress": "0x10"},
    }
    responses = cluster.spread([(COMMANDS, body, headers)] * 8)  # within the rate
    assert statuses(responses) == {201: SHARE, 429: 8 - SHARE}
    refused = [r.json()["message"] for r in responses if r.status_code == 429]
    assert all(f"you already have {SHARE} commands queued" in m for m in refused), refused
    accepted = [i for i, r in enumerate(responses) if r.status_code == 201]
    for i in accepted:
        command = responses[i].json()["command_id"]
        r = cluster.a.http.post(f"{COMMANDS}/{command}/cancel", headers=headers)
        assert r.status_code == 200, r.text
    wait_until(
        lambda: (
            cluster.sql(
                f"SELECT count(*) FROM commands WHERE vehicle_id = '{vehicle}'"
                " AND status IN ('pending', 'in_progress')"
            )
            == "0"
        ),
        "the accepted commands to end cancelled",
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _healthy_vin(cluster: Cluster, token: str) -> tuple[str, str]:
    items = cluster.a.http.get(
        "/api/v1/vehicles", headers=_bearer(token), params={"status": "connected"}
    ).json()["items"]
    found = next(v for v in items if v["simulator_profile"] == "healthy")
    return str(found["vehicle_id"]), str(found["vin"])


def test_two_users_racing_for_a_vehicles_lock_through_two_nodes_get_one(
    cluster: Cluster,
) -> None:
    engineer = _bearer(cluster.token(cluster.a, "engineer", ENGINEER_PASSWORD))
    admin = _bearer(cluster.token(cluster.b, "admin", ADMIN_PASSWORD))
    _, vin = _healthy_vin(cluster, engineer["Authorization"].split()[1])
    locks = f"/sovd/vehicles/{vin}/v1/locks"
    body = {"lock_expiration": 60}
    # Each user sends four at once, two through each node (even: A, odd: B).
    sent = [engineer, admin, admin, engineer] * 2
    responses = cluster.spread([(locks, body, who) for who in sent])
    won = [who for who, r in zip(sent, responses, strict=True) if r.status_code == 201]
    assert won and all(who == won[0] for who in won), statuses(responses)
    assert len(won) == 4  # the winner's own locks never stand in each other's way
    lost = [r for who, r in zip(sent, responses, strict=True) if who != won[0]]
    assert {(r.status_code, r.json()["error_code"]) for r in lost} == {
        (409, "precondition-not-fulfilled")
    }
    loser = admin if won[0] == engineer else engineer
    ids = sorted(r.json()["id"] for r in responses if r.status_code == 201)
    for node in cluster.nodes:  # the same locks, whichever node is asked
        items = node.http.get(locks, headers=won[0]).json()["items"]
        assert sorted(i["id"] for i in items) == ids and all(i["owned"] for i in items)
        items = node.http.get(locks, headers=loser).json()["items"]
        assert sorted(i["id"] for i in items) == ids and not any(i["owned"] for i in items)
    for n, lock_id in enumerate(ids):  # released through either node
        r = cluster.nodes[n % 2].http.delete(f"{locks}/{lock_id}", headers=won[0])
        assert r.status_code == 204, r.text
    assert cluster.b.http.get(locks, headers=loser).json()["items"] == []


def test_a_lock_taken_through_one_node_refuses_changes_through_the_other(
    cluster: Cluster,
) -> None:
    holder_token = cluster.engineer("carol")
    holder = _bearer(holder_token)
    other = _bearer(cluster.engineer("dave"))  # another engineer
    vehicle_id, vin = _healthy_vin(cluster, holder_token)
    engine = f"/sovd/vehicles/{vin}/v1/components/engine"
    clear = {
        "vehicle_id": vehicle_id,
        "command_name": "ClearDTC",
        "command_params": {"ecuAddress": "0x10"},
    }
    read = {**clear, "command_name": "ReadDTC"}
    for locked_on, called_on in ((cluster.a, cluster.b), (cluster.b, cluster.a)):
        r = locked_on.http.post(f"{engine}/locks", headers=holder, json={"lock_expiration": 60})
        assert r.status_code == 201, r.text
        lock_id = r.json()["id"]
        # The other node refuses another user's state-changing calls, naming the holder.
        r = called_on.http.post(COMMANDS, headers=other, json=clear)
        assert r.status_code == 409 and r.json()["error_code"] == "precondition-not-fulfilled"
        assert "carol" in r.json()["message"]
        session = {**clear, "command_name": "DiagnosticSessionControl"}
        session["command_params"] = {"ecuAddress": "0x10", "session": "extended"}
        r = called_on.http.post(COMMANDS, headers=other, json=session)
        assert r.status_code == 409 and "carol" in r.json()["message"], r.text
        # Reads are never blocked; the holder's own changes are not either.
        assert called_on.http.post(COMMANDS, headers=other, json=read).status_code == 201
        assert called_on.http.post(COMMANDS, headers=holder, json=clear).status_code == 201
        # Released through the node that refused: the other user's change goes through.
        r = called_on.http.delete(f"{engine}/locks/{lock_id}", headers=holder)
        assert r.status_code == 204, r.text
        r = locked_on.http.post(COMMANDS, headers=other, json=clear)
        assert r.status_code == 201, r.text


def _wait_status(node: Process, headers: dict[str, str], command_id: str, status: str) -> Any:
    def stored() -> Any:
        found = node.http.get(f"{COMMANDS}/{command_id}", headers=headers).json()
        return found if found["status"] == status else None

    return wait_until(stored, f"command {command_id} to be {status}")


def test_a_lock_through_one_node_withdraws_what_another_user_queued_through_the_other(
    cluster: Cluster,
) -> None:
    holder = _bearer(cluster.engineer("erin"))
    other = _bearer(cluster.engineer("frank"))
    vehicle = vehicle_with_profile(cluster.a, holder["Authorization"].split()[1], "timeout")
    read = {
        "vehicle_id": vehicle,
        "command_name": "ReadDTC",
        "command_params": {"ecuAddress": "0x10"},
    }
    clear = {**read, "command_name": "ClearDTC"}
    # The holder's read holds the lane (that vehicle never answers); the other user's
    # clear, sent through B, waits behind it.
    r = cluster.a.http.post(COMMANDS, headers=holder, json=read)
    assert r.status_code == 201, r.text
    running = r.json()["command_id"]
    _wait_status(cluster.a, holder, running, "in_progress")
    r = cluster.b.http.post(COMMANDS, headers=other, json=clear)
    assert r.status_code == 201, r.text
    queued = r.json()["command_id"]
    # The lock, taken through A, withdraws it: never sent, cancelled by the holder.
    vin = cluster.a.http.get(f"/api/v1/vehicles/{vehicle}", headers=holder).json()["vin"]
    r = cluster.a.http.post(
        f"/sovd/vehicles/{vin}/v1/locks", headers=holder, json={"lock_expiration": 60}
    )
    assert r.status_code == 201, r.text
    withdrawn = _wait_status(cluster.a, other, queued, "cancelled")
    assert withdrawn["error_code"] == "locked-out"
    assert "was locked by erin until" in withdrawn["error_message"]
    # What went to the vehicle before the lock is left running; stopped here.
    assert cluster.b.http.get(f"{COMMANDS}/{running}", headers=holder).json()["status"] == (
        "in_progress"
    )
    r = cluster.b.http.post(f"{COMMANDS}/{running}/cancel", headers=holder)
    assert r.status_code == 200, r.text
    r = cluster.b.http.delete(
        f"/sovd/vehicles/{vin}/v1/locks/{_only_lock(cluster, vin, holder)}", headers=holder
    )
    assert r.status_code == 204, r.text


def _only_lock(cluster: Cluster, vin: str, headers: dict[str, str]) -> str:
    items = cluster.b.http.get(f"/sovd/vehicles/{vin}/v1/locks", headers=headers).json()["items"]
    assert len(items) == 1, items
    return str(items[0]["id"])


def test_one_user_cannot_take_more_locks_than_allowed_through_two_nodes(
    cluster: Cluster,
) -> None:
    greedy = _bearer(cluster.engineer("grace"))
    _, vin = _healthy_vin(cluster, greedy["Authorization"].split()[1])
    locks = f"/sovd/vehicles/{vin}/v1/locks"
    responses = cluster.spread([(locks, {"lock_expiration": 60}, greedy)] * 12)
    assert statuses(responses) == {201: 8, 409: 4}  # SOVD_LOCKS_PER_USER (8)
    refused = [r.json()["message"] for r in responses if r.status_code == 409]
    assert all("the most one user may hold" in m for m in refused), refused
    admin = _bearer(cluster.token(cluster.a, "admin", ADMIN_PASSWORD))
    # An admin breaks them all through A; the holder is told once, through B.
    assert cluster.a.http.delete(locks, headers=admin).status_code == 204
    ids = [r.json()["id"] for r in responses if r.status_code == 201]
    r = cluster.b.http.put(f"{locks}/{ids[0]}", headers=greedy, json={"lock_expiration": 60})
    assert (r.status_code, r.json()["error_code"]) == (409, "lock-broken"), r.text
    assert "with every lock of vehicle" in r.json()["message"]
    r = cluster.b.http.put(f"{locks}/{ids[1]}", headers=greedy, json={"lock_expiration": 60})
    assert r.status_code == 404, r.text  # told once for all of them
    assert cluster.a.http.get(locks, headers=greedy).json()["items"] == []
