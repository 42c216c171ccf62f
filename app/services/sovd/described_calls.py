"""Sending a service of an ECU bound to its description: the one place the described tree
(``app.services.sovd.described``, ``executions``) gets the ECU's diag layer, checks a
service's precondition and sends it.

Every call that reaches the ECU is a ``DiagService`` command submitted as the caller
(``VehicleCalls``): encoded by the same codec as on ``/api/v1/commands``, with its
history, audit, metrics, locks and stream. The diag layer comes from one place,
``DescribedCalls.layer``: ``DiagServices.layer_for``, the ECU's identified variant, as
DiagService speaks it.

A service whose ODX precondition (PRE-CONDITION-STATE-REFS) is not met is refused before
anything is sent: 409 ``precondition-not-fulfilled`` naming the state it needs. The
current state of each chart is the target of the newest successful 0x10 DiagService of
the ECU (through the tree or ``/api/v1/commands``) since this service started, else the
chart's start state: as in memory, a restart forgets it.

odxtools (and ``sovd_map``, which imports it) is imported only when a bound ECU is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from app.clock import Clock
from app.errors import BadRequest, ErrorResponse, PreconditionNotFulfilled
from app.services.commands import CommandService
from app.services.diag_services import DiagServices
from app.services.sovd.calls import Outcome, VehicleCalls, error_of
from app.services.sovd.entities import Target
from app.store.commands import CommandFilter
from app.vocabulary import CommandName, CommandStatus

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer
    from odxtools.diagservice import DiagService

    from app.descriptions.variants import VariantChoice

DIAG_SERVICE: Final = CommandName.DIAG_SERVICE
# The mode (and state chart) of diagnostic sessions, by CDA's mapping.
SESSION: Final = "session"


@dataclass(frozen=True, slots=True)
class Answer:
    """A positive answer to one DiagService: its command, values, units and bytes."""

    command_id: str
    parameters: dict[str, Any]
    units: dict[str, str]
    response: bytes


def body_error(exc: Exception, where: str) -> BadRequest:
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


class DescribedCalls:
    """The layer, the precondition and the send, for the described tree's services."""

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


def _chart_with(layer: DiagLayer, state: str) -> str | None:
    """The chart that has ``state`` (a SESSION chart first)."""
    charts = sorted(layer.state_charts, key=lambda c: (c.semantic or "").upper() != "SESSION")
    for chart in charts:
        if any(s.short_name.lower() == state.lower() for s in chart.states):
            return str(chart.short_name)
    return None
