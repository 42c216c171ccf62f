"""The fleet: listing, registering and re-configuring vehicles, and the demo fleet.

A vehicle is reached through the simulator (its ``simulator_profile``) or over DoIP (its
``doip`` target). An admin sets a simulated vehicle's ``connection_status``; a DoIP
vehicle's follows its link (``app.services.vehicle_links``). Changing a DoIP target
drops the vehicle's link, so the next command connects to the new one.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from app.clock import Clock
from app.errors import BadRequest, Conflict, NotFound
from app.models import (
    DEFAULT_ECU_REFS,
    SYSTEM_ACTOR,
    Actor,
    DoipTargetSpec,
    EcuRef,
    Vehicle,
    ecu_refs_at,
)
from app.services.description_files import ContainerRef
from app.services.vehicle_links import LinkControl, NoLinkControl
from app.store.vehicles import VehicleFilter, VehicleStore
from app.telemetry import Telemetry
from app.vehicles.addresses import (
    ADDRESS_PATTERN,
    InvalidAddress,
    format_address,
    parse_address,
)
from app.vocabulary import ConnectionStatus, SimulatorProfile, Transport

VIN_PATTERN: Final = r"^[A-HJ-NPR-Z0-9]{17}$"
_VIN = re.compile(VIN_PATTERN)
# A VIN as typed in a URL (looked up upper-cased).
VIN_ANY_CASE: Final = r"^[A-HJ-NPR-Za-hj-npr-z0-9]{17}$"
MIN_YEAR: Final = 1950
MAX_YEAR: Final = 2100
_PROFILES: Final = frozenset(SimulatorProfile)
_STATUSES: Final = frozenset(ConnectionStatus)
_TRANSPORTS: Final = frozenset(Transport)
_HOST = re.compile(r"^[A-Za-z0-9.:_\-\[\]%]{1,253}$")
DOIP_PORT: Final = 13400
TESTER_ADDRESS: Final = "0x0E00"
MAX_ECUS: Final = 64
# A vehicle's ECU set (its SOVD components).
MAX_VEHICLE_ECUS: Final = 32
ECU_NAME_PATTERN: Final = r"^[a-z][a-z0-9-]{0,31}$"
_ECU_NAME = re.compile(ECU_NAME_PATTERN)
# Every logical address (ECU, DoIP entity, tester): app.vehicles.addresses.
ECU_ADDRESS_PATTERN: Final = ADDRESS_PATTERN


@dataclass(frozen=True, slots=True)
class EcuInput:
    """One ECU as given: its name and logical address (hex such as 0x0010), and the
    description (a diag layer container's short name, any case) it is bound to. With a
    description, the name is the container's lower-cased (given: it must be that) and the
    address defaults to the description's."""

    name: str | None
    address: str | None
    description: str | None = None


class Containers(Protocol):
    """The descriptions an ECU may be bound to (``DescriptionLibrary``)."""

    def container(self, name: str) -> ContainerRef | None: ...

    def container_names(self) -> list[str]: ...

    def loading(self) -> list[str]: ...


class _NoContainers:
    def container(self, name: str) -> ContainerRef | None:
        return None

    def container_names(self) -> list[str]:
        return []

    def loading(self) -> list[str]:
        return []


@dataclass(frozen=True, slots=True)
class DoipInput:
    """A DoIP target as given (the API's body), checked by ``doip_target``."""

    host: str
    logical_address: str
    port: int = DOIP_PORT
    tester_address: str = TESTER_ADDRESS
    ecu_addresses: Sequence[str] = ()
    always_on: bool = False


def _logical(name: str, raw: str, example: str) -> str:
    """A logical address in canonical form (``0x10`` -> ``0x0010``), or BadRequest naming
    the field with ``example``."""
    try:
        return format_address(parse_address(raw, name, example))
    except InvalidAddress as exc:
        raise BadRequest(str(exc)) from None


def doip_target(given: DoipInput) -> DoipTargetSpec:
    """The target in canonical form (addresses as 0x0E00, 0x0010), or BadRequest naming
    the field."""
    if not _HOST.fullmatch(given.host):
        raise BadRequest("doip.host must be a host name or IP address")
    if not 1 <= given.port <= 65535:
        raise BadRequest(f"doip.port must be a TCP port (1..65535), got {given.port}")
    if len(given.ecu_addresses) > MAX_ECUS:
        raise BadRequest(f"doip.ecu_addresses: at most {MAX_ECUS}")
    ecus = tuple(
        _logical(f"doip.ecu_addresses[{i}]", raw, "0x0010")
        for i, raw in enumerate(given.ecu_addresses)
    )
    return DoipTargetSpec(
        host=given.host,
        port=given.port,
        logical_address=_logical("doip.logical_address", given.logical_address, "0x0001"),
        tester_address=_logical("doip.tester_address", given.tester_address, TESTER_ADDRESS),
        ecu_addresses=ecus,
        always_on=given.always_on,
    )


def _bound(i: int, given: EcuInput, containers: Containers) -> tuple[str, str, str]:
    """An entry with a description: (name, address as given or the description's, the
    container's own spelling), or BadRequest naming the field."""
    assert given.description is not None
    found = containers.container(given.description)
    if found is None:
        known = ", ".join(containers.container_names()) or "none"
        loading = containers.loading()
        still = f"; still loading: {', '.join(loading)}" if loading else ""
        raise BadRequest(
            f"ecus[{i}].description: no ECU description has a diag layer container named"
            f" {given.description[:64]!r} (known: {known}{still}; upload its PDX file with"
            " POST /api/v1/descriptions)"
        )
    component = found.name.lower()
    if not _ECU_NAME.fullmatch(component):
        raise BadRequest(
            f"ecus[{i}].description: {found.name} lower-cased, {component!r}, would be the"
            " component id, but component ids are 1 to 32 lower-case letters, digits and"
            " dashes starting with a letter"
        )
    if given.name is not None and given.name != component:
        raise BadRequest(
            f"ecus[{i}].name: an ECU bound to {found.name} is the component {component} (the"
            f" container's short name lower-cased); leave name out or give {component},"
            f" got {given.name!r}"
        )
    address = given.address
    if address is None:
        if found.logical_address is None:
            raise BadRequest(
                f"ecus[{i}].address: required, as {found.name} ({found.file}) gives no"
                " logical address (no special data LOGICAL-ADDRESS, no comparam"
                " CP_DoIPLogicalEcuAddress)"
            )
        address = found.logical_address
    return component, address, found.name


def ecu_set(given: Sequence[EcuInput], containers: Containers | None = None) -> tuple[EcuRef, ...]:
    """The ECU set in canonical form (addresses as 0x001A), or BadRequest naming the field:
    1 to 32 ECUs, names and addresses each used once; an ECU with a description is bound
    to that container of a ready description (``EcuInput``)."""
    if not 1 <= len(given) <= MAX_VEHICLE_ECUS:
        raise BadRequest(f"ecus: give 1 to {MAX_VEHICLE_ECUS} ECUs, got {len(given)}")
    names: dict[str, int] = {}
    addresses: dict[str, int] = {}
    ecus: list[EcuRef] = []
    for i, entry in enumerate(given):
        bound: str | None = None
        if entry.description is not None:
            name, raw, bound = _bound(i, entry, containers or _NoContainers())
        elif entry.name is None or entry.address is None:
            missing = "name" if entry.name is None else "address"
            raise BadRequest(f"ecus[{i}].{missing}: required for an ECU without a description")
        else:
            name, raw = entry.name, entry.address
        if not _ECU_NAME.fullmatch(name):
            raise BadRequest(
                f"ecus[{i}].name must be 1 to 32 lower-case letters, digits and dashes,"
                f" starting with a letter (such as engine), got {name!r}"
            )
        address = _logical(f"ecus[{i}].address", raw, "0x0010")
        for kind, value, seen in (("name", name, names), ("address", address, addresses)):
            if value in seen:
                raise BadRequest(
                    f"ecus[{i}].{kind}: {value} is already the {kind} of ecus[{seen[value]}]"
                )
            seen[value] = i
        ecus.append(EcuRef(name=name, address=address, description=bound))
    return tuple(ecus)


def _initial_ecus(
    given: Sequence[EcuInput] | None,
    target: DoipTargetSpec | None,
    containers: Containers | None = None,
) -> tuple[EcuRef, ...]:
    """A new vehicle's ECU set: as given; else a DoIP vehicle's listed ECU addresses
    (named as the default ECUs where the address is theirs, ``ecu-0x50`` otherwise);
    else the default four."""
    if given is not None:
        return ecu_set(given, containers)
    if target is None or not target.ecu_addresses:
        return DEFAULT_ECU_REFS
    derived = ecu_refs_at(int(a, 16) for a in target.ecu_addresses)
    if len(derived) > MAX_VEHICLE_ECUS:
        raise BadRequest(
            f"ecus: required when doip.ecu_addresses lists more than {MAX_VEHICLE_ECUS}"
            " ECUs (a vehicle has at most that many)"
        )
    return derived


_ON, _OFF = ConnectionStatus.CONNECTED, ConnectionStatus.DISCONNECTED
# The demo's DoIP vehicle (SOVD_DEMO_EMULATOR): its VIN is the emulator's.
DEMO_DOIP_VIN: Final = "WAUZZZ8V0KDP00007"
# One connected vehicle per simulator profile, and a disconnected healthy one.
DEMO_FLEET: Final = (
    ("WVWZZZ1KZAW000001", "Volkswagen", "Golf", 2021, _ON, SimulatorProfile.HEALTHY),
    ("WBA3A5C50CF000002", "BMW", "320d", 2019, _ON, SimulatorProfile.FLAKY),
    ("VF1RFB00X56000003", "Renault", "Megane", 2020, _ON, SimulatorProfile.TIMEOUT),
    ("ZFA31200000000004", "Fiat", "500", 2018, _ON, SimulatorProfile.UNREACHABLE),
    ("YV1MS3820N2000005", "Volvo", "XC60", 2022, _ON, SimulatorProfile.MALFORMED),
    ("WDD2050031R000006", "Mercedes-Benz", "C 200", 2023, _OFF, SimulatorProfile.HEALTHY),
)


# The demo vehicles' ECUs, bound to the demo description's containers (ENGINE ... BODY:
# ``app.vehicles.pdx.demo``, stored in the description library when they are seeded).
DEMO_ECU_REFS: Final = tuple(
    EcuRef(name=ref.name, address=ref.address, description=ref.name.upper())
    for ref in DEFAULT_ECU_REFS
)


def _transport(raw: str) -> Transport:
    if raw not in _TRANSPORTS:
        raise BadRequest(f"transport must be one of {', '.join(Transport)}")
    return Transport(raw)


class VehicleService:
    def __init__(
        self,
        store: VehicleStore,
        telemetry: Telemetry,
        clock: Clock | None = None,
        links: LinkControl | None = None,
        containers: Containers | None = None,
    ) -> None:
        self._store = store
        # The descriptions an ECU may be bound to (``ecus[].description``).
        self._containers: Containers = containers or _NoContainers()
        self._telemetry = telemetry
        self._clock = clock or Clock()
        self._links: LinkControl = links or NoLinkControl()

    async def find(self, flt: VehicleFilter) -> tuple[list[Vehicle], int]:
        return await self._store.find(flt)

    async def get(self, vehicle_id: str) -> Vehicle:
        vehicle = await self._store.get(vehicle_id)
        if vehicle is None:
            raise NotFound(f"vehicle {vehicle_id} does not exist")
        return vehicle

    async def get_by_vin(self, vin: str) -> Vehicle:
        vehicle = await self._store.get_by_vin(vin.upper())
        if vehicle is None:
            raise NotFound(f"no vehicle has vin {vin}")
        return vehicle

    async def create(
        self,
        vin: str,
        make: str,
        model: str,
        year: int,
        simulator_profile: str,
        actor: Actor,
        transport: str = Transport.SIMULATOR,
        doip: DoipInput | None = None,
        ecus: Sequence[EcuInput] | None = None,
    ) -> Vehicle:
        """Register a vehicle. ``ecus`` None: a DoIP vehicle has the ECUs its
        ``doip.ecu_addresses`` lists (if any), any other the default four."""
        if not _VIN.fullmatch(vin):
            raise BadRequest("vin must be 17 characters of A-H, J-N, P, R-Z and 0-9")
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise BadRequest(f"year must be from {MIN_YEAR} to {MAX_YEAR}")
        if simulator_profile not in _PROFILES:
            raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")
        kind = _transport(transport)
        target = doip_target(doip) if doip is not None else None
        if kind is Transport.DOIP and target is None:
            raise BadRequest("doip: required when transport is doip (host, logical_address, ...)")
        if kind is Transport.SIMULATOR and target is not None:
            raise BadRequest("doip: only for transport doip")
        ecu_refs = _initial_ecus(ecus, target, self._containers)
        vehicle = Vehicle(
            vehicle_id=str(uuid.uuid4()),
            vin=vin,
            make=make,
            model=model,
            year=year,
            # A DoIP vehicle is connected once its link is up.
            connection_status=_ON if kind is Transport.SIMULATOR else _OFF,
            simulator_profile=SimulatorProfile(simulator_profile),
            last_seen_at=None,
            transport=kind,
            doip=target,
            ecus=ecu_refs,
        )
        if not await self._store.insert(vehicle, self._clock.timestamp(), actor):
            raise Conflict(f"a vehicle with vin {vin} already exists")
        await self.report_connected()
        if target is not None and target.always_on:
            self._links.keep_up(vehicle.vehicle_id, True)
        return vehicle

    async def update(self, vehicle_id: str, changes: dict[str, Any], actor: Actor) -> Vehicle:
        """Apply ``changes``: connection_status, simulator_profile, transport, doip (a
        ``DoipInput``) and ecus (a sequence of ``EcuInput``; a new DoIP target leaves the
        ECU set as it is)."""
        status = changes.get("connection_status")
        if status is not None and status not in _STATUSES:
            raise BadRequest(f"connection_status must be one of {', '.join(ConnectionStatus)}")
        profile = changes.get("simulator_profile")
        if profile is not None and profile not in _PROFILES:
            raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")
        changes = dict(changes)
        if "transport" in changes:
            changes["transport"] = _transport(changes["transport"])
        if changes.get("doip") is not None:
            changes["doip"] = doip_target(changes["doip"])
        if "ecus" in changes:
            changes["ecus"] = ecu_set(changes["ecus"], self._containers)
        current = await self.get(vehicle_id)
        kind = changes.get("transport", current.transport)
        target = changes.get("doip", current.doip)
        if kind is Transport.DOIP:
            if target is None:
                raise BadRequest(
                    "doip: required when transport is doip (host, logical_address, ...)"
                )
            if status is not None:
                raise BadRequest(
                    "connection_status of a doip vehicle follows its link; it cannot be set"
                )
            if current.transport is Transport.SIMULATOR:
                changes["connection_status"] = _OFF  # until its link is up
        else:
            if "doip" in changes and changes["doip"] is not None:
                raise BadRequest("doip: only for transport doip")
            if current.transport is Transport.DOIP:
                # Back to the simulator: the target is forgotten, the status the admin's.
                changes["doip"] = None
                changes.setdefault("connection_status", _ON)
        before, vehicle, connected = await self._store.update(
            vehicle_id, changes, self._clock.timestamp(), actor
        )
        if vehicle is None or before is None:
            raise NotFound(f"vehicle {vehicle_id} does not exist")
        self._telemetry.vehicles_connected(connected)
        if (before.transport, before.doip) != (vehicle.transport, vehicle.doip):
            # The old link leads to the old target: drop it; the next use connects anew.
            await self._links.disconnect(vehicle_id)
            self._links.keep_up(vehicle_id, vehicle.doip is not None and vehicle.doip.always_on)
        return vehicle

    async def report_connected(self) -> None:
        self._telemetry.vehicles_connected(await self._store.count_connected())

    async def start_links(self) -> list[str]:
        """At start: no DoIP link is up yet (their status says so), and the always-on
        vehicles are to be kept up. Returns those."""
        self._telemetry.vehicles_connected(await self._store.reset_links())
        always_on = await self._store.always_on()
        for vehicle_id in always_on:
            self._links.keep_up(vehicle_id, True)
        return always_on

    async def add_doip_demo(self, host: str, port: int) -> tuple[Vehicle | None, bool]:
        """The demo fleet's DoIP vehicle, pointing at the emulator on ``host``:``port``
        (added once, its ECUs bound to the demo description; its target follows the
        emulator's port at every start), and whether it was added now."""
        given = DoipInput(
            host, "0x0001", port, ecu_addresses=tuple(e.address for e in DEMO_ECU_REFS)
        )
        existing = await self._store.get_by_vin(DEMO_DOIP_VIN)
        if existing is None:
            vehicle = Vehicle(
                vehicle_id=str(uuid.uuid4()),
                vin=DEMO_DOIP_VIN,
                make="Emulated",
                model="DoIP bench",
                year=2024,
                connection_status=_OFF,  # until its link is up
                simulator_profile=SimulatorProfile.HEALTHY,
                last_seen_at=None,
                transport=Transport.DOIP,
                doip=doip_target(given),
                # Bound before the description is loaded (``create`` checks a binding
                # against the ready ones): the service stores it as it seeds.
                ecus=DEMO_ECU_REFS,
            )
            if not await self._store.insert(vehicle, self._clock.timestamp(), SYSTEM_ACTOR):
                raise Conflict(f"a vehicle with vin {DEMO_DOIP_VIN} already exists")
            await self.report_connected()
            return vehicle, True
        if existing.transport is not Transport.DOIP:
            return None, False  # an admin made it something else: leave it
        return await self.update(existing.vehicle_id, {"doip": given}, SYSTEM_ACTOR), False

    async def seed_demo(self) -> int:
        """Add the demo fleet to an empty database, their ECUs bound to the demo
        description (``DEMO_ECU_REFS``); return how many were added."""
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
                    ecus=DEMO_ECU_REFS,
                ),
                at,
                None,
            )
        return len(DEMO_FLEET)
