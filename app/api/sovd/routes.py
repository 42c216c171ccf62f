"""The SOVD tree's entries of the route table (``app.api.routes`` includes them).

Every entry is a signed-in user's (engineers and admins alike) but breaking every lock of
a vehicle, which is an admin's; an execution is visible to its user and admins, as
commands are. Reads that reach the vehicle answer what it said and name the command in
``X-Command-ID``.
"""

from __future__ import annotations

from typing import Any, Final

from app.api import oauth
from app.api.contract import Endpoint, Handler
from app.api.sovd import data, entities, faults, locks, modes, operations
from app.api.sovd import types as t
from app.services.vehicle_inputs import VIN_ANY_CASE
from app.vocabulary import Access, ErrorCode

E = ErrorCode
ROOT: Final = "/sovd/vehicles/{vin}"
V1: Final = f"{ROOT}/v1"
COMPONENT: Final = f"{V1}/components/{{component}}"
# Path parameters that are names, not UUIDs (the table checks them against these).
_NAME = r"^[a-z][a-z0-9-]{0,31}$"
_PATHS: Final = {
    "vin": VIN_ANY_CASE,
    "component": _NAME,
    "data_id": r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
    "fault_code": r"^([0-9A-Fa-f]{6}|[PCBUpcbu][0-3][0-9A-Fa-f]{3})$",
    "operation": r"^[A-Za-z][A-Za-z0-9_]{0,63}$",
    "mode": _NAME,
}
# What a call that reaches the vehicle can answer besides the table's own errors.
_VEHICLE: Final = (
    E.PRECONDITION_NOT_FULFILLED,
    E.LOCK_BROKEN,
    E.CONFLICT,
    E.VEHICLE_DISCONNECTED,
    E.RATE_LIMITED,
    E.OVERLOADED,
    E.ERROR_RESPONSE,
    E.INVALID_RESPONSE_CONTENT,
    E.NOT_RESPONDING,
    E.SERVER_FAILURE,
)


def _e(
    method: str,
    path: str,
    handler: Handler,
    summary: str,
    responses: dict[int, Any],
    *,
    body: type[Any] | None = None,
    query: type[Any] | None = t.SovdQuery,
    errors: tuple[ErrorCode, ...] = (),
    access: Access = Access.USER,
) -> Endpoint:
    names = [p for p in _PATHS if f"{{{p}}}" in path]
    return Endpoint(
        method,
        path,
        handler,
        summary,
        access,
        responses,
        body=body,
        query=query if method == "GET" else None,
        errors=errors,
        path_also={n: _PATHS[n] for n in names},
        tags=("SOVD",),
    )


def _locks(base: str, where: str) -> tuple[Endpoint, ...]:
    return (
        _e(
            "POST",
            f"{base}/locks",
            locks.take_lock,
            f"Lock {where}",
            {201: t.LockCreated},
            body=t.NewLock,
            errors=(E.PRECONDITION_NOT_FULFILLED, E.LOCK_BROKEN, E.CONFLICT),
        ),
        _e("GET", f"{base}/locks", locks.list_locks, f"Locks on {where}", {200: t.Locks}),
        _e("GET", f"{base}/locks/{{lock_id}}", locks.get_lock, "One lock", {200: t.LockOut}),
        _e(
            "PUT",
            f"{base}/locks/{{lock_id}}",
            locks.extend_lock,
            "Extend a lock you hold",
            {204: None},
            body=t.NewLock,
            errors=(E.INSUFFICIENT_ACCESS_RIGHTS, E.LOCK_BROKEN),
        ),
        _e(
            "DELETE",
            f"{base}/locks/{{lock_id}}",
            locks.release_lock,
            "Release a lock you hold (an admin may break anyone's)",
            {204: None},
            errors=(E.INSUFFICIENT_ACCESS_RIGHTS, E.LOCK_BROKEN),
        ),
    )


_OPERATION = f"{COMPONENT}/operations/{{operation}}"

