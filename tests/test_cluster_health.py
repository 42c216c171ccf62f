"""Metrics and health per node on a cluster (issue #23 item 5): two ``python -m app`` nodes
on one PostgreSQL database and one NATS server.

Each node exports ``vehicle_connections_active`` for the vehicles whose lane it runs
only, so the sum over both scrapes is the fleet's count (as ``sum without (instance)``
is in Prometheus): A starts first and takes the demo fleet's lanes, B takes the lane of
a vehicle added later when its first command is submitted on B. ``/health/ready`` names
the database and the bus, turns 503 naming the bus on both nodes while NATS is stopped,
and comes back once it runs again; with PostgreSQL stopped too it names both.

The sweep is long (60 s) so that no lane moves unless the test moves it.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import pytest

from tests.support.harness import wait_until
from tests.support.nats import NatsServer
from tests.support.postgres import start_server
from tests.support.process import Process, admin_headers, cluster_env, submit_command
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket

ADMIN_PASSWORD = "admin-password-1"  # server_env's


def _node(tmp_path: Path, name: str, database_url: str, bus_url: str, key: str) -> Process:
    return Process(
        cluster_env(
            tmp_path / name,
            database_url,
            bus_url,
            SOVD_LANE_SWEEP_S="60",
            SOVD_JWT_SECRET=key,  # shared: a token from one node works on the other
        )
    )


def _gauges(node: Process) -> tuple[float, float]:
    """(vehicle_connections_active, sovd_lanes_owned) of one scrape."""
    samples = scrape(node.http)
    return value(samples, "vehicle_connections_active"), value(samples, "sovd_lanes_owned")


def _fleet(node: Process, headers: dict[str, str]) -> tuple[int, int]:
    """(connected vehicles, vehicles) as the shared database holds them."""
    totals = []
    for params in ({"status": "connected", "limit": 1}, {"limit": 1}):
        r = node.http.get("/api/v1/vehicles", headers=headers, params=params)
        assert r.status_code == 200, r.text
        totals.append(int(r.json()["total"]))
    return totals[0], totals[1]


def test_each_node_exports_its_own_lanes_and_readiness_names_the_bus(
    tmp_path: Path, postgres_url: str
) -> None:
    nats = NatsServer(tmp_path / "nats").start()
    key = secrets.token_hex(32)
    a = _node(tmp_path, "a", postgres_url, nats.url, key)
    b: Process | None = None
    try:
        wait_until(
            lambda: [r for r in a.log_records() if r.get("event") == "lanes_taken"],
            "A to take the demo fleet's lanes",
        )
        b = _node(tmp_path, "b", postgres_url, nats.url, key)
        admin = admin_headers(b)
        connected, vehicles = _fleet(b, admin)
        assert connected > 0
        # Single-node behaviour would export `connected` on both: a sum of twice the fleet.
        assert _gauges(a) == (connected, vehicles)
        assert _gauges(b) == (0, 0)

        # A vehicle added on B; its first command, submitted on B, makes its lane B's.
        added = b.http.post(
            "/api/v1/vehicles",
            headers=admin,
            json={"vin": "WCLUSTER000000001", "make": "Bench", "model": "Two", "year": 2024},
        )
        assert added.status_code == 201, added.text
        assert added.json()["connection_status"] == "connected"
        submit_command(b, b.token(), added.json()["vehicle_id"])
        wait_until(lambda: _gauges(b) == (1, 1), "B to export its one lane's vehicle")
        assert _gauges(a) == (connected, vehicles)  # A's lanes unchanged
        assert _fleet(a, admin) == (connected + 1, vehicles + 1)  # the sum is the fleet

        # One of A's vehicles disconnected, through A: only A's gauge moves.
        on_a = a.http.get("/api/v1/vehicles", headers=admin, params={"status": "connected"}).json()[
            "items"
        ]
        mine = next(v["vehicle_id"] for v in on_a if v["vin"] != "WCLUSTER000000001")
        patched = a.http.patch(
            f"/api/v1/vehicles/{mine}", headers=admin, json={"connection_status": "disconnected"}
        )
        assert patched.status_code == 200, patched.text
        assert _gauges(a) == (connected - 1, vehicles)
        assert _gauges(b) == (1, 1)
        assert sum(_gauges(n)[0] for n in (a, b)) == _fleet(a, admin)[0] == connected

        for node in (a, b):
            ready = node.http.get("/health/ready")
            assert ready.status_code == 200, ready.text
            assert (ready.json()["database"], ready.json()["bus"]) == ("postgresql", "nats")

        nats.stop()  # both nodes lose the bus: a balancer must send clients elsewhere
        for node in (a, b):
            ready = node.http.get("/health/ready")
            assert ready.status_code == 503, ready.text
            body = ready.json()
            assert body["error_code"] == "not-ready"
            assert body["message"] == "the bus (nats) did not answer within 1 s"
        nats.start()  # the same port: both reconnect on their own
        for node in (a, b):
            wait_until(
                lambda n=node: n.http.get("/health/ready").status_code == 200,  # type: ignore[misc]
                "ready again once NATS runs",
            )
    finally:
        if b is not None:
            b.stop(signal.SIGKILL)
        a.stop(signal.SIGKILL)
        nats.stop()


def test_readiness_names_the_database_and_the_bus_when_they_are_down(tmp_path: Path) -> None:
    """A node of its own on a PostgreSQL server of its own (stopped here, which the
    session's shared one must not be): 503 naming the database, then both."""
    pg = start_server()
    nats = NatsServer(tmp_path / "nats").start()
    node: Process | None = None
    try:
        node = _node(tmp_path, "a", pg.fresh_database(), nats.url, secrets.token_hex(32))
        assert node.http.get("/health/ready").status_code == 200
        pg.stop()
        ready = node.http.get("/health/ready")
        assert ready.status_code == 503, ready.text
        down = ready.json()["message"]
        assert down.startswith("the database (postgresql) ") and "bus" not in down, down
        nats.stop()
        ready = node.http.get("/health/ready")
        assert ready.status_code == 503
        database, bus = ready.json()["message"].split("; ")
        assert database.startswith("the database (postgresql) ")
        assert bus == "the bus (nats) did not answer within 1 s"
    finally:
        if node is not None:
            node.stop(signal.SIGKILL)
        nats.stop()
        pg.stop()
