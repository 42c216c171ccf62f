"""The handlers' bodies for a component bound to an ECU description: the same routes as
every component, the content from the description by CDA's mapping
(``app.services.sovd.described``; the executions: ``operations.Executions``). Each
handler of ``data``, ``faults``, ``operations``, ``modes`` and ``entities`` hands a bound
component over to these."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.api.contract import Call, Result, schema_of
from app.api.error_bodies import COMMAND_ID_HEADER
from app.api.sovd import schemas, tree
from app.api.sovd.types import (
    UNSET,
    Categories,
    CategoryRef,
    ComponentOut,
    ComponentVariant,
    ConfigurationRef,
    Configurations,
    DataList,
    DataRef,
    DataValue,
    DataWrite,
    ExecutionOut,
    ExecutionRef,
    Executions,
    ExecutionStarted,
    FaultOut,
    Faults,
    GroupRef,
    Groups,
    ModeOut,
    ModeRef,
    Modes,
    ModeSet,
    NewExecution,
    OperationOut,
    OperationRef,
    Operations,
)
from app.errors import BadRequest, NotFound
from app.services.sovd.entities import Target
from app.services.sovd.faults import Fault, FaultFilter, fault_status, matches
from app.services.sovd.operations import ExecutionStatus

if TYPE_CHECKING:
    from app.descriptions import sovd_map

CAPABILITY = "execute"


def _service(call: Call[Any, Any]) -> Any:
    return call.services.sovd.described


# -- the component ---------------------------------------------------------------------------


async def get_component(call: Call[Any, Any], at: Target) -> ComponentOut:
    from app.descriptions import sovd_map

    layer, choice = await call.services.sovd.described_calls.variant(at)
    here = tree.component_uri(call, at.vehicle, at.ecu)
    has_data = bool(sovd_map.data_items(layer))
    has_faults = sovd_map.fault_services(layer).report_by_status_mask is not None
    return ComponentOut(
        id=at.ecu.name,
        name=at.ecu.name,
        ecu_address=at.ecu.ecu_address,
        variant=ComponentVariant(
            name=choice.name,
            is_base_variant=choice.is_base,
            state=choice.state,
            logical_address=at.ecu.ecu_address,
        ),
        data=f"{here}/data" if has_data else UNSET,
        configurations=f"{here}/configurations" if sovd_map.configurations(layer) else UNSET,
        data_categories=f"{here}/data-categories" if has_data else UNSET,
        data_groups=f"{here}/data-groups" if has_data else UNSET,
        faults=f"{here}/faults" if has_faults else UNSET,
        operations=f"{here}/operations" if sovd_map.operations(layer) else UNSET,
        modes=f"{here}/modes" if sovd_map.modes(layer) else UNSET,
        locks=f"{here}/locks",
        hosts=f"{here}/hosts",
        belongs_to=f"{here}/belongs-to",
    )


# -- data ------------------------------------------------------------------------------------


async def list_data(call: Call[Any, Any], at: Target) -> DataList:
    items = await _service(call).data_items(at)
    return DataList(
        items=[
            DataRef(
                id=d.id,
                name=d.name,
                category=d.category,
                unit=UNSET if d.unit is None else d.unit,
            )
            for d in items
            if d.read is not None
        ]
    )


async def _categories(call: Call[Any, Any], at: Target) -> list[str]:
    items = await _service(call).data_items(at)
    return list(dict.fromkeys(d.category for d in items if d.category))


async def data_categories(call: Call[Any, Any], at: Target) -> Categories:
    return Categories(items=[CategoryRef(item=c) for c in await _categories(call, at)])


async def data_groups(call: Call[Any, Any], at: Target) -> Groups:
    return Groups(items=[GroupRef(id=c, category=c) for c in await _categories(call, at)])


async def read_data(call: Call[Any, Any], at: Target) -> Result:
    """CDA's body: the path's id lower-cased, the answer's values by short name."""
    data_id: str = call.request.path_params["data_id"]
    _, answer = await _service(call).read_data(at, data_id)
    body = DataValue(id=data_id.lower(), data=answer.parameters)
    return Result(body, headers={COMMAND_ID_HEADER: answer.command_id})


