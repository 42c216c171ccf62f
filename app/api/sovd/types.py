"""The bodies of the SOVD tree: what SOVD clients send and get back.

Every response type has ``schema``: absent, or with ``include-schema=true`` the JSON
Schema of that same type (``app.api.contract.schema_of``), which is also what
``/openapi.json`` documents for the response. Fields SOVD marks optional are left out
when they have no value.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from app.api.contract import Body, Query
from app.api.error_bodies import GenericError
from app.services.locks import MAX_EXPIRATION_S as MAX_LOCK_EXPIRATION_S
from app.services.sovd.faults import Fault
from app.services.sovd.modes import MAX_EXPIRATION_S as MAX_SESSION_S
from app.services.sovd.operations import ExecutionStatus

MAX_LOCK_S = int(MAX_LOCK_EXPIRATION_S)

UNSET = msgspec.UNSET
Unset = msgspec.UnsetType


class SovdQuery(Query, frozen=True, kw_only=True):
    include_schema: bool = msgspec.field(default=False, name="include-schema")


def _bit(name: str) -> Any:
    return msgspec.field(default=None, name=f"status[{name}]")


class FaultQuery(SovdQuery, frozen=True, kw_only=True):
    """Filters: faults with any of the given status bits as given (OR), and of the given
    severity or more severe. A bit goes by the name a fault's ``status`` shows
    (``status[confirmed_dtc]``, CDA's) or by its ISO 14229-1 name
    (``status[confirmedDTC]``, the earlier spelling); names match whatever their case."""

    any_case_names = True
    severity: Annotated[int, msgspec.Meta(ge=1, le=4)] | None = None
    test_failed: bool | None = _bit("test_failed")
    test_failed_this_operation_cycle: bool | None = _bit("test_failed_this_operation_cycle")
    pending_dtc: bool | None = _bit("pending_dtc")
    confirmed_dtc: bool | None = _bit("confirmed_dtc")
    test_not_completed_since_last_clear: bool | None = _bit("test_not_completed_since_last_clear")
    test_failed_since_last_clear: bool | None = _bit("test_failed_since_last_clear")
    test_not_completed_this_operation_cycle: bool | None = _bit(
        "test_not_completed_this_operation_cycle"
    )
    warning_indicator_requested: bool | None = _bit("warning_indicator_requested")
    # The ISO 14229-1 names (``app.vehicles.trouble_codes.DTC_STATUS_BITS``), still accepted.
    testFailed: bool | None = _bit("testFailed")
    testFailedThisOperationCycle: bool | None = _bit("testFailedThisOperationCycle")
    pendingDTC: bool | None = _bit("pendingDTC")
    confirmedDTC: bool | None = _bit("confirmedDTC")
    testNotCompletedSinceLastClear: bool | None = _bit("testNotCompletedSinceLastClear")
    testFailedSinceLastClear: bool | None = _bit("testFailedSinceLastClear")
    testNotCompletedThisOperationCycle: bool | None = _bit("testNotCompletedThisOperationCycle")
    warningIndicatorRequested: bool | None = _bit("warningIndicatorRequested")


class SovdOut(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A SOVD response body."""

    schema: dict[str, Any] | Unset = UNSET


class VendorInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    version: str


class SovdInfo(msgspec.Struct, frozen=True, kw_only=True):
    version: str
    base_uri: str
    vendor_info: VendorInfo


class VersionInfo(SovdOut, frozen=True, kw_only=True):
    sovd_info: list[SovdInfo]


class EntityRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    href: str


class Entities(SovdOut, frozen=True, kw_only=True):
    items: list[EntityRef]


class Root(SovdOut, frozen=True, kw_only=True):
    """The vehicle as a SOVD server: its collections."""

    id: str
    name: str
    components: str
    apps: str
    areas: str
    functions: str
    locks: str


class ComponentVariant(msgspec.Struct, frozen=True, kw_only=True):
    """A bound ECU's diag layer, as CDA shows it."""

    name: str  # the identified ECU variant's short name, else the base variant's
    is_base_variant: bool
    state: str  # Online, NoVariantDetected, NotTested
    logical_address: str  # "0x0010"


class ComponentOut(SovdOut, frozen=True, kw_only=True):
    """A component (an ECU): links to the capabilities it has, only those."""

    id: str
    name: str
    ecu_address: str = msgspec.field(name="x-ecu-address")
    variant: ComponentVariant | Unset = UNSET  # a component bound to a description
    data: str | Unset = UNSET
    configurations: str | Unset = UNSET
    data_categories: str | Unset = msgspec.field(default=UNSET, name="data-categories")
    data_groups: str | Unset = msgspec.field(default=UNSET, name="data-groups")
    faults: str | Unset = UNSET
    operations: str | Unset = UNSET
    modes: str | Unset = UNSET
    locks: str | Unset = UNSET
    hosts: str | Unset = UNSET
    belongs_to: str | Unset = msgspec.field(default=UNSET, name="belongs-to")


class Faults(SovdOut, frozen=True, kw_only=True):
    items: list[Fault]


class FaultOut(SovdOut, frozen=True, kw_only=True):
    item: Fault
    # A bound ECU's: {"snapshots": {"data"}, "extended_data_records": {"data"}} (0x19
    # 0x04 / 0x06), where its description has those services.
    environment_data: dict[str, Any] | Unset = UNSET


class DataRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    category: str
    unit: str | Unset = UNSET  # a bound ECU's value unit, where its DOP has one


class DataList(SovdOut, frozen=True, kw_only=True):
    items: list[DataRef]


class DataValue(SovdOut, frozen=True, kw_only=True):
    id: str
    data: dict[str, Any]


class DataWrite(Body, frozen=True, kw_only=True):
    """``PUT data/{id}`` (and ``configurations/{id}``): the 0x2E service's request
    parameters by short name, physical values."""

    data: dict[str, Any]


class ConfigurationRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    configurations_type: str  # "parameter" (CDA)
    service_abstract: list[str] = msgspec.field(name="x-sovd2uds-ServiceAbstract")


class Configurations(SovdOut, frozen=True, kw_only=True):
    items: list[ConfigurationRef]


class CategoryRef(msgspec.Struct, frozen=True, kw_only=True):
    item: str


class Categories(SovdOut, frozen=True, kw_only=True):
    items: list[CategoryRef]


class GroupRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    category: str


class Groups(SovdOut, frozen=True, kw_only=True):
    items: list[GroupRef]


class OperationRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    proximity_proof_required: bool
    asynchronous_execution: bool
    # A bound ECU's: whether its description has a stop / request-results service.
    has_stop: bool | Unset = UNSET
    has_request_results: bool | Unset = UNSET


class Operations(SovdOut, frozen=True, kw_only=True):
    items: list[OperationRef]


class OperationOut(SovdOut, frozen=True, kw_only=True):
    item: OperationRef
    modes: dict[str, str] | Unset = UNSET  # the session it needs: {"session": "EXTENDED"}


class NewExecution(Body, frozen=True, kw_only=True):
    timeout: Annotated[int, msgspec.Meta(ge=1, le=3600, description="seconds")] | None = None
    parameters: dict[str, Any] | None = None


class ExecutionStarted(SovdOut, frozen=True, kw_only=True):
    id: str
    status: ExecutionStatus


class ExecutionRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    href: str


class Executions(SovdOut, frozen=True, kw_only=True):
    items: list[ExecutionRef]


class DataError(msgspec.Struct, frozen=True, kw_only=True):
    """Why an execution failed: SOVD's DataError (a JSON pointer and a GenericError)."""

    path: str
    error: GenericError


class ExecutionOut(SovdOut, frozen=True, kw_only=True):
    status: ExecutionStatus
    capability: str
    parameters: dict[str, Any]
    progress: int | Unset = UNSET
    error: list[DataError] | Unset = UNSET


class ModeRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str


class Modes(SovdOut, frozen=True, kw_only=True):
    items: list[ModeRef]


class ModeOut(SovdOut, frozen=True, kw_only=True):
    id: str
    name: str
    value: str


class ModeChange(Body, frozen=True, kw_only=True):
    value: Annotated[str, msgspec.Meta(max_length=32)]
    mode_expiration: Annotated[int, msgspec.Meta(ge=1, le=MAX_SESSION_S)] | None = None


class ModeSet(SovdOut, frozen=True, kw_only=True):
    id: str
    value: str


class NewLock(Body, frozen=True, kw_only=True):
    lock_expiration: Annotated[int, msgspec.Meta(ge=1, le=MAX_LOCK_S, description="seconds")]


class LockCreated(SovdOut, frozen=True, kw_only=True):
    id: str


class LockRef(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    owned: bool


class Locks(SovdOut, frozen=True, kw_only=True):
    items: list[LockRef]


class LockOut(SovdOut, frozen=True, kw_only=True):
    lock_expiration: str  # RFC 3339
