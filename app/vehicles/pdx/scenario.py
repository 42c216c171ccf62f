"""The demo scenario: what the demo vehicles' ECUs do that their description does not say.

The description (``app.vehicles.pdx.demo``) says which DIDs, DTCs, routines and sessions
an ECU has; this overlay, keyed by the ECU's short name there, says how the demo vehicle
behaves with them:

- its identification values (software version, serial number; the VIN is the vehicle's);
- the DTCs stored at start with their status bytes, and which of them are *failing*
  (found again when the ECU re-runs its tests, i.e. a self-test completes) rather than
  historic;
- how its live values move (start, step of the random walk, limits; physical units);
- how each routine behaves: the timing setting (or Start parameter: the actuator
  test's ``Duration``) it runs for, whether it re-runs the ECU's tests when it
  completes, the NRC it answers outside the session its description needs (the bleed
  check says 0x22 conditionsNotCorrect, not 0x7F), the DTC that makes it fail (0x26
  while C0035 is stored), and whether the server works on it with 0x78 response pending
  before answering.

Nothing here repeats the description: every code, DID and routine id names something
``DEMO_ECUS`` declares (``check_scenario`` holds them together; tests call it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from app.vehicles import trouble_codes, uds
from app.vehicles.pdx.demo import ACTUATOR_TEST, BLEED_CHECK, DEMO_ECUS, SELF_TEST
from app.vehicles.pdx.spec import PdxEcu

# Status bytes of the demo DTCs.
CONFIRMED_ACTIVE: Final = trouble_codes.status_byte(
    "testFailed",
    "testFailedThisOperationCycle",
    "pendingDTC",
    "confirmedDTC",
    "testFailedSinceLastClear",
)
PENDING_ACTIVE: Final = trouble_codes.status_byte(
    "testFailed", "testFailedThisOperationCycle", "pendingDTC", "testFailedSinceLastClear"
)
CONFIRMED_WITH_LAMP: Final = CONFIRMED_ACTIVE | trouble_codes.status_byte(
    "warningIndicatorRequested"
)
HISTORIC: Final = trouble_codes.status_byte("confirmedDTC", "testFailedSinceLastClear")


@dataclass(frozen=True, slots=True)
class StartDtc:
    code: str  # a DTC of the ECU's description
    status: int
    failing: bool = True  # False: historic, a self-test does not bring it back


@dataclass(frozen=True, slots=True)
class SensorWalk:
    """A live value: ``start``, then each read moves it by up to ``step``, within limits."""

    low: float
    high: float
    start: float
    step: float


class Duration(StrEnum):
    """Which of the simulator's timing settings a routine runs for."""

    SELF_TEST = "self_test"  # SOVD_SIM_SELF_TEST_S
    BLEED_CHECK = "bleed_check"


@dataclass(frozen=True, slots=True)
class RoutineRule:
    duration: Duration = Duration.SELF_TEST
    reruns_tests: bool = True  # completing it stores the failing DTCs again
    # The NRC outside the session its description needs (None: the description's
    # refusal, 0x7F serviceNotSupportedInActiveSession).
    outside_session_nrc: int | None = None
    blocked_by: str | None = None  # it fails 0x26 while this DTC is stored
    pending: bool = False  # the server works ``duration`` (0x78) before answering
    # It runs for this Start parameter's value (seconds) instead of ``duration``.
    duration_parameter: str | None = None


@dataclass(frozen=True, slots=True)
class EcuScenario:
    software_version: str
    serial_number: str
    dtcs: tuple[StartDtc, ...] = ()
    sensors: Mapping[int, SensorWalk] = field(default_factory=dict)
    routines: Mapping[int, RoutineRule] = field(default_factory=dict)


_RPM: Final = SensorWalk(650, 4500, 820, 120)
_SPEED: Final = SensorWalk(0, 180, 0, 6)
_COOLANT: Final = SensorWalk(-20, 120, 88, 1.5)
_SELF_TEST: Final = RoutineRule()

DEMO_SCENARIO: Final[Mapping[str, EcuScenario]] = MappingProxyType(
    {
        "ENGINE": EcuScenario(
            "ENG 04.12.00",
            "ENG0000417",
            dtcs=(StartDtc("P0171", CONFIRMED_ACTIVE), StartDtc("P0420", PENDING_ACTIVE)),
            sensors={
                uds.ENGINE_RPM: _RPM,
                uds.VEHICLE_SPEED: _SPEED,
                uds.COOLANT_TEMPERATURE: _COOLANT,
            },
            routines={
                SELF_TEST: _SELF_TEST,
                # The actuator runs as long as the tester asked; it tests nothing.
                ACTUATOR_TEST: RoutineRule(reruns_tests=False, duration_parameter="Duration"),
            },
        ),
        "TRANSMISSION": EcuScenario(
            "TCU 02.03.01",
            "TCU0001822",
            dtcs=(StartDtc("P0700", CONFIRMED_ACTIVE),),
            sensors={uds.VEHICLE_SPEED: _SPEED},
            routines={SELF_TEST: _SELF_TEST},
        ),
        "ABS": EcuScenario(
            "ABS 07.00.02",
            "ABS0002861",
            dtcs=(StartDtc("C0035", CONFIRMED_WITH_LAMP),),
            sensors={uds.VEHICLE_SPEED: _SPEED},
            routines={
                SELF_TEST: _SELF_TEST,
                # The wheel speed sensor fault stops the check: it cannot tell the
                # wheels apart.
                BLEED_CHECK: RoutineRule(
                    Duration.BLEED_CHECK,
                    reruns_tests=False,
                    outside_session_nrc=0x22,
                    blocked_by="C0035",
                    pending=True,
                ),
            },
        ),
        "BODY": EcuScenario(
            "BCM 11.01.00",
            "BCM0004003",
            dtcs=(StartDtc("B1000", HISTORIC, failing=False),),
            routines={SELF_TEST: _SELF_TEST},
        ),
    }
)


def demo_ecu(short_name: str) -> PdxEcu:
    for ecu in DEMO_ECUS:
        if ecu.short_name == short_name:
            return ecu
    raise KeyError(short_name)


def check_scenario() -> None:
    """``ValueError`` unless every ECU, DTC, DID and routine the scenario names is one the
    demo description declares, and every demo ECU has a scenario."""
    if set(DEMO_SCENARIO) != {ecu.short_name for ecu in DEMO_ECUS}:
        raise ValueError("the demo scenario and DEMO_ECUS name different ECUs")
    for name, scenario in DEMO_SCENARIO.items():
        ecu = demo_ecu(name)
        codes = {d.code for d in ecu.dtcs}
        dids = {d.did for d in ecu.dids}
        routines = {r.routine_id for r in ecu.routines}
        for what, named, known in (
            ("DTC", [d.code for d in scenario.dtcs], codes),
            (
                "blocking DTC",
                [r.blocked_by for r in scenario.routines.values() if r.blocked_by],
                codes,
            ),
            ("DID", [f"0x{d:04X}" for d in scenario.sensors], {f"0x{d:04X}" for d in dids}),
            (
                "routine",
                [f"0x{r:04X}" for r in scenario.routines],
                {f"0x{r:04X}" for r in routines},
            ),
        ):
            unknown = sorted(set(named) - set(known))
            if unknown:
                raise ValueError(f"{name}: the scenario names {what} {', '.join(unknown)} it lacks")
        for routine in ecu.routines:
            wanted = scenario.routines.get(routine.routine_id, RoutineRule()).duration_parameter
            if wanted is not None and wanted not in {p.name for p in routine.parameters}:
                raise ValueError(f"{name}: {routine.name} has no Start parameter {wanted}")