async def detect_variant(call: Call[Any, Any], at: Target) -> Result:
    """CDA's forced variant detection: the kept choice forgotten, the identification
    services run now as the caller's commands; 201, no body."""
    call.services.variants.forget(at.vehicle.vehicle_id, at.ecu.name)
    await call.services.sovd.described_calls.variant(at)
    return Result(None, status=201)


async def write_data(call: Call[DataWrite, Any], at: Target, where: str = "data") -> Result:
    """The 0x2E service with the body's ``data``: answered as GET does, or 204 when the
    positive answer has no values (CDA)."""
    data_id: str = call.request.path_params["data_id"]
    _, answer = await _service(call).write_data(at, data_id, call.body.data, where)
    headers = {COMMAND_ID_HEADER: answer.command_id}
    if not answer.parameters:
        return Result(None, status=204, headers=headers)
    return Result(DataValue(id=data_id.lower(), data=answer.parameters), headers=headers)


async def list_configurations(call: Call[Any, Any], at: Target) -> Configurations:
    items = await _service(call).configurations(at)
    return Configurations(
        items=[
            ConfigurationRef(
                id=c.id,
                name=c.name,
                configurations_type="parameter",
                service_abstract=list(c.service_abstract),
            )
            for c in items
        ]
    )


# -- faults ----------------------------------------------------------------------------------


def _fault(found: sovd_map.Fault) -> Fault:
    return Fault(
        code=found.code,
        scope=found.scope,
        display_code=UNSET if found.display_code is None else found.display_code,
        fault_name=UNSET if found.fault_name is None else found.fault_name,
        severity=found.severity,
        status=fault_status(found.status.mask),
    )


async def list_faults(call: Call[Any, Any], at: Target, keep: FaultFilter) -> Result:
    _, faults, command_id = await _service(call).faults(at)
    body = Faults(items=[f for f in (_fault(x) for x in faults) if keep.keeps(f)])
    return Result(body, headers={COMMAND_ID_HEADER: command_id})


async def _find(
    call: Call[Any, Any], at: Target, ref: str
) -> tuple[Any, sovd_map.Fault, Fault, str]:
    layer, faults, command_id = await _service(call).faults(at)
    for found in faults:
        out = _fault(found)
        if matches(out, ref):
            return layer, found, out, command_id
    raise NotFound(f"component {at.ecu.name} has no fault {ref[:16]}", command_id=command_id)


async def get_fault(call: Call[Any, Any], at: Target, ref: str) -> Result:
    layer, found, out, command_id = await _find(call, at, ref)
    environment = await _service(call).environment_data(at, layer, found)
    body = FaultOut(item=out, environment_data=UNSET if environment is None else environment)
    return Result(body, headers={COMMAND_ID_HEADER: command_id})


async def clear_faults(call: Call[Any, Any], at: Target, ref: str | None) -> Result:
    found = None
    if ref is not None:
        _, found, _, _ = await _find(call, at, ref)
    command_id = await _service(call).clear(at, found)
    return Result(None, headers={COMMAND_ID_HEADER: command_id})


# -- operations ------------------------------------------------------------------------------


def _ref(op: sovd_map.Operation) -> OperationRef:
    return OperationRef(
        id=op.id,
        name=op.name,
        proximity_proof_required=False,
        asynchronous_execution=op.asynchronous_execution,
        has_stop=op.has_stop,
        has_request_results=op.has_request_results,
    )


async def list_operations(call: Call[Any, Any], at: Target) -> Operations:
    return Operations(items=[_ref(o) for o in await _service(call).operations(at)])


