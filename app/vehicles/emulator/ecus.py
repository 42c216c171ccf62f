"""The ECUs behind the emulated DoIP entity: UDS request in, UDS answer out, no I/O.

Each ECU has real state: stored DTCs with ISO 14229-1 status bytes, identification and
live data identifiers, a diagnostic session with its S3 timer, and routines that take
time. Time is passed in (``now``, seconds on a monotonic clock) and randomness comes
from the ``random.Random`` given, so the same inputs give the same answers.

The default ECUs (``DEFAULT_ECUS``) are the demo description's
(``app.vehicles.pdx.demo.DEMO_ECUS``: DIDs, DTCs, routines, the sessions they need) with
the demo scenario's behaviour (``app.vehicles.pdx.scenario.DEMO_SCENARIO``: the DTCs
stored at start, identification values, live values, how each routine behaves); nothing
of either is repeated here. Any other address gets a plain ECU (``spec_for``):
identification data, no DTCs, no routines. Every ECU answers its active session on DID
0xF186.

Every ECU runs a self-test: started, it reports progress on ``results`` and, when done,
has re-run the ECU's tests, so the faults it still has come back as DTCs after a
ClearDTC. The ABS brake bleed check answers 0x22 conditionsNotCorrect outside the
extended session, works for a while (the server sends 0x78 response pending meanwhile)
and then fails with 0x26 failurePreventsExecutionOfRequestedAction while its blocking
DTC is stored. ``ROUTINES`` holds each routine's id, name, whether the start answers at
once and the session it checks itself.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Final

from app.vehicles import uds
from app.vehicles.pdx.demo import BLEED_CHECK, DEMO_ECUS, SELF_TEST, sovd_id
from app.vehicles.pdx.scenario import (
    CONFIRMED_ACTIVE,
    CONFIRMED_WITH_LAMP,
    DEMO_SCENARIO,
    HISTORIC,
    PENDING_ACTIVE,
)

__all__ = [
    "BLEED_CHECK",
    "CONFIRMED_ACTIVE",
    "CONFIRMED_WITH_LAMP",
    "DEFAULT_ECUS",
    "DEFAULT_SPECS",
    "HISTORIC",
    "PENDING_ACTIVE",
    "ROUTINES",
    "SELF_TEST",
    "Ecu",
    "EcuSpec",
    "Reply",
    "Timings",
    "plain_spec",
    "spec_for",
]
from app.vehicles.pdx.spec import PdxEcu, PdxRoutine

# P2server_max and P2*server_max announced in the 0x50 answer (ISO 14229-2 defaults).
P2_SERVER_MS: Final = 50
P2_STAR_SERVER_MS: Final = 5000


@dataclass(frozen=True, slots=True)
class RoutineSpec:
    """A routine as the ECUs run it and the service describes it."""

    id: str  # the SOVD operation id
    name: str
    # True: the start answers at once and the routine runs on (poll ``results``); False:
    # the start's answer is the routine's result.
    asynchronous: bool
    session: int | None = None  # the session it needs (else 0x22 conditionsNotCorrect)


def _routine(routine: PdxRoutine) -> RoutineSpec:
    rule = _RULES.get(routine.routine_id)
    # A routine answering another NRC than the description's outside its session checks
    # the session itself (0x22); the others are refused by the ECU's routine sessions.
    own = rule is not None and rule.outside_session_nrc is not None
    return RoutineSpec(
        sovd_id(routine.name),
        routine.long_name or routine.name,
        asynchronous="Stop" in routine.actions,
        session=_session_id(routine.sessions) if own else None,
    )


def _session_id(states: tuple[str, ...]) -> int | None:
    return uds.SESSIONS[states[0].lower()] if states else None


_RULES: Final = {
    routine: rule
    for scenario in DEMO_SCENARIO.values()
    for routine, rule in scenario.routines.items()
}
ROUTINES: Final[dict[int, RoutineSpec]] = {
    routine.routine_id: _routine(routine) for ecu in DEMO_ECUS for routine in ecu.routines
}


@dataclass(frozen=True, slots=True)
class StoredDtc:
    code: str
    status: int

    @property
    def number(self) -> int:
        return uds.dtc_number(self.code)


@dataclass(frozen=True, slots=True)
class SensorSpec:
    did: int
    low: float
    high: float
    start: float
    step: float


@dataclass(frozen=True, slots=True)
class EcuSpec:
    name: str
    address: int
    software_version: str
    serial_number: str
    # What the ECU's tests find: stored at start, and found again by a self-test.
    faults: tuple[StoredDtc, ...] = ()
    # Stored at start but no longer failing: a self-test does not bring these back.
    history: tuple[StoredDtc, ...] = ()
    sensors: tuple[SensorSpec, ...] = ()
    routines: frozenset[int] = frozenset({SELF_TEST})
    # Sessions in which the ECU offers RoutineControl at all.
    routine_sessions: frozenset[int] = frozenset({uds.DEFAULT_SESSION, uds.EXTENDED_SESSION})
    # Sessions in which the ECU offers ClearDiagnosticInformation.
    clear_sessions: frozenset[int] = frozenset({uds.DEFAULT_SESSION, uds.EXTENDED_SESSION})


_ALL_SESSIONS: Final = frozenset({uds.DEFAULT_SESSION, uds.EXTENDED_SESSION})


def _sessions(states: tuple[str, ...]) -> frozenset[int]:
    return frozenset(uds.SESSIONS[s.lower()] for s in states) if states else _ALL_SESSIONS


def _default_spec(ecu: PdxEcu) -> EcuSpec:
    """A demo ECU as this emulator runs it: the description's content, the scenario's
    behaviour."""
    scenario = DEMO_SCENARIO[ecu.short_name]
    # The sessions RoutineControl is offered in: those every routine of the ECU needs
    # that does not check its session itself (``RoutineSpec.session``).
    checked = [
        r.sessions
        for r in ecu.routines
        if r.routine_id in ROUTINES and ROUTINES[r.routine_id].session is None
    ]
    routine_sessions = _ALL_SESSIONS
    for states in checked:
        routine_sessions &= _sessions(states)
    return EcuSpec(
        ecu.short_name.lower(),
        ecu.logical_address or 0,
        scenario.software_version,
        scenario.serial_number,
        faults=tuple(StoredDtc(d.code, d.status) for d in scenario.dtcs if d.failing),
        history=tuple(StoredDtc(d.code, d.status) for d in scenario.dtcs if not d.failing),
        sensors=tuple(
            SensorSpec(did, walk.low, walk.high, walk.start, walk.step)
            for did, walk in scenario.sensors.items()
        ),
        routines=frozenset(r.routine_id for r in ecu.routines),
        routine_sessions=routine_sessions,
        clear_sessions=_sessions(ecu.clear_sessions),
    )


DEFAULT_ECUS: Final = tuple(_default_spec(ecu) for ecu in DEMO_ECUS)
DEFAULT_SPECS: Final[dict[int, EcuSpec]] = {spec.address: spec for spec in DEFAULT_ECUS}


def spec_for(name: str, address: int) -> EcuSpec:
    """The ECU a vehicle has at ``address``: the default one there (under the vehicle's
    name for it), else a plain ECU: identification only, no DTCs, no routines."""
    default = DEFAULT_SPECS.get(address)
    if default is not None:
        return dataclasses.replace(default, name=name)
    return plain_spec(name, address)


def plain_spec(name: str, address: int) -> EcuSpec:
    """An ECU with identification data only: no DTCs, no sensors, no routines."""
    return EcuSpec(name, address, "GEN 01.00.00", f"GEN{address:07X}", routines=frozenset())


@dataclass(frozen=True, slots=True)
class Timings:
    self_test_s: float = 2.0
    bleed_check_s: float = 1.0
    # A non-default session ends after this long without a request; None: never (no
    # tester in-process sends TesterPresent, so the simulator has no S3).
    s3_s: float | None = 5.0


@dataclass(frozen=True, slots=True)
class Reply:
    """What the ECU answers: ``payload`` after ``work_s`` seconds (the server keeps the
    tester waiting with 0x78 meanwhile), or nothing (``payload`` None: the positive
    answer was suppressed)."""

    payload: bytes | None
    work_s: float = 0.0


@dataclass(slots=True)
class _Routine:
    state: str  # a key of uds.ROUTINE_STATES' values
    started_at: float
    duration_s: float
    progress: int = 0


@dataclass(slots=True)
class _Sensor:
    spec: SensorSpec
    value: float

    def read(self, rng: random.Random) -> float:
        spec = self.spec
        self.value = min(spec.high, max(spec.low, self.value + rng.uniform(-spec.step, spec.step)))
        return self.value


@dataclass(slots=True)
class Ecu:
    spec: EcuSpec
    vin: str
    timings: Timings
    rng: random.Random
    dtcs: dict[int, int] = field(default_factory=dict)  # DTC number -> status byte
    session: int = uds.DEFAULT_SESSION
    last_request_at: float = 0.0
    routines: dict[int, _Routine] = field(default_factory=dict)
    sensors: dict[int, _Sensor] = field(default_factory=dict)
    tester_presents: int = 0

    def __post_init__(self) -> None:
        for dtc in (*self.spec.faults, *self.spec.history):
            self.dtcs[dtc.number] = dtc.status
        self.sensors = {s.did: _Sensor(s, s.start) for s in self.spec.sensors}

    @property
    def address(self) -> int:
        return self.spec.address

    def stored_codes(self) -> tuple[str, ...]:
        return tuple(uds.dtc_code(number) for number in self.dtcs)

    def routine_state(self, routine_id: int) -> str | None:
        """running, completed, stopped or failed; None if it never ran."""
        routine = self.routines.get(routine_id)
        return None if routine is None else routine.state

    def reset_session(self) -> None:
        """Back to the default session (the tester went away)."""
        self.session = uds.DEFAULT_SESSION

    # -- dispatch ----------------------------------------------------------------------

    def handle(self, request: bytes, now: float) -> Reply:
        self._advance(now)
        sid = request[0]
        handler = _HANDLERS.get(sid)
        if handler is None:
            return _negative(sid, 0x11)  # serviceNotSupported
        return handler(self, request, now)

    def _advance(self, now: float) -> None:
        """Let time pass: the S3 timer and the routines running in the background."""
        s3_s = self.timings.s3_s
        if (
            self.session != uds.DEFAULT_SESSION
            and s3_s is not None
            and now - self.last_request_at > s3_s
        ):
            self.session = uds.DEFAULT_SESSION
        self.last_request_at = now
        for routine_id, routine in self.routines.items():
            if routine.state != "running":
                continue
            elapsed = now - routine.started_at
            if elapsed >= routine.duration_s:
                routine.state, routine.progress = "completed", 100
                if routine_id == SELF_TEST:
                    self._rerun_tests()
            else:
                routine.progress = min(99, int(100 * elapsed / routine.duration_s))

    def _rerun_tests(self) -> None:
        for dtc in self.spec.faults:
            self.dtcs[dtc.number] = dtc.status

    # -- services ----------------------------------------------------------------------

    def _session_control(self, request: bytes, now: float) -> Reply:
        if len(request) != 2:
            return _negative(request[0], 0x13)
        session = request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE
        if session not in (uds.DEFAULT_SESSION, uds.EXTENDED_SESSION):
            return _negative(request[0], 0x12)  # subFunctionNotSupported
        self.session = session
        if request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(None)
        timing = uds.encode_session_timing(P2_SERVER_MS, P2_STAR_SERVER_MS)
        return Reply(uds.positive(request[0], bytes((session,)) + timing))

    def _tester_present(self, request: bytes, now: float) -> Reply:
        if len(request) != 2:
            return _negative(request[0], 0x13)
        if request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE:
            return _negative(request[0], 0x12)
        self.tester_presents += 1
        if request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(None)
        return Reply(uds.positive(request[0], b"\x00"))

    def _read_dtc(self, request: bytes, now: float) -> Reply:
        if len(request) < 2:
            return _negative(request[0], 0x13)
        if request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE != uds.REPORT_DTC_BY_STATUS_MASK:
            return _negative(request[0], 0x12)
        if len(request) != 3:
            return _negative(request[0], 0x13)
        mask = request[2]
        records = [(number, status) for number, status in self.dtcs.items() if status & mask]
        return Reply(uds.encode_dtc_report(uds.ALL_DTC_STATUS_BITS, records))

    def _clear_dtc(self, request: bytes, now: float) -> Reply:
        if len(request) != 4:
            return _negative(request[0], 0x13)
        if self.session not in self.spec.clear_sessions:
            return _negative(request[0], 0x7F)  # serviceNotSupportedInActiveSession
        group = int.from_bytes(request[1:4], "big")
        known = {d.number for d in (*self.spec.faults, *self.spec.history)}
        if group == uds.ALL_DTC_GROUPS:
            self.dtcs.clear()
        elif group in known or group in self.dtcs:
            self.dtcs.pop(group, None)
        else:
            return _negative(request[0], 0x31)  # not a DTC (group) this ECU supports
        return Reply(uds.positive(request[0]))

    def _read_data(self, request: bytes, now: float) -> Reply:
        if len(request) < 3 or len(request) % 2 == 0:
            return _negative(request[0], 0x13)
        body = bytearray()
        for offset in range(1, len(request), 2):
            did = int.from_bytes(request[offset : offset + 2], "big")
            value = self._did_value(did)
            if value is None:
                return _negative(request[0], 0x31)
            body += did.to_bytes(2, "big") + value
        return Reply(uds.positive(request[0], bytes(body)))

    def _did_value(self, did: int) -> bytes | None:
        codec = uds.DID_CODECS.get(did)
        if codec is None:
            return None
        identification = {
            uds.VIN: self.vin,
            uds.ECU_SOFTWARE_VERSION: self.spec.software_version,
            uds.ECU_SERIAL_NUMBER: self.spec.serial_number,
            uds.ACTIVE_DIAGNOSTIC_SESSION: uds.session_name(self.session),
        }
        if did in identification:
            return codec.encode(identification[did])
        sensor = self.sensors.get(did)
        if sensor is None:
            return None
        return codec.encode(sensor.read(self.rng))

    def _routine_control(self, request: bytes, now: float) -> Reply:
        sid = request[0]
        if len(request) < 4:
            return _negative(sid, 0x13)
        action = request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE
        if action not in uds.ROUTINE_ACTIONS.values():
            return _negative(sid, 0x12)
        if self.session not in self.spec.routine_sessions:
            return _negative(sid, 0x7F)  # serviceNotSupportedInActiveSession
        routine_id = int.from_bytes(request[2:4], "big")
        if routine_id not in self.spec.routines:
            return _negative(sid, 0x31)
        echo = bytes((action,)) + request[2:4]
        if routine_id == BLEED_CHECK:
            return self._bleed_check(sid, action, echo, now)
        return self._self_test(sid, action, echo, now)

    def _self_test(self, sid: int, action: int, echo: bytes, now: float) -> Reply:
        routine = self.routines.get(SELF_TEST)
        if action == uds.ROUTINE_ACTIONS["start"]:
            if routine is not None and routine.state == "running":
                return _negative(sid, 0x22)  # already running
            routine = _Routine("running", now, self.timings.self_test_s)
            self.routines[SELF_TEST] = routine
        elif routine is None:
            return _negative(sid, 0x24)  # requestSequenceError: never started
        elif action == uds.ROUTINE_ACTIONS["stop"]:
            if routine.state != "running":
                return _negative(sid, 0x24)
            routine.state = "stopped"
        status = uds.RoutineStatus(routine.state, routine.progress)
        return Reply(uds.positive(sid, echo + status.encode()))

    def _bleed_check(self, sid: int, action: int, echo: bytes, now: float) -> Reply:
        if self.session != ROUTINES[BLEED_CHECK].session:
            return _negative(sid, 0x22)  # conditionsNotCorrect: needs the extended session
        if action == uds.ROUTINE_ACTIONS["stop"]:
            return _negative(sid, 0x24)  # it runs to its end within the request
        if action == uds.ROUTINE_ACTIONS["results"]:
            routine = self.routines.get(BLEED_CHECK)
            if routine is None:
                return _negative(sid, 0x24)
            return Reply(uds.positive(sid, echo + uds.RoutineStatus(routine.state, 100).encode()))
        work_s = self.timings.bleed_check_s
        # The scenario's blocking fault stops the check (C0035: it cannot tell the
        # wheels apart).
        blocked_by = _RULES[BLEED_CHECK].blocked_by
        if blocked_by is not None and uds.dtc_number(blocked_by) in self.dtcs:
            self.routines[BLEED_CHECK] = _Routine("failed", now, work_s, 100)
            return Reply(uds.Negative(sid, 0x26).encode(), work_s)
        self.routines[BLEED_CHECK] = _Routine("completed", now, work_s, 100)
        return Reply(uds.positive(sid, echo + uds.RoutineStatus("completed", 100).encode()), work_s)


def _negative(sid: int, nrc: int) -> Reply:
    return Reply(uds.Negative(sid, nrc).encode())


_HANDLERS: Final = {
    uds.DIAGNOSTIC_SESSION_CONTROL: Ecu._session_control,
    uds.TESTER_PRESENT: Ecu._tester_present,
    uds.READ_DTC_INFORMATION: Ecu._read_dtc,
    uds.CLEAR_DIAGNOSTIC_INFORMATION: Ecu._clear_dtc,
    uds.READ_DATA_BY_IDENTIFIER: Ecu._read_data,
    uds.ROUTINE_CONTROL: Ecu._routine_control,
}
