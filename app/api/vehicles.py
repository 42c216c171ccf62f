"""/api/v1/vehicles: the fleet."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from app.api.contract import Body, Call, Limit, Offset, Out, Query, Result, is_uuid
from app.errors import BadRequest
from app.models import Vehicle
from app.services.diag_services import EcuServices
from app.services.vehicle_inputs import (
    DOIP_PORT,
    ECU_ADDRESS_PATTERN,
    ECU_NAME_PATTERN,
    MAX_ECUS,
    MAX_VEHICLE_ECUS,
    MAX_YEAR,
    MIN_YEAR,
    TESTER_ADDRESS,
    VIN_PATTERN,
    DoipInput,
    EcuInput,
)
from app.store.vehicles import VehicleFilter
from app.vehicles.addresses import RANGE
from app.vocabulary import ConnectionStatus, SimulatorProfile, Transport


def _address(example: str, what: str) -> msgspec.Meta:
    # The pattern is documented, not enforced here: the service checks the address and
    # its range and answers a 400 naming the field, with an example (``0x10`` is 0x0010).
    return msgspec.Meta(
        max_length=16,
        description=f"{what}: a logical address, {RANGE} such as {example} (0x10 is 0x0010)",
        extra_json_schema={"pattern": ECU_ADDRESS_PATTERN, "examples": [example]},
    )


EcuAddress = Annotated[str, _address("0x0010", "ECU address")]


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


class DoipBody(Body, frozen=True, kw_only=True):
    """Where the vehicle's DoIP entity listens (admins only see this back)."""

    host: Annotated[str, msgspec.Meta(min_length=1, max_length=253)]
    port: Annotated[int, msgspec.Meta(ge=1, le=65535)] = DOIP_PORT
    logical_address: Annotated[str, _address("0x0001", "the DoIP entity's address")]
    tester_address: Annotated[str, _address(TESTER_ADDRESS, "the tester's address")] = (
        TESTER_ADDRESS
    )
    ecu_addresses: Annotated[list[EcuAddress], msgspec.Meta(max_length=MAX_ECUS)] = []
    always_on: bool = False

    def given(self) -> DoipInput:
        return DoipInput(
            host=self.host,
            logical_address=self.logical_address,
            port=self.port,
            tester_address=self.tester_address,
            ecu_addresses=tuple(self.ecu_addresses),
            always_on=self.always_on,
        )


class EcuBody(Body, frozen=True, kw_only=True):
    """One ECU of the vehicle (a SOVD component). Without a description, name and address
    are required; with one, the name is the container's short name lower-cased and the
    address defaults to the description's logical address."""

    name: (
        Annotated[
            str,
            msgspec.Meta(
                pattern=ECU_NAME_PATTERN,
                description="lower-case letters, digits and dashes, such as engine; with a"
                " description, its container's short name lower-cased (or left out)",
            ),
        ]
        | None
    ) = None
    address: EcuAddress | None = None
    description: (
        Annotated[
            str,
            msgspec.Meta(
                min_length=1,
                max_length=128,
                description="the ECU description it is bound to: a diag layer container's"
                " short name, such as FLXC1000 (any case), of a ready PDX file"
                " (GET /api/v1/descriptions)",
            ),
        ]
        | None
    ) = None


EcuList = Annotated[
    list[EcuBody],
    msgspec.Meta(
        min_length=1,
        max_length=MAX_VEHICLE_ECUS,
        description="the vehicle's ECUs; names and addresses each used once",
    ),
]


def _given_ecus(ecus: list[EcuBody]) -> list[EcuInput]:
    return [EcuInput(ecu.name, ecu.address, ecu.description) for ecu in ecus]


class NewVehicle(Body, frozen=True, kw_only=True):
    vin: Annotated[
        str, msgspec.Meta(pattern=VIN_PATTERN, description="17 characters, no I, O or Q")
    ]
    make: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    model: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    year: Annotated[int, msgspec.Meta(ge=MIN_YEAR, le=MAX_YEAR)]
    simulator_profile: SimulatorProfile = SimulatorProfile.HEALTHY
    transport: Transport = Transport.SIMULATOR
    doip: DoipBody | None = None
    # Unset: a DoIP vehicle's doip.ecu_addresses (named engine, ... or ecu-0x50), or
    # engine 0x0010, transmission 0x0018, abs 0x0028 and body 0x0040.
    ecus: EcuList | None = None


