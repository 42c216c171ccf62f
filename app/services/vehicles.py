"""The fleet: listing, registering and re-configuring vehicles, and the demo fleet.

A vehicle is reached through the simulator (its ``simulator_profile``) or over DoIP (its
``doip`` target). An admin sets a simulated vehicle's ``connection_status``; a DoIP
vehicle's follows its link (``app.services.vehicle_links``). Changing a DoIP target
drops the vehicle's link, so the next command connects to the new one. What is given is
checked first (``app.services.vehicle_inputs``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

from app.clock import Clock
from app.errors import BadRequest, Conflict, NotFound
from app.models import DEFAULT_ECU_REFS, SYSTEM_ACTOR, Actor, EcuRef, Vehicle
from app.services.fleet_gauge import ConnectedGauge
from app.services.vehicle_inputs import (
    Containers,
    DoipInput,
    EcuInput,
    NoContainers,
    canonical_changes,
    check_identity,
    doip_target,
    initial_ecus,
    parse_transport,
)
from app.services.vehicle_links import LinkControl, NoLinkControl
from app.store.vehicles import VehicleFilter, VehicleStore
from app.telemetry import Telemetry
from app.vocabulary import ConnectionStatus, SimulatorProfile, Transport

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


class VehicleService:
    def __init__(
        self,
        store: VehicleStore,
        telemetry: Telemetry,
        clock: Clock | None = None,
        links: LinkControl | None = None,
        containers: Containers | None = None,
        gauge: ConnectedGauge | None = None,
    ) -> None:
        self._store = store
        # vehicle_connections_active (on a cluster, of this node's lanes only).
        self.connected_gauge = gauge or ConnectedGauge(store, telemetry)
        # The descriptions an ECU may be bound to (``ecus[].description``).
        self._containers: Containers = containers or NoContainers()
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
        check_identity(vin, year, simulator_profile)
        kind = parse_transport(transport)
        target = doip_target(doip) if doip is not None else None
        if kind is Transport.DOIP and target is None:
            raise BadRequest("doip: required when transport is doip (host, logical_address, ...)")
        if kind is Transport.SIMULATOR and target is not None:
            raise BadRequest("doip: only for transport doip")
        ecu_refs = initial_ecus(ecus, target, self._containers)
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
        changes = canonical_changes(changes, self._containers)
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
        await self.connected_gauge.report(connected)
        if (before.transport, before.doip) != (vehicle.transport, vehicle.doip):
            # The old link leads to the old target: drop it; the next use connects anew.
            await self._links.disconnect(vehicle_id)
            self._links.keep_up(vehicle_id, vehicle.doip is not None and vehicle.doip.always_on)
        return vehicle

    async def report_connected(self) -> None:
        await self.connected_gauge.refresh()

    async def start_links(self, vehicle_ids: Sequence[str] | None = None) -> list[str]:
        """At start: no DoIP link is up yet (their status says so), and the always-on
        vehicles are to be kept up. Returns those. On a cluster, only for
        ``vehicle_ids``: the lanes this node has just taken (their links are the lane
        owner's)."""
        await self.connected_gauge.report(await self._store.reset_links(vehicle_ids))
        always_on = await self._store.always_on()
        if vehicle_ids is not None:
            always_on = [v for v in always_on if v in set(vehicle_ids)]
        for vehicle_id in always_on:
            self._links.keep_up(vehicle_id, True)
        return always_on

    def stop_links(self, vehicle_ids: Sequence[str]) -> None:
        """Keep these vehicles' links up no more (a cluster: their lanes are no longer
        this node's; an idle link then closes)."""
        for vehicle_id in vehicle_ids:
            self._links.keep_up(vehicle_id, False)

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
