"""compose.yaml and the Dockerfile agree with each other and with prometheus.yml.

No Docker engine runs here, so these check the files' meaning, not a running stack.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def test_compose_has_no_version_key_and_the_expected_services() -> None:
    compose = _compose()
    assert "version" not in compose
    assert {"app", "prometheus", "grafana"} <= set(compose["services"])
    assert compose["services"]["grafana"]["profiles"] == ["grafana"]
    assert "3000:3000" in compose["services"]["grafana"]["ports"]


def test_prometheus_publishes_9090_and_mounts_its_config() -> None:
    prom = _compose()["services"]["prometheus"]
    assert "9090:9090" in prom["ports"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in prom["volumes"]}
    assert mounts["./prometheus"] == "/etc/prometheus"
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    assert (ROOT / "prometheus" / "prometheus.yml").is_file()


def test_scrape_target_is_the_app_service_on_its_port() -> None:
    compose = _compose()
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "sovd-command-service"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in compose["services"]
    app = compose["services"][host]
    published = {p.split(":")[1] for p in app["ports"]}
    assert port in published
    assert job.get("metrics_path", "/metrics") == "/metrics"


def test_app_has_data_volume_and_readiness_healthcheck() -> None:
    compose = _compose()
    app = compose["services"]["app"]
    assert app["build"] == "."
    assert any(v.endswith(":/data") for v in app["volumes"])
    assert app["volumes"][0].split(":")[0] in compose["volumes"]
    assert "/health/ready" in " ".join(app["healthcheck"]["test"])


def test_dockerfile_is_slim_non_root_and_starts_python_m_app() -> None:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")  # join continuations
    lines = [line.strip() for line in text.splitlines()]
    instructions = [line for line in lines if line and not line.startswith("#")]
    assert instructions[0].startswith("FROM python:") and "slim" in instructions[0]
    (cmd,) = [line for line in instructions if line.startswith("CMD ")]
    assert json.loads(cmd.removeprefix("CMD ")) == ["python", "-m", "app"]
    user = [line for line in instructions if line.startswith("USER ")]
    assert user and user[-1].split()[1] not in ("root", "0")
    assert any("/health/ready" in line for line in instructions)
    assert any(shlex.split(line)[0] == "VOLUME" for line in instructions)


def test_grafana_is_provisioned_with_the_datasource_and_the_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in grafana["volumes"]}
    provisioning = ROOT / mounts["./prometheus/grafana/provisioning"].replace(
        "/etc/grafana/provisioning", "prometheus/grafana/provisioning"
    )
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((provisioning / "dashboards" / "sovd.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == mounts["./prometheus/grafana/dashboards"]
    dashboard = json.loads(
        (ROOT / "prometheus" / "grafana" / "dashboards" / "sovd.json").read_text()
    )
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("status", "success", "p95", "timeouts", "websockets", "vehicles", "http"):
        assert topic in titles, topic
