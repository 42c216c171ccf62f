"""Schema migrations: an ordered list of SQL scripts, applied once each at start."""

from __future__ import annotations

import sqlite3
from typing import Final

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
)


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to date; each step commits with its version bump."""
    version = schema_version(conn)
    if version > len(MIGRATIONS):
        raise RuntimeError(
            f"database schema version {version} is newer than this service knows "
            f"({len(MIGRATIONS)}); refusing to start"
        )
    # Rebuilding a table (DROP + RENAME) must not cascade to the rows that reference it;
    # foreign keys can only be switched outside a transaction. Each step checks them
    # before it commits.
    conn.execute("PRAGMA foreign_keys=OFF")
    try:
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            # executescript commits first; the script and its version bump commit together.
            conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};")
            broken = conn.execute("PRAGMA foreign_key_check").fetchall()
            if broken:
                conn.execute("ROLLBACK")
                raise RuntimeError(f"migration {number} broke foreign keys: {broken[:3]}")
            conn.execute("COMMIT")
    finally:
        conn.execute("PRAGMA foreign_keys=ON")
    return len(MIGRATIONS)
