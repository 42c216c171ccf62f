"""State charts of a described ECU: sessions, preconditions, transitions, S3.

- **States.** Every state chart starts in its start state; a service's state
  transitions move its chart on after a positive answer (the 0x10 services switch the
  ``SESSION`` chart). A non-start state of the ``SESSION`` chart falls back to the start
  state after ``s3_s`` seconds without a request (S3), and when the tester goes away
  (``reset_session``). A service whose PRE-CONDITION-STATE-REFS are not met is refused:
  0x7F serviceNotSupportedInActiveSession for a state of the ``SESSION`` chart (as the
  demo body refuses ClearDTC outside Extended), 0x22 conditionsNotCorrect for any other chart.

The states themselves (chart -> its state) are the ECU's; ``StateCharts`` reads and
moves them as the layer's charts say.
"""

from __future__ import annotations

from collections.abc import Sequence

from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.state import State
from odxtools.statechart import StateChart

from app.vehicles import uds
from app.vehicles.emulator.described.services import Service


class StateCharts:
    """The state charts of a layer, the ``SESSION`` one among them."""

    def __init__(self, layer: DiagLayer) -> None:
        self.charts: dict[str, StateChart] = {c.short_name: c for c in layer.state_charts}
        self.session_chart = next(
            (c.short_name for c in layer.state_charts if (c.semantic or "").upper() == "SESSION"),
            None,
        )
        self._chart_of: dict[int, str] = {
            id(state): chart.short_name for chart in layer.state_charts for state in chart.states
        }

    def reset(self, states: dict[str, str]) -> None:
        """Every state chart back to its start state."""
        for name, chart in self.charts.items():
            states[name] = chart.start_state.short_name

    def session(self, states: dict[str, str]) -> str | None:
        """The state of the ``SESSION`` chart (None: the description has none)."""
        return None if self.session_chart is None else states[self.session_chart]

    def expire(self, states: dict[str, str], idle_s: float, s3_s: float | None) -> None:
        """S3: the ``SESSION`` chart back to its start state after ``s3_s`` seconds idle."""
        chart = self.session_chart
        if (
            chart is not None
            and s3_s is not None
            and states[chart] != self.charts[chart].start_state.short_name
            and idle_s > s3_s
        ):
            states[chart] = self.charts[chart].start_state.short_name

    def chart(self, state: State) -> str | None:
        chart = self._chart_of.get(id(state))
        if chart is not None:
            return chart
        return next(
            (
                name
                for name, c in self.charts.items()
                if state.short_name in {s.short_name for s in c.states}
            ),
            None,
        )

    def refusal(self, service: DiagService, states: dict[str, str]) -> int | None:
        """The NRC refusing ``service`` in the current states; None: it may run."""
        needed: dict[str, set[str]] = {}
        for state in service.pre_condition_states:
            chart = self.chart(state)
            if chart is not None:
                needed.setdefault(chart, set()).add(state.short_name)
        for chart, wanted in needed.items():
            if states[chart] not in wanted:
                return 0x7F if chart == self.session_chart else 0x22
        return None

    def transit(self, service: DiagService, states: dict[str, str]) -> None:
        """Move the charts on as ``service``'s state transitions say (after a positive
        answer)."""
        moved: set[str] = set()
        for transition in service.state_transitions:
            chart = self.chart(transition.target_state)
            if chart is None or chart in moved:
                continue
            if transition.source_state.short_name == states[chart]:
                states[chart] = transition.target_state.short_name
                moved.add(chart)
        for transition in service.state_transitions:  # no transition from here: the first
            chart = self.chart(transition.target_state)
            if chart is not None and chart not in moved:
                states[chart] = transition.target_state.short_name
                moved.add(chart)


def session_ids(services: Sequence[Service]) -> dict[str, int]:
    """The 0x10 subfunction that leads into each session state (for DID 0xF186)."""
    ids: dict[str, int] = {}
    for entry in services:
        if entry.prefix[0] == uds.DIAGNOSTIC_SESSION_CONTROL and len(entry.prefix) > 1:
            for transition in entry.service.state_transitions:
                ids.setdefault(transition.target_state.short_name, entry.prefix[1])
    return ids
