"""``DescribedEcu``: an ECU answering UDS requests as its ODX description says, and the
dispatch of a request to the concept that answers it (see the package docstring)."""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from odxtools.diagservice import DiagService
from odxtools.odxtypes import ParameterValue

from app.vehicles import trouble_codes, uds
from app.vehicles.emulator.described import dtcs as fault_memory
from app.vehicles.emulator.described import routines as routine_control
from app.vehicles.emulator.described.negatives import negative
from app.vehicles.emulator.described.overlay import Overlay
from app.vehicles.emulator.described.routines import ROUTINE_START, DescribedRoutine, stoppable
from app.vehicles.emulator.described.services import (
    Service,
    find,
    out_of_range,
    request_values,
    services,
    unknown_nrc,
)
from app.vehicles.emulator.described.specs import DescribedSpec
from app.vehicles.emulator.described.states import StateCharts, session_ids
from app.vehicles.emulator.described.values import Hints, Unsupported, ValueGenerator
from app.vehicles.emulator.reply import Reply

log = logging.getLogger(__name__)

ACTIVE_SESSION_DID: Final = 0xF186
WRITE_DATA_BY_IDENTIFIER: Final = 0x2E


@dataclass
class DescribedEcu:
    """An ECU answering as ``spec.layer`` describes (see the package docstring)."""

    spec: DescribedSpec
    rng: random.Random
    routine_s: float = 2.0
    s3_s: float | None = 5.0
    dtcs: dict[int, int] = field(default_factory=dict)  # trouble code -> status byte
    states: dict[str, str] = field(default_factory=dict)  # state chart -> its state
    routines: dict[int, DescribedRoutine] = field(default_factory=dict)
    last_request_at: float = 0.0
    tester_presents: int = 0
    # What 0x2E wrote, per DID (its two bytes): the request's values by parameter name.
    written: dict[bytes, dict[str, ParameterValue]] = field(default_factory=dict)
    # A scenario laid over the description (a demo vehicle's ECU); None: the
    # description alone, DTCs and values drawn from ``rng``.
    overlay: Overlay | None = None
    # Without an overlay: the vehicle's VIN, answered to a read of DID 0xF190 (None: a
    # VIN drawn from ``rng``, kept).
    vin: str | None = None

    def __post_init__(self) -> None:
        layer = self.spec.layer
        self._services: list[Service] = services(layer)
        self._charts = StateCharts(layer)
        # The 0x10 subfunction that leads into each session state (for DID 0xF186).
        self._session_ids: dict[str, int] = session_ids(self._services)
        self._stoppable = stoppable(s.prefix for s in self._services)
        self.known_dtcs: tuple[int, ...] = fault_memory.known_dtcs(layer)
        self.reset_session()
        self._faults: dict[int, int]
        if self.overlay is not None:  # the scenario's DTCs
            stored, self._faults = self.overlay.start_dtcs(self.known_dtcs)
            self.dtcs.update(stored)
        else:  # a seeded subset of the described DTCs, each with a status byte
            self._faults = fault_memory.store_at_start(self.dtcs, self.known_dtcs, self.rng)
        self._values = ValueGenerator(self.rng, self.spec.name, lambda: self.dtcs)

    @property
    def address(self) -> int:
        return self.spec.address

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def session(self) -> str | None:
        """The state of the ``SESSION`` chart (None: the description has none)."""
        return self._charts.session(self.states)

    def stored_codes(self) -> tuple[str, ...]:
        """The stored DTCs by display code (``P0171``)."""
        return tuple(trouble_codes.dtc_code(n) for n in self.dtcs)

    def routine_state(self, routine_id: int) -> str | None:
        routine = self.routines.get(routine_id)
        return None if routine is None else routine.state

    def reset_session(self) -> None:
        """Every state chart back to its start state (the tester went away)."""
        self._charts.reset(self.states)

    def adopt(self, previous: DescribedEcu) -> None:
        """Take over ``previous``'s memory: the same ECU, now emulated from another layer
        of its description (its identified ECU variant). Its stored DTCs this layer
        describes, the values written to it, its session."""
        self.dtcs.clear()
        self.dtcs.update({c: s for c, s in previous.dtcs.items() if c in self.known_dtcs})
        self.written.update(previous.written)
        for chart, state in previous.states.items():
            if chart in self.states:
                self.states[chart] = state

    # -- dispatch ----------------------------------------------------------------------

    def handle(self, request: bytes, now: float) -> Reply:
        self._advance(now)
        if not request:
            return Reply(bytes((uds.NEGATIVE_RESPONSE, 0x00, 0x13)))
        sid = request[0]
        entry, suppress = find(self._services, request)
        if suppress:  # answered (if at all) as the request without the bit
            request = request[:1] + bytes((request[1] & 0x7F,)) + request[2:]
        if entry is None:
            if sid == uds.TESTER_PRESENT:
                return self._tester_present(request)
            return Reply(self._negative(None, request, unknown_nrc(self._services, request)))
        service = entry.service
        assert service.request is not None
        bits = service.request.get_static_bit_length()
        try:
            decoded = service.request.decode(request)
        except Exception:
            decoded = None
        if bits is not None and bits != 8 * len(request):
            return Reply(self._negative(service, request, 0x13))  # incorrect length/format
        if decoded is None:
            # Of its length, yet a value the description cannot read (a raw value no text
            # table entry has): requestOutOfRange; of no fixed length: its format.
            return Reply(self._negative(service, request, 0x13 if bits is None else 0x31))
        routine_id = _routine_id(entry)
        refused = self._charts.refusal(service, self.states)
        if refused is not None:
            if routine_id is not None and self.overlay is not None:
                refused = self.overlay.rule(routine_id).outside_session_nrc or refused
            return Reply(self._negative(service, request, refused))
        if out_of_range(service, decoded) is not None:  # a value beyond its DOP's limits
            return Reply(self._negative(service, request, 0x31))
        work_s = self._work_s(entry, routine_id)
        try:
            payload = self._answer(entry, request, decoded, now)
        except Unsupported as exc:
            log.warning(
                "cannot answer from the description",
                extra={
                    "event": "emulator_unsupported",
                    "service": service.short_name,
                    "reason": str(exc),
                },
            )
            return Reply(self._negative(service, request, 0x10))
        if payload[0] == uds.NEGATIVE_RESPONSE:
            return Reply(payload, work_s)
        self._charts.transit(service, self.states)
        return Reply(None if suppress else payload, work_s)

    def _work_s(self, entry: Service, routine_id: int | None) -> float:
        """How long the server works on a routine's start before answering (0x78
        meanwhile): the scenario's ``pending`` routines, for their duration."""
        if routine_id is None or self.overlay is None or entry.prefix[1] != ROUTINE_START:
            return 0.0
        if not self.overlay.rule(routine_id).pending:
            return 0.0
        return self.overlay.duration_s(routine_id, self.routine_s)

    def _advance(self, now: float) -> None:
        """Let time pass: S3 on the session chart, routines running on."""
        self._charts.expire(self.states, now - self.last_request_at, self.s3_s)
        self.last_request_at = now
        routine_control.advance(self.routines, now, self._completed)

    def _completed(self, routine_id: int) -> None:
        """A routine ran to its end: the ECU has re-run its tests (unless the scenario
        says this routine does not)."""
        if self.overlay is None or self.overlay.rule(routine_id).reruns_tests:
            self.dtcs.update(self._faults)

    def _tester_present(self, request: bytes) -> Reply:
        if len(request) != 2:
            return Reply(self._negative(None, request, 0x13))
        if request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(self._negative(None, request, 0x12))
        self.tester_presents += 1
        if request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(None)
        return Reply(uds.positive(request[0], b"\x00"))

    # -- answers -------------------------------------------------------------------------

    def _answer(
        self, entry: Service, request: bytes, decoded: Mapping[str, ParameterValue], now: float
    ) -> bytes:
        service = entry.service
        sid = entry.prefix[0]
        hints = Hints()
        if sid == uds.CLEAR_DIAGNOSTIC_INFORMATION:
            nrc = fault_memory.clear(self.dtcs, self.known_dtcs, service, decoded)
            if nrc is not None:
                return self._negative(service, request, nrc)
        elif sid == uds.ROUTINE_CONTROL and len(entry.prefix) >= 4:
            routine_id = int.from_bytes(entry.prefix[2:4], "big")
            blocked = self._blocked(routine_id, entry.prefix[1], now)
            if blocked is not None:
                return self._negative(service, request, blocked)
            given = request_values(service, decoded)
            duration_s = self.routine_s
            if self.overlay is not None:
                duration_s = self.overlay.duration_s(routine_id, self.routine_s, given)
            outcome = routine_control.control(
                self.routines,
                entry.prefix[1],
                routine_id,
                now,
                stoppable=self._stoppable,
                duration_s=duration_s,
                completed=lambda: self._completed(routine_id),
                parameters=given,
            )
            if isinstance(outcome, int):
                return self._negative(service, request, outcome)
            hints.routine = outcome
        elif sid == WRITE_DATA_BY_IDENTIFIER and len(entry.prefix) >= 3:
            # Remembered: a read of the DID answers it from now on.
            self.written[entry.prefix[1:3]] = dict(decoded)
        elif sid == uds.READ_DATA_BY_IDENTIFIER and len(entry.prefix) >= 3:
            hints.given = self.written.get(entry.prefix[1:3]) or self._scenario_value(entry)
            if entry.prefix[1:3] == ACTIVE_SESSION_DID.to_bytes(2, "big") and self.session:
                hints.session_id = self._session_ids.get(self.session)
        if not service.positive_responses:
            raise Unsupported("no positive response")
        response = service.positive_responses[0]
        mask = fault_memory.mask(decoded)
        values = self._values.values(response, hints, service.short_name, mask)
        try:
            return bytes(response.encode(request, **values))
        except Exception as exc:
            raise Unsupported(f"odxtools cannot encode it: {exc}") from exc

    def _blocked(self, routine_id: int, action: int, now: float) -> int | None:
        """0x26 failurePreventsExecutionOfRequestedAction for a start the scenario blocks
        while a DTC is stored (the routine is then ``failed``)."""
        if self.overlay is None or action != ROUTINE_START:
            return None
        blocked_by = self.overlay.rule(routine_id).blocked_by
        if blocked_by is None or trouble_codes.dtc_number(blocked_by) not in self.dtcs:
            return None
        self.routines[routine_id] = DescribedRoutine("failed", now, 0.0, 100)
        return 0x26

    def _scenario_value(self, entry: Service) -> dict[str, ParameterValue]:
        """The scenario's value of the DID read (or the VIN given), for the answer's one
        value parameter."""
        service = entry.service
        if not service.positive_responses:
            return {}
        did = int.from_bytes(entry.prefix[1:3], "big")
        if self.overlay is not None:
            value = self.overlay.did_value(did, self.rng)
        else:
            value = self.vin if did == uds.VIN else None
        required = [p for p in service.positive_responses[0].parameters if p.is_required]
        if value is None or len(required) != 1:
            return {}
        return {required[0].short_name: value}

    # -- negative answers ------------------------------------------------------------------

    def _negative(self, service: DiagService | None, request: bytes, nrc: int) -> bytes:
        """``7F <sid> <nrc>``, encoded with the description's negative response when one
        encodes to that."""
        return negative(self.spec.layer, service, request, nrc)


def _routine_id(entry: Service) -> int | None:
    """The routine a 0x31 service controls (None: not a routine's service)."""
    prefix = entry.prefix
    if prefix[0] != uds.ROUTINE_CONTROL or len(prefix) < 4:
        return None
    return int.from_bytes(prefix[2:4], "big")
