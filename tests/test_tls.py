"""HTTPS built in (issue #26): the real ``python -m app`` with SOVD_TLS_CERT, SOVD_TLS_KEY
and SOVD_TLS_CLIENT_CA, certificates made here (``tests/tls_helpers.py``: a CA, a server
certificate, client certificates), driven over real sockets: HTTPS and HTTP/2 by ALPN,
TLS 1.2 at least, wss://, client certificates mapped to service accounts, the start
refused in one line for bad files."""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from app.config import Config
from app.server import hypercorn_config
from app.tls import PeerRecordingSSLObject
from tests.support.harness import DEADLINE_S
from tests.support.process import Process, run_app, server_env
from tests.tls_helpers import Ca, make_ca

pytestmark = pytest.mark.socket

ADMIN = {"username": "admin", "password": "admin-password-1"}


@dataclass(frozen=True)
class Certs:
    ca: Ca
    server: tuple[Path, Path]
    rig: tuple[Path, Path]  # CN rig-1: mapped to an engineer account
    boss: tuple[Path, Path]  # CN bench-admin, SAN boss.lab: mapped (by SAN) to an admin one
    stranger: tuple[Path, Path]  # verifies, maps to no account
    foreign: tuple[Path, Path]  # from another CA: does not verify
    directory: Path


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    d = tmp_path_factory.mktemp("certs")
    ca = make_ca(d)
    other = make_ca(d / "other", "Other CA")
    return Certs(
        ca=ca,
        server=ca.issue(d, "server", server=True),
        rig=ca.issue(d, "rig-1"),
        boss=ca.issue(d, "bench-admin", dns=("boss.lab",)),
        stranger=ca.issue(d, "stranger"),
        foreign=other.issue(d / "other", "rig-1"),
        directory=d,
    )


def tls_env(tmp_path: Path, certs: Certs, client_ca: bool = True) -> dict[str, str]:
    extra = {
        "SOVD_TLS_CERT": str(certs.server[0]),
        "SOVD_TLS_KEY": str(certs.server[1]),
        "SOVD_ADMIN_PASSWORD": ADMIN["password"],
    }
    if client_ca:
        extra["SOVD_TLS_CLIENT_CA"] = str(certs.ca.path)
    return server_env(tmp_path, **extra)


def context(certs: Certs, client: tuple[Path, Path] | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca.path))
    if client is not None:
        ctx.load_cert_chain(*client)
    return ctx


class TlsProcess(Process):
    """``python -m app`` serving HTTPS: its address from Hypercorn's https line."""

    def __init__(self, env: dict[str, str], certs: Certs) -> None:
        self.certs = certs
        self.db = Path(env["SOVD_DB_PATH"])
        super().__init__(env)
        self.http.close()
        self.base_url = self.base_url.replace("http://", "https://")
        self.http = self.client()
        # Its tests read described data at once: a start quicker than the demo
        # description's build (cheap hashing) would find it still loading.
        self.wait_for_the_demo_description()

    def _port(self) -> int | None:
        for line in self.lines:
            match = re.search(r"Running on https://127\.0\.0\.1:(\d+)", line)
            if match:
                return int(match.group(1))
        return None

    def client(self, cert: tuple[Path, Path] | None = None, http2: bool = False) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            verify=context(self.certs, cert),
            http2=http2,
            timeout=DEADLINE_S,
        )

    def admin(self) -> str:
        r = self.http.post("/api/v1/auth/login", json=ADMIN)
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def account(self, client_id: str, role: str, certificate_name: str) -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/service-accounts",
            headers={"Authorization": f"Bearer {self.admin()}"},
            json={"client_id": client_id, "role": role, "certificate_name": certificate_name},
        )
        assert r.status_code == 201, r.text
        return dict(r.json()["account"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, certs: Certs) -> Iterator[TlsProcess]:
    proc = TlsProcess(tls_env(tmp_path_factory.mktemp("tls"), certs), certs)
    try:
        proc.account("rig", "engineer", "rig-1")
        proc.account("boss", "admin", "boss.lab")  # its SAN, not its CN
        yield proc
    finally:
        proc.stop()


def test_https_with_http2_by_alpn_and_tls_1_2_at_least(served: TlsProcess) -> None:
    with served.client(http2=True) as h2, served.client() as h1:
        r2, r1 = h2.get("/health/live"), h1.get("/health/live")
        assert r2.status_code == 200 and r2.http_version == "HTTP/2"
        assert r1.status_code == 200 and r1.http_version == "HTTP/1.1"
    port = int(served.base_url.rsplit(":", 1)[1])
    ctx = context(served.certs)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S) as raw,
        ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # The server's own context: TLS 1.2 at least, HTTP/2 offered, client certificates
    # asked for (optional) and recorded per connection.
    config = Config.from_env(
        {
            "SOVD_TLS_CERT": str(served.certs.server[0]),
            "SOVD_TLS_KEY": str(served.certs.server[1]),
            "SOVD_TLS_CLIENT_CA": str(served.certs.ca.path),
        }
    )
    server_ctx = hypercorn_config(config).create_ssl_context()
    assert server_ctx is not None
    assert server_ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert server_ctx.verify_mode == ssl.CERT_OPTIONAL
    assert server_ctx.sslobject_class is PeerRecordingSSLObject
    # Plain HTTP on the TLS port is not served.
    with pytest.raises(httpx.HTTPError):
        httpx.get(served.base_url.replace("https://", "http://") + "/health/live", timeout=2)


