"""Routines of a described ECU: started, running on with time, stopped, their results.

- **Routines** (0x31 services, ``<type> <id>`` in the prefix): Start (0x01) runs the
  routine for ``routine_s`` seconds (again while running: 0x22); RequestResults (0x03)
  reports its state and progress, which grows with time to 100 % and ``completed``;
  Stop (0x02) stops a running one (``stopped``; not running: 0x24). A routine the
  description has no Stop service for runs to its end within its Start. Results or Stop
  before any Start: 0x24. The answer's ``...State``/``...Status`` text-table parameter
  gets the state's name (``running``, ``completed``, ``stopped``), a ``...Progress``
  one the percentage. A routine keeps the values its Start carried (``parameters``, as
  the ECU decoded them); a scenario may make it run for one of them (``Overlay``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Final

from odxtools.odxtypes import ParameterValue

from app.vehicles import uds

ROUTINE_START: Final = 0x01
ROUTINE_STOP: Final = 0x02
ROUTINE_RESULTS: Final = 0x03


@dataclass(slots=True)
class DescribedRoutine:
    state: str  # running, completed, stopped
    started_at: float
    duration_s: float
    progress: int = 0
    # What its Start carried beside the routine id, decoded (``Duration``: 2.5).
    parameters: dict[str, ParameterValue] = field(default_factory=dict)


def stoppable(prefixes: Iterable[bytes]) -> set[int]:
    """The routines the services' prefixes have a Stop for."""
    return {
        int.from_bytes(prefix[2:4], "big")
        for prefix in prefixes
        if prefix[0] == uds.ROUTINE_CONTROL and len(prefix) >= 4 and prefix[1] == ROUTINE_STOP
    }


def control(
    routines: dict[int, DescribedRoutine],
    action: int,
    routine_id: int,
    now: float,
    *,
    stoppable: set[int],
    duration_s: float,
    completed: Callable[[], None],
    parameters: dict[str, ParameterValue] | None = None,
) -> DescribedRoutine | int:
    """Start, Stop or RequestResults of ``routine_id``: the routine, or the NRC refusing
    it. ``completed`` is called when a start runs a routine to its end."""
    routine = routines.get(routine_id)
    if action == ROUTINE_START:
        if routine is not None and routine.state == "running":
            return 0x22  # conditionsNotCorrect: already running
        given = dict(parameters or {})
        if routine_id in stoppable:
            routine = DescribedRoutine("running", now, duration_s, parameters=given)
        else:  # no Stop described: the start runs it to its end
            routine = DescribedRoutine("completed", now, 0.0, 100, parameters=given)
            completed()
        routines[routine_id] = routine
        return routine
    if routine is None:
        return 0x24  # requestSequenceError: never started
    if action == ROUTINE_STOP:
        if routine.state != "running":
            return 0x24
        routine.state = "stopped"
    return routine


def advance(
    routines: dict[int, DescribedRoutine], now: float, completed: Callable[[int], None]
) -> None:
    """Routines running on to ``now``; ``completed`` is called with the id of each that
    ends."""
    for routine_id, routine in routines.items():
        if routine.state != "running":
            continue
        elapsed = now - routine.started_at
        if elapsed >= routine.duration_s:
            routine.state, routine.progress = "completed", 100
            completed(routine_id)
        else:
            routine.progress = min(99, int(100 * elapsed / routine.duration_s))
