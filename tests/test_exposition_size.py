"""The /metrics exposition after every route has been hit: its size, and what makes it.

The HTTP duration histogram is most of a realistic scrape (one line per bucket for each
method, route and status seen), so it keeps no ``url_scheme`` label and uses a shorter
subset of the OTel boundaries.
"""

from __future__ import annotations

import gzip

import pytest

from app.api.routes import ENDPOINTS
from otel import names
from tests.support.harness import Server, auth
from tests.support.scrape import parse

pytestmark = pytest.mark.fast

# OTel semantic conventions' advice for http.server.request.duration.
OTEL_HTTP_ADVICE = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
HISTOGRAM = "http_server_request_duration_seconds"
# Measured after hit_every_route: 123 HTTP series of about 2.4 KB each (the SOVD tree's
# route templates are long label values: 60 to 100 characters on every bucket line),
# the rest of the exposition about 3 KB. The budgets leave room for longer label values,
# not for another label or bucket (one more label or all 14 boundaries: over 3 KB).
MAX_BYTES_PER_HTTP_SERIES = 2_600
MAX_OTHER_BYTES = 10_000
UNKNOWN_ID = "00000000-0000-4000-8000-000000000000"


def hit_every_route(server: Server) -> None:
    """Each endpoint as anonymous, with a bad token and as admin, with a known-absent
    id and a malformed one; bodies empty or broken: the outcomes clients really cause."""
    admin = server.admin_token()
    for e in ENDPOINTS:
        if e.path == "/api/v1/auth/logout":
            continue  # would end the admin's session; hit once at the end
        path = e.path
        for param in e.path_params:
            path = path.replace("{" + param + "}", UNKNOWN_ID)
        for headers in ({}, auth("not-a-token"), auth(admin)):
            server.http.request(e.method, path, headers=headers, json={} if e.body else None)
            broken = path.replace(UNKNOWN_ID, "nope")
            server.http.request(e.method, broken, headers=headers, content=b"{" if e.body else None)
    server.http.get("/no/such/path")
    server.http.post("/api/v1/auth/logout", headers=auth(admin))


def test_a_realistic_scrape_stays_small(server: Server) -> None:
    hit_every_route(server)
    text = server.http.get("/metrics").text
    samples = parse(text)
    series = {
        lbls for (name, lbls) in samples if name == f"{HISTOGRAM}_count"
    }  # (method, route, status) combinations seen
    assert len(series) >= 20, "the exercise should reach most routes"
    size = len(text.encode())
    http_bytes = sum(len(line) + 1 for line in text.splitlines() if line.startswith(HISTOGRAM))
    packed = len(gzip.compress(text.encode()))
    # The figures of docs/telemetry.md.
    print(
        f"\nexposition: {size} B ({packed} B gzipped), {len(series)} HTTP series,"
        f" {http_bytes / len(series):.0f} B each; the rest {size - http_bytes} B"
    )
    assert http_bytes / len(series) <= MAX_BYTES_PER_HTTP_SERIES
    assert size - http_bytes <= MAX_OTHER_BYTES


def test_http_durations_have_no_scheme_label_and_fewer_buckets(server: Server) -> None:
    server.http.get("/api/v1/catalogue", headers=auth(server.token()))
    samples = parse(server.http.get("/metrics").text)
    buckets = [lbls for (name, lbls) in samples if name == f"{HISTOGRAM}_bucket"]
    assert buckets
    assert not any(key == "url_scheme" for lbls in buckets for key, _ in lbls)
    bounds = sorted({float(v) for lbls in buckets for k, v in lbls if k == "le" and v != "+Inf"})
    assert bounds == list(names.HTTP_DURATION_BUCKETS)
    assert set(bounds) < set(OTEL_HTTP_ADVICE) and len(bounds) <= 11
    # The active-requests gauge keeps it (a few lines; its observations must not merge).
    active = [lbls for (name, lbls) in samples if name == "http_server_active_requests"]
    assert active and all(dict(lbls).get("url_scheme") == "http" for lbls in active)
