"""The SOVD tree of an ECU bound to its description (issue #20 item 4), by the mapping the
Eclipse OpenSOVD Classic Diagnostic Adapter (CDA) uses: ``app.descriptions.sovd_map``
says which ODX services are the data, operations, faults and modes
(docs/cda-mapping.md), this module sends them.

Every call that reaches the ECU is a ``DiagService`` command submitted as the caller
(``VehicleCalls``): encoded by the same codec as on ``/api/v1/commands``, with its
history, audit, metrics, locks and stream. The diag layer comes from one place,
``Described.layer``: ``DiagServices.layer_for``, the ECU's identified variant, as
DiagService speaks it.

A service whose ODX precondition (PRE-CONDITION-STATE-REFS) is not met is refused before
anything is sent: 409 ``precondition-not-fulfilled`` naming the state it needs. The
current state of each chart is the target of the newest successful 0x10 DiagService of
the ECU (through the tree or ``/api/v1/commands``) since this service started, else the
chart's start state: as in memory, a restart forgets it.

odxtools (and ``sovd_map``, which imports it) is imported only when a bound ECU is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from app.clock import Clock
from app.errors import BadRequest, Conflict, ErrorResponse, NotFound, PreconditionNotFulfilled
from app.services.commands import CommandService
from app.services.diag_services import DiagServices
from app.services.sovd.calls import Outcome, VehicleCalls, error_of
from app.services.sovd.entities import Target
from app.store.commands import CommandFilter
from app.vocabulary import CommandName, CommandStatus

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer
    from odxtools.diagservice import DiagService

    from app.descriptions.sovd_map import DataItem, Fault, Mode, Operation
    from app.descriptions.variants import VariantChoice

DIAG_SERVICE: Final = CommandName.DIAG_SERVICE
SESSION: Final = "session"
DTC_SETTING: Final = "dtcsetting"
DTC_SETTING_DEFAULT: Final = "on"  # CDA's initial value
# The NRC of a stop with no run to stop (ISO 14229-1: the routine is not running).
REQUEST_SEQUENCE_ERROR: Final = 0x24


@dataclass(frozen=True, slots=True)
class Answer:
    """A positive answer to one DiagService: its command, values, units and bytes."""

    command_id: str
    parameters: dict[str, Any]
    units: dict[str, str]
    response: bytes


@dataclass(frozen=True, slots=True)
class Running:
    """An asynchronous execution started and not stopped (CDA keeps them in memory)."""

    execution_id: str
    user_id: str
    parameters: dict[str, Any]  # the start's answer


def _body_error(exc: Exception, where: str) -> BadRequest:
    """A CodecError (``params.X is not a parameter ...``) as a 400 naming the body field."""
    message = str(exc)
    if message.startswith("params"):
        message = where + message[len("params") :]
    return BadRequest(message)


def _what(at: Target, service: DiagService) -> str:
    return f"{service.short_name} of {at.ecu.name}"


def _refusal(outcome: Outcome, service: DiagService, what: str) -> ErrorResponse | None:
    """A negative response as SOVD's ``error-response``: the NRC, the ISO name and the
    description's text for it."""
    negative = outcome.negative()
    if negative is None:
        return None
    nrc, name, text = negative.nrc, negative.name, negative.text
    # As the tree's other negative responses: the SID, the service (here by its short
    # name in the description), the NRC and its ISO name, and the description's text.
    parameters: dict[str, Any] = {"service_name": service.short_name, "nrc": nrc, "nrc_name": name}
    if negative.service is not None:
        parameters = {"service": negative.service, **parameters}
    if text:
        parameters["nrc_text"] = text
    said = f"{name}: {text}" if text else name
    return ErrorResponse(
        f"{what}: the ECU answered with negative response 0x{nrc:02X} ({said})",
        parameters=parameters,
        command_id=outcome.command.command_id,
    )