def test_the_sovd_trees_links_say_https(served: TlsProcess) -> None:
    token = served.token()
    vin = "WVWZZZ1KZAW000001"
    r = served.http.get(
        f"/sovd/vehicles/{vin}/version-info", headers={"Authorization": f"Bearer {token}"}
    )
    assert r.json()["sovd_info"][0]["base_uri"] == f"{served.base_url}/sovd/vehicles/{vin}/v1"
    r = served.http.get(
        f"/sovd/vehicles/{vin}/v1/components", headers={"Authorization": f"Bearer {token}"}
    )
    assert all(i["href"].startswith(f"{served.base_url}/sovd/") for i in r.json()["items"])


def test_client_certificates_map_to_service_accounts(served: TlsProcess) -> None:
    certs = served.certs
    with served.client(certs.rig) as rig, served.client(certs.boss, http2=True) as boss:
        me = rig.get("/api/v1/auth/me")
        assert me.status_code == 200 and me.json()["username"] == "rig", me.text
        assert me.json()["role"] == "engineer"
        assert rig.get("/api/v1/users").status_code == 403  # its role's endpoints only
        r = rig.get("/sovd/vehicles/WVWZZZ1KZAW000001/v1/components/engine/data")
        assert r.status_code == 200, r.text
        assert boss.get("/api/v1/auth/me").json()["username"] == "boss"  # by its SAN
        assert boss.get("/api/v1/users").status_code == 200
    with served.client(certs.stranger) as stranger:
        r = stranger.get("/api/v1/auth/me")
        assert r.status_code == 401
        assert (
            "stranger" in r.json()["message"]
            and "maps to no service account" in (r.json()["message"])
        )
        # A bearer token still works on that connection (it is the account it names).
        token = served.token()
        r = stranger.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert r.json()["username"] == "engineer"
    # No certificate: the token, as without TLS.
    r = served.http.get("/api/v1/auth/me")
    assert r.status_code == 401 and "no bearer token" in r.json()["message"]
    # People still log in with passwords.
    assert served.token()
    # A certificate of another CA does not get through the handshake (under TLS 1.3 the
    # client learns it when the server closes instead of answering).
    with pytest.raises(httpx.TransportError), served.client(certs.foreign) as foreign:
        foreign.get("/api/v1/auth/me")


