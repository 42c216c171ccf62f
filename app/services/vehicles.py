"""The fleet: listing, registering and re-configuring vehicles, and the demo fleet."""

from __future__ import annotations

import re
import uuid
from typing import Final

from app.clock import Clock
from app.errors import BadRequest, Conflict, NotFound
from app.models import Actor, Vehicle
from app.store.vehicles import VehicleFilter, VehicleStore
from app.telemetry import Telemetry
from app.vocabulary import ConnectionStatus, SimulatorProfile

VIN_PATTERN: Final = r"^[A-HJ-NPR-Z0-9]{17}$"
_VIN = re.compile(VIN_PATTERN)
MIN_YEAR: Final = 1950
MAX_YEAR: Final = 2100
_PROFILES: Final = frozenset(SimulatorProfile)
_STATUSES: Final = frozenset(ConnectionStatus)

_ON, _OFF = ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED
# One connected vehicle per simulator profile, and a disconnected healthy one.
DEMO_FLEET: Final = (
    ("WVWZZZ1KZAW000001", "Volkswagen", "Golf", 2021, _ON, SimulatorProfile.HEALTHY),
    ("WBA3A5C50CF000002", "BMW", "320d", 2019, _ON, SimulatorProfile.FLAKY),
    ("VF1RFB00X56000003", "Renault", "Megane", 2020, _ON, SimulatorProfile.TIMEOUT),
    ("ZFA31200000000004", "Fiat", "500", 2018, _ON, SimulatorProfile.UNREACHABLE),
    ("YV1MS3820N2000005", "Volvo", "XC60", 2022, _ON, SimulatorProfile.MALFORMED),
    ("WDD2050031R000006", "Mercedes-Benz", "C 200", 2023, _OFF, SimulatorProfile.HEALTHY),
)


class VehicleService:
    def __init__(
        self, store: VehicleStore, telemetry: Telemetry, clock: Clock | None = None
    ) -> None:
        self._store = store
        self._telemetry = telemetry
        self._clock = clock or Clock()

    async def find(self, flt: VehicleFilter) -> tuple[list[Vehicle], int]:
        return await self._store.find(flt)

    async def get(self, vehicle_id: str) -> Vehicle:
        vehicle = await self._store.get(vehicle_id)
        if vehicle is None:
            raise NotFound(f"vehicle {vehicle_id} does not exist")
        return vehicle

    async def create(
        self, vin: str, make: str, model: str, year: int, simulator_profile: str, actor: Actor
    ) -> Vehicle:
        if not _VIN.fullmatch(vin):
            raise BadRequest("vin must be 17 characters of A-H, J-N, P, R-Z and 0-9")
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise BadRequest(f"year must be from {MIN_YEAR} to {MAX_YEAR}")
        if simulator_profile not in _PROFILES:
            raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")
        vehicle = Vehicle(
            vehicle_id=str(uuid.uuid4()),
            vin=vin,
            make=make,
            model=model,
            year=year,
            connection_status=ConnectionStatus.CONNECTED,
            simulator_profile=SimulatorProfile(simulator_profile),
            last_seen_at=None,
        )
        if not await self._store.insert(vehicle, self._clock.timestamp(), actor):
            raise Conflict(f"a vehicle with vin {vin} already exists")
        await self.report_connected()
        return vehicle

    async def update(self, vehicle_id: str, changes: dict[str, str], actor: Actor) -> Vehicle:
        status = changes.get("connection_status")
        if status is not None and status not in _STATUSES:
            raise BadRequest(f"connection_status must be one of {', '.join(ConnectionStatus)}")
        profile = changes.get("simulator_profile")
        if profile is not None and profile not in _PROFILES:
            raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")
        vehicle, connected = await self._store.update(
            vehicle_id, changes, self._clock.timestamp(), actor
        )
        if vehicle is None:
            raise NotFound(f"vehicle {vehicle_id} does not exist")
        self._telemetry.vehicles_connected(connected)
        return vehicle

    async def report_connected(self) -> None:
        self._telemetry.vehicles_connected(await self._store.count_connected())

    async def seed_demo(self) -> int:
        """Add the demo fleet to an empty database; return how many were added."""
        if await self._store.count() > 0:
            return 0
        at = self._clock.timestamp()
        for vin, make, model, year, status, profile in DEMO_FLEET:
            await self._store.insert(
                Vehicle(
                    vehicle_id=str(uuid.uuid4()),
                    vin=vin,
                    make=make,
                    model=model,
                    year=year,
                    connection_status=status,
                    simulator_profile=profile,
                    last_seen_at=None,
                ),
                at,
                None,
            )
        return len(DEMO_FLEET)