class Described:
    def __init__(
        self,
        calls: VehicleCalls,
        commands: CommandService,
        diag: DiagServices,
        clock: Clock | None = None,
    ) -> None:
        self._calls = calls
        self._commands = commands
        self._diag = diag
        # Session switches before this are forgotten (the ECU's state is not known).
        self._since = (clock or Clock()).timestamp()
        # (vehicle_id, component, operation id lower-cased) -> its running execution.
        self._running: dict[tuple[str, str, str], Running] = {}
        # One small lock per (vehicle_id, component, operation) ever started.
        self._starting: dict[tuple[str, str, str], asyncio.Lock] = {}
        # (vehicle_id, component) -> the DTC setting last set (CDA: "on" at first).
        self._dtc_setting: dict[tuple[str, str], str] = {}

    # -- the layer and sending ------------------------------------------------------------

    async def layer(self, at: Target) -> DiagLayer:
        """The diag layer of the bound ECU: the one place the tree gets it, the layer
        DiagService encodes with (``DiagServices.layer_for``: the identified variant,
        identified on first use as the caller's commands)."""
        codec, _ = await self._diag.layer_for(at.vehicle, at.ecu.name, at.who, at.client)
        return codec.layer

    async def variant(self, at: Target) -> tuple[DiagLayer, VariantChoice]:
        """The layer and the variant choice behind it (identified on first use as the
        caller, as ``layer``)."""
        codec, choice = await self._diag.layer_for(at.vehicle, at.ecu.name, at.who, at.client)
        return codec.layer, choice

    async def states(self, at: Target, layer: DiagLayer) -> dict[str, str]:
        """Each state chart's current state (chart short name -> state short name)."""
        from app.descriptions import sovd_map

        states = sovd_map.start_states(layer)
        session = sovd_map.find_mode(layer, SESSION)
        if session is None:
            return states
        newest: tuple[str, str] | None = None  # (submitted_at, state)
        for value in session.values:
            found, _ = await self._commands.find_unrestricted(
                CommandFilter(
                    vehicle_id=at.vehicle.vehicle_id,
                    command_name=DIAG_SERVICE,
                    params=(("ecu", at.ecu.name), ("service", value.service.short_name)),
                    statuses=(CommandStatus.COMPLETED,),
                    since=self._since,
                    limit=1,
                )
            )
            if found and (newest is None or found[0].submitted_at > newest[0]):
                newest = (found[0].submitted_at, value.state or value.name)
        if newest is not None:
            chart = _chart_with(layer, newest[1])
            if chart is not None:
                states[chart] = newest[1]
        return states

    async def check(self, at: Target, layer: DiagLayer, service: DiagService) -> None:
        """Refuse ``service`` before anything is sent if its precondition is not met."""
        from app.descriptions import sovd_map

        needed = sovd_map.preconditions(layer, service)
        if not needed:
            return  # sent in any state
        states = await self.states(at, layer)
        why = sovd_map.check_precondition(layer, service, states)
        if why is None:
            return
        unmet = next(
            n
            for n in needed
            if states.get(n.chart, n.start_state or "").lower() not in {s.lower() for s in n.states}
        )
        hint = ""
        if (unmet.semantic or "").upper() == "SESSION" or unmet.chart.lower() == SESSION:
            hint = f'; switch it first: PUT modes/session {{"value": "{unmet.states[0].lower()}"}}'
        raise PreconditionNotFulfilled(
            f"{why}{hint}",
            parameters={
                "service": service.short_name,
                "chart": unmet.chart,
                "needed": list(unmet.states),
                "current": states.get(unmet.chart, unmet.start_state),
            },
        )

    async def send(
        self,
        at: Target,
        layer: DiagLayer,
        service: DiagService,
        params: Mapping[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> Answer:
        """Check the precondition, send ``service`` as a DiagService command, and return
        its positive answer (or raise SOVD's error for what it got instead)."""
        await self.check(at, layer, service)
        outcome = await self._calls.run(
            at,
            DIAG_SERVICE,
            {"ecu": at.ecu.name, "service": service.short_name, "params": dict(params or {})},
            timeout_s=timeout_s,
        )
        what = _what(at, service)
        refused = _refusal(outcome, service, what) or error_of(outcome, what)
        if refused is not None:
            raise refused
        last = outcome.last or {}
        values = last.get("parameters")
        units = last.get("units")
        return Answer(
            outcome.command.command_id,
            dict(values) if isinstance(values, dict) else {},
            dict(units) if isinstance(units, dict) else {},
            outcome.raw,
        )

    # -- data ------------------------------------------------------------------------------

    async def data_items(self, at: Target) -> tuple[DataItem, ...]:
        from app.descriptions import sovd_map

        return sovd_map.data_items(await self.layer(at))

    async def read_data(self, at: Target, data_id: str) -> tuple[DataItem, Answer]:
        """The data item ``data_id`` (any case) read now."""
        from app.descriptions import sovd_map

        layer = await self.layer(at)
        item = sovd_map.find_data(layer, data_id)
        if item is None or item.read is None:
            known = ", ".join(i.id for i in sovd_map.data_items(layer)) or "none"
            raise NotFound(f"component {at.ecu.name} has no data {data_id[:64]} (it has: {known})")
        return item, await self.send(at, layer, item.read)

    async def write_data(
        self, at: Target, data_id: str, data: Mapping[str, Any], where: str = "data"
    ) -> tuple[DataItem, Answer]:
        """Write the data item ``data_id`` (any case) with its 0x2E service: ``data`` the
        request's parameters by short name (an unknown or ill-typed one is a 400 naming
        ``body.data.<name>``, nothing sent); ``where``: ``data`` or ``configurations``
        (a configuration: a varcoding item)."""
        from app.descriptions import sovd_map
        from app.descriptions.codec import CodecError

        layer = await self.layer(at)
        if where == "configurations":
            item = sovd_map.find_configuration(layer, data_id)
            known = ", ".join(i.id for i in sovd_map.configurations(layer) if i.write)
        else:
            item = sovd_map.find_data(layer, data_id)
            known = ", ".join(i.id for i in sovd_map.data_items(layer) if i.write)
        if item is None or item.write is None:
            raise NotFound(
                f"component {at.ecu.name} has no writable {where} {data_id[:64]}"
                f" (it has: {known or 'none'})"
            )
        try:  # the body checked first, so that its errors name it
            sovd_map.encode_write(layer, item, data)
        except CodecError as exc:
            raise _body_error(exc, "body.data") from None
        return item, await self.send(at, layer, item.write, data)

    async def configurations(self, at: Target) -> tuple[DataItem, ...]:
        """The varcoding items; NotFound when there are none (CDA: 404)."""
        from app.descriptions import sovd_map

        found = sovd_map.configurations(await self.layer(at))
        if not found:
            raise NotFound(
                f"component {at.ecu.name} has no configurations (no service of the"
                " functional class varcoding)"
            )
        return found

    # -- operations ------------------------------------------------------------------------

    async def operations(self, at: Target) -> tuple[Operation, ...]:
        from app.descriptions import sovd_map

        return sovd_map.operations(await self.layer(at))

    async def operation(self, at: Target, op_id: str) -> tuple[DiagLayer, Operation]:
        from app.descriptions import sovd_map

        layer = await self.layer(at)
        found = sovd_map.find_operation(layer, op_id)
        if found is None:
            known = ", ".join(o.id for o in sovd_map.operations(layer)) or "none"
            raise NotFound(
                f"component {at.ecu.name} has no operation {op_id[:64]} (it has: {known})"
            )
        return layer, found

    def _key(self, at: Target, op: Operation) -> tuple[str, str, str]:
        return (at.vehicle.vehicle_id, at.ecu.name, op.id.lower())

    async def start(
        self,
        at: Target,
        layer: DiagLayer,
        op: Operation,
        parameters: Mapping[str, Any] | None,
        timeout_s: float | None = None,
    ) -> Answer:
        """Send the operation's start with the body's ``parameters``; an asynchronous
        one (CDA: it has a stop or request-results service) is then running until it is
        stopped (Conflict for a second start meanwhile)."""
        from app.descriptions import sovd_map
        from app.descriptions.codec import CodecError

        if op.start is None:
            raise BadRequest(f"operation {op.id} of {at.ecu.name} has no start service")
        try:  # the body checked first, so that its errors name it
            sovd_map.encode_execution(layer, op.start, parameters or {})
        except CodecError as exc:
            raise _body_error(exc, "body.parameters") from None
        key = self._key(at, op)
        if not op.asynchronous_execution:
            return await self.send(at, layer, op.start, parameters, timeout_s)
        # The running check and the start go together: of two starts at once, the
        # second waits for the first's answer and then finds it running.
        async with self._starting.setdefault(key, asyncio.Lock()):
            running = self._running.get(key)
            if running is not None:
                mine = running.user_id == at.who.user_id
                raise Conflict(
                    f"operation {op.id} of {at.ecu.name} is already running"
                    + (f" (execution {running.execution_id})" if mine else " (another user's)")
                )
            answer = await self.send(at, layer, op.start, parameters, timeout_s)
            self._running[key] = Running(answer.command_id, at.who.user_id, answer.parameters)
        return answer

    async def _running_one(self, at: Target, op: Operation, execution_id: str) -> Running:
        running = self._running.get(self._key(at, op))
        if running is None or running.execution_id != execution_id:
            raise NotFound(f"operation {op.id} of {at.ecu.name} has no execution {execution_id}")
        await self._commands.get(at.who, execution_id)  # NotFound unless the caller's (or admin)
        return running

    def executions(self, at: Target, op: Operation) -> list[str]:
        """The running execution, if the caller may see it (its user's, or an admin)."""
        running = self._running.get(self._key(at, op))
        if running is None or not (at.who.is_admin or running.user_id == at.who.user_id):
            return []
        return [running.execution_id]

    async def results(
        self, at: Target, layer: DiagLayer, op: Operation, execution_id: str
    ) -> tuple[bool, dict[str, Any], str]:
        """Whether the results were asked for (RequestResults sent), the parameters, and
        the command that has them (the start's when there is no request-results)."""
        running = await self._running_one(at, op, execution_id)
        if op.request_results is None:
            return False, running.parameters, running.execution_id
        answer = await self.send(at, layer, op.request_results)
        return True, answer.parameters, answer.command_id

    async def stop(
        self, at: Target, layer: DiagLayer, op: Operation, execution_id: str
    ) -> Answer | None:
        """Send the operation's stop (None: it has none); the execution is gone after.
        A stop the ECU refuses with requestSequenceError (0x24: no run of it to stop, it
        has ended) ends the execution as well: otherwise a routine that completed could
        never be started again (CDA needs ``x-sovd2uds-force`` for that)."""
        await self._running_one(at, op, execution_id)
        answer = None
        if op.stop is not None:
            try:
                answer = await self.send(at, layer, op.stop)
            except ErrorResponse as refused:
                if (refused.parameters or {}).get("nrc") != REQUEST_SEQUENCE_ERROR:
                    raise
        key = self._key(at, op)
        current = self._running.get(key)
        if current is not None and current.execution_id == execution_id:
            del self._running[key]
        return answer

    # -- faults ----------------------------------------------------------------------------

    async def faults(self, at: Target) -> tuple[DiagLayer, tuple[Fault, ...], str]:
        """The ECU's faults read now (0x19 0x02, mask 0xFF: every DTC the description
        defines is listed, those not reported with status 0, as CDA does)."""
        from app.descriptions import sovd_map
        from app.descriptions.codec import CodecError

        layer = await self.layer(at)
        report = sovd_map.fault_services(layer).report_by_status_mask
        if report is None:
            raise NotFound(f"component {at.ecu.name} has no fault memory (no 0x19 0x02 service)")
        params = _mask_params(report)
        answer = await self.send(at, layer, report, params)
        try:
            faults = sovd_map.decode_faults(layer, answer.response, service=report)
        except CodecError as exc:
            from app.errors import InvalidResponseContent

            raise InvalidResponseContent(str(exc), command_id=answer.command_id) from None
        return layer, faults, answer.command_id

    async def environment_data(
        self, at: Target, layer: DiagLayer, fault: Fault
    ) -> dict[str, Any] | None:
        """``{"snapshots": {"data"}, "extended_data_records": {"data"}}`` from 0x19 0x04
        and 0x19 0x06 for the DTC (all records), those the description has; None: none."""
        from app.descriptions import sovd_map

        services = sovd_map.fault_services(layer)
        found: dict[str, Any] = {}
        for key, service in (
            ("snapshots", services.snapshots),
            ("extended_data_records", services.extended_data),
        ):
            if service is None:
                continue
            params = sovd_map.fault_request_params(service, fault.trouble_code)
            if params is None:
                continue
            answer = await self.send(at, layer, service, params)
            found[key] = {"data": answer.parameters}
        return found or None

    async def clear(self, at: Target, fault: Fault | None) -> str:
        """Clear all faults, or the one given (0x14 with its trouble code)."""
        from app.descriptions import sovd_map

        layer = await self.layer(at)
        clear = sovd_map.fault_services(layer).clear
        if clear is None:
            raise NotFound(f"component {at.ecu.name} cannot clear faults (no 0x14 service)")
        params: dict[str, Any] = {}
        if fault is not None:
            group = _settable(clear)
            if group is None:
                raise BadRequest(f"{clear.short_name} clears all faults only (it takes no DTC)")
            params[group] = fault.trouble_code
        return (await self.send(at, layer, clear, params)).command_id

    # -- modes -----------------------------------------------------------------------------

    async def modes(self, at: Target) -> tuple[Mode, ...]:
        from app.descriptions import sovd_map

        return sovd_map.modes(await self.layer(at))

    async def mode(self, at: Target, mode_id: str) -> tuple[DiagLayer, Mode]:
        from app.descriptions import sovd_map

        layer = await self.layer(at)
        found = sovd_map.find_mode(layer, mode_id)
        if found is None:
            known = ", ".join(m.id for m in sovd_map.modes(layer)) or "none"
            raise NotFound(f"component {at.ecu.name} has no mode {mode_id[:32]} (it has: {known})")
        return layer, found

    async def read_mode(self, at: Target, mode_id: str) -> tuple[str, str]:
        """The mode's name and value as the service knows it (nothing is sent)."""
        layer, found = await self.mode(at, mode_id)
        if found.id == SESSION:
            states = await self.states(at, layer)
            now = {s.lower() for s in states.values()}
            for value in found.values:
                if (value.state or value.name).lower() in now:
                    return found.name, value.value
            return found.name, next(iter(states.values()), "").lower()
        key = (at.vehicle.vehicle_id, at.ecu.name)
        return found.name, self._dtc_setting.get(key, DTC_SETTING_DEFAULT)

    async def set_mode(self, at: Target, mode_id: str, wanted: str) -> tuple[str, str]:
        """Send the mode value's service; the value (lower-cased) and the command."""
        layer, found = await self.mode(at, mode_id)
        value = found.value(wanted)
        if value is None:
            possible = ", ".join(found.possible_values)
            if found.id == SESSION:  # CDA: an unknown session is 404
                raise NotFound(f"body.value: {wanted[:32]!r} is not a session ({possible})")
            raise BadRequest(
                f"body.value: {wanted[:32]!r} is not a value of {found.id} ({possible})",
                parameters={"details": "value", "possiblevalues": list(found.possible_values)},
            )
        answer = await self.send(at, layer, value.service)
        if found.id == DTC_SETTING:
            self._dtc_setting[(at.vehicle.vehicle_id, at.ecu.name)] = value.value
        return value.value, answer.command_id


def _chart_with(layer: DiagLayer, state: str) -> str | None:
    """The chart that has ``state`` (a SESSION chart first)."""
    charts = sorted(layer.state_charts, key=lambda c: (c.semantic or "").upper() != "SESSION")
    for chart in charts:
        if any(s.short_name.lower() == state.lower() for s in chart.states):
            return str(chart.short_name)
    return None


def _settable(service: DiagService) -> str | None:
    request = service.request
    if request is None:
        return None
    return next((p.short_name for p in request.parameters if p.is_settable), None)


def _mask_params(service: DiagService) -> dict[str, Any]:
    """0x19 0x02's status mask 0xFF (CDA's default), if the request lets it be set."""
    request = service.request
    if request is None:
        return {}
    settable = [p for p in request.parameters if p.is_settable]
    at_mask = [p for p in settable if p.byte_position == 2] or settable[:1]
    return {at_mask[0].short_name: 0xFF} if at_mask else {}