SOVD_ENDPOINTS: Final[tuple[Endpoint, ...]] = (
    _e("GET", f"{ROOT}/version-info", entities.version_info, "SOVD version", {200: t.VersionInfo}),
    _e("GET", V1, entities.root, "The vehicle as a SOVD server", {200: t.Root}),
    _e(
        "POST",
        f"{V1}/authorize",
        oauth.authorize,
        "A service account's access token (CDA's authorize: client_id and client_secret)",
        {200: oauth.AccessToken},
        body=oauth.Authorize,
        errors=(E.UNAUTHORIZED, E.RATE_LIMITED, E.OVERLOADED),
        access=Access.ANONYMOUS,
    ),
    _e("GET", f"{V1}/components", entities.list_components, "Components (ECUs)", {200: t.Entities}),
    _e("GET", f"{V1}/apps", entities.empty_collection, "Apps (none)", {200: t.Entities}),
    _e("GET", f"{V1}/areas", entities.empty_collection, "Areas (none)", {200: t.Entities}),
    _e("GET", f"{V1}/functions", entities.empty_collection, "Functions (none)", {200: t.Entities}),
    _e("GET", COMPONENT, entities.get_component, "One component", {200: t.ComponentOut}),
    _e(
        "PUT",
        COMPONENT,
        entities.detect_variant,
        "Detect a bound ECU's variant now (CDA): its identification services run as yours",
        {201: None},
        errors=(*_VEHICLE, E.INCOMPLETE_REQUEST),
    ),
    _e("GET", f"{COMPONENT}/hosts", entities.empty_collection, "Apps it hosts", {200: t.Entities}),
    _e(
        "GET",
        f"{COMPONENT}/belongs-to",
        entities.empty_collection,
        "Areas it belongs to",
        {200: t.Entities},
    ),
    _e("GET", f"{COMPONENT}/data", data.list_data, "Its data", {200: t.DataList}),
    _e(
        "GET",
        f"{COMPONENT}/data-categories",
        data.data_categories,
        "Its data categories",
        {200: t.Categories},
    ),
    _e("GET", f"{COMPONENT}/data-groups", data.data_groups, "Its data groups", {200: t.Groups}),
    _e(
        "GET",
        f"{COMPONENT}/data/{{data_id}}",
        data.read_data,
        "Read one value (UDS 0x22)",
        {200: t.DataValue},
        errors=_VEHICLE,
    ),
    _e(
        "PUT",
        f"{COMPONENT}/data/{{data_id}}",
        data.write_data,
        "Write one value of a bound ECU (UDS 0x2E): 200 as read, 204 when it answers none",
        {200: t.DataValue, 204: None},
        body=t.DataWrite,
        errors=(*_VEHICLE, E.METHOD_NOT_ALLOWED),
    ),
    _e(
        "GET",
        f"{COMPONENT}/configurations",
        data.list_configurations,
        "A bound ECU's configurations (varcoding)",
        {200: t.Configurations},
    ),
    _e(
        "GET",
        f"{COMPONENT}/configurations/{{data_id}}",
        data.read_configuration,
        "Read one configuration (UDS 0x22; any data id, as CDA)",
        {200: t.DataValue},
        errors=_VEHICLE,
    ),
    _e(
        "PUT",
        f"{COMPONENT}/configurations/{{data_id}}",
        data.write_configuration,
        "Write one configuration (UDS 0x2E): 200 as read, 204 when it answers none",
        {200: t.DataValue, 204: None},
        body=t.DataWrite,
        errors=_VEHICLE,
    ),
    _e(
        "GET",
        f"{COMPONENT}/faults",
        faults.list_faults,
        "Read its faults (UDS 0x19)",
        {200: t.Faults},
        query=t.FaultQuery,
        errors=_VEHICLE,
    ),
    _e(
        "GET",
        f"{COMPONENT}/faults/{{fault_code}}",
        faults.get_fault,
        "One fault",
        {200: t.FaultOut},
        errors=_VEHICLE,
    ),
    _e(
        "DELETE",
        f"{COMPONENT}/faults",
        faults.clear_faults,
        "Clear all its faults (UDS 0x14)",
        {204: None},
        errors=_VEHICLE,
    ),
    _e(
        "DELETE",
        f"{COMPONENT}/faults/{{fault_code}}",
        faults.clear_fault,
        "Clear one fault (UDS 0x14)",
        {204: None},
        errors=_VEHICLE,
    ),
    _e(
        "GET",
        f"{COMPONENT}/operations",
        operations.list_operations,
        "Its operations",
        {200: t.Operations},
    ),
    _e("GET", _OPERATION, operations.get_operation, "One operation", {200: t.OperationOut}),
    _e(
        "POST",
        f"{_OPERATION}/executions",
        operations.start_execution,
        "Run it (UDS 0x31): 202 for an asynchronous operation, 200 with the result otherwise",
        {202: t.ExecutionStarted, 200: t.ExecutionOut},
        body=t.NewExecution,
        errors=_VEHICLE,
    ),
    _e(
        "GET",
        f"{_OPERATION}/executions",
        operations.list_executions,
        "Its executions (yours; an admin sees all)",
        {200: t.Executions},
    ),
    _e(
        "GET",
        f"{_OPERATION}/executions/{{execution_id}}",
        operations.get_execution,
        "One execution",
        {200: t.ExecutionOut},
    ),
    _e(
        "DELETE",
        f"{_OPERATION}/executions/{{execution_id}}",
        operations.stop_execution,
        "Stop a running execution (RoutineControl stop)",
        {204: None},
        errors=(E.CONFLICT,),
    ),
    _e("GET", f"{COMPONENT}/modes", modes.list_modes, "Its modes", {200: t.Modes}),
    _e(
        "GET",
        f"{COMPONENT}/modes/{{mode}}",
        modes.get_mode,
        "One mode, read now (the session through DID 0xF186)",
        {200: t.ModeOut},
        errors=_VEHICLE,
    ),
    _e(
        "PUT",
        f"{COMPONENT}/modes/{{mode}}",
        modes.set_mode,
        "Switch the diagnostic session (UDS 0x10)",
        {200: t.ModeSet},
        body=t.ModeChange,
        errors=(*_VEHICLE, E.METHOD_NOT_ALLOWED),
    ),
    *_locks(V1, "the whole vehicle"),
    _e(
        "DELETE",
        f"{V1}/locks",
        locks.break_all_locks,
        "Break every lock of the vehicle and its components (admins; each holder is told"
        " lock-broken once)",
        {204: None},
        access=Access.ADMIN,
    ),
    *_locks(COMPONENT, "one component"),
)
