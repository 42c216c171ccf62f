"""Issue #23's bars on one node: the service on PostgreSQL + NATS (a cluster's backend: lane
leases, events through NATS) against the same service on SQLite + the in-process bus,
alternately, with the same clients. Both a pipeline (commands/s, bar 0.7) and the fleet
page (``/api/v1/vehicles?limit=50`` under wrk, bar 0.8).

The scenario starts its own PostgreSQL (bench.postgres; durability as it comes) and
``nats-server`` (bench.bus). The service node is pinned to one core and the clients to
the other, as in every scenario; PostgreSQL and NATS are not pinned: on this two-core
machine their CPU comes out of both, which is part of what a node on them costs here.
"""

from __future__ import annotations

import argparse
from contextlib import ExitStack

from bench.bus import nats_server
from bench.common import Result, median, ratio_of, servers, start_server
from bench.http_scenarios import FLEET_PAGE, alternate_pages
from bench.pipeline import create_fleet
from bench.pipeline_scenarios import alternate_pipeline
from bench.postgres import postgres_server
from bench.server import BenchServer

FLEET = 60  # the demo's six and these, as in the http scenario


def scenario_cluster(args: argparse.Namespace) -> Result:
    with ExitStack() as backends:

        def cluster_node() -> BenchServer:
            """PostgreSQL, NATS and a node on them (stopped after the node, at the end)."""
            database_url = backends.enter_context(postgres_server())
            bus_url = backends.enter_context(nats_server())
            return start_server(SOVD_DATABASE_URL=database_url, SOVD_BUS_URL=bus_url)

        with servers(cluster_node, start_server) as (cluster, single):
            return _compare(args, cluster, single)


def _compare(args: argparse.Namespace, cluster: BenchServer, single: BenchServer) -> Result:
    """Both nodes' pipeline and fleet page, alternately."""
    cluster.name, single.name = "pg_nats", "sqlite"
    ready = cluster.http.get("/health/ready").json()
    assert (ready["database"], ready["bus"]) == ("postgresql", "nats"), ready
    assert ready["lanes_owned"] is not None, "the node did not run as a cluster node"
    fleets = {s.name: create_fleet(s, FLEET - 6) for s in (cluster, single)}
    pipeline = alternate_pipeline(args, cluster, single, fleets, "sqlite")
    fleet_page = _fleet_page(args, cluster, single)
    return {
        "pipeline_ratio": pipeline["ratio"],
        "fleet_ratio": fleet_page["ratio"],
        "pipeline": pipeline,
        "fleet_page": fleet_page,
    }


def _fleet_page(args: argparse.Namespace, ours: BenchServer, other: BenchServer) -> Result:
    """The fleet page under wrk on each node, alternately; the ratio of the medians."""
    sides = {s.name: (s, {"Authorization": f"Bearer {s.token()}"}) for s in (ours, other)}
    rps, _, errors = alternate_pages(args, sides, FLEET_PAGE, "cluster fleet page")
    mine, theirs = median(rps[ours.name]), median(rps[other.name])
    return {
        "ratio": ratio_of(mine, theirs),
        "requests_per_s": round(mine),
        f"{other.name}_requests_per_s": round(theirs),
        "rounds": args.rounds,
        "errors": errors,
    }
