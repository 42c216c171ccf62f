"""SOVD entities: a vehicle (the server root) and its components (its ECUs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.errors import NotFound
from app.models import Principal, Vehicle
from app.services.vehicle_inputs import VIN_ANY_CASE
from app.services.vehicles import VehicleService
from app.vehicles.addresses import format_address


@dataclass(frozen=True, slots=True)
class Component:
    """One ECU of a vehicle, as SOVD addresses it (by name)."""

    name: str
    address: int
    # The diag layer container it is bound to (``ecus[].description``): its tree then
    # comes from that description (``app.services.sovd.described``). None: unbound, the
    # generic UDS tree (identification data, faults by ReadDTC, sessions).
    bound: str | None = None

    @property
    def ecu_address(self) -> str:
        """As commands name it: ``0x0010``."""
        return format_address(self.address)


@dataclass(frozen=True, slots=True)
class Target:
    """Who calls, from where, on which ECU of which vehicle: what every call that reaches
    a vehicle needs."""

    who: Principal
    client: str | None
    vehicle: Vehicle
    ecu: Component


def components(vehicle: Vehicle) -> list[Component]:
    return [Component(ecu.name, int(ecu.address, 16), ecu.description) for ecu in vehicle.ecus]


def component(vehicle: Vehicle, name: str) -> Component:
    found = components(vehicle)
    for ecu in found:
        if ecu.name == name:
            return ecu
    known = ", ".join(c.name for c in found)
    raise NotFound(f"vehicle {vehicle.vin} has no component {name[:64]} (it has: {known})")


class Entities:
    def __init__(self, vehicles: VehicleService) -> None:
        self._vehicles = vehicles

    async def vehicle(self, ref: str) -> Vehicle:
        """By VIN (any case) or vehicle_id."""
        if re.fullmatch(VIN_ANY_CASE, ref):
            return await self._vehicles.get_by_vin(ref)
        return await self._vehicles.get(ref.lower())
