"""Issue #8 item 6: unauthenticated traffic cannot grow the database faster than a fixed rate.

Throttled logins are counted in metrics and summarised in the audit log at most once per
key (address, username) per window; every audit row caused by unauthenticated traffic
(failed and throttled logins) shares a global budget per minute, beyond which rows are
counted and the next row written says how many were left out.
"""

from __future__ import annotations

import json
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest

from tests.support.harness import Server, make_config, running
from tests.support.login_helpers import Clock, logins, statuses
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket


def _audit(srv: Server, action: str) -> list[dict[str, Any]]:
    rows = srv.query(
        "SELECT username, client_address, details FROM audit_log WHERE action = ?"
        " ORDER BY audit_id",
        action,
    )
    return [{"username": u, "client_address": a, "details": json.loads(d)} for u, a, d in rows]


def _throttled(srv: Server) -> float:
    return value(scrape(srv.http), "sovd_authentication_failures_total", reason="throttled")


def test_a_throttled_client_writes_one_audit_row_per_key_per_window(tmp_path: Path) -> None:
    clock = Clock()
    with running(make_config(tmp_path, password_hash_profile="fast"), clock=clock) as srv:
        assert statuses(logins(srv, [("engineer", "wrong-password", None)] * 5)) == {401: 5}
        rows_before = srv.query("SELECT count(*) FROM audit_log")[0][0]
        assert statuses(logins(srv, [("engineer", "wrong-password", None)] * 200)) == {429: 200}
        clock.now += 30
        assert statuses(logins(srv, [("Engineer", "wrong-password", None)] * 100)) == {429: 100}
        # 300 refusals: counted in metrics, two audit rows (the address, the username).
        assert srv.query("SELECT count(*) FROM audit_log")[0][0] == rows_before + 2
        assert _throttled(srv) == 300
        rows = _audit(srv, "auth.login_throttled")
        assert sorted(r["details"]["limit"] for r in rows) == ["address", "username"]
        assert {r["details"]["refused_since_previous_row"] for r in rows} == {0}
        # The next window: five new failures, then refusals; one more row per key, which
        # says how many refusals the previous row stood for.
        clock.now += 30
        assert statuses(logins(srv, [("engineer", "wrong-password", None)] * 5)) == {401: 5}
        assert statuses(logins(srv, [("engineer", "wrong-password", None)] * 50)) == {429: 50}
        rows = _audit(srv, "auth.login_throttled")
        assert len(rows) == 4
        assert {r["details"]["refused_since_previous_row"] for r in rows[2:]} == {299}
        assert _throttled(srv) == 350


def test_unauthenticated_audit_rows_stay_within_the_budget_per_minute(tmp_path: Path) -> None:
    clock = Clock()
    config = make_config(
        tmp_path,
        trusted_proxies=(ip_network("127.0.0.1/32"),),
        password_hash_profile="fast",
        login_max_concurrent=64,
        login_audit_per_min=20,
    )
    with running(config, clock=clock) as srv:
        rows_before = srv.query("SELECT count(*) FROM audit_log")[0][0]
        # 40 addresses, each failing six times for its own unknown username (the sixth
        # is throttled): 200 failures and 40 refusals from "anywhere" in one minute.
        flood = [(f"ghost{a}", "wrong-password", f"10.7.{a}.1") for a in range(40)]
        responses = logins(srv, flood * 6)
        assert statuses(responses) == {401: 200, 429: 40}
        added = srv.query("SELECT count(*) FROM audit_log")[0][0] - rows_before
        assert added == 20
        samples = scrape(srv.http)
        assert value(samples, "sovd_authentication_failures_total", reason="bad_credentials") == 200
        assert value(samples, "sovd_authentication_failures_total", reason="throttled") == 40
        # A minute later the budget is back; the first row says how many were left out.
        clock.now += 60
        logins(srv, [("ghost-late", "wrong-password", "10.8.0.1")])
        first = _audit(srv, "auth.login_failed")[-1]
        assert first["username"] == "ghost-late"
        assert first["details"]["audit_rows_left_out_before"] == 200 + 40 * 2 - 20
        # A real user's login is authenticated traffic and always recorded.
        srv.login("engineer", "engineer-password-1")
        assert srv.query("SELECT count(*) FROM audit_log WHERE action = 'auth.login'") == [(1,)]


def test_a_flood_of_made_up_names_cannot_hide_guesses_at_a_real_account(tmp_path: Path) -> None:
    # Found in review: the budget was one pool, so failures for made-up names used it up
    # and the guesses at admin that followed left no rows.
    clock = Clock()
    config = make_config(
        tmp_path,
        trusted_proxies=(ip_network("127.0.0.1/32"),),
        password_hash_profile="fast",
        login_max_concurrent=64,
        login_audit_per_min=20,
    )
    with running(config, clock=clock) as srv:
        flood = [(f"ghost{a}", "wrong-password", f"10.7.{a}.1") for a in range(40)]
        assert statuses(logins(srv, flood)) == {401: 40}
        assert len(_audit(srv, "auth.login_failed")) == 20  # the budget is spent
        guesses = [("admin", f"guess-{n}", "203.0.113.9") for n in range(5)]
        assert statuses(logins(srv, guesses)) == {401: 5}
        on_admin = [r for r in _audit(srv, "auth.login_failed") if r["username"] == "admin"]
        assert len(on_admin) == 5
        assert {r["client_address"] for r in on_admin} == {"203.0.113.9"}
