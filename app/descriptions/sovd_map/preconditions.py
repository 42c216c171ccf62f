"""Preconditions: the states a service needs (PRE-CONDITION-STATE-REFS of the layer's
state charts), and the message refusing a service sent in another state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.state import State
from odxtools.statechart import StateChart


@dataclass(frozen=True, slots=True)
class Precondition:
    """The states of one chart a service needs: any one of them will do."""

    chart: str  # the chart's short name: "Session"
    semantic: str | None  # "SESSION", "SECURITY", ...
    states: tuple[str, ...]  # "Extended"
    start_state: str | None  # the chart's start state: the state before any change

    @property
    def what(self) -> str:
        semantic = (self.semantic or "").upper()
        if semantic == "SESSION":
            return "the session"
        if semantic == "SECURITY":
            return "the security access"
        return f"the {self.chart} state"


def _chart_of(layer: DiagLayer, state: State) -> StateChart | None:
    for chart in layer.state_charts:
        if any(s is state or s.odx_id == state.odx_id for s in chart.states):
            return chart
    return None


def start_states(layer: DiagLayer) -> dict[str, str]:
    """Each state chart's start state, by chart short name: the states before any change."""
    return {chart.short_name: chart.start_state.short_name for chart in layer.state_charts}


def preconditions(layer: DiagLayer, service: DiagService) -> tuple[Precondition, ...]:
    """The states the service needs (PRE-CONDITION-STATE-REFS), grouped by chart; () for
    a service without any (sent in any state)."""
    grouped: dict[str, tuple[StateChart | None, list[str]]] = {}
    for state in service.pre_condition_states:
        chart = _chart_of(layer, state)
        key = chart.short_name if chart is not None else ""
        grouped.setdefault(key, (chart, []))[1].append(state.short_name)
    return tuple(
        Precondition(
            chart=key,
            semantic=chart.semantic if chart is not None else None,
            states=tuple(states),
            start_state=chart.start_state.short_name if chart is not None else None,
        )
        for key, (chart, states) in grouped.items()
    )


def check_precondition(
    layer: DiagLayer, service: DiagService, current_states: Mapping[str, str]
) -> str | None:
    """None if ``service`` may be sent in ``current_states`` (chart short name -> state
    short name, both in any case; a chart left out is in its start state), else why not:
    ``"CalibrateSensors_Start needs the session Extended (now: Default)"``."""
    current = {k.lower(): v for k, v in current_states.items()}
    for needed in preconditions(layer, service):
        now = current.get(needed.chart.lower(), needed.start_state)
        if now is not None and now.lower() in (s.lower() for s in needed.states):
            continue
        return (
            f"{service.short_name} needs {needed.what} {' or '.join(needed.states)}"
            f" (now: {now or 'unknown'})"
        )
    return None
