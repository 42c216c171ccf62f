"""Start-up recovery and the duration histogram (issue #8, item 15).

Commands a crash left unfinished are ended as ``failed``/``interrupted`` at the next
start. They count in ``commands_executed_total``, but they add no sample to
``command_execution_duration_seconds``: the service does not know how long they ran, and
a made-up 0 (or the whole outage) would distort every quantile.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from tests.support.harness import make_config, running
from tests.support.scrape import scrape, total, value

pytestmark = pytest.mark.socket


def test_recovered_commands_are_counted_without_a_fake_duration(tmp_path: Path) -> None:
    config = make_config(tmp_path)
    with running(config) as srv:
        token = srv.token()
        vehicle_id = srv.vehicle(token)["vehicle_id"]
        ids = [srv.submit(token, vehicle_id)["command_id"] for _ in range(2)]
        for cid in ids:
            srv.wait_status(token, cid)
    # As a crash leaves them: one never started, one caught mid-run.
    with sqlite3.connect(config.db_path) as conn:
        conn.execute(
            "UPDATE commands SET status = 'pending', started_at = NULL, error_code = NULL,"
            " error_message = NULL, completed_at = NULL WHERE command_id = ?",
            (ids[0],),
        )
        conn.execute(
            "UPDATE commands SET status = 'in_progress', error_code = NULL,"
            " error_message = NULL, completed_at = NULL WHERE command_id = ?",
            (ids[1],),
        )
    with running(config) as srv:
        token = srv.token()
        for cid in ids:
            assert srv.command(token, cid)["error_code"] == "interrupted"
        samples = scrape(srv.http)
        assert value(samples, "commands_executed_total", command="ReadDTC", status="failed") == 2
        # No sample at all, neither 0 s nor anything else.
        assert total(samples, "command_execution_duration_seconds_count") == 0
        assert total(samples, "command_execution_duration_seconds_sum") == 0
        # A command run now is measured as usual.
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        srv.wait_status(token, cid)
        samples = scrape(srv.http)
        assert (
            value(
                samples,
                "command_execution_duration_seconds_count",
                command="ReadDTC",
                status="completed",
            )
            == 1
        )
        assert total(samples, "command_execution_duration_seconds_count") == 1
