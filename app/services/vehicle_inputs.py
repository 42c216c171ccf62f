"""A vehicle as an admin gives it, checked into canonical form: its VIN, year and profile,
its DoIP target (addresses spelt 0x0E00) and its ECU set (1 to 32 ECUs, each named once
at one address, those with a description bound to a ready one's container). Pure: every
refusal is a BadRequest naming the field, and nothing is stored here
(``app.services.vehicles`` stores what passes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from app.errors import BadRequest
from app.models import DEFAULT_ECU_REFS, DoipTargetSpec, EcuRef, ecu_refs_at
from app.services.description_files import ContainerRef
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


class NoContainers:
    """No description to bind to (a service built without the library)."""

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
            name, raw, bound = _bound(i, entry, containers or NoContainers())
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


def initial_ecus(
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


def parse_transport(raw: str) -> Transport:
    if raw not in _TRANSPORTS:
        raise BadRequest(f"transport must be one of {', '.join(Transport)}")
    return Transport(raw)


def check_identity(vin: str, year: int, simulator_profile: str) -> None:
    """A new vehicle's VIN, year and simulator profile, or BadRequest naming the field."""
    if not _VIN.fullmatch(vin):
        raise BadRequest("vin must be 17 characters of A-H, J-N, P, R-Z and 0-9")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise BadRequest(f"year must be from {MIN_YEAR} to {MAX_YEAR}")
    if simulator_profile not in _PROFILES:
        raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")


def canonical_changes(changes: dict[str, Any], containers: Containers) -> dict[str, Any]:
    """An update's ``changes`` checked, each in canonical form (see
    ``VehicleService.update``), or BadRequest naming the field."""
    status = changes.get("connection_status")
    if status is not None and status not in _STATUSES:
        raise BadRequest(f"connection_status must be one of {', '.join(ConnectionStatus)}")
    profile = changes.get("simulator_profile")
    if profile is not None and profile not in _PROFILES:
        raise BadRequest(f"simulator_profile must be one of {', '.join(SimulatorProfile)}")
    changes = dict(changes)
    if "transport" in changes:
        changes["transport"] = parse_transport(changes["transport"])
    if changes.get("doip") is not None:
        changes["doip"] = doip_target(changes["doip"])
    if "ecus" in changes:
        changes["ecus"] = ecu_set(changes["ecus"], containers)
    return changes
