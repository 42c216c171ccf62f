"""compose.yaml, the Dockerfile and .dockerignore agree with each other and with
prometheus.yml, and hold what an operator of an edge box expects.

No Docker engine runs on the build machine, so these check the files' meaning (with
compose's variable interpolation and .dockerignore's matching done here), not a running
stack.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.config import Config
from app.config_docs import variables_read
from otel.outage import SHUTDOWN_FLUSH_S
from tests.support.harness import unavailable

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
# What `docker compose up` needs set; everything else must have a default.
REQUIRED_ENV = {"SOVD_ADMIN_PASSWORD": "a", "SOVD_ENGINEER_PASSWORD": "b"}


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}|\$\$")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}``, ``${NAME:?error}`` and ``$$``."""

    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, kind, arg = match.groups()
        value = env.get(name, "")
        if value:
            return value
        if kind == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if kind == "-" else ""

    return _VARIABLE.sub(one, text)


def _published(service: dict[str, Any], env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(host address, published port, container port) of each of a service's ports."""
    ports = []
    for raw in service.get("ports", []):
        parts = interpolate(str(raw), {**REQUIRED_ENV, **env}).split(":")
        assert len(parts) == 3, f"{raw}: name the host address (host:published:target)"
        host, published, target = parts
        ports.append((host, published, target))
    return ports


def test_compose_has_no_version_key_and_the_expected_services() -> None:
    compose = _compose()
    assert "version" not in compose
    assert {"app", "prometheus", "grafana"} <= set(compose["services"])
    assert compose["services"]["grafana"]["profiles"] == ["grafana"]
    assert ("127.0.0.1", "3000", "3000") in _published(compose["services"]["grafana"], {})


def test_prometheus_publishes_9090_and_mounts_its_config() -> None:
    prom = _compose()["services"]["prometheus"]
    assert _published(prom, {}) == [("127.0.0.1", "9090", "9090")]
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
    published = {published for _, published, _ in _published(app, {})}
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


# -- what an edge box expects -----------------------------------------------------------


def test_every_port_is_published_on_loopback_unless_the_api_bind_is_set() -> None:
    services = _compose()["services"]
    for name, service in services.items():
        for host, _, _ in _published(service, {}):
            assert host == "127.0.0.1", (name, host)
    # The API alone can be opened to the lab network, by one documented variable.
    assert _published(services["app"], {"SOVD_API_BIND": "0.0.0.0"}) == [
        ("0.0.0.0", "8000", "8000")
    ]
    assert "SOVD_API_BIND" in (ROOT / "compose.yaml").read_text().split("services:")[0]


def test_only_the_admin_passwords_must_be_set() -> None:
    text = (ROOT / "compose.yaml").read_text()
    interpolate(text, REQUIRED_ENV)  # raises on any other ${NAME:?...}
    with pytest.raises(KeyError, match="SOVD_ADMIN_PASSWORD"):
        interpolate(text, {})


def test_every_service_restarts_unless_stopped() -> None:
    for name, service in _compose()["services"].items():
        assert service.get("restart") == "unless-stopped", name


def test_demo_data_comes_from_the_environment_off_by_default() -> None:
    env = _compose()["services"]["app"]["environment"]
    for name in ("SOVD_DEMO_DATA", "SOVD_DEMO_EMULATOR"):
        raw = str(env[name])
        assert interpolate(raw, {}) == "0", name
        assert interpolate(raw, {name: "1"}) == "1", name


# -- every setting (issue #25) ---------------------------------------------------------

# Fixed in the container: the port mapping, the healthcheck and the volume rely on them.
FIXED_BY_IMAGE = ("SOVD_HOST", "SOVD_PORT", "SOVD_DB_PATH")
# Set by the image and kept as compose's default, but a shell value still wins.
IMAGE_DEFAULTS = ("OTEL_SEMCONV_STABILITY_OPT_IN",)


def config_settings() -> list[str]:
    """Every variable app/config/ reads: those ``Config.from_env`` asks an empty
    environment for (``app.config_docs.variables_read``)."""
    return variables_read()


def _dockerfile_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for line in _dockerfile():
        if line.startswith("ENV "):
            for pair in shlex.split(line.removeprefix("ENV ")):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def test_compose_passes_every_setting_the_service_reads() -> None:
    settings = config_settings()
    # The reading finds the declarations (not an empty list that passes anything).
    assert len(settings) == len(set(settings)) >= 60
    assert {
        "SOVD_METRICS_TOKEN",
        "SOVD_PROMETHEUS_URL",
        "SOVD_RETENTION_DAYS",
        "SOVD_TRUSTED_PROXIES",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    } <= set(settings)
    env = {str(k): str(v) for k, v in _compose()["services"]["app"]["environment"].items()}
    assert sorted(set(settings) - set(env)) == [], "settings compose does not pass"
    assert sorted(set(env) - set(settings)) == [], "compose passes what the service never reads"
    image = _dockerfile_env()
    for name in settings:
        if name in FIXED_BY_IMAGE:
            assert env[name] == image[name], name
        else:
            assert re.fullmatch(rf"\$\{{{name}:[-?][^}}]*\}}", env[name]), (name, env[name])


def _config_from_compose(shell: dict[str, str]) -> Config:
    env = _compose()["services"]["app"]["environment"]
    return Config.from_env({str(k): interpolate(str(v), shell) for k, v in env.items()})


PASSWORDS = {"SOVD_ADMIN_PASSWORD": "admin-pass-1", "SOVD_ENGINEER_PASSWORD": "engineer-pass-1"}


def test_with_nothing_set_the_service_gets_its_own_defaults() -> None:
    image = _dockerfile_env()
    from_image = {name: image[name] for name in FIXED_BY_IMAGE + IMAGE_DEFAULTS}
    own = Config.from_env({**PASSWORDS, **from_image})
    assert _config_from_compose(PASSWORDS) == own
    assert own.demo_data is False and own.demo_emulator is False
    assert (own.host, own.port, str(own.db_path)) == ("0.0.0.0", 8000, "/data/sovd.db")


def test_a_setting_from_the_shell_or_env_file_reaches_the_service() -> None:
    config = _config_from_compose(
        {
            **PASSWORDS,
            "SOVD_METRICS_TOKEN": "scrape-token-1",
            "SOVD_PROMETHEUS_URL": "http://127.0.0.1:9090",
            "SOVD_RETENTION_DAYS": "30",
            "SOVD_TRUSTED_PROXIES": "10.0.0.0/8",
            "SOVD_DEMO_DATA": "1",
            "OTEL_TRACES_EXPORTER": "none",
        }
    )
    assert config.metrics_token == "scrape-token-1"
    assert config.prometheus_url == "http://127.0.0.1:9090"
    assert config.retention_days == 30
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8"]
    assert config.demo_data is True
    assert config.traces_exporter == "none"


@pytest.mark.socket
def test_grafana_keeps_its_data_and_takes_its_password_from_the_environment() -> None:
    compose = _compose()
    grafana = compose["services"]["grafana"]
    volume = [v for v in grafana["volumes"] if v.endswith(":/var/lib/grafana")]
    assert volume and volume[0].split(":")[0] in compose["volumes"]
    raw = str(grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    assert interpolate(raw, {}) == ""  # no password written in the file
    assert interpolate(raw, {"GRAFANA_ADMIN_PASSWORD": "s3cret"}) == "s3cret"
    # Without one, the container refuses to start Grafana (whose default is admin/admin).
    script = interpolate(grafana["entrypoint"][2], {})
    assert grafana["entrypoint"][:2] == ["sh", "-c"]
    sh = shutil.which("sh")
    assert sh is not None
    refused = subprocess.run(
        [sh, "-c", script],
        env={"GF_SECURITY_ADMIN_PASSWORD": ""},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert refused.returncode == 1 and "GRAFANA_ADMIN_PASSWORD" in refused.stderr
    started = subprocess.run(
        [sh, "-c", script.replace("exec /run.sh", "exec echo started")],
        env={"GF_SECURITY_ADMIN_PASSWORD": "s3cret", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert started.returncode == 0 and started.stdout.strip() == "started"
    assert script.rstrip().endswith("exec /run.sh")


def test_the_collector_exposes_no_prometheus_endpoint_nobody_scrapes() -> None:
    compose = _compose()
    collector = compose["services"]["otel-collector"]
    config = yaml.safe_load((ROOT / "prometheus" / "otel-collector.yaml").read_text())
    scraped = {
        target
        for job in yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())[
            "scrape_configs"
        ]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    for name, exporter in (config.get("exporters") or {}).items():
        if name.split("/")[0] == "prometheus":
            port = exporter["endpoint"].rsplit(":", 1)[1]
            assert f"otel-collector:{port}" in scraped, name
    # Published: the OTLP receiver only, on loopback.
    assert _published(collector, {}) == [("127.0.0.1", "4318", "4318")]


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(float(n) * units[u] for n, u in parts)


def test_healthchecks_give_a_first_start_time() -> None:
    health = _compose()["services"]["app"]["healthcheck"]
    assert _seconds(health["start_period"]) >= 10
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    (line,) = [x for x in text.splitlines() if x.startswith("HEALTHCHECK")]
    period = re.search(r"--start-period=(\S+)", line)
    assert period and _seconds(period.group(1)) >= 10


def _dockerfile() -> list[str]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    return [x.strip() for x in text.splitlines() if x.strip() and not x.startswith("#")]


def test_base_image_is_pinned_by_version_and_digest() -> None:
    base = _dockerfile()[0].split()[1]
    assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?@sha256:[0-9a-f]{64}", base), base


def test_the_image_user_is_uid_10001_as_the_bind_mount_note_says() -> None:
    lines = _dockerfile()
    user = [x for x in lines if x.startswith("USER ")][-1].split()[1]
    assert user.split(":")[0] == "10001"
    run = " ".join(x for x in lines if x.startswith("RUN "))
    assert "--uid 10001" in run and "--gid 10001" in run and "chown 10001:10001 /data" in run
    compose_text = (ROOT / "compose.yaml").read_text()
    assert "chown 10001:10001" in compose_text and ":/data" in compose_text


# -- .dockerignore, evaluated as Docker does ------------------------------------------


def _ignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        keep = line.startswith("!")
        pattern = line.removeprefix("!").strip("/")
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex += "(?:.*/)?"
                i += 3
            elif pattern.startswith("**", i):
                regex += ".*"
                i += 2
            elif pattern[i] == "*":
                regex += "[^/]*"
                i += 1
            elif pattern[i] == "?":
                regex += "[^/]"
                i += 1
            elif pattern[i] == "[":
                end = pattern.index("]", i)
                regex += pattern[i : end + 1]
                i = end + 1
            else:
                regex += re.escape(pattern[i])
                i += 1
        rules.append((keep, re.compile(regex)))
    return rules


def _in_build_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for keep, regex in _ignore_rules():
        if any(regex.fullmatch(c) for c in candidates):
            included = keep
    return included


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        "data/sovd.db",
        "data/jwt_secret",
        ".git/config",
        ".mypy_cache/3.11/app.json",
        ".pytest_cache/v/cache",
        "app/api/__pycache__/routes.cpython-311.pyc",
        "bench/results/1.json",
        "prometheus/metrics-token",
        ".env",
        "app/sovd.db",
        "tests/test_compose.py",
        ".cache/doip-server-venv/bin/python",
    ],
)
def test_the_build_context_leaves_out(path: str) -> None:
    assert not _in_build_context(path)


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    copied = [
        src
        for line in _dockerfile()
        if line.startswith("COPY ")
        for src in line.split()[1:-1]
        if not src.startswith("--")
    ]
    assert copied
    for src in copied:
        path = ROOT / src
        files = [p for p in path.rglob("*.py")] if path.is_dir() else [path]
        assert files, src
        for f in files:
            assert _in_build_context(str(f.relative_to(ROOT))), f
    # The /docs page's files travel with the package.
    assert _in_build_context("app/api/static/swagger-ui/swagger-ui-bundle.js")


@pytest.mark.socket
def test_the_metrics_token_file_is_ignored_by_git() -> None:
    config = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    text = (ROOT / "prometheus" / "prometheus.yml").read_text()
    mount = re.search(r"credentials_file: (\S+?)\}", text)
    assert mount, "prometheus.yml names where the token file goes"
    in_container = mount.group(1)
    # compose mounts ./prometheus on /etc/prometheus: the file lives in prometheus/.
    assert in_container.startswith("/etc/prometheus/")
    assert config["scrape_configs"]
    on_host = "prometheus/" + in_container.removeprefix("/etc/prometheus/")
    git = shutil.which("git")
    if git is None or not (ROOT / ".git").exists():
        unavailable("git and a git checkout (CI runs in a fresh clone)")
    ignored = subprocess.run(
        [git, "check-ignore", "-q", on_host], cwd=ROOT, timeout=10, check=False
    )
    assert ignored.returncode == 0, f"{on_host} is not git-ignored"


# -- the dashboard ---------------------------------------------------------------------


def _dashboard() -> dict[str, Any]:
    path = ROOT / "prometheus" / "grafana" / "dashboards" / "sovd.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_every_panel_has_a_unit() -> None:
    for panel in _dashboard()["panels"]:
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit")
        assert unit, panel["title"]


def test_rates_use_the_rate_interval_and_queries_the_chosen_target() -> None:
    dashboard = _dashboard()
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert {"job", "instance"} <= set(variables)
    assert variables["job"]["current"]["value"] == "sovd-command-service"
    assert "$job" in variables["instance"]["query"]["query"]
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = target["expr"]
            windows = re.findall(r"\[([^\]]+)\]", expr)
            assert all(w == "$__rate_interval" for w in windows), (panel["title"], expr)
            selectors = re.findall(r"\{([^}]*)\}", expr)
            selectors = [s for s in selectors if not s.startswith("{")]  # not {{legend}}
            assert selectors, expr
            for s in selectors:
                assert 'job="$job"' in s and 'instance=~"$instance"' in s, expr
    datasource = yaml.safe_load(
        (ROOT / "prometheus/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"][0]
    scrape = yaml.safe_load((ROOT / "prometheus" / "prometheus.yml").read_text())
    (job,) = scrape["scrape_configs"]
    # $__rate_interval is four scrape intervals: Grafana must know the real one.
    assert datasource["jsonData"]["timeInterval"] == job["scrape_interval"]


# -- traces (issue #13) ----------------------------------------------------------------


def test_the_collector_sends_traces_to_jaeger_of_the_same_profile() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((ROOT / "prometheus" / "otel-collector.yaml").read_text())
    traces = config["service"]["pipelines"]["traces"]
    assert traces["receivers"] == ["otlp"]
    (exporter,) = traces["exporters"]
    host = config["exporters"][exporter]["endpoint"].split(":")[0]
    assert host in services
    assert services[host]["profiles"] == services["otel-collector"]["profiles"] == ["otel"]
    assert str(services[host]["environment"]["COLLECTOR_OTLP_ENABLED"]) == "true"
    # Its UI, on loopback like every port.
    assert ("127.0.0.1", "16686", "16686") in _published(services[host], {})
    # The app gets the standard variables that turn tracing on and tune its sampling.
    env = services["app"]["environment"]
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_TRACES_EXPORTER", "OTEL_TRACES_SAMPLER"):
        assert interpolate(str(env[name]), {}) == "", name


def test_prometheus_stores_exemplars_and_grafana_links_them_to_traces() -> None:
    assert "--enable-feature=exemplar-storage" in _compose()["services"]["prometheus"]["command"]
    provisioned = yaml.safe_load(
        (ROOT / "prometheus/grafana/provisioning/datasources/prometheus.yml").read_text()
    )["datasources"]
    by_uid = {d["uid"]: d for d in provisioned}
    (link,) = by_uid["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    assert link["name"] == "trace_id"  # the exemplar label the app writes
    jaeger = by_uid[link["datasourceUid"]]
    assert jaeger["type"] == "jaeger"
    assert jaeger["url"].split("//")[1].split(":")[0] in _compose()["services"]
    durations = [
        target
        for panel in _dashboard()["panels"]
        for target in panel["targets"]
        if "command_execution_duration_seconds_bucket" in target["expr"]
    ]
    assert durations and all(target.get("exemplar") is True for target in durations)


def test_compose_waits_for_the_services_own_shutdown() -> None:
    """The stop grace outlasts the command grace and the last telemetry flush (as its
    comment says), so `docker compose stop` never kills a clean shutdown."""
    app = _compose()["services"]["app"]
    assert _seconds(app["stop_grace_period"]) > Config().shutdown_grace_s + SHUTDOWN_FLUSH_S


# -- the cluster profile (issue #23 item 6) ---------------------------------------------

CLUSTER = {"postgres", "nats", "app-1", "app-2", "proxy", "prometheus-cluster"}
REPLICAS = ("app-1", "app-2")
CLUSTER_ENV = {**PASSWORDS, "SOVD_JWT_SECRET": "k" * 40, "SOVD_POSTGRES_PASSWORD": "pg-pass-1"}


def test_plain_compose_up_stays_the_app_and_prometheus() -> None:
    services = _compose()["services"]
    default = {name for name, s in services.items() if not s.get("profiles")}
    assert default == {"app", "prometheus"}
    assert {name for name, s in services.items() if s.get("profiles") == ["cluster"]} == CLUSTER


def _replica_config(name: str, shell: dict[str, str]) -> Config:
    env = _compose()["services"][name]["environment"]
    resolved = {str(k): interpolate(str(v), shell) for k, v in env.items()}
    resolved.pop("PGPASSWORD")  # asyncpg's, not the service's
    return Config.from_env(resolved)


def test_the_replicas_run_every_setting_of_app_on_postgres_and_nats() -> None:
    compose = _compose()
    services = compose["services"]
    app_env = set(services["app"]["environment"])
    for name in REPLICAS:
        replica = services[name]
        assert set(replica["environment"]) == app_env | {"PGPASSWORD"}, name
        config = _replica_config(name, CLUSTER_ENV)
        assert config.cluster, name
        assert config.database_url is not None
        url = urllib.parse.urlsplit(config.database_url)
        assert (url.hostname, url.port, url.password) == ("postgres", 5432, None)  # no secret
        assert url.username == services["postgres"]["environment"]["POSTGRES_USER"]
        assert url.path == "/" + services["postgres"]["environment"]["POSTGRES_DB"]
        assert config.bus_servers == ("nats://nats:4222",)
        assert interpolate(replica["environment"]["PGPASSWORD"], CLUSTER_ENV) == "pg-pass-1"
        # Other settings pass through as on `app`.
        assert (
            _replica_config(name, {**CLUSTER_ENV, "SOVD_RETENTION_DAYS": "7"}).retention_days == 7
        )
        assert "/health/ready" in " ".join(replica["healthcheck"]["test"])
        assert replica["build"]["args"]["SOVD_EXTRAS"] == "[postgres]"
        assert {"postgres", "nats"} & set(replica["depends_on"]) or name == "app-2"
    # Each its own data volume: two processes on one data directory refuse each other.
    volumes = [services[n]["volumes"][0].split(":")[0] for n in REPLICAS]
    assert len(set(volumes)) == 2 and set(volumes) <= set(compose["volumes"])
    # The proxy's own address is the one trusted (client addresses from the
    # X-Forwarded-For it sets), inside the cluster's network; SOVD links go through it.
    subnet = ipaddress.ip_network(compose["networks"]["cluster"]["ipam"]["config"][0]["subnet"])
    proxy_address = ipaddress.ip_address(services["proxy"]["networks"]["cluster"]["ipv4_address"])
    trusted = _replica_config("app-1", CLUSTER_ENV).trusted_proxies
    assert [str(n) for n in trusted] == [f"{proxy_address}/32"] and proxy_address in subnet
    public = _replica_config("app-1", CLUSTER_ENV).public_url
    assert public == f"http://127.0.0.1:{services['proxy']['ports'][0].rsplit(':', 1)[1]}"


def test_the_dockerfile_installs_the_extras_it_is_given() -> None:
    lines = _dockerfile()
    assert 'ARG SOVD_EXTRAS=""' in lines
    (pip,) = [x for x in lines if x.startswith("RUN pip install")]
    assert '".${SOVD_EXTRAS}"' in pip


@pytest.mark.socket
def test_a_replica_refuses_to_start_without_the_shared_key_or_the_database_password() -> None:
    replica = _compose()["services"]["app-1"]
    assert replica["entrypoint"][:2] == ["sh", "-c"]
    script = interpolate(replica["entrypoint"][2], {})
    assert script.rstrip().endswith("exec python -m app")
    sh = shutil.which("sh")
    assert sh is not None

    def run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sh, "-c", script.replace("exec python -m app", "exec echo started")],
            env={"PATH": "/usr/bin:/bin", **env},
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )

    no_key = run({"PGPASSWORD": "p"})
    assert no_key.returncode == 1 and "SOVD_JWT_SECRET" in no_key.stderr
    no_password = run({"SOVD_JWT_SECRET": "k" * 40})
    assert no_password.returncode == 1 and "SOVD_POSTGRES_PASSWORD" in no_password.stderr
    started = run({"SOVD_JWT_SECRET": "k" * 40, "PGPASSWORD": "p"})
    assert started.returncode == 0 and started.stdout.strip() == "started"


def _haproxy_servers() -> list[str]:
    text = (ROOT / "cluster" / "haproxy.cfg").read_text()
    return re.findall(r"^\s*server\s+\S+\s+(\S+)", text, re.MULTILINE)


def test_the_proxy_sends_to_both_replicas_and_prometheus_scrapes_both() -> None:
    services = _compose()["services"]
    port = services["app"]["environment"]["SOVD_PORT"]
    replicas = [f"{n}:{port}" for n in REPLICAS]
    assert _haproxy_servers() == replicas
    proxy = services["proxy"]
    assert proxy["image"].startswith("haproxy:")
    mounts = {m.split(":")[0]: m.split(":")[1] for m in proxy["volumes"]}
    assert mounts["./cluster/haproxy.cfg"] == "/usr/local/etc/haproxy/haproxy.cfg"
    bind = re.search(r"^\s*bind\s+:(\d+)", (ROOT / "cluster" / "haproxy.cfg").read_text(), re.M)
    assert bind is not None
    assert _published(proxy, {}) == [("127.0.0.1", "8080", bind.group(1))]
    prom = services["prometheus-cluster"]
    config_file = next(a for a in prom["command"] if a.startswith("--config.file="))
    local = ROOT / "prometheus" / Path(config_file.split("=", 1)[1]).name
    config = yaml.safe_load(local.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "sovd-command-service"  # the rules' and dashboard's job
    assert job["static_configs"][0]["targets"] == replicas
    # Both Prometheus may run at once, as may the single node and the proxy.
    published = [p for s in services.values() for _, p, _ in _published(s, {})]
    assert len(published) == len(set(published))


@pytest.mark.socket
def test_haproxy_accepts_the_proxy_config() -> None:
    haproxy = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if haproxy is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    checked = subprocess.run(
        [haproxy, "-c", "-f", str(ROOT / "cluster" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    # The replicas' names resolve inside compose only: a warning here, not an error.
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "Configuration file is valid" in checked.stdout + checked.stderr
