"""/api/v1/vehicles: the fleet."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from app.api.deps import actor, admin, json_response, page, path_id, principal, services
from app.api.schema import Body, Field, Query, limit_offset, parse_body
from app.models import CONNECTION_STATUSES, SIMULATOR_PROFILES
from app.services.vehicles import MAX_YEAR, MIN_YEAR, VIN_PATTERN
from app.store.vehicles import VehicleFilter

LIST = Query(
    {
        "status": Field(str, required=False, choices=CONNECTION_STATUSES),
        "search": Field(
            str,
            required=False,
            max_length=64,
            description="case-insensitive text in VIN, make or model",
        ),
        **limit_offset(),
    }
)
CREATE = Body(
    {
        "vin": Field(str, pattern=VIN_PATTERN, description="17 characters, no I, O or Q"),
        "make": Field(str, min_length=1, max_length=64),
        "model": Field(str, min_length=1, max_length=64),
        "year": Field(int, minimum=MIN_YEAR, maximum=MAX_YEAR),
        "simulator_profile": Field(str, required=False, choices=SIMULATOR_PROFILES),
    }
)
PATCH = Body(
    {
        "connection_status": Field(str, required=False, choices=CONNECTION_STATUSES),
        "simulator_profile": Field(str, required=False, choices=SIMULATOR_PROFILES),
    },
    min_fields=1,
)


async def list_vehicles(request: Request) -> Response:
    await principal(request)
    q = LIST.parse(request)
    flt = VehicleFilter(q.get("status"), q.get("search"), q.get("limit", 50), q.get("offset", 0))
    items, total = await services(request).vehicles.find(flt)
    return page(items, total, flt.limit, flt.offset)


async def get_vehicle(request: Request) -> Response:
    await principal(request)
    vehicle = await services(request).vehicles.get(path_id(request, "vehicle_id", "vehicle"))
    return json_response(vehicle.as_dict())


async def create_vehicle(request: Request) -> Response:
    who = await admin(request)
    s = services(request)
    body = await parse_body(request, CREATE, s.config.max_body_bytes)
    vehicle = await s.vehicles.create(
        body["vin"],
        body["make"],
        body["model"],
        body["year"],
        body.get("simulator_profile", "healthy"),
        actor(request, who),
    )
    return json_response(
        vehicle.as_dict(), 201, headers={"Location": f"/api/v1/vehicles/{vehicle.vehicle_id}"}
    )


async def update_vehicle(request: Request) -> Response:
    who = await admin(request)
    s = services(request)
    target = path_id(request, "vehicle_id", "vehicle")
    body = await parse_body(request, PATCH, s.config.max_body_bytes)
    vehicle = await s.vehicles.update(target, body, actor(request, who))
    return json_response(vehicle.as_dict())
