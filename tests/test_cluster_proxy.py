"""compose's cluster proxy (cluster/haproxy.cfg) run by Debian's haproxy in front of two real
nodes on one PostgreSQL and one NATS: requests are spread over both replicas, a command
submitted through it is followed to its end over a WebSocket through it, and when one
replica dies (SIGKILL) calls through the proxy keep working on the other at once.

The config is the repository's, with what only compose's network provides rewritten: the
listening address, the replicas' addresses (its DNS names), its resolver, and the health
check interval (shortened so the test does not wait seconds).
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from tests.support.command_helpers import submit_read_dtc
from tests.support.harness import DEADLINE_S, ENGINEER_PASSWORD, free_port, unavailable, wait_until
from tests.support.nats import NatsServer
from tests.support.process import Process, server_env, submit_command, vehicle_with_profile
from tests.support.scrape import scrape, total

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "cluster" / "haproxy.cfg"


def _local_config(folder: Path, port: int, nodes: list[Process]) -> Path:
    text = CONFIG.read_text()
    text = re.sub(r"^resolvers docker\n(?:[ \t]+.*\n)+", "", text, flags=re.MULTILINE)
    text = text.replace(" resolvers docker", "").replace("inter 2s", "inter 100ms")
    text = re.sub(r"bind :\d+", f"bind 127.0.0.1:{port}", text)
    for i, node in enumerate(nodes, start=1):
        text = text.replace(f"app-{i}:8000", node.base_url.removeprefix("http://"))
    servers = re.findall(r"^\s*server\s+\S+\s+(\S+)", text, re.MULTILINE)
    assert servers == [n.base_url.removeprefix("http://") for n in nodes]
    assert "resolvers" not in text
    path = folder / "haproxy.cfg"
    path.write_text(text)
    return path


@pytest.fixture
def proxy_binary() -> str:
    found = shutil.which("haproxy") or (
        "/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None
    )
    if found is None:
        unavailable("haproxy is not installed (apt-get install haproxy)")
    return found


class Proxy:
    def __init__(self, binary: str, config: Path, port: int) -> None:
        self.log = (config.parent / "haproxy.log").open("w")
        self.proc = subprocess.Popen(
            [binary, "-db", "-f", str(config)], stdout=self.log, stderr=subprocess.STDOUT
        )
        self.url = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.url, timeout=DEADLINE_S)

    def ready_everywhere(self) -> bool:
        try:
            return all(self.http.get("/health/ready").status_code == 200 for _ in range(4))
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        self.proc.wait(DEADLINE_S)
        self.log.close()


@pytest.fixture
def cluster(
    tmp_path: Path, postgres_url: str, proxy_binary: str
) -> Iterator[tuple[Proxy, list[Process]]]:
    nats = NatsServer(tmp_path / "nats").start()
    key = secrets.token_hex(32)
    nodes: list[Process] = []
    proxy: Proxy | None = None
    try:
        for name in ("a", "b"):
            env = server_env(
                tmp_path / name,
                SOVD_DATABASE_URL=postgres_url,
                SOVD_BUS_URL=nats.url,
                SOVD_JWT_SECRET=key,
                SOVD_LANE_SWEEP_S="0.2",
                SOVD_TRUSTED_PROXIES="127.0.0.1/32",
            )
            nodes.append(Process(env))
        port = free_port()
        proxy = Proxy(proxy_binary, _local_config(tmp_path, port, nodes), port)
        wait_until(proxy.ready_everywhere, "the proxy to reach both replicas")
        yield proxy, nodes
    finally:
        if proxy is not None:
            proxy.close()
        for node in nodes:
            node.stop(signal.SIGKILL)
        nats.stop()


def _requests(node: Process) -> float:
    return total(scrape(node.http), "http_server_request_duration_seconds_count")


def test_the_proxy_spreads_calls_streams_a_command_and_outlives_a_replica(
    cluster: tuple[Proxy, list[Process]],
) -> None:
    proxy, (a, b) = cluster
    before = [_requests(a), _requests(b)]
    login = proxy.http.post(
        "/api/v1/auth/login", json={"username": "engineer", "password": ENGINEER_PASSWORD}
    )
    assert login.status_code == 200, login.text
    token = login.json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    for _ in range(6):
        assert proxy.http.get("/api/v1/vehicles", headers=headers).status_code == 200
    after = [_requests(a), _requests(b)]
    assert all(x > y for x, y in zip(after, before, strict=True)), (before, after)  # both served
    assert sum(after) - sum(before) == 7

    # A command submitted and followed through the proxy (each call on either replica).
    vehicle = vehicle_with_profile(a, token, "healthy")
    command_id = submit_read_dtc(proxy.http, token, vehicle)
    url = proxy.url.replace("http", "ws") + f"/ws/responses/{command_id}?token={token}"
    events: list[dict[str, Any]] = []
    with connect(url, open_timeout=DEADLINE_S) as ws:
        for message in ws:
            events.append(json.loads(message))
        assert ws.close_code == 1000
    assert events[-1]["status"] == "completed", events
    assert [e["sequence_number"] for e in events if e["event"] == "response"] == list(
        range(1, 1 + sum(e["event"] == "response" for e in events))
    )

    # One replica dies: every call through the proxy still answers, at once.
    b.proc.send_signal(signal.SIGKILL)
    b.proc.wait(DEADLINE_S)
    for _ in range(8):
        assert proxy.http.get("/api/v1/vehicles", headers=headers).status_code == 200
    # The dead replica's lanes move to the other within a sweep; commands run there.
    again = wait_until(
        lambda: _submitted(proxy, headers, vehicle), "a command accepted after the replica died"
    )
    assert again
    assert submit_command(a, a.token(), vehicle)


def _submitted(proxy: Proxy, headers: dict[str, str], vehicle: str) -> str | None:
    r = proxy.http.post(
        "/api/v1/commands",
        headers=headers,
        json={
            "vehicle_id": vehicle,
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x0010"},
        },
    )
    return str(r.json()["command_id"]) if r.status_code == 201 else None
