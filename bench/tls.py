"""The fleet page over HTTPS against plain HTTP (issue #26), in the same run.

Two servers, the same database contents (the demo fleet and 54 more vehicles: 60), one
serving plain HTTP and one HTTPS with a certificate made here by openssl (the commands
docs/security.md shows); the same client (wrk over keep-alive connections, HTTP/1.1,
else the asyncio generator of bench.load) drives ``GET /api/v1/vehicles?limit=50`` on
each in alternating rounds. The ratio is HTTPS requests/s to plain requests/s (the TLS
handshakes are paid once per connection; the figure is the per-request cost of
encryption).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

from bench.load import http_load
from bench.pipeline import create_fleet
from bench.server import BenchServer

FLEET = "/api/v1/vehicles?limit=50"
Pin = Callable[[], tuple[set[int] | None, set[int] | None]]


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    cert, key, csr = directory / "server.pem", directory / "server.key", directory / "server.csr"
    ext = directory / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_step = ["req", "-x509", *curve, "-days", "2", "-subj", "/CN=Bench CA"]
    sign = ["x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key)]
    steps = [
        [*ca_step, "-keyout", str(ca_key), "-out", str(ca)],
        ["req", *curve, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(csr)],
        [*sign, "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
    ]
    for step in steps:
        subprocess.run(["openssl", *step], check=True, capture_output=True)
    key.chmod(0o600)
    return ca, cert, key


def _figures(rps: list[float], load: Any) -> dict[str, Any]:
    return {
        "tool": load.tool,
        "requests_per_s": round(median(rps)),
        "p50_ms": load.p50_ms,
        "p99_ms": load.p99_ms,
        "errors": load.errors,
    }


def scenario(args: argparse.Namespace, pin: Pin) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sovd-bench-tls-") as tmp:
        ca, cert, key = make_certificates(Path(tmp))
        tls_env = {"SOVD_TLS_CERT": str(cert), "SOVD_TLS_KEY": str(key)}
        with (
            BenchServer(cpus=pin()[0]) as plain,
            BenchServer(cpus=pin()[0], env=tls_env, ca_file=ca) as secure,
        ):
            targets = {"http": plain, "https": secure}
            headers = {}
            for name, server in targets.items():
                create_fleet(server, 60 - 6)  # with the six demo vehicles: 60
                headers[name] = {"Authorization": f"Bearer {server.token()}"}
                page = server.http.get(FLEET, headers=headers[name]).json()
                assert len(page["items"]) == 50, f"{name}: {len(page['items'])} items"
                if not args.smoke:  # a smoke run's figures mean nothing: no warm-up
                    http_load(
                        server.base_url + FLEET,
                        headers[name],
                        seconds=min(2.0, args.http_seconds),
                        cpus=pin()[1],
                    )
            rps: dict[str, list[float]] = {"http": [], "https": []}
            last: dict[str, Any] = {}
            for n in range(args.rounds):
                for name in targets if n % 2 == 0 else reversed(targets):
                    print(f"tls round {n + 1}/{args.rounds}: {name} {FLEET}", file=sys.stderr)
                    load = http_load(
                        targets[name].base_url + FLEET,
                        headers[name],
                        seconds=args.http_seconds,
                        cpus=pin()[1],
                    )
                    print(f"  {name}: {load.rps:.0f} req/s", file=sys.stderr)
                    rps[name].append(load.rps)
                    last[name] = load
    https, http = median(rps["https"]), median(rps["http"])
    return {
        "https_ratio": round(https / http, 3) if http else 0.0,
        "https": _figures(rps["https"], last["https"]),
        "http": _figures(rps["http"], last["http"]),
        "rounds": args.rounds,
    }
