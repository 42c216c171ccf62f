"""The service's records: frozen, keyword-only msgspec structs shared by the store,
services and API.

Built by name (``kw_only=True``), so a new column can never shift a value into the wrong
field. Where a record is also an API response its fields are the JSON body as is (the
API encodes it directly, no copy). A field only the service uses is declared so where
it is, ``Annotated[T, INTERNAL]`` (``Command.started_at``); the API's type for such a
record is derived from the declaration (``shown``), never a second list of its fields.
The chunks of an answer are events as well: ``app.events.ResponseChunk``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any, Final, TypeVar, get_origin

import msgspec

from app.vehicles.addresses import format_address
from app.vehicles.pdx.demo import DEFAULT_ECUS
from app.vocabulary import (
    TERMINAL_STATUSES,
    AuditAction,
    CommandStatus,
    ConnectionStatus,
    FailureCode,
    Role,
    SimulatorProfile,
    Transport,
)

__all__ = [
    "DEFAULT_ECU_REFS",
    "INTERNAL",
    "SYSTEM_ACTOR",
    "Actor",
    "AuditEntry",
    "Command",
    "DoipTargetSpec",
    "EcuRef",
    "Principal",
    "Role",
    "User",
    "Vehicle",
    "show",
    "shown",
]


class Record(msgspec.Struct, frozen=True, kw_only=True):
    """Base of the records: immutable, built by keyword."""


class _Internal:
    __slots__ = ()

    def __repr__(self) -> str:
        return "INTERNAL"


# ``Annotated[T, INTERNAL]``: a field the service keeps and uses but never shows (the
# API's bodies, the WebSocket's frames and the OpenAPI document leave it out).
INTERNAL: Final = _Internal()

S = TypeVar("S", bound=msgspec.Struct)


def _internal(field: msgspec.structs.FieldInfo) -> bool:
    return get_origin(field.type) is Annotated and INTERNAL in field.type.__metadata__


def shown(
    record: type[msgspec.Struct],
    *,
    base: type[S],
    name: str | None = None,
    hide: tuple[str, ...] = (),
    doc: str | None = None,
    tagged: bool = False,
) -> type[S]:
    """The type a client sees of ``record``: its fields in their order, each with its type,
    constraints and default, but the internal ones and ``hide``; named ``name`` (the
    record's by default), described by ``doc``, tagged as the record is if ``tagged``.
    Derived from the record's declaration, so the two cannot drift; ``show`` fills it."""
    fields: list[tuple[str, Any] | tuple[str, Any, Any]] = []
    for f in msgspec.structs.fields(record):
        if _internal(f) or f.name in hide:
            continue
        if f.required:
            fields.append((f.name, f.type))
        elif f.default_factory is not msgspec.NODEFAULT:
            fields.append((f.name, f.type, msgspec.field(default_factory=f.default_factory)))
        else:
            fields.append((f.name, f.type, f.default))
    config = record.__struct_config__
    tag: dict[str, Any] = (
        {"tag_field": config.tag_field, "tag": config.tag}
        if tagged and config.tag_field is not None
        else {}
    )
    return msgspec.defstruct(  # type: ignore[return-value]  # defstruct says Struct
        name or record.__name__,
        fields,
        bases=(base,),
        module=record.__module__,
        namespace={"__doc__": doc} if doc else None,
        frozen=True,
        kw_only=True,
        **tag,
    )


def show(value: msgspec.Struct, view: type[S]) -> S:
    """``value`` as its ``shown`` type: the fields the view has, taken by name."""
    return view(**{name: getattr(value, name) for name in view.__struct_fields__})


class User(Record, frozen=True, kw_only=True):
    user_id: str
    username: str
    role: Role
    disabled: bool = False


class ServiceAccount(Record, frozen=True, kw_only=True):
    """A machine client: it gets tokens with OAuth 2.0 client credentials (``client_id``
    and a secret shown once), or presents the client certificate ``certificate_name``
    names (its subject CN or a DNS SAN), and acts with its role."""

    account_id: str
    client_id: str
    role: Role
    disabled: bool = False
    certificate_name: str | None = None


class Principal(Record, frozen=True, kw_only=True):
    """Who is making a request: the user behind a valid access token and its session."""

    user_id: str
    username: str
    role: Role
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class DoipTargetSpec(Record, frozen=True, kw_only=True):
    """Where a DoIP vehicle's entity listens; logical addresses as hex such as 0x0E00."""

    host: str
    port: int
    logical_address: str
    tester_address: str
    ecu_addresses: tuple[str, ...]
    always_on: bool  # connect at start and reconnect after a loss, never idle-close


class EcuRef(Record, frozen=True, kw_only=True, omit_defaults=True):
    """One ECU of a vehicle (a SOVD component): its name and UDS address, and the ECU
    description (a diag layer container of a PDX file) it is bound to, if any."""

    name: str  # such as engine: lower-case letters, digits and dashes
    address: str  # its logical address as app.vehicles.addresses shows it, such as 0x0010
    # The container's short name as the description spells it (FLXC1000); the ECU's
    # name is then that name lower-cased. Absent (not shown) for an unbound ECU.
    description: str | None = None


# The default ECU set comes from the ECU descriptions (pure data): engine 0x0010,
# transmission 0x0018, abs 0x0028, body 0x0040.
DEFAULT_ECU_REFS: Final = tuple(
    EcuRef(name=name, address=format_address(address)) for name, address in DEFAULT_ECUS
)


def ecu_refs_at(addresses: Iterable[int]) -> tuple[EcuRef, ...]:
    """The ECUs at these addresses (each once, in order), named as the default ECUs are
    where the address is theirs (0x0010: engine), ``ecu-0x50`` (``ecu-0x1001``) otherwise."""
    names = {address: name for name, address in DEFAULT_ECUS}
    unique = dict.fromkeys(addresses)
    return tuple(
        EcuRef(name=names.get(a, f"ecu-0x{a:02x}"), address=format_address(a)) for a in unique
    )


class Vehicle(Record, frozen=True, kw_only=True):
    vehicle_id: str
    vin: str
    make: str
    model: str
    year: int
    connection_status: ConnectionStatus
    simulator_profile: SimulatorProfile
    last_seen_at: str | None
    transport: Transport = Transport.SIMULATOR
    # The DoIP target (transport doip only); shown to admins, None for engineers.
    doip: DoipTargetSpec | None = None
    # The vehicle's ECUs (its SOVD components); shown to engineers and admins.
    ecus: tuple[EcuRef, ...] = DEFAULT_ECU_REFS


class Command(Record, frozen=True, kw_only=True):
    command_id: str
    vehicle_id: str
    user_id: str
    command_name: str
    command_params: dict[str, Any]
    status: CommandStatus
    error_code: FailureCode | None
    error_message: str | None
    submitted_at: str
    completed_at: str | None
    started_at: Annotated[str | None, INTERNAL] = None  # when execution began

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class AuditEntry(Record, frozen=True, kw_only=True):
    audit_id: int
    at: str
    user_id: str | None
    username: str | None
    action: AuditAction
    entity_type: str | None
    entity_id: str | None
    details: dict[str, Any]
    client_address: str | None


class Actor(Record, frozen=True, kw_only=True):
    """Who caused a change, for the audit log."""

    user_id: str | None
    username: str | None
    client_address: str | None


SYSTEM_ACTOR: Final = Actor(user_id=None, username="system", client_address=None)
