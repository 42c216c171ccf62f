"""The real Prometheus against the real service: scrape, rules and dashboard queries.

Needs Debian's ``prometheus`` package (``prometheus`` and ``promtool``). Without it the
tests skip locally; in CI (``CI`` set, as .ci/run does) they fail instead.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.support.harness import (
    Server,
    auth,
    free_port,
    make_config,
    running,
    unavailable,
    wait_until,
)

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent
PROM_DIR = ROOT / "prometheus"
JOB = "sovd-command-service"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"{name} is not installed (apt-get install prometheus)")
    return path


TEST_SCRAPE_INTERVAL = "500ms"  # also the scrape timeout: far above a scrape here


def derived_config(tmp_path: Path, *targets: str) -> Path:
    """prometheus/prometheus.yml with the scrape targets and interval rewritten (rules
    copied beside)."""
    config = yaml.safe_load((PROM_DIR / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == JOB]
    job["static_configs"] = [{"targets": list(targets)}]
    # Scrape often, so the test waits fractions of a second for each scrape, not 5 s.
    job["scrape_interval"] = job["scrape_timeout"] = TEST_SCRAPE_INTERVAL
    shutil.copytree(PROM_DIR / "rules", tmp_path / "rules")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


class Prometheus:
    def __init__(self, config: Path, data: Path) -> None:
        port = free_port()
        self.log = (data.parent / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [
                _binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={data}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)

        def ready() -> bool:
            assert self.proc.poll() is None, "prometheus exited"
            try:
                return self.http.get("/-/ready").status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, "prometheus to be ready", timeout_s=30)

    def query(self, expr: str) -> list[dict[str, Any]]:
        r = self.http.get("/api/v1/query", params={"query": expr})
        body = r.json()
        assert r.status_code == 200 and body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def scalar(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if len(result) == 1 else None

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(20)
        self.log.close()


@pytest.fixture
def prometheus_pair(tmp_path: Path) -> Iterator[tuple[Server, Prometheus]]:
    _binary("prometheus")
    with running(make_config(tmp_path / "app", command_timeout_s=2.2)) as srv:
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        target = srv.base_url.removeprefix("http://")
        prom = Prometheus(derived_config(prom_dir, target), prom_dir / "data")
        try:
            yield srv, prom
        finally:
            prom.close()


def _commands(srv: Server, token: str) -> None:
    ids = [
        srv.submit(token, srv.vehicle(token, p)["vehicle_id"])["command_id"]
        for p in ("healthy", "unreachable", "malformed", "timeout")
    ]
    # The body ECU (0x0040) clears only in the extended session: refused by the ECU.
    healthy = srv.vehicle(token, "healthy")["vehicle_id"]
    ids.append(srv.submit(token, healthy, "ClearDTC", {"ecuAddress": "0x0040"})["command_id"])
    for cid in ids:
        srv.wait_status(token, cid)


def _rule_exprs() -> tuple[dict[str, str], dict[str, str]]:
    groups = yaml.safe_load((PROM_DIR / "rules" / "sovd.yml").read_text())["groups"]
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    alerts = {r["alert"]: r["expr"] for g in groups for r in g["rules"] if "alert" in r}
    return records, alerts


# What Grafana puts in for the dashboard's variables before Prometheus sees a query.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": JOB, "$instance": ".*"}


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((PROM_DIR / "grafana" / "dashboards" / "sovd.json").read_text())
    exprs = []
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            assert "$" not in expr, expr
            exprs.append(expr)
    return exprs


def test_prometheus_scrapes_the_service_and_every_query_works(
    prometheus_pair: tuple[Server, Prometheus],
) -> None:
    srv, prom = prometheus_pair
    wait_until(lambda: prom.scalar(f'up{{job="{JOB}"}}') == 1, "the first scrape", 30)
    token = srv.token()
    # Twice, with a scrape between: histogram series appear with their first observation,
    # and rate() needs them to move between two samples.
    _commands(srv, token)
    wait_until(
        lambda: prom.scalar('sum(commands_executed_total{status="timeout"})') == 1,
        "a scrape after the first round",
        30,
    )
    _commands(srv, token)
    admin = srv.admin_token()
    vehicle = srv.vehicle(admin, "healthy")
    srv.http.patch(
        f"/api/v1/vehicles/{vehicle['vehicle_id']}",
        headers=auth(admin),
        json={"connection_status": "disconnected"},
    )
    wait_until(
        lambda: prom.scalar('sum(commands_executed_total{status="timeout"})') == 2,
        "a scrape after the second round",
        30,
    )
    wait_until(
        lambda: prom.scalar("vehicle_connections_active") == 4,
        "the vehicle gauge to be scraped",
        30,
    )

    by_status = {
        r["metric"]["status"]: float(r["value"][1])
        for r in prom.query("sum by (status) (commands_executed_total)")
    }
    assert by_status == {"completed": 2, "failed": 4, "timeout": 2, "cancelled": 0, "refused": 2}
    by_command = {
        (r["metric"]["command"], r["metric"]["status"]): float(r["value"][1])
        for r in prom.query("commands_executed_total > 0")
    }
    assert by_command == {
        ("ReadDTC", "completed"): 2,
        ("ReadDTC", "failed"): 4,
        ("ReadDTC", "timeout"): 2,
        ("ClearDTC", "refused"): 2,
    }
    # Every command by every status is a series from the first scrape: 6 x 5.
    assert len(prom.query("commands_executed_total")) == 30
    assert prom.scalar("sovd_command_timeout_total") == 2
    assert prom.scalar("sovd_response_chunks_total") == 8  # a refusal is one chunk
    assert prom.scalar("websocket_connections_active") == 0
    assert prom.scalar("sovd_commands_in_flight") == 0
    assert prom.scalar("sum(command_execution_duration_seconds_count)") == 10
    assert (
        prom.scalar(
            'sum(http_server_request_duration_seconds_count{http_route="/api/v1/commands",'
            'http_request_method="POST",http_response_status_code="201"})'
        )
        == 10
    )

    records, alerts = _rule_exprs()
    for expr in [*records.values(), *_dashboard_exprs()]:
        result = prom.query(expr)
        assert result, f"no data for {expr}"
        assert all(r["value"][1] not in ("NaN", "+Inf", "-Inf") for r in result), (expr, result)
    success = prom.scalar(records["sovd:command_success_ratio:rate5m"])
    assert success == pytest.approx(0.25)  # 2 of 8 completed; the 2 refused not judged
    assert prom.scalar(records["sovd:command_timeout_ratio:rate5m"]) == pytest.approx(0.25)
    # 25% success, timeouts and a p95 above 2 s, but on 8 judged commands: too few to
    # judge (each alert needs 20 in its window), so no alert condition holds.
    firing = {name for name, expr in alerts.items() if prom.query(expr)}
    assert firing == set()

    srv.stop()
    wait_until(lambda: prom.query(alerts["SovdTargetDown"]), "up == 0 after the app stopped", 30)


# Aggregation clauses of PromQL: ``by (...)`` and ``without (...)`` with their labels.
_GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")


def _groupings(expr: str) -> list[tuple[str, set[str]]]:
    return [
        (kind, {label.strip() for label in labels.split(",") if label.strip()})
        for kind, labels in _GROUPING.findall(expr)
    ]


def test_no_rule_or_panel_keeps_instance_in_an_aggregation() -> None:
    """Written so that two replicas add up: ``by (...)`` never lists ``instance``, and
    ``without (...)`` always does (what the next test checks against two instances)."""
    records, alerts = _rule_exprs()
    exprs = [*records.values(), *alerts.values(), *_dashboard_exprs()]
    checked = 0
    for expr in exprs:
        for kind, labels in _groupings(expr):
            checked += 1
            assert ("instance" in labels) == (kind == "without"), expr
    assert checked >= len(records)  # the pattern finds the clauses it is to judge
    assert ("without", {"instance"}) in _groupings(records["job:vehicle_connections_active:sum"])


def test_every_rule_and_panel_adds_two_instances_up(tmp_path: Path) -> None:
    """Prometheus scrapes one service as two instances (two target addresses of the same
    port): every recording rule and dashboard query answers without an ``instance``
    label (but the targets' ``up``), so two replicas add up; the fleet gauges sum to
    twice the one service's."""
    _binary("prometheus")
    with running(make_config(tmp_path / "app", command_timeout_s=2.2)) as srv:
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        port = srv.base_url.rsplit(":", 1)[1]
        config = derived_config(prom_dir, f"127.0.0.1:{port}", f"localhost:{port}")
        prom = Prometheus(config, prom_dir / "data")
        try:
            wait_until(lambda: prom.scalar(f'sum(up{{job="{JOB}"}})') == 2, "both targets", 30)
            token = srv.token()
            _commands(srv, token)
            wait_until(
                lambda: prom.scalar('sum(commands_executed_total{status="timeout"})') == 2,
                "both instances scraped after the commands",
                30,
            )
            _commands(srv, token)
            wait_until(
                lambda: prom.scalar('sum(commands_executed_total{status="timeout"})') == 4,
                "both instances scraped after the second round",
                30,
            )
            connected = srv.http.get(
                "/api/v1/vehicles", headers=auth(token), params={"status": "connected"}
            ).json()["total"]
            assert connected > 0
            records, _ = _rule_exprs()
            assert prom.scalar(records["job:vehicle_connections_active:sum"]) == 2 * connected
            for expr in [*records.values(), *_dashboard_exprs()]:
                result = prom.query(expr)
                assert result, f"no data for {expr}"
                if expr.startswith("up{"):
                    assert len(result) == 2  # the one per-target panel: which is down
                    continue
                per_instance = [r["metric"] for r in result if "instance" in r["metric"]]
                assert per_instance == [], f"{expr} keeps instance: {per_instance}"
        finally:
            prom.close()


def test_promtool_checks_the_config_and_the_rules_and_their_unit_tests() -> None:
    promtool = _binary("promtool")
    for args in (
        ["check", "config", str(PROM_DIR / "prometheus.yml")],
        ["check", "config", str(PROM_DIR / "prometheus-cluster.yml")],
        ["check", "rules", str(PROM_DIR / "rules" / "sovd.yml")],
        ["test", "rules", str(PROM_DIR / "tests" / "sovd_rules_test.yml")],
    ):
        result = subprocess.run(
            [promtool, *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout + result.stderr
