"""Retention: old finished commands go with their answers and audit rows, old audit rows
go (both with SOVD_RETENTION_DAYS), and dead sessions go daily (always)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.clock import Clock
from app.services.retention import Purged, Retention
from app.store.audit import AuditStore
from app.store.commands import CommandStore
from app.store.users import UserStore
from tests.support.fake_clock import FakeClock
from tests.support.harness import ENGINEER_PASSWORD, Server, auth, make_config, running

pytestmark = pytest.mark.socket

OLD = "2020-01-01T00:00:00.000000+00:00"


class WallClock(Clock):
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def wall(self) -> datetime:
        return self.now


def _retention(srv: Server, days: float | None, **kwargs: Any) -> Retention:
    db = srv.services.db
    return Retention(CommandStore(db), UserStore(db), AuditStore(db), days, **kwargs)


def _age_everything(srv: Server) -> None:
    with srv.db() as conn:
        conn.execute("UPDATE commands SET completed_at = ?", (OLD,))
        conn.execute("UPDATE audit_log SET at = ?", (OLD,))


def test_retention_deletes_old_finished_commands_only(tmp_path: Path) -> None:
    with running(make_config(tmp_path, retention_days=30)) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        ids = [srv.submit(token, vehicle_id)["command_id"] for _ in range(3)]
        for cid in ids:
            srv.wait_status(token, cid)
        old, recent, running_old = ids
        with srv.db() as conn:  # age two of them: one finished, one made to look unfinished
            conn.execute(
                "UPDATE commands SET completed_at = '2020-01-01T00:00:00.000000+00:00'"
                " WHERE command_id IN (?, ?)",
                (old, running_old),
            )
            conn.execute(
                "UPDATE commands SET status = 'in_progress' WHERE command_id = ?", (running_old,)
            )
        purged = srv.run(srv.app.state.lifecycle.retention.run_once())
        assert purged.commands == 1
        assert srv.query("SELECT command_id FROM commands ORDER BY seq") == [
            (recent,),
            (running_old,),
        ]
        assert srv.query("SELECT count(*) FROM command_responses WHERE command_id = ?", old) == [
            (0,)
        ]
        assert srv.query("SELECT count(*) FROM audit_log WHERE entity_id = ?", old) == [(0,)]
        assert srv.query("SELECT count(*) FROM command_responses WHERE command_id = ?", recent) == [
            (3,)
        ]
        assert srv.query("SELECT count(*) FROM audit_log WHERE entity_id = ?", recent) == [(3,)]


def test_commands_and_audit_rows_are_kept_by_default(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, cid)
        _age_everything(srv)
        purged = srv.run(srv.app.state.lifecycle.retention.run_once())
        assert (purged.commands, purged.audit_rows) == (0, 0)
        assert srv.query("SELECT count(*) FROM commands") == [(1,)]
        assert srv.query("SELECT count(*) FROM audit_log WHERE at < '2021'")[0][0] > 0


def test_retention_works_through_many_batches(tmp_path: Path) -> None:
    with running(make_config(tmp_path, retention_days=30)) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        ids = [srv.submit(token, vehicle_id)["command_id"] for _ in range(5)]
        for cid in ids:
            srv.wait_status(token, cid)
        with srv.db() as conn:
            conn.execute("UPDATE commands SET completed_at = '2020-01-01T00:00:00.000000+00:00'")
        retention = _retention(srv, days=30, batch=2)
        assert srv.run(retention.run_once()).commands == 5  # batches of 2, 2 and 1
        assert srv.query("SELECT count(*) FROM commands") == [(0,)]
        assert srv.query("SELECT count(*) FROM command_responses") == [(0,)]


def test_expired_and_revoked_sessions_are_purged_daily(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as srv:
        live = srv.login("engineer", ENGINEER_PASSWORD)
        srv.login("engineer", ENGINEER_PASSWORD)  # expires below
        gone = srv.login("engineer", ENGINEER_PASSWORD)
        r = srv.http.post("/api/v1/auth/logout", headers=auth(gone["access_token"]))
        assert r.status_code == 204
        with srv.db() as conn:
            conn.execute(
                "UPDATE sessions SET expires_at = ? WHERE rowid = (SELECT rowid FROM sessions"
                " ORDER BY created_at LIMIT 1 OFFSET 1)",
                (OLD,),
            )
        clock = WallClock()
        retention = _retention(srv, None, clock=clock, batch=1)
        assert srv.run(retention.run_once()).sessions == 2  # in batches of one
        assert srv.query("SELECT count(*) FROM sessions") == [(1,)]
        me = srv.http.get("/api/v1/auth/me", headers=auth(live["access_token"]))
        assert me.status_code == 200
        # Eight days on, the live session has expired too; the purge runs once a day.
        clock.now += timedelta(days=8)
        assert srv.run(retention.run_once()).sessions == 1
        srv.login("engineer", ENGINEER_PASSWORD)
        with srv.db() as conn:
            conn.execute("UPDATE sessions SET revoked_at = ?", (OLD,))
        clock.now += timedelta(hours=23)
        assert srv.run(retention.run_once()).sessions == 0  # not a day since the last
        clock.now += timedelta(hours=1)
        assert srv.run(retention.run_once()).sessions == 1
        assert srv.query("SELECT count(*) FROM sessions") == [(0,)]


def test_audit_rows_older_than_the_retention_period_are_purged_in_batches(
    tmp_path: Path,
) -> None:
    with running(make_config(tmp_path, retention_days=30)) as srv:
        for _ in range(3):
            srv.login("engineer", ENGINEER_PASSWORD)
        with srv.db() as conn:
            conn.execute("UPDATE audit_log SET at = ?", (OLD,))
        srv.login("engineer", ENGINEER_PASSWORD)  # a recent row, kept
        old = srv.query("SELECT count(*) FROM audit_log WHERE at = ?", OLD)[0][0]
        assert old >= 5  # the two users created at start and three logins
        purged = srv.run(_retention(srv, 30, batch=2).run_once())
        assert purged.audit_rows == old
        assert srv.query("SELECT count(*) FROM audit_log WHERE at = ?", OLD) == [(0,)]
        assert srv.query("SELECT action FROM audit_log") == [("auth.login",)]


def test_the_service_runs_retention_without_retention_days(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as srv:
        retention = srv.app.state.lifecycle.retention
        assert retention is not None and retention._task is not None
        assert not retention._task.done()


def test_the_running_service_purges_old_audit_rows(tmp_path: Path) -> None:
    with running(make_config(tmp_path, retention_days=30)) as srv:
        old = srv.login("engineer", ENGINEER_PASSWORD)
        srv.http.post("/api/v1/auth/logout", headers=auth(old["access_token"]))
        with srv.db() as conn:
            conn.execute("UPDATE audit_log SET at = ?", (OLD,))
        live = srv.login("engineer", ENGINEER_PASSWORD)
        srv.run(srv.app.state.lifecycle.retention.run_once())
        assert srv.query("SELECT count(*) FROM audit_log WHERE at = ?", OLD) == [(0,)]
        assert srv.query("SELECT action FROM audit_log") == [("auth.login",)]
        me = srv.http.get("/api/v1/auth/me", headers=auth(live["access_token"]))
        assert me.status_code == 200


def test_moving_the_services_clock_ages_everything_without_rewriting_rows(
    tmp_path: Path,
) -> None:
    """Issue #9 item 6: one injected clock. Moved 31 days on, the command, its audit rows
    and the session are past retention and the access token past its expiry: auth,
    retention and the pipeline's timestamps all read the same clock."""
    clock = FakeClock()
    with running(make_config(tmp_path, retention_days=30), clock=clock) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, cid)
        retention = srv.app.state.lifecycle.retention
        assert srv.run(retention.run_once()) == Purged()  # nothing is old yet
        clock.advance(31 * 86400)
        assert srv.http.get("/api/v1/auth/me", headers=auth(token)).status_code == 401
        purged = srv.run(retention.run_once())
        assert purged.commands == 1
        assert purged.audit_rows > 0
        assert purged.sessions == 1
        assert srv.query("SELECT count(*) FROM commands") == [(0,)]
        assert srv.query("SELECT count(*) FROM sessions") == [(0,)]
