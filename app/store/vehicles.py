"""Vehicles: the fleet, its connection state and simulator profile."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from app.models import Actor, Vehicle
from app.store.audit import insert_audit
from app.store.database import Database
from app.store.rows import enum_reader, fetch_all, fetch_one
from app.vocabulary import AuditAction, ConnectionStatus, SimulatorProfile

_COLUMNS = "vehicle_id, vin, make, model, year, connection_status, simulator_profile, last_seen_at"


_CONNECTION_STATUS = enum_reader(ConnectionStatus)
_SIMULATOR_PROFILE = enum_reader(SimulatorProfile)


def _vehicle(row: sqlite3.Row) -> Vehicle:
    return Vehicle(
        vehicle_id=row["vehicle_id"],
        vin=row["vin"],
        make=row["make"],
        model=row["model"],
        year=row["year"],
        connection_status=_CONNECTION_STATUS(row["connection_status"]),
        simulator_profile=_SIMULATOR_PROFILE(row["simulator_profile"]),
        last_seen_at=row["last_seen_at"],
    )


@dataclass(frozen=True, slots=True)
class VehicleFilter:
    status: str | None = None
    search: str | None = None
    limit: int = 50
    offset: int = 0


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


class VehicleStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, vehicle: Vehicle, at: str, actor: Actor | None) -> bool:
        """Insert a vehicle; False if its VIN is taken."""

        def run(conn: sqlite3.Connection) -> bool:
            try:
                conn.execute(
                    f"INSERT INTO vehicles ({_COLUMNS}, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        vehicle.vehicle_id,
                        vehicle.vin,
                        vehicle.make,
                        vehicle.model,
                        vehicle.year,
                        vehicle.connection_status,
                        vehicle.simulator_profile,
                        vehicle.last_seen_at,
                        at,
                    ),
                )
            except sqlite3.IntegrityError:
                return False
            if actor is not None:
                insert_audit(
                    conn,
                    actor,
                    AuditAction.VEHICLE_CREATE,
                    at,
                    "vehicle",
                    vehicle.vehicle_id,
                    {"vin": vehicle.vin},
                )
            return True

        return await self._db.write(run)

    async def count(self) -> int:
        return await self._db.read(
            lambda c: int(c.execute("SELECT count(*) FROM vehicles").fetchone()[0])
        )

    async def count_connected(self) -> int:
        return await self._db.read(
            lambda c: int(
                c.execute(
                    "SELECT count(*) FROM vehicles WHERE connection_status = 'connected'"
                ).fetchone()[0]
            )
        )

    async def get(self, vehicle_id: str) -> Vehicle | None:
        def run(conn: sqlite3.Connection) -> Vehicle | None:
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            return None if row is None else _vehicle(row)

        return await self._db.read(run)

    async def find(self, flt: VehicleFilter) -> tuple[list[Vehicle], int]:
        where: list[str] = []
        args: list[Any] = []
        if flt.status is not None:
            where.append("connection_status = ?")
            args.append(flt.status)
        if flt.search:
            pattern = _like_pattern(flt.search)
            where.append(
                "(vin LIKE ? ESCAPE '\\' OR make LIKE ? ESCAPE '\\' OR model LIKE ? ESCAPE '\\')"
            )
            args += [pattern, pattern, pattern]
        clause = f"WHERE {' AND '.join(where)}" if where else ""

        def run(conn: sqlite3.Connection) -> tuple[tuple[Vehicle, ...], int]:
            total = conn.execute(f"SELECT count(*) FROM vehicles {clause}", args).fetchone()[0]
            rows = fetch_all(
                conn,
                f"SELECT {_COLUMNS} FROM vehicles {clause} ORDER BY vin LIMIT ? OFFSET ?",
                [*args, flt.limit, flt.offset],
            )
            return tuple(_vehicle(r) for r in rows), int(total)

        # The fleet page is read far more often than the fleet changes (every console and
        # dashboard polls it): served from memory until the next write of any kind.
        items, total = await self._db.read_cached(("vehicles.find", flt), run)
        return list(items), total

    async def update(
        self, vehicle_id: str, changes: dict[str, str], at: str, actor: Actor
    ) -> tuple[Vehicle | None, int]:
        """Apply changes to connection_status/simulator_profile; return the vehicle and the
        number of connected vehicles afterwards (read in the same transaction)."""

        def run(conn: sqlite3.Connection) -> tuple[Vehicle | None, int]:
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            if row is None:
                return None, 0
            before = _vehicle(row)
            for column in ("connection_status", "simulator_profile"):
                if column in changes:
                    conn.execute(
                        f"UPDATE vehicles SET {column} = ? WHERE vehicle_id = ?",
                        (changes[column], vehicle_id),
                    )
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            assert row is not None  # updated in this transaction
            after = _vehicle(row)
            diff = {
                key: {"from": getattr(before, key), "to": getattr(after, key)}
                for key in changes
                if getattr(before, key) != getattr(after, key)
            }
            insert_audit(conn, actor, AuditAction.VEHICLE_UPDATE, at, "vehicle", vehicle_id, diff)
            connected = conn.execute(
                "SELECT count(*) FROM vehicles WHERE connection_status = 'connected'"
            ).fetchone()[0]
            return after, int(connected)

        return await self._db.write(run)
