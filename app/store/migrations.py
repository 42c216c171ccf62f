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
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        # executescript commits first; the script and its version bump commit together.
        conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version={number};\nCOMMIT;")
    return len(MIGRATIONS)