def test_each_connection_keeps_its_own_certificate(served: TlsProcess) -> None:
    """The peer certificate reaches the app per connection (``app.tls``): interleaved
    requests on concurrent connections, HTTP/1.1 and HTTP/2, each see their own; a
    connection without a certificate after them sees none."""
    certs = served.certs
    seen: dict[str, list[int | str]] = {"rig": [], "boss": [], "none": []}

    def ask(name: str, cert: tuple[Path, Path] | None, http2: bool) -> None:
        with served.client(cert, http2=http2) as c:
            for _ in range(15):
                r = c.get("/api/v1/auth/me")
                seen[name].append(r.json()["username"] if r.status_code == 200 else r.status_code)

    threads = [
        threading.Thread(target=ask, args=("rig", certs.rig, False)),
        threading.Thread(target=ask, args=("boss", certs.boss, True)),
        threading.Thread(target=ask, args=("none", None, False)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S * 3)
    assert seen == {"rig": ["rig"] * 15, "boss": ["boss"] * 15, "none": [401] * 15}
    with served.client(None, http2=True) as after:
        assert after.get("/api/v1/auth/me").status_code == 401


def test_the_audit_says_how_a_request_was_authenticated(served: TlsProcess) -> None:
    with served.client(served.certs.rig) as rig:
        assert rig.get("/api/v1/auth/me").status_code == 200
        assert rig.get("/api/v1/auth/me").status_code == 200  # one row per connection
    with sqlite3.connect(served.db) as db:
        rows = db.execute(
            "SELECT username, details FROM audit_log WHERE action = 'auth.login'"
        ).fetchall()
    methods = [(u, json.loads(d)["method"]) for u, d in rows]
    assert ("admin", "password") in methods
    certificate = [json.loads(d) for u, d in rows if u == "rig"]
    assert certificate and all(
        d == {"method": "client_certificate", "certificate_name": "rig-1"} for d in certificate
    )


def test_a_websocket_stream_over_wss(served: TlsProcess) -> None:
    # With a token, and with a mapped certificate alone.
    vehicle = served.http.get(
        "/api/v1/vehicles",
        params={"search": "WVWZZZ1KZAW000001"},
        headers={"Authorization": f"Bearer {served.token()}"},
    ).json()["items"][0]
    ws_base = served.base_url.replace("https://", "wss://")
    for cert, token in ((None, served.token()), (served.certs.rig, None)):
        with served.client(cert) as c:
            r = c.post(
                "/api/v1/commands",
                headers={"Authorization": f"Bearer {token}"} if token else {},
                json={
                    "vehicle_id": vehicle["vehicle_id"],
                    "command_name": "ReadDTC",
                    "command_params": {"ecuAddress": "0x10"},
                },
            )
            assert r.status_code == 201, r.text
            command_id = r.json()["command_id"]
        query = f"?token={token}" if token else ""
        with connect(
            f"{ws_base}/ws/responses/{command_id}{query}",
            ssl=context(served.certs, cert),
            open_timeout=DEADLINE_S,
        ) as ws:
            events = []
            while not events or events[-1].get("status") not in ("completed", "failed"):
                events.append(json.loads(ws.recv(timeout=DEADLINE_S)))
            assert events[-1]["status"] == "completed", events


def test_a_disabled_accounts_certificate_is_refused_on_its_open_connection(
    served: TlsProcess,
) -> None:
    account = served.account("short-lived", "engineer", "short.lab")
    cert = served.certs.ca.issue(served.certs.directory, "short", dns=("short.lab",))
    with served.client(cert) as c:
        assert c.get("/api/v1/auth/me").status_code == 200
        r = served.http.patch(
            f"/api/v1/service-accounts/{account['account_id']}",
            headers={"Authorization": f"Bearer {served.admin()}"},
            json={"disabled": True},
        )
        assert r.status_code == 200
        r = c.get("/api/v1/auth/me")
        assert r.status_code == 401 and "disabled" in r.json()["message"]


# -- the start refused ------------------------------------------------------------------


def _refused(env: dict[str, str], *expected: str) -> str:
    done = run_app(env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() + done.stderr.splitlines()]
    failures = [r["message"] for r in lines if r.get("event") == "startup_failed"]
    assert len(failures) == 1, lines
    assert all(e in failures[0] for e in expected), failures[0]
    assert "Running on" not in done.stdout + done.stderr
    return str(failures[0])


def test_bad_certificate_files_stop_the_start_in_one_line(tmp_path: Path, certs: Certs) -> None:
    env = tls_env(tmp_path, certs)
    key_text = certs.server[1].read_text()
    missing = tmp_path / "nowhere.pem"
    _refused({**env, "SOVD_TLS_CERT": str(missing)}, "SOVD_TLS_CERT", str(missing), "No such")
    # A wrong key: another certificate's.
    message = _refused(
        {**env, "SOVD_TLS_KEY": str(certs.rig[1])}, "SOVD_TLS_KEY", "does not belong"
    )
    assert key_text not in message
    # An expired certificate.
    expired = certs.ca.issue(
        tmp_path, "old-server", server=True, not_after=datetime.now(UTC) - timedelta(days=1)
    )
    _refused(
        {**env, "SOVD_TLS_CERT": str(expired[0]), "SOVD_TLS_KEY": str(expired[1])},
        "SOVD_TLS_CERT",
        "expired on",
    )
    # A key others can read.
    shared = tmp_path / "shared.key"
    shared.write_text(key_text)
    os.chmod(shared, 0o644)
    message = _refused(
        {**env, "SOVD_TLS_KEY": str(shared)}, "SOVD_TLS_KEY", "read by others", "0644"
    )
    assert key_text not in message
    # Not a certificate at all; a client CA that is not one.
    _refused({**env, "SOVD_TLS_CERT": str(certs.server[1])}, "SOVD_TLS_CERT", "no PEM")
    _refused({**env, "SOVD_TLS_CLIENT_CA": str(shared)}, "SOVD_TLS_CLIENT_CA", "no PEM")
    # One of the pair alone: a configuration error naming the other.
    alone = {k: v for k, v in env.items() if k != "SOVD_TLS_KEY"}
    done = run_app(alone)
    assert done.returncode == 2 and "SOVD_TLS_KEY must be set too" in done.stderr


def test_without_tls_settings_the_service_speaks_plain_http() -> None:
    hc = hypercorn_config(Config())
    assert not hc.ssl_enabled and hc.ca_certs is None
    assert Config().host == "127.0.0.1"  # make run: loopback, plain HTTP
    env = Config.from_env({})
    assert env.tls_cert is None and env.tls_key is None and env.tls_client_ca is None
