"""/api/v1/vehicles: the fleet."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.api.contract import Body, Call, Limit, Offset, Out, Query, Result
from app.errors import BadRequest
from app.models import Vehicle
from app.services.vehicles import MAX_YEAR, MIN_YEAR, VIN_PATTERN
from app.store.vehicles import VehicleFilter
from app.vocabulary import ConnectionStatus, SimulatorProfile


class VehicleQuery(Query, frozen=True, kw_only=True):
    status: ConnectionStatus | None = None
    search: (
        Annotated[
            str,
            msgspec.Meta(max_length=64, description="case-insensitive text in VIN, make or model"),
        ]
        | None
    ) = None
    limit: Limit = 50
    offset: Offset = 0


class NewVehicle(Body, frozen=True, kw_only=True):
    vin: Annotated[
        str, msgspec.Meta(pattern=VIN_PATTERN, description="17 characters, no I, O or Q")
    ]
    make: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    year: Annotated[int, msgspec.Meta(ge=MIN_YEAR, le=MAX_YEAR)]
    simulator_profile: SimulatorProfile = SimulatorProfile.HEALTHY


class VehiclePatch(Body, frozen=True, kw_only=True):
    """At least one of the fields."""

    connection_status: ConnectionStatus | msgspec.UnsetType = msgspec.UNSET
    simulator_profile: SimulatorProfile | msgspec.UnsetType = msgspec.UNSET


class VehiclePage(Out, frozen=True, kw_only=True):
    items: list[Vehicle]
    total: int
    limit: int
    offset: int


async def list_vehicles(call: Call[None, VehicleQuery]) -> VehiclePage:
    q = call.query
    flt = VehicleFilter(q.status, q.search, q.limit, q.offset)
    items, total = await call.services.vehicles.find(flt)
    return VehiclePage(items=items, total=total, limit=q.limit, offset=q.offset)


async def get_vehicle(call: Call[None, None]) -> Vehicle:
    return await call.services.vehicles.get(call.path_id("vehicle_id"))


async def create_vehicle(call: Call[NewVehicle, None]) -> Result:
    b = call.body
    vehicle = await call.services.vehicles.create(
        b.vin, b.make, b.model, b.year, b.simulator_profile, call.actor()
    )
    return Result(vehicle, headers={"Location": f"/api/v1/vehicles/{vehicle.vehicle_id}"})


async def update_vehicle(call: Call[VehiclePatch, None]) -> Vehicle:
    changes = {
        name: value
        for name, value in msgspec.structs.asdict(call.body).items()
        if value is not msgspec.UNSET
    }
    if not changes:
        raise BadRequest("body: give at least one of connection_status, simulator_profile")
    return await call.services.vehicles.update(call.path_id("vehicle_id"), changes, call.actor())
