"""Schema migrations: an ordered list of SQL scripts, applied once each at start.

Each migration is declared once, here, in SQLite's SQL; PostgreSQL runs the same list
through ``PostgresDialect.migration`` (``app.store.dialects``: the rewrites, and the
steps it words differently) from ``app.store.postgres``."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable
from typing import Final

from app.clock import utc_now
from app.errors import StartupError
from app.models import ecu_refs_at
from app.store.sql import Conn
from app.usernames import username_key

log = logging.getLogger(__name__)

MIGRATIONS: Final[tuple[str, ...]] = (
    # 1: the initial schema.
    """
    CREATE TABLE users (
        user_id       TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role          TEXT NOT NULL CHECK (role IN ('engineer', 'admin')),
        disabled      INTEGER NOT NULL DEFAULT 0,
        created_at    TEXT NOT NULL
    );
    CREATE TABLE sessions (
        session_id   TEXT PRIMARY KEY,
        user_id      TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
        refresh_hash TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        expires_at   TEXT NOT NULL,
        revoked_at   TEXT
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE vehicles (
        vehicle_id        TEXT PRIMARY KEY,
        vin               TEXT NOT NULL UNIQUE,
        make              TEXT NOT NULL,
        model             TEXT NOT NULL,
        year              INTEGER NOT NULL,
        connection_status TEXT NOT NULL CHECK (connection_status IN ('connected', 'disconnected')),
        simulator_profile TEXT NOT NULL,
        last_seen_at      TEXT,
        created_at        TEXT NOT NULL
    );
    CREATE TABLE commands (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        command_id     TEXT NOT NULL UNIQUE,
        vehicle_id     TEXT NOT NULL REFERENCES vehicles(vehicle_id),
        user_id        TEXT NOT NULL REFERENCES users(user_id),
        command_name   TEXT NOT NULL,
        command_params TEXT NOT NULL,
        status         TEXT NOT NULL
            CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'timeout')),
        error_code     TEXT,
        error_message  TEXT,
        submitted_at   TEXT NOT NULL,
        started_at     TEXT,
        completed_at   TEXT
    );
    CREATE INDEX commands_user ON commands(user_id, seq);
    CREATE INDEX commands_vehicle ON commands(vehicle_id, seq);
    CREATE INDEX commands_status ON commands(status, seq);
    CREATE TABLE command_responses (
        command_id       TEXT NOT NULL REFERENCES commands(command_id) ON DELETE CASCADE,
        sequence_number  INTEGER NOT NULL,
        response_payload TEXT NOT NULL,
        is_final         INTEGER NOT NULL,
        received_at      TEXT NOT NULL,
        PRIMARY KEY (command_id, sequence_number)
    ) WITHOUT ROWID;
    CREATE TABLE audit_log (
        audit_id       INTEGER PRIMARY KEY AUTOINCREMENT,
        at             TEXT NOT NULL,
        user_id        TEXT,
        username       TEXT,
        action         TEXT NOT NULL,
        entity_type    TEXT,
        entity_id      TEXT,
        details        TEXT NOT NULL,
        client_address TEXT
    );
    CREATE INDEX audit_action ON audit_log(action, audit_id);
    CREATE INDEX audit_user ON audit_log(user_id, audit_id);
    """,
    # 2: the terminal status ``cancelled``. SQLite cannot alter a CHECK constraint, so the
    # table is rebuilt (foreign keys are off while migrations run; see ``migrate``).
    # PostgreSQL alters it in place (``app.store.dialects``).
    """
    CREATE TABLE commands_new (
        seq            INTEGER PRIMARY KEY AUTOINCREMENT,
        command_id     TEXT NOT NULL UNIQUE,
        vehicle_id     TEXT NOT NULL REFERENCES vehicles(vehicle_id),
        user_id        TEXT NOT NULL REFERENCES users(user_id),
        command_name   TEXT NOT NULL,
        command_params TEXT NOT NULL,
        status         TEXT NOT NULL CHECK (
            status IN ('pending', 'in_progress', 'completed', 'failed', 'timeout', 'cancelled')
        ),
        error_code     TEXT,
        error_message  TEXT,
        submitted_at   TEXT NOT NULL,
        started_at     TEXT,
        completed_at   TEXT
    );
    INSERT INTO commands_new SELECT seq, command_id, vehicle_id, user_id, command_name,
        command_params, status, error_code, error_message, submitted_at, started_at,
        completed_at FROM commands;
    DROP TABLE commands;
    ALTER TABLE commands_new RENAME TO commands;
    CREATE INDEX commands_user ON commands(user_id, seq);
    CREATE INDEX commands_vehicle ON commands(vehicle_id, seq);
    CREATE INDEX commands_status ON commands(status, seq);
    """,
    # 3: usernames unique by their key (NFKC, case-folded; filled in by
    # ``_unique_username_keys`` below, which also adds the unique index); sessions remember
    # the refresh token rotated away last and when (the retry grace); audit rows are found
    # by age (retention).
    """
    ALTER TABLE users ADD COLUMN username_key TEXT;
    ALTER TABLE sessions ADD COLUMN previous_hash TEXT;
    ALTER TABLE sessions ADD COLUMN rotated_at TEXT;
    CREATE INDEX audit_at ON audit_log(at);
    """,
    # 4: how a vehicle is reached (issue #11): the simulator, or DoIP with its target.
    # The DoIP columns are NULL for simulated vehicles; ECU addresses are a JSON list.
    """
    ALTER TABLE vehicles ADD COLUMN transport TEXT NOT NULL DEFAULT 'simulator'
        CHECK (transport IN ('simulator', 'doip'));
    ALTER TABLE vehicles ADD COLUMN doip_host TEXT;
    ALTER TABLE vehicles ADD COLUMN doip_port INTEGER;
    ALTER TABLE vehicles ADD COLUMN doip_logical_address INTEGER;
    ALTER TABLE vehicles ADD COLUMN doip_tester_address INTEGER;
    ALTER TABLE vehicles ADD COLUMN doip_ecu_addresses TEXT;
    ALTER TABLE vehicles ADD COLUMN doip_always_on INTEGER NOT NULL DEFAULT 0;
    """,
    # 5: a vehicle's ECU set (issue #10; its SOVD components) as a JSON list of
    # {"name", "address"} (the address an integer). Existing vehicles get the default four;
    # a DoIP vehicle that lists its ECU addresses gets those (``_ecus_of_doip_vehicles``).
    """
    ALTER TABLE vehicles ADD COLUMN ecus TEXT NOT NULL DEFAULT '[{"name": "engine", "address": 16},
        {"name": "transmission", "address": 24}, {"name": "abs", "address": 40},
        {"name": "body", "address": 64}]';
    """,
    # 6: an ECU bound to its description (issue #20): an entry of ``ecus`` may carry
    # "description", a diag layer container's short name. No column changes and no row
    # is rewritten (an entry without it is unbound, as before). The version moves so that
    # an older service, which would drop the key the next time it writes an ECU set,
    # refuses this database instead of losing the bindings.
    """
    SELECT 1;
    """,
    # 7: service accounts (issue #21 item 8): machine clients in the users table, told
    # apart by ``kind`` ('person' or 'service'); their secret's hash in password_hash.
    # ``certificate_name`` (issue #26): the client certificate's subject CN or SAN that
    # authenticates the account, unique among accounts.
    """
    ALTER TABLE users ADD COLUMN kind TEXT NOT NULL DEFAULT 'person'
        CHECK (kind IN ('person', 'service'));
    ALTER TABLE users ADD COLUMN certificate_name TEXT;
    CREATE UNIQUE INDEX users_certificate_name ON users(certificate_name)
        WHERE certificate_name IS NOT NULL;
    """,
    # 8: the limits a cluster shares (issue #23 item 4; ``app.store.pg_limits``): per
    # (kind, key) the times of the events in its sliding window, and when the row may go.
    # Only PostgreSQL uses it (a single node keeps its limits in memory); it words the
    # events as an array (``app.store.dialects``), SQLite keeps the same table, unused.
    """
    CREATE TABLE limit_windows (
        kind       TEXT NOT NULL,
        key        TEXT NOT NULL,
        events     TEXT NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (kind, key)
    ) WITHOUT ROWID;
    CREATE INDEX limit_windows_expiry ON limit_windows(expires_at);
    """,
    # 9: the ECU descriptions a cluster shares (``app.store.description_blobs``): each PDX
    # file's bytes under its unique name, so a file added through one node is on every
    # node (``app.services.description_sync``). PostgreSQL words BLOB as BYTEA
    # (``app.store.dialects``); a single node keeps its files on disk only, the table
    # stays empty.
    """
    CREATE TABLE description_files (
        name       TEXT PRIMARY KEY,
        sha256     TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        content    BLOB NOT NULL,
        added_at   TEXT NOT NULL
    );
    """,
)


def _unique_username_keys(conn: Conn) -> None:
    """Migration 3: every user's username key, then the unique index on it.

    Names that already collide (``Admin`` next to ``admin``) lose nothing: the oldest
    keeps the name; each later one keeps its row, spelling, sessions and history, but is
    disabled (with an audit row saying why) and keyed ``<key>#<user id>``, the name it
    can log in with if an admin enables it again."""
    owners: dict[str, str] = {}
    rows = conn.execute("SELECT user_id, username FROM users ORDER BY created_at, rowid")
    for user_id, username in rows.fetchall():
        key = username_key(username)
        owner = owners.get(key)
        if owner is None:
            owners[key] = username
            conn.execute("UPDATE users SET username_key = ? WHERE user_id = ?", (key, user_id))
            continue
        conn.execute(
            "UPDATE users SET username_key = ?, disabled = 1 WHERE user_id = ?",
            (f"{key}#{user_id}", user_id),
        )
        reason = f"username {username!r} collides with the older {owner!r}"
        conn.execute(
            "INSERT INTO audit_log (at, user_id, username, action, entity_type, entity_id,"
            " details, client_address) VALUES (?, NULL, 'system', 'user.update', 'user', ?,"
            " ?, NULL)",
            (utc_now(), user_id, json.dumps({"disabled": True, "reason": reason})),
        )
        log.warning(
            "disabled user %s: %s; it keeps its history and may log in as %s#%s",
            user_id,
            reason,
            key,
            user_id,
            extra={"event": "migration"},
        )
    conn.execute("CREATE UNIQUE INDEX users_username_key ON users(username_key)")


def _ecus_of_doip_vehicles(conn: Conn) -> None:
    """Migration 5: a DoIP vehicle that lists ECU addresses has those ECUs (named as the
    default ones where the address is theirs, ``ecu-0x50`` otherwise)."""
    rows = conn.execute(
        "SELECT vehicle_id, doip_ecu_addresses FROM vehicles WHERE transport = 'doip'"
    ).fetchall()
    for vehicle_id, raw in rows:
        addresses = [a for a in json.loads(raw or "[]") if 0 <= a <= 0xFF]
        if addresses:
            ecus = [{"name": e.name, "address": int(e.address, 16)} for e in ecu_refs_at(addresses)]
            conn.execute(
                "UPDATE vehicles SET ecus = ? WHERE vehicle_id = ?", (json.dumps(ecus), vehicle_id)
            )


# Python steps run after the SQL of the migration with the same number, in its transaction.
PYTHON_STEPS: Final[dict[int, Callable[[Conn], None]]] = {
    3: _unique_username_keys,
    5: _ecus_of_doip_vehicles,
}


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def refuse_newer(version: int) -> None:
    """A schema this service does not know (a newer one wrote it) is a StartupError."""
    if version > len(MIGRATIONS):
        raise StartupError(
            f"database schema version {version} is newer than this service knows "
            f"({len(MIGRATIONS)}); refusing to start: run the version that wrote it, or "
            "restore a backup taken before the upgrade"
        )


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; each step commits with its version bump."""
    version = schema_version(conn)
    refuse_newer(version)
    # Rebuilding a table (DROP + RENAME) must not cascade to the rows that reference it;
    # foreign keys can only be switched outside a transaction. Each step checks them
    # before it commits.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the script and its version bump commit together.
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};")
            then = PYTHON_STEPS.get(number)
            if then is not None:  # a step SQL alone cannot do, in the same transaction
                try:
                    then(conn)
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                conn.execute("ROLLBACK")
                raise RuntimeError(f"migration {number} broke foreign keys: {broken[:3]}")
            conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return len(MIGRATIONS)
