"""Vehicles: the fleet, its connection state and simulator profile."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from app.models import Actor, Vehicle
from app.store.audit import insert_audit
from app.store.database import Database

_COLUMNS = "vehicle_id, vin, make, model, year, connection_status, simulator_profile, last_seen_at"


def _vehicle(row: tuple[Any, ...]) -> Vehicle:
    return Vehicle(*row)


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
                    "vehicle.create",
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
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            ).fetchone()
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

        def run(conn: sqlite3.Connection) -> tuple[list[Vehicle], int]:
            total = conn.execute(f"SELECT count(*) FROM vehicles {clause}", args).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM vehicles {clause} ORDER BY vin LIMIT ? OFFSET ?",
                [*args, flt.limit, flt.offset],
            ).fetchall()
            return [_vehicle(r) for r in rows], int(total)

        return await self._db.read(run)

    async def update(
        self, vehicle_id: str, changes: dict[str, str], at: str, actor: Actor
    ) -> tuple[Vehicle | None, int]:
        """Apply changes to connection_status/simulator_profile; return the vehicle and the
        number of connected vehicles afterwards (read in the same transaction)."""

        def run(conn: sqlite3.Connection) -> tuple[Vehicle | None, int]:
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            ).fetchone()
            if row is None:
                return None, 0
            before = _vehicle(row)
            for column in ("connection_status", "simulator_profile"):
                if column in changes:
                    conn.execute(
                        f"UPDATE vehicles SET {column} = ? WHERE vehicle_id = ?",
                        (changes[column], vehicle_id),
                    )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            ).fetchone()
            after = _vehicle(row)
            diff = {
                key: {"from": getattr(before, key), "to": getattr(after, key)}
                for key in changes
                if getattr(before, key) != getattr(after, key)
            }
            insert_audit(conn, actor, "vehicle.update", at, "vehicle", vehicle_id, diff)
            connected = conn.execute(
                "SELECT count(*) FROM vehicles WHERE connection_status = 'connected'"
            ).fetchone()[0]
            return after, int(connected)

        return await self._db.write(run)