async def get_operation(call: Call[Any, Any], at: Target, op_id: str) -> OperationOut:
    """The operation (nothing is sent), and the session its start needs, if any."""
    from app.descriptions import sovd_map

    layer, op = await _service(call).operation(at, op_id)
    modes: dict[str, str] | Any = UNSET
    if op.start is not None:
        for needed in sovd_map.preconditions(layer, op.start):
            if (needed.semantic or "").upper() == "SESSION":
                modes = {"session": " or ".join(s.lower() for s in needed.states)}
    schema: dict[str, Any] | Any = UNSET
    if call.query.include_schema:
        schema = schemas.operation(schema_of(OperationOut), op.start)
    return OperationOut(item=_ref(op), modes=modes, schema=schema)


def _executions_uri(call: Call[Any, Any], at: Target, op: sovd_map.Operation) -> str:
    return f"{tree.component_uri(call, at.vehicle, at.ecu)}/operations/{op.id}/executions"


async def start_execution(call: Call[NewExecution, Any], at: Target, op_id: str) -> Result:
    """Synchronous (a start only): 200 and the start's answer. Asynchronous: 202, the
    execution's id (the start's command) and where to follow it."""
    layer, op = await _service(call).operation(at, op_id)
    b = call.body
    answer = await call.services.sovd.executions.start(at, layer, op, b.parameters, b.timeout)
    headers = {COMMAND_ID_HEADER: answer.command_id}
    if not op.asynchronous_execution:
        body = ExecutionOut(
            status=ExecutionStatus.COMPLETED, capability=CAPABILITY, parameters=answer.parameters
        )
        return Result(body, status=200, headers=headers)
    headers["Location"] = f"{_executions_uri(call, at, op)}/{answer.command_id}"
    started = ExecutionStarted(id=answer.command_id, status=ExecutionStatus.RUNNING)
    return Result(started, status=202, headers=headers)


async def list_executions(call: Call[Any, Any], at: Target, op_id: str) -> Executions:
    _, op = await _service(call).operation(at, op_id)
    here = _executions_uri(call, at, op)
    running = call.services.sovd.executions.executions(at, op)
    return Executions(items=[ExecutionRef(id=i, href=f"{here}/{i}") for i in running])


async def get_execution(call: Call[Any, Any], at: Target, op_id: str) -> Result:
    """Sends the operation's request-results (CDA: completed on any positive answer);
    without one, the start's answer while it runs."""
    layer, op = await _service(call).operation(at, op_id)
    asked, parameters, command_id = await call.services.sovd.executions.results(
        at, layer, op, call.path_id("execution_id")
    )
    status = ExecutionStatus.COMPLETED if asked else ExecutionStatus.RUNNING
    body = ExecutionOut(status=status, capability=CAPABILITY, parameters=parameters)
    return Result(body, headers={COMMAND_ID_HEADER: command_id})


async def stop_execution(call: Call[Any, Any], at: Target, op_id: str) -> Result:
    """Sends the operation's stop; the execution is gone afterwards (404)."""
    layer, op = await _service(call).operation(at, op_id)
    answer = await call.services.sovd.executions.stop(at, layer, op, call.path_id("execution_id"))
    headers = {COMMAND_ID_HEADER: answer.command_id} if answer is not None else None
    return Result(None, headers=headers)


# -- modes -----------------------------------------------------------------------------------


async def list_modes(call: Call[Any, Any], at: Target) -> Modes:
    return Modes(items=[ModeRef(id=m.id, name=m.name) for m in await _service(call).modes(at)])


async def get_mode(call: Call[Any, Any], at: Target, mode_id: str) -> ModeOut:
    """The session as the service knows it (no call: the chart's start state, or the
    newest session switch since the service started); the DTC setting last set."""
    name, value = await _service(call).read_mode(at, mode_id)
    return ModeOut(id=mode_id.lower(), name=name, value=value)


async def set_mode(call: Call[Any, Any], at: Target, mode_id: str) -> Result:
    if call.body.mode_expiration is not None:
        raise BadRequest(
            "body.mode_expiration: not supported yet for a component bound to a description"
        )
    value, command_id = await _service(call).set_mode(at, mode_id, call.body.value)
    return Result(ModeSet(id=mode_id.lower(), value=value), headers={COMMAND_ID_HEADER: command_id})
