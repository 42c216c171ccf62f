"""A scenario laid over a described ECU: what a demo vehicle does beyond its description.

``Overlay`` carries one ECU's ``app.vehicles.pdx.scenario.EcuScenario``, the vehicle's
VIN and how long each kind of routine runs. ``DescribedEcu`` asks it:

- which DTCs are stored at start (instead of a seeded draw; codes the description does
  not have are left out) and which of them a completed routine stores again;
- the value of an identification DID (VIN, software version, serial number) and of a
  live one (a random walk in physical units within the scenario's limits), for the
  DID's value parameter;
- per routine: how long it runs (``Duration``), whether completing it re-runs the
  tests, the NRC outside the session its description needs, the DTC that makes its
  start fail 0x26, whether the server answers its start after working on it (0x78),
  and the Start parameter it runs for, if any (the actuator test's ``Duration``).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from odxtools.odxtypes import ParameterValue

from app.vehicles import trouble_codes, uds
from app.vehicles.pdx.scenario import Duration, EcuScenario, RoutineRule, SensorWalk

_DEFAULT_RULE = RoutineRule()


@dataclass
class _Walk:
    spec: SensorWalk
    value: float

    def read(self, rng: random.Random) -> float:
        spec = self.spec
        self.value = min(spec.high, max(spec.low, self.value + rng.uniform(-spec.step, spec.step)))
        return self.value


@dataclass
class Overlay:
    scenario: EcuScenario
    vin: str
    durations: Mapping[Duration, float] = field(default_factory=dict)
    _walks: dict[int, _Walk] = field(default_factory=dict, init=False, repr=False)

    def start_dtcs(self, known: tuple[int, ...]) -> tuple[dict[int, int], dict[int, int]]:
        """The DTCs stored at start (trouble code -> status byte), and the failing ones."""
        stored: dict[int, int] = {}
        failing: dict[int, int] = {}
        for dtc in self.scenario.dtcs:
            code = trouble_codes.dtc_number(dtc.code)
            if code not in known:
                continue
            stored[code] = dtc.status
            if dtc.failing:
                failing[code] = dtc.status
        return stored, failing

    def did_value(self, did: int, rng: random.Random) -> str | float | None:
        """The scenario's value of DID ``did`` now (physical), or None: the description's."""
        identification = {
            uds.VIN: self.vin,
            uds.ECU_SOFTWARE_VERSION: self.scenario.software_version,
            uds.ECU_SERIAL_NUMBER: self.scenario.serial_number,
        }
        if did in identification:
            return identification[did]
        spec = self.scenario.sensors.get(did)
        if spec is None:
            return None
        walk = self._walks.get(did)
        if walk is None:
            walk = self._walks[did] = _Walk(spec, spec.start)
        return walk.read(rng)

    def rule(self, routine_id: int) -> RoutineRule:
        return self.scenario.routines.get(routine_id, _DEFAULT_RULE)

    def duration_s(
        self,
        routine_id: int,
        default: float,
        given: Mapping[str, ParameterValue] | None = None,
    ) -> float:
        """How long the routine runs: the Start's parameter the rule names (seconds,
        when the Start carried it), else the rule's timing setting."""
        rule = self.rule(routine_id)
        if rule.duration_parameter is not None and given is not None:
            value = given.get(rule.duration_parameter)
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
        return self.durations.get(rule.duration, default)