class VehiclePatch(Body, frozen=True, kw_only=True):
    """At least one of the fields."""

    connection_status: ConnectionStatus | msgspec.UnsetType = msgspec.UNSET
    simulator_profile: SimulatorProfile | msgspec.UnsetType = msgspec.UNSET
    transport: Transport | msgspec.UnsetType = msgspec.UNSET
    doip: DoipBody | msgspec.UnsetType = msgspec.UNSET
    ecus: EcuList | msgspec.UnsetType = msgspec.UNSET


class VehiclePage(Out, frozen=True, kw_only=True):
    items: list[Vehicle]
    total: int
    limit: int
    offset: int


def _shown(call: Call[Any, Any], vehicle: Vehicle) -> Vehicle:
    """The DoIP target (lab network addresses) is for admins; engineers see the transport."""
    if vehicle.doip is None or call.who.is_admin:
        return vehicle
    return msgspec.structs.replace(vehicle, doip=None)


async def list_vehicles(call: Call[None, VehicleQuery]) -> VehiclePage:
    q = call.query
    flt = VehicleFilter(q.status, q.search, q.limit, q.offset)
    items, total = await call.services.vehicles.find(flt)
    return VehiclePage(
        items=[_shown(call, v) for v in items], total=total, limit=q.limit, offset=q.offset
    )


async def _by_ref(call: Call[Any, Any]) -> Vehicle:
    """The vehicle the path names by vehicle_id, or by VIN (what is printed on the car)."""
    ref: str = call.request.path_params["vehicle_id"]
    vehicles = call.services.vehicles
    if is_uuid(ref):
        return await vehicles.get(ref.lower())
    return await vehicles.get_by_vin(ref)


async def get_vehicle(call: Call[None, None]) -> Vehicle:
    """By vehicle_id, or by VIN."""
    return _shown(call, await _by_ref(call))


async def create_vehicle(call: Call[NewVehicle, None]) -> Result:
    b = call.body
    vehicle = await call.services.vehicles.create(
        b.vin,
        b.make,
        b.model,
        b.year,
        b.simulator_profile,
        call.actor(),
        b.transport,
        b.doip.given() if b.doip is not None else None,
        _given_ecus(b.ecus) if b.ecus is not None else None,
    )
    return Result(vehicle, headers={"Location": f"/api/v1/vehicles/{vehicle.vehicle_id}"})


async def update_vehicle(call: Call[VehiclePatch, None]) -> Vehicle:
    changes: dict[str, Any] = {
        name: value
        for name, value in msgspec.structs.asdict(call.body).items()
        if value is not msgspec.UNSET
    }
    if not changes:
        raise BadRequest(
            "body: give at least one of connection_status, simulator_profile, transport, doip, ecus"
        )
    if isinstance(changes.get("doip"), DoipBody):
        changes["doip"] = changes["doip"].given()
    if "ecus" in changes:
        changes["ecus"] = _given_ecus(changes["ecus"])
    vehicle_id = (await _by_ref(call)).vehicle_id  # a VIN pasted for the id is resolved
    return await call.services.vehicles.update(vehicle_id, changes, call.actor())


class VehicleServices(Out, frozen=True, kw_only=True):
    """The vehicle's ECUs bound to a description, each with its services: what
    ``DiagService`` takes (``ecu``, ``service``, ``params``)."""

    vehicle_id: str
    items: list[EcuServices]


async def vehicle_services(call: Call[None, None]) -> VehicleServices:
    """By vehicle_id or VIN; unbound ECUs are left out (they speak the catalogue's generic
    commands only)."""
    vehicle = await get_vehicle(call)
    items = await call.services.diag.services(vehicle)
    return VehicleServices(vehicle_id=vehicle.vehicle_id, items=items)
