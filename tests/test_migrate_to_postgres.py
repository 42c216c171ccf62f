"""``python -m app migrate-to-postgres`` (issue #23 item 6): an SQLite database filled through
the real service (accounts, a service account, vehicles, commands with their answers, the
audit log) copied into a real PostgreSQL database; the service started on PostgreSQL
answers with the same accounts, vehicles and history, ids and timestamps kept, and new
commands and audit rows follow the copied ones. Refused, each changing nothing: a second
run (the target holds rows), a run while the service uses the file, a source at another
schema version, and a row PostgreSQL will not take (the tables copied before it are not
kept either: one transaction), after which a fixed source copies whole.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.store.engine import read_once
from app.store.migrations import MIGRATIONS
from app.store.sql import Conn
from tests.support.harness import wait_until
from tests.support.process import Process, admin_headers, run_app, server_env, submit_command

pytestmark = pytest.mark.socket

ADMIN_PASSWORD = "admin-password-1"  # server_env's


def _get(node: Process, path: str, headers: dict[str, str]) -> Any:
    r = node.http.get(path, headers=headers, params={"limit": 200})
    assert r.status_code == 200, (path, r.text)
    return r.json()


def _answers(node: Process, headers: dict[str, str], commands: list[str]) -> dict[str, Any]:
    """What the service answers about its accounts, fleet and history."""
    return {
        "users": _get(node, "/api/v1/users", headers),
        "service_accounts": _get(node, "/api/v1/service-accounts", headers),
        "vehicles": _get(node, "/api/v1/vehicles", headers),
        "commands": _get(node, "/api/v1/commands", headers),
        "responses": {c: _get(node, f"/api/v1/commands/{c}/responses", headers) for c in commands},
        "audit": _get(node, "/api/v1/audit", headers),
    }


def _wait_done(node: Process, headers: dict[str, str], command_id: str) -> None:
    wait_until(
        lambda: (
            _get(node, f"/api/v1/commands/{command_id}", headers)["status"]
            not in ("pending", "in_progress")
        ),
        f"command {command_id} to end",
    )


def _row_counts(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(path)
    try:
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        return {n: conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        conn.close()


def _printed_counts(stdout: str) -> dict[str, int]:
    counts = {}
    for line in stdout.splitlines():
        parts = line.split()
        if line.startswith("  ") and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


def test_an_sqlite_database_moves_into_postgres_and_the_service_answers_the_same(
    tmp_path: Path, postgres_url: str
) -> None:
    env = server_env(tmp_path / "node")
    source = Path(env["SOVD_DB_PATH"])
    node = Process(env)
    try:
        admin = admin_headers(node)
        made = node.http.post(
            "/api/v1/users",
            headers=admin,
            json={"username": "second", "password": "other-password-1", "role": "engineer"},
        )
        assert made.status_code == 201, made.text
        account = node.http.post(
            "/api/v1/service-accounts",
            headers=admin,
            json={"client_id": "line-tester", "role": "engineer"},
        )
        assert account.status_code == 201, account.text
        token = node.token()
        vehicles = [
            v
            for v in _get(node, "/api/v1/vehicles", admin)["items"]
            if v["connection_status"] == "connected"
        ]
        commands = [submit_command(node, token, v["vehicle_id"]) for v in vehicles[:3]]
        for command_id in commands:
            _wait_done(node, admin, command_id)
        before = _answers(node, admin, commands)
        # While the service runs on the file the copy is refused (it would miss commands).
        running = run_app({**env, "SOVD_DATABASE_URL": postgres_url}, "migrate-to-postgres")
        assert running.returncode == 1 and "stop it first" in running.stderr, running.stderr
    finally:
        assert node.stop() == 0
    assert len(before["commands"]["items"]) == 3
    assert any(r["items"] for r in before["responses"].values())

    migrate_env = {**env, "SOVD_DATABASE_URL": postgres_url}
    moved = run_app(migrate_env, "migrate-to-postgres")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    counts = _printed_counts(moved.stdout)
    assert counts == _row_counts(source)
    assert counts["users"] == 4 and counts["commands"] == 3  # admin, engineer, second, a client
    assert f"{sum(counts.values())} rows in {len(counts)} tables" in moved.stdout

    again = run_app(migrate_env, "migrate-to-postgres")
    assert again.returncode == 1
    assert "is not empty" in again.stderr and "nothing was written" in again.stderr

    on_pg = Process({**env, "SOVD_DATABASE_URL": postgres_url})
    try:
        admin = admin_headers(on_pg)
        after = _answers(on_pg, admin, commands)
        # The logins just made (admin here) are audited after the copied rows.
        new_audit = after["audit"]["items"][
            : len(after["audit"]["items"]) - len(before["audit"]["items"])
        ]
        assert after["audit"]["items"][len(new_audit) :] == before["audit"]["items"]
        assert [a["action"] for a in new_audit] == ["auth.login"]
        for key in ("users", "service_accounts", "vehicles", "commands", "responses"):
            assert after[key] == before[key], key
        # The ids continue after the copied ones: a new command is the newest.
        newest = submit_command(on_pg, on_pg.token(), vehicles[0]["vehicle_id"])
        listed = _get(on_pg, "/api/v1/commands", admin)["items"]
        assert [c["command_id"] for c in listed] == [
            newest,
            *(c["command_id"] for c in before["commands"]["items"]),
        ]
    finally:
        on_pg.stop(signal.SIGKILL)


def test_a_source_at_another_schema_version_is_refused(tmp_path: Path, postgres_url: str) -> None:
    env = server_env(tmp_path / "node")
    source = Path(env["SOVD_DB_PATH"])
    node = Process(env)
    assert node.stop() == 0
    conn = sqlite3.connect(source)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    conn.commit()
    conn.close()
    refused = run_app({**env, "SOVD_DATABASE_URL": postgres_url}, "migrate-to-postgres")
    assert refused.returncode == 1
    assert (
        f"is at schema version {len(MIGRATIONS) - 1}, this service's is {len(MIGRATIONS)}"
        in refused.stderr
    )
    assert "nothing was written" in refused.stderr
    # A row PostgreSQL refuses (SQLite stores text in an INTEGER column): nothing is
    # written, not even the tables copied before it; fixed, the next run copies all.
    conn = sqlite3.connect(source)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
    conn.execute("UPDATE vehicles SET year = 'not a year' WHERE rowid = 1")
    conn.commit()
    refused = run_app({**env, "SOVD_DATABASE_URL": postgres_url}, "migrate-to-postgres")
    assert refused.returncode == 1, refused.stdout
    assert "PostgreSQL refused a row of vehicles" in refused.stderr
    assert asyncio.run(read_once(postgres_url, _users_and_version)) == (0, len(MIGRATIONS))
    conn.execute("UPDATE vehicles SET year = 2024 WHERE rowid = 1")
    conn.commit()
    conn.close()
    moved = run_app({**env, "SOVD_DATABASE_URL": postgres_url}, "migrate-to-postgres")
    assert moved.returncode == 0, moved.stderr
    assert asyncio.run(read_once(postgres_url, _users_and_version)) == (2, len(MIGRATIONS))
    no_target = run_app(env, "migrate-to-postgres")
    assert no_target.returncode == 1 and "no target" in no_target.stderr


def _users_and_version(conn: Conn) -> tuple[int, int]:
    users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
    return int(users), int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
