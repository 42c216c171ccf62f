"""Vehicles: the fleet, its connection state, and how each is reached (simulator profile,
or DoIP target)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import msgspec

from app.models import Actor, DoipTargetSpec, EcuRef, Vehicle
from app.store.audit import insert_audit
from app.store.engine import Engine
from app.store.rows import Where, enum_reader, fetch_one, page
from app.store.sql import Conn, Row
from app.vehicles.addresses import format_address
from app.vocabulary import AuditAction, ConnectionStatus, SimulatorProfile, Transport

_DOIP_COLUMNS: Final = (
    "doip_host",
    "doip_port",
    "doip_logical_address",
    "doip_tester_address",
    "doip_ecu_addresses",
    "doip_always_on",
)
_NAMES: Final = (
    "vehicle_id",
    "vin",
    "make",
    "model",
    "year",
    "connection_status",
    "simulator_profile",
    "last_seen_at",
    "transport",
    *_DOIP_COLUMNS,
    "ecus",
)
_COLUMNS: Final = ", ".join(_NAMES)
_CONNECTED_COUNT: Final = "SELECT count(*) FROM vehicles WHERE connection_status = 'connected'"


_CONNECTION_STATUS = enum_reader(ConnectionStatus)
_SIMULATOR_PROFILE = enum_reader(SimulatorProfile)
_TRANSPORT = enum_reader(Transport)


def _doip(row: Row) -> DoipTargetSpec | None:
    if row["doip_host"] is None:
        return None
    return DoipTargetSpec(
        host=row["doip_host"],
        port=row["doip_port"],
        logical_address=format_address(row["doip_logical_address"]),
        tester_address=format_address(row["doip_tester_address"]),
        ecu_addresses=tuple(
            format_address(a) for a in json.loads(row["doip_ecu_addresses"] or "[]")
        ),
        always_on=bool(row["doip_always_on"]),
    )


def _doip_values(spec: DoipTargetSpec | None) -> tuple[Any, ...]:
    if spec is None:
        return (None, None, None, None, None, 0)
    return (
        spec.host,
        spec.port,
        int(spec.logical_address, 16),
        int(spec.tester_address, 16),
        json.dumps([int(a, 16) for a in spec.ecu_addresses]),
        int(spec.always_on),
    )


def _ecus(raw: str) -> tuple[EcuRef, ...]:
    return tuple(
        EcuRef(
            name=item["name"],
            address=format_address(item["address"]),
            description=item.get("description"),
        )
        for item in json.loads(raw)
    )


def _ecus_value(ecus: tuple[EcuRef, ...]) -> str:
    """The ECU set as stored: a JSON list of {"name", "address", "description"?}, the
    address an integer, the description (a container's short name) only when bound."""
    return json.dumps(
        [
            {"name": e.name, "address": int(e.address, 16)}
            | ({} if e.description is None else {"description": e.description})
            for e in ecus
        ]
    )


def _values(vehicle: Vehicle, at: str) -> tuple[Any, ...]:
    """A new vehicle's row, in the order of ``_INSERT``'s columns."""
    values = {
        "vehicle_id": vehicle.vehicle_id,
        "vin": vehicle.vin,
        "make": vehicle.make,
        "model": vehicle.model,
        "year": vehicle.year,
        "connection_status": vehicle.connection_status,
        "simulator_profile": vehicle.simulator_profile,
        "last_seen_at": vehicle.last_seen_at,
        "transport": vehicle.transport,
        **dict(zip(_DOIP_COLUMNS, _doip_values(vehicle.doip), strict=True)),
        "ecus": _ecus_value(vehicle.ecus),
        "created_at": at,
    }
    return tuple(values[name] for name in (*_NAMES, "created_at"))


_INSERT: Final = (
    f"INSERT INTO vehicles ({_COLUMNS}, created_at)"
    f" VALUES ({', '.join('?' for _ in (*_NAMES, 'created_at'))}) ON CONFLICT DO NOTHING"
)


def _vehicle(row: Row) -> Vehicle:
    return Vehicle(
        vehicle_id=row["vehicle_id"],
        vin=row["vin"],
        make=row["make"],
        model=row["model"],
        year=row["year"],
        connection_status=_CONNECTION_STATUS(row["connection_status"]),
        simulator_profile=_SIMULATOR_PROFILE(row["simulator_profile"]),
        last_seen_at=row["last_seen_at"],
        transport=_TRANSPORT(row["transport"]),
        doip=_doip(row),
        ecus=_ecus(row["ecus"]),
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
    def __init__(self, db: Engine) -> None:
        self._db = db

    async def insert(self, vehicle: Vehicle, at: str, actor: Actor | None) -> bool:
        """Insert a vehicle; False if its VIN is taken."""

        def run(conn: Conn) -> bool:
            if conn.execute(_INSERT, _values(vehicle, at)).rowcount != 1:
                return False  # its VIN is taken
            if actor is not None:
                insert_audit(
                    conn,
                    actor,
                    AuditAction.VEHICLE_CREATE,
                    at,
                    "vehicle",
                    vehicle.vehicle_id,
                    {
                        "vin": vehicle.vin,
                        "transport": vehicle.transport,
                        "ecus": msgspec.to_builtins(vehicle.ecus),
                    },
                )
            return True

        return await self._db.write(run)

    async def count(self) -> int:
        return await self._db.read(
            lambda c: int(c.execute("SELECT count(*) FROM vehicles").fetchone()[0])
        )

    async def ids(self) -> list[str]:
        """Every vehicle's id (lane ownership sweeps over them on a cluster)."""
        return await self._db.read(
            lambda c: [str(r[0]) for r in c.execute("SELECT vehicle_id FROM vehicles")],
            single_statement=True,
        )

    async def count_connected(self) -> int:
        return await self._db.read(lambda c: int(c.execute(_CONNECTED_COUNT).fetchone()[0]))

    async def connected_ids(self) -> list[str]:
        """The connected vehicles' ids (a cluster node counts those whose lane it runs)."""
        return await self._db.read(
            lambda c: [
                str(r[0])
                for r in c.execute(
                    "SELECT vehicle_id FROM vehicles WHERE connection_status = 'connected'"
                )
            ],
            single_statement=True,
        )

    async def get(self, vehicle_id: str) -> Vehicle | None:
        def run(conn: Conn) -> Vehicle | None:
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            return None if row is None else _vehicle(row)

        return await self._db.read(run, single_statement=True)

    async def find(self, flt: VehicleFilter) -> tuple[list[Vehicle], int]:
        where = Where()
        where.equal("connection_status", flt.status)
        if flt.search:
            pattern = _like_pattern(flt.search)
            like = self._db.dialect.like  # case-insensitive
            where.add(
                f"(vin {like} ? ESCAPE '\\' OR make {like} ? ESCAPE '\\'"
                f" OR model {like} ? ESCAPE '\\')",
                pattern,
                pattern,
                pattern,
            )

        def run(conn: Conn) -> tuple[tuple[Vehicle, ...], int]:
            rows, total = page(conn, _COLUMNS, "vehicles", where, "vin", flt.limit, flt.offset)
            return tuple(_vehicle(r) for r in rows), total

        # The fleet page is read far more often than the fleet changes (every console and
        # dashboard polls it): served from memory until the next write of any kind.
        items, total = await self._db.read_cached(("vehicles.find", flt), run)
        return list(items), total

    async def update(
        self, vehicle_id: str, changes: dict[str, Any], at: str, actor: Actor
    ) -> tuple[Vehicle | None, Vehicle | None, int]:
        """Apply changes to connection_status, simulator_profile, transport, doip (a
        ``DoipTargetSpec`` or None) and ecus (a tuple of ``EcuRef``); return the vehicle
        before and after, and the number of connected vehicles afterwards (read in the
        same transaction)."""

        def run(conn: Conn) -> tuple[Vehicle | None, Vehicle | None, int]:
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            if row is None:
                return None, None, 0
            before = _vehicle(row)
            for column in ("connection_status", "simulator_profile", "transport"):
                if column in changes:
                    conn.execute(
                        f"UPDATE vehicles SET {column} = ? WHERE vehicle_id = ?",
                        (changes[column], vehicle_id),
                    )
            if "doip" in changes:
                assignments = ", ".join(f"{c} = ?" for c in _DOIP_COLUMNS)
                conn.execute(
                    f"UPDATE vehicles SET {assignments} WHERE vehicle_id = ?",
                    (*_doip_values(changes["doip"]), vehicle_id),
                )
            if "ecus" in changes:
                conn.execute(
                    "UPDATE vehicles SET ecus = ? WHERE vehicle_id = ?",
                    (_ecus_value(changes["ecus"]), vehicle_id),
                )
            row = fetch_one(
                conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vehicle_id = ?", (vehicle_id,)
            )
            assert row is not None  # updated in this transaction
            after = _vehicle(row)
            diff = {
                key: {
                    "from": msgspec.to_builtins(getattr(before, key)),
                    "to": msgspec.to_builtins(getattr(after, key)),
                }
                for key in changes
                if getattr(before, key) != getattr(after, key)
            }
            insert_audit(conn, actor, AuditAction.VEHICLE_UPDATE, at, "vehicle", vehicle_id, diff)
            connected = conn.execute(_CONNECTED_COUNT).fetchone()[0]
            return before, after, int(connected)

        return await self._db.write(run)

    async def get_by_vin(self, vin: str) -> Vehicle | None:
        def run(conn: Conn) -> Vehicle | None:
            row = fetch_one(conn, f"SELECT {_COLUMNS} FROM vehicles WHERE vin = ?", (vin,))
            return None if row is None else _vehicle(row)

        return await self._db.read(run)

    async def always_on(self) -> list[str]:
        """The DoIP vehicles to keep connected."""
        return await self._db.read(
            lambda c: [
                r[0]
                for r in c.execute(
                    "SELECT vehicle_id FROM vehicles WHERE transport = 'doip'"
                    " AND doip_host IS NOT NULL AND doip_always_on = 1 ORDER BY vin"
                ).fetchall()
            ]
        )

    async def set_links(self, links: dict[str, tuple[ConnectionStatus | None, str | None]]) -> int:
        """Follow the DoIP links: per vehicle its new connection_status and last_seen_at
        (None: unchanged); simulated vehicles are left alone. Returns the connected count."""

        def run(conn: Conn) -> int:
            for vehicle_id, (status, seen) in links.items():
                conn.execute(
                    "UPDATE vehicles SET connection_status = coalesce(?, connection_status),"
                    " last_seen_at = coalesce(?, last_seen_at)"
                    " WHERE vehicle_id = ? AND transport = 'doip'",
                    (status, seen, vehicle_id),
                )
            return int(conn.execute(_CONNECTED_COUNT).fetchone()[0])

        return await self._db.write(run)

    async def reset_links(self, vehicle_ids: Sequence[str] | None = None) -> int:
        """At start no DoIP link is up yet: every DoIP vehicle is disconnected (on a
        cluster, only ``vehicle_ids``: the lanes a node just took, whose links went with
        their last owner). Returns the connected count."""
        where, args = "transport = 'doip'", list[str]()
        if vehicle_ids is not None:
            where += f" AND vehicle_id IN ({', '.join('?' * len(vehicle_ids)) or 'NULL'})"
            args = list(vehicle_ids)

        def run(conn: Conn) -> int:
            conn.execute(
                f"UPDATE vehicles SET connection_status = 'disconnected' WHERE {where}", args
            )
            return int(conn.execute(_CONNECTED_COUNT).fetchone()[0])

        return await self._db.write(run)
