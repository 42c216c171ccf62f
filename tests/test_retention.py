"""SOVD_RETENTION_DAYS: old finished commands go, with their answers and audit rows."""

from __future__ import annotations

from pathlib import Path

from app.services.retention import Retention
from app.store.commands import CommandStore
from tests.conftest import make_config, running


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
        deleted = srv.run(srv.app.state.lifecycle.retention.run_once())
        assert deleted == 1
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


def test_retention_is_off_by_default(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as srv:
        assert srv.app.state.lifecycle.retention is None


def test_retention_works_through_many_batches(tmp_path: Path) -> None:
    with running(make_config(tmp_path, retention_days=30)) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        ids = [srv.submit(token, vehicle_id)["command_id"] for _ in range(5)]
        for cid in ids:
            srv.wait_status(token, cid)
        with srv.db() as conn:
            conn.execute("UPDATE commands SET completed_at = '2020-01-01T00:00:00.000000+00:00'")
        retention = Retention(CommandStore(srv.services.db), days=30, batch=2)
        assert srv.run(retention.run_once()) == 5  # batches of 2, 2 and 1
        assert srv.query("SELECT count(*) FROM commands") == [(0,)]
        assert srv.query("SELECT count(*) FROM command_responses") == [(0,)]
