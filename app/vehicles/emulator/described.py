"""An emulated ECU driven by its ODX description (an odxtools diag layer), not by tables.

``DescribedEcu`` answers a UDS request the way the description says the ECU does:

- **Finding the service.** Each service's request has a constant prefix (odxtools'
  ``Request.coded_const_prefix``: the SID and the coded constants after it, such as a DID
  or a subfunction); the request is the service with the longest prefix it starts with,
  and it must then decode with that request (``Request.decode``) and have its length
  (when the request's length is fixed), else 0x13 incorrectMessageLengthOrInvalidFormat.
  No service with the request's SID: 0x11 serviceNotSupported. A described SID whose
  services all carry a ``SUBFUNCTION`` constant in byte 1, none of them this one: 0x12
  subFunctionNotSupported (ISO 14229-1, and what the table ECUs of ``ecus.py`` answer);
  any other unknown DID, routine or record of a described SID: 0x31 requestOutOfRange.
  The suppress-positive-response bit (0x80 in a ``SUBFUNCTION`` byte) is honoured.
  TesterPresent (0x3E 0x00/0x80) is answered even when the description has no such
  service (every ISO 14229-1 server has it, and the DoIP connector sends it to keep a
  session alive).
- **Positive answers** are encoded by odxtools (``Response.encode`` with the request, so
  matching-request parameters are filled in) with a value for every required
  parameter, from a ``random.Random`` given to the ECU (seeded: the same seed and the
  same requests give the same bytes):

  - numbers: an internal value within the coded type's range (bit length, signedness),
    narrowed by the DOP's internal constraint, its compu scales' limits and its physical
    constraint, converted with the DOP's compu method; each read moves it a little (a
    random walk, so live data look live);
  - text tables: one of the table's texts;
  - text: generated once and kept (identification does not change), as long as the
    coded type says (a ``VIN``: 17 VIN characters; a ``...Version``: digits and dots);
  - DID 0xF186 (active diagnostic session): the active session's 0x10 subfunction;
  - ``P2Server`` / ``P2StarServer`` (the 0x10 answer): 50 ms and 5000 ms, ISO 14229-2's
    defaults, as the table ECUs answer;
  - structures and fields: recursively (a field of DTC records: see below).

  A response odxtools cannot be given values for (a multiplexer, a table-key
  parameter...) is answered 0x10 generalReject and logged.
- **DTCs.** At start a seeded subset of the DTC DOPs' DTCs is stored, each with a status
  byte (confirmed, pending, historic, with the warning lamp). A field whose structure
  has a DTC parameter is answered with one record per stored DTC whose status matches
  the request's ``...Mask`` parameter (if it has one), the record's other parameters
  named by the ISO 14229-1 status bits (``testFailed`` ...) get the bit, one named
  ``...Status...`` the whole byte; a ``...AvailabilityMask`` is 0xFF. 0x14 clears the
  group the request names (0xFFFFFF: all; a described DTC not stored: nothing to clear;
  anything else: 0x31). When a routine completes, the ECU has "re-run its tests": the
  stored-at-start DTCs that were failing (``testFailed``) are stored again; historic
  ones stay cleared.
- **Routines** (0x31 services, ``<type> <id>`` in the prefix): Start (0x01) runs the
  routine for ``routine_s`` seconds (again while running: 0x22); RequestResults (0x03)
  reports its state and progress, which grows with time to 100 % and ``completed``;
  Stop (0x02) stops a running one (``stopped``; not running: 0x24). A routine the
  description has no Stop service for runs to its end within its Start. Results or Stop
  before any Start: 0x24. The answer's ``...State``/``...Status`` text-table parameter
  gets the state's name (``running``, ``completed``, ``stopped``), a ``...Progress``
  one the percentage.
- **States.** Every state chart starts in its start state; a service's state
  transitions move its chart on after a positive answer (the 0x10 services switch the
  ``SESSION`` chart). A non-start state of the ``SESSION`` chart falls back to the start
  state after ``s3_s`` seconds without a request (S3), and when the tester goes away
  (``reset_session``). A service whose PRE-CONDITION-STATE-REFS are not met is refused:
  0x7F serviceNotSupportedInActiveSession for a state of the ``SESSION`` chart (as the
  table ECUs refuse the body's ClearDTC), 0x22 conditionsNotCorrect for any other chart.
- **Negative answers** are encoded by odxtools with the service's negative response (or
  the layer's global negative responses), the NRC parameter set from the NRC through
  its DOP's compu method; when the description has none that encodes to ``7F <sid>
  <nrc>``, those three bytes are sent.

Only odxtools' public API is used. ``described_specs`` lists the base variants of loaded
PDX files with their logical addresses: an explicit one (``--ecus NAME=0x...``), else
the special data ``LOGICAL-ADDRESS`` (what ``app.vehicles.demo_description`` writes),
else the comparam ``CP_DoIPLogicalEcuAddress`` (odxtools'
``get_doip_logical_ecu_address``, how real descriptions say it).
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import odxtools
from odxtools.basicstructure import BasicStructure
from odxtools.compumethods.texttablecompumethod import TexttableCompuMethod
from odxtools.database import Database
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.dopbase import DopBase
from odxtools.dtcdop import DtcDop
from odxtools.field import Field
from odxtools.leadinglengthinfotype import LeadingLengthInfoType
from odxtools.minmaxlengthtype import MinMaxLengthType
from odxtools.odxtypes import AtomicOdxType, DataType, ParameterValue
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.parameterwithdop import ParameterWithDOP
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.request import Request
from odxtools.response import Response
from odxtools.standardlengthtype import StandardLengthType
from odxtools.state import State
from odxtools.statechart import StateChart

from app.descriptions import summary
from app.vehicles import uds
from app.vehicles.emulator.ecus import (
    CONFIRMED_ACTIVE,
    CONFIRMED_WITH_LAMP,
    HISTORIC,
    P2_SERVER_MS,
    P2_STAR_SERVER_MS,
    PENDING_ACTIVE,
    Reply,
)

log = logging.getLogger(__name__)

ACTIVE_SESSION_DID: Final = 0xF186
ROUTINE_START: Final = 0x01
ROUTINE_STOP: Final = 0x02
ROUTINE_RESULTS: Final = 0x03
# The status bytes a stored-at-start DTC gets (drawn from the seeded generator).
START_STATUSES: Final = (CONFIRMED_ACTIVE, PENDING_ACTIVE, CONFIRMED_WITH_LAMP, HISTORIC)
_TEST_FAILED: Final = uds.status_byte("testFailed")
_STRING_TYPES: Final = (DataType.A_ASCIISTRING, DataType.A_UTF8STRING, DataType.A_UNICODE2STRING)
_VIN_CHARS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_TEXT_CHARS: Final = string.ascii_uppercase + string.digits
_DEFAULT_TEXT_LENGTH: Final = 16


# What has parameters to fill in: a response, a structure.
_Coded = Response | BasicStructure


class _Unsupported(Exception):
    """The description has something this emulator cannot give a value to."""


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


_STATUS_BITS: Final = {_key(bit): i for i, bit in enumerate(uds.DTC_STATUS_BITS)}


# -- loading descriptions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, eq=False)
class DescribedSpec:
    """One base variant to emulate, at a logical address."""

    name: str
    address: int
    layer: DiagLayer = field(repr=False)


def load_pdx(path: str | Path) -> Database:
    """A PDX file read with odxtools (``ValueError`` naming the file when it cannot be)."""
    try:
        return odxtools.load_pdx_file(str(path))
    except Exception as exc:
        raise ValueError(f"{path}: not a PDX odxtools can read ({exc})") from exc


def logical_address(layer: DiagLayer) -> int | None:
    """The layer's logical address, read as binding reads it
    (``app.descriptions.summary.logical_address``); None when it has none."""
    text = summary.logical_address(layer)
    return None if text is None else int(text, 16)


def described_specs(
    databases: Sequence[Database], addresses: Mapping[str, int] | None = None
) -> tuple[DescribedSpec, ...]:
    """Every base variant of ``databases`` at its address: ``addresses[name]`` if given,
    else the description's (``logical_address``). ``ValueError`` for a variant without
    an address, two variants at one address, or a name in ``addresses`` that no
    variant has."""
    given = dict(addresses or {})
    specs: list[DescribedSpec] = []
    seen: dict[int, str] = {}
    for database in databases:
        for layer in database.base_variants:
            name = layer.short_name
            address = given.pop(name, None)
            if address is None:
                address = logical_address(layer)
            if address is None:
                raise ValueError(
                    f"base variant {name} has no logical address (no LOGICAL-ADDRESS special"
                    f" data, no CP_DoIPLogicalEcuAddress): give it one with --ecus {name}=0x..."
                )
            if not 0x0001 <= address <= 0xFFFF:
                raise ValueError(f"base variant {name}: address 0x{address:X} is not 16-bit")
            if address in seen:
                raise ValueError(
                    f"base variants {seen[address]} and {name} are both at 0x{address:04X}:"
                    f" move one with --ecus {name}=0x..."
                )
            seen[address] = name
            specs.append(DescribedSpec(name, address, layer))
    if given:
        raise ValueError(f"no base variant named {', '.join(sorted(given))} in the PDX file(s)")
    if not specs:
        raise ValueError("the PDX file(s) have no base variant")
    return tuple(specs)


# -- the ECU ---------------------------------------------------------------------------------


@dataclass(slots=True)
class DescribedRoutine:
    state: str  # running, completed, stopped
    started_at: float
    duration_s: float
    progress: int = 0


@dataclass(frozen=True, slots=True, eq=False)
class _Service:
    service: DiagService
    prefix: bytes
    subfunction: bool  # byte 1 is a SUBFUNCTION constant


@dataclass(slots=True)
class _Hints:
    """What the ECU's state says some parameters of one answer are."""

    dtc: int | None = None  # a DTC record: its trouble code and status byte
    status: int | None = None
    routine: DescribedRoutine | None = None
    session_id: int | None = None  # the answer of DID 0xF186


@dataclass(slots=True)
class _Walk:
    low: int
    high: int
    value: int


@dataclass
class DescribedEcu:
    """An ECU answering as ``spec.layer`` describes (see the module docstring)."""

    spec: DescribedSpec
    rng: random.Random
    routine_s: float = 2.0
    s3_s: float | None = 5.0
    dtcs: dict[int, int] = field(default_factory=dict)  # trouble code -> status byte
    states: dict[str, str] = field(default_factory=dict)  # state chart -> its state
    routines: dict[int, DescribedRoutine] = field(default_factory=dict)
    last_request_at: float = 0.0
    tester_presents: int = 0

    def __post_init__(self) -> None:
        layer = self.spec.layer
        self._services: list[_Service] = []
        for service in layer.services:
            request = service.request
            if request is None:
                continue
            prefix = bytes(request.coded_const_prefix())
            if prefix:
                self._services.append(_Service(service, prefix, _subfunction(request)))
        self._services.sort(key=lambda s: len(s.prefix), reverse=True)
        self._charts: dict[str, StateChart] = {c.short_name: c for c in layer.state_charts}
        self._session_chart = next(
            (c.short_name for c in layer.state_charts if (c.semantic or "").upper() == "SESSION"),
            None,
        )
        self._chart_of: dict[int, str] = {
            id(state): chart.short_name for chart in layer.state_charts for state in chart.states
        }
        # The 0x10 subfunction that leads into each session state (for DID 0xF186).
        self._session_ids: dict[str, int] = {}
        for entry in self._services:
            if entry.prefix[0] == uds.DIAGNOSTIC_SESSION_CONTROL and len(entry.prefix) > 1:
                for transition in entry.service.state_transitions:
                    self._session_ids.setdefault(
                        transition.target_state.short_name, entry.prefix[1]
                    )
        self._stoppable = {
            int.from_bytes(s.prefix[2:4], "big")
            for s in self._services
            if s.prefix[0] == uds.ROUTINE_CONTROL
            and len(s.prefix) >= 4
            and s.prefix[1] == ROUTINE_STOP
        }
        self.known_dtcs: tuple[int, ...] = tuple(
            dtc.trouble_code for dop in layer.diag_data_dictionary_spec.dtc_dops for dtc in dop.dtcs
        )
        self.reset_session()
        # A seeded subset of the described DTCs, each with a status byte.
        self._faults: dict[int, int] = {}
        for code in self.known_dtcs:
            if self.rng.random() < 0.5:
                self.dtcs[code] = self.rng.choice(START_STATUSES)
                if self.dtcs[code] & _TEST_FAILED:
                    self._faults[code] = self.dtcs[code]
        self._walks: dict[str, _Walk] = {}
        self._texts: dict[str, AtomicOdxType] = {}

    @property
    def address(self) -> int:
        return self.spec.address

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def session(self) -> str | None:
        """The state of the ``SESSION`` chart (None: the description has none)."""
        return None if self._session_chart is None else self.states[self._session_chart]

    def stored_codes(self) -> tuple[int, ...]:
        return tuple(self.dtcs)

    def routine_state(self, routine_id: int) -> str | None:
        routine = self.routines.get(routine_id)
        return None if routine is None else routine.state

    def reset_session(self) -> None:
        """Every state chart back to its start state (the tester went away)."""
        for name, chart in self._charts.items():
            self.states[name] = chart.start_state.short_name

    # -- dispatch ----------------------------------------------------------------------

    def handle(self, request: bytes, now: float) -> Reply:
        self._advance(now)
        if not request:
            return Reply(bytes((uds.NEGATIVE_RESPONSE, 0x00, 0x13)))
        sid = request[0]
        entry, suppress = self._find(request)
        if suppress:  # answered (if at all) as the request without the bit
            request = request[:1] + bytes((request[1] & 0x7F,)) + request[2:]
        if entry is None:
            if sid == uds.TESTER_PRESENT:
                return self._tester_present(request)
            return Reply(self._negative(None, request, self._unknown_nrc(request)))
        service = entry.service
        assert service.request is not None
        bits = service.request.get_static_bit_length()
        try:
            decoded = service.request.decode(request)
        except Exception:
            decoded = None
        if decoded is None or (bits is not None and bits != 8 * len(request)):
            return Reply(self._negative(service, request, 0x13))  # incorrect length/format
        refused = self._refusal(service)
        if refused is not None:
            return Reply(self._negative(service, request, refused))
        try:
            payload = self._answer(entry, request, decoded, now)
        except _Unsupported as exc:
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
            return Reply(payload)
        self._transit(service)
        return Reply(None if suppress else payload)

    def _advance(self, now: float) -> None:
        """Let time pass: S3 on the session chart, routines running on."""
        chart = self._session_chart
        if (
            chart is not None
            and self.s3_s is not None
            and self.states[chart] != self._charts[chart].start_state.short_name
            and now - self.last_request_at > self.s3_s
        ):
            self.states[chart] = self._charts[chart].start_state.short_name
        self.last_request_at = now
        for routine in self.routines.values():
            if routine.state != "running":
                continue
            elapsed = now - routine.started_at
            if elapsed >= routine.duration_s:
                routine.state, routine.progress = "completed", 100
                self._rerun_tests()
            else:
                routine.progress = min(99, int(100 * elapsed / routine.duration_s))

    def _rerun_tests(self) -> None:
        self.dtcs.update(self._faults)

    def _find(self, request: bytes) -> tuple[_Service | None, bool]:
        for entry in self._services:
            if request.startswith(entry.prefix):
                return entry, False
        if len(request) > 1 and request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
            plain = request[:1] + bytes((request[1] & 0x7F,)) + request[2:]
            for entry in self._services:
                if entry.subfunction and plain.startswith(entry.prefix):
                    return entry, True
        return None, False

    def _unknown_nrc(self, request: bytes) -> int:
        sid = request[0]
        same = [s for s in self._services if s.prefix[0] == sid]
        if not same:
            return 0x11  # serviceNotSupported
        if any(s.prefix.startswith(request) for s in same):
            return 0x13  # the start of a described request: too short
        if (
            len(request) > 1
            and all(s.subfunction for s in same)
            and all(s.prefix[1] != request[1] & 0x7F for s in same)
        ):
            return 0x12  # subFunctionNotSupported
        return 0x31  # requestOutOfRange: a DID, routine or group it does not have

    def _tester_present(self, request: bytes) -> Reply:
        if len(request) != 2:
            return Reply(self._negative(None, request, 0x13))
        if request[1] & ~uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(self._negative(None, request, 0x12))
        self.tester_presents += 1
        if request[1] & uds.SUPPRESS_POSITIVE_RESPONSE:
            return Reply(None)
        return Reply(uds.positive(request[0], b"\x00"))

    def _chart(self, state: State) -> str | None:
        chart = self._chart_of.get(id(state))
        if chart is not None:
            return chart
        return next(
            (
                name
                for name, c in self._charts.items()
                if state.short_name in {s.short_name for s in c.states}
            ),
            None,
        )

    def _refusal(self, service: DiagService) -> int | None:
        """The NRC refusing ``service`` in the current states; None: it may run."""
        needed: dict[str, set[str]] = {}
        for state in service.pre_condition_states:
            chart = self._chart(state)
            if chart is not None:
                needed.setdefault(chart, set()).add(state.short_name)
        for chart, states in needed.items():
            if self.states[chart] not in states:
                return 0x7F if chart == self._session_chart else 0x22
        return None

    def _transit(self, service: DiagService) -> None:
        moved: set[str] = set()
        for transition in service.state_transitions:
            chart = self._chart(transition.target_state)
            if chart is None or chart in moved:
                continue
            if transition.source_state.short_name == self.states[chart]:
                self.states[chart] = transition.target_state.short_name
                moved.add(chart)
        for transition in service.state_transitions:  # no transition from here: the first
            chart = self._chart(transition.target_state)
            if chart is not None and chart not in moved:
                self.states[chart] = transition.target_state.short_name
                moved.add(chart)

    # -- answers -------------------------------------------------------------------------

    def _answer(
        self, entry: _Service, request: bytes, decoded: Mapping[str, ParameterValue], now: float
    ) -> bytes:
        service = entry.service
        sid = entry.prefix[0]
        hints = _Hints()
        if sid == uds.CLEAR_DIAGNOSTIC_INFORMATION:
            nrc = self._clear(service, decoded)
            if nrc is not None:
                return self._negative(service, request, nrc)
        elif sid == uds.ROUTINE_CONTROL and len(entry.prefix) >= 4:
            routine_id = int.from_bytes(entry.prefix[2:4], "big")
            outcome = self._routine(entry.prefix[1], routine_id, now)
            if isinstance(outcome, int):
                return self._negative(service, request, outcome)
            hints.routine = outcome
        elif (
            sid == uds.READ_DATA_BY_IDENTIFIER
            and entry.prefix[1:3] == ACTIVE_SESSION_DID.to_bytes(2, "big")
            and self.session is not None
        ):
            hints.session_id = self._session_ids.get(self.session)
        if not service.positive_responses:
            raise _Unsupported("no positive response")
        response = service.positive_responses[0]
        mask = _mask(decoded)
        values = self._values(response, hints, service.short_name, mask)
        try:
            return bytes(response.encode(request, **values))
        except Exception as exc:
            raise _Unsupported(f"odxtools cannot encode it: {exc}") from exc

    def _clear(self, service: DiagService, decoded: Mapping[str, ParameterValue]) -> int | None:
        """Clear the group the request names (its first value parameter)."""
        assert service.request is not None
        group = next(
            (
                value
                for p in service.request.parameters
                if isinstance(p, ValueParameter)
                and isinstance(value := decoded.get(p.short_name), int)
            ),
            None,
        )
        if group is None or group == uds.ALL_DTC_GROUPS:
            self.dtcs.clear()
        elif group in self.dtcs or group in self.known_dtcs:
            self.dtcs.pop(group, None)
        else:
            return 0x31  # not a DTC (group) this ECU has
        return None

    def _routine(self, action: int, routine_id: int, now: float) -> DescribedRoutine | int:
        routine = self.routines.get(routine_id)
        if action == ROUTINE_START:
            if routine is not None and routine.state == "running":
                return 0x22  # conditionsNotCorrect: already running
            if routine_id in self._stoppable:
                routine = DescribedRoutine("running", now, self.routine_s)
            else:  # no Stop described: the start runs it to its end
                routine = DescribedRoutine("completed", now, 0.0, 100)
                self._rerun_tests()
            self.routines[routine_id] = routine
            return routine
        if routine is None:
            return 0x24  # requestSequenceError: never started
        if action == ROUTINE_STOP:
            if routine.state != "running":
                return 0x24
            routine.state = "stopped"
        return routine

    def _values(
        self, structure: _Coded, hints: _Hints, path: str, mask: int | None
    ) -> dict[str, ParameterValue]:
        values: dict[str, ParameterValue] = {}
        for parameter in structure.parameters:
            if not parameter.is_required:
                continue  # constants, matching-request, defaults, computed lengths
            if not isinstance(parameter, ParameterWithDOP):
                raise _Unsupported(f"parameter {parameter.short_name} ({type(parameter).__name__})")
            key = f"{path}.{parameter.short_name}"
            values[parameter.short_name] = self._value(
                parameter.short_name, parameter.dop, hints, key, mask
            )
        return values

    def _value(
        self, name: str, dop: DopBase, hints: _Hints, key: str, mask: int | None
    ) -> ParameterValue:
        if isinstance(dop, DtcDop):
            if hints.dtc is not None:
                return hints.dtc
            if not dop.dtcs:
                raise _Unsupported(f"DTC DOP {dop.short_name} lists no DTC")
            return self.rng.choice(list(dop.dtcs)).trouble_code
        if isinstance(dop, Field):
            structure = dop.structure
            if _has_dtc(structure):
                records: list[ParameterValue] = []
                for code, status in self.dtcs.items():
                    if mask is None or status & mask:
                        record = _Hints(dtc=code, status=status)
                        records.append(self._values(structure, record, key, mask))
                return records
            count = max(1, dop.minimum_number_of_items)
            return [self._values(structure, hints, f"{key}[{i}]", mask) for i in range(count)]
        if isinstance(dop, BasicStructure):
            return self._values(dop, hints, key, mask)
        if isinstance(dop, DataObjectProperty):
            return self._simple(name, dop, hints, key)
        raise _Unsupported(f"DOP {dop.short_name} ({type(dop).__name__})")

    def _simple(self, name: str, dop: DataObjectProperty, hints: _Hints, key: str) -> AtomicOdxType:
        compu = dop.compu_method
        key_name = _key(name)
        if key_name.startswith("p2") and key_name.endswith("server"):
            # The session timing answered to 0x10: ISO 14229-2's defaults, as ecus.py does.
            return P2_STAR_SERVER_MS if "star" in key_name else P2_SERVER_MS
        internal = self._hinted(name, hints)
        if internal is not None:
            return compu.convert_internal_to_physical(internal)
        if isinstance(compu, TexttableCompuMethod):
            texts = _texts(compu)
            if not texts:
                raise _Unsupported(f"text table {dop.short_name} has no text")
            routine = hints.routine
            if routine is not None and any(w in _key(name) for w in ("state", "status")):
                for text in texts:
                    if _key(text) == routine.state:
                        return text
            return self.rng.choice(texts)
        physical = dop.physical_type.base_data_type
        coded = dop.diag_coded_type
        if physical in _STRING_TYPES or physical == DataType.A_BYTEFIELD:
            if key not in self._texts:
                self._texts[key] = self._text(name, coded, physical)
            return self._texts[key]
        if coded.base_data_type in (DataType.A_FLOAT32, DataType.A_FLOAT64):
            return round(self.rng.uniform(*_float_limits(dop)), 3)
        walk = self._walks.get(key)
        if walk is None:
            low, high = _internal_limits(dop)
            walk = self._walks[key] = _Walk(low, high, self.rng.randint(low, high))
        else:
            step = max(1, (walk.high - walk.low) // 40)
            walk.value = min(walk.high, max(walk.low, walk.value + self.rng.randint(-step, step)))
        return compu.convert_internal_to_physical(walk.value)

    def _hinted(self, name: str, hints: _Hints) -> int | None:
        """The internal value the ECU's state gives parameter ``name``, if any."""
        key = _key(name)
        if hints.status is not None:
            if key in _STATUS_BITS:
                return (hints.status >> _STATUS_BITS[key]) & 1
            if "status" in key and "mask" not in key:
                return hints.status
        if "availabilitymask" in key:
            return uds.ALL_DTC_STATUS_BITS
        if hints.routine is not None and "progress" in key:
            return hints.routine.progress
        return hints.session_id

    def _text(self, name: str, coded: object, physical: DataType) -> AtomicOdxType:
        size = _text_bytes(coded)
        if physical == DataType.A_BYTEFIELD:
            return bytes(self.rng.randrange(256) for _ in range(size))
        chars = size // 2 if _coded_type(coded) == DataType.A_UNICODE2STRING else size
        key = _key(name)
        if key == "vin" or "vehicleidentification" in key:
            return "".join(self.rng.choice(_VIN_CHARS) for _ in range(chars))
        if "version" in key:
            digits = [str(self.rng.randrange(10)) for _ in range(chars)]
            return "".join("." if i % 3 == 2 and i < chars - 1 else d for i, d in enumerate(digits))
        prefix = "".join(c for c in self.name.upper() if c.isalnum())[:3]
        if "serial" in key or "number" in key:
            body = "".join(str(self.rng.randrange(10)) for _ in range(chars))
        else:
            body = "".join(self.rng.choice(_TEXT_CHARS) for _ in range(chars))
        return (prefix + body)[:chars]

    # -- negative answers ------------------------------------------------------------------

    def _negative(self, service: DiagService | None, request: bytes, nrc: int) -> bytes:
        """``7F <sid> <nrc>``, encoded with the description's negative response when one
        encodes to that."""
        plain = bytes((uds.NEGATIVE_RESPONSE, request[0] if request else 0, nrc))
        candidates: list[Response] = [
            *(service.negative_responses if service is not None else ()),
            *self.spec.layer.global_negative_responses,
        ]
        for response in candidates:
            try:
                values: dict[str, ParameterValue] = {}
                for parameter in response.parameters:
                    if not parameter.is_required:
                        continue
                    if not (
                        isinstance(parameter, ParameterWithDOP)
                        and isinstance(parameter.dop, DataObjectProperty)
                    ):
                        raise _Unsupported(parameter.short_name)
                    values[parameter.short_name] = (
                        parameter.dop.compu_method.convert_internal_to_physical(nrc)
                    )
                encoded = bytes(response.encode(request, **values))
            except Exception:  # this one cannot say it: try the next, else the plain bytes
                log.debug("negative response does not encode", exc_info=True)
                continue
            if encoded[:3] == plain:
                return encoded
        return plain


# -- helpers ---------------------------------------------------------------------------------


def _subfunction(request: Request) -> bool:
    return any(
        isinstance(p, CodedConstParameter)
        and p.byte_position == 1
        and (p.semantic or "").upper() == "SUBFUNCTION"
        for p in request.parameters
    )


def _mask(decoded: Mapping[str, ParameterValue]) -> int | None:
    for name, value in decoded.items():
        if "mask" in _key(name) and isinstance(value, int):
            return value
    return None


def _has_dtc(structure: BasicStructure) -> bool:
    return any(_is_dtc(p) for p in structure.parameters)


def _is_dtc(parameter: Parameter) -> bool:
    return isinstance(parameter, ParameterWithDOP) and isinstance(parameter.dop, DtcDop)


def _texts(compu: TexttableCompuMethod) -> list[str]:
    table = compu.compu_internal_to_phys
    if table is None:
        return []
    return [
        scale.compu_const.vt
        for scale in table.compu_scales
        if scale.compu_const is not None and scale.compu_const.vt is not None
    ]


def _coded_type(coded: object) -> DataType | None:
    value = getattr(coded, "base_data_type", None)
    return value if isinstance(value, DataType) else None


def _text_bytes(coded: object) -> int:
    if isinstance(coded, StandardLengthType):
        return max(1, coded.bit_length // 8)
    if isinstance(coded, MinMaxLengthType):
        wanted = max(coded.min_length, _DEFAULT_TEXT_LENGTH)
        return wanted if coded.max_length is None else min(wanted, coded.max_length)
    if isinstance(coded, LeadingLengthInfoType):
        return min(_DEFAULT_TEXT_LENGTH, (1 << coded.bit_length) - 1)
    return _DEFAULT_TEXT_LENGTH


def _limit(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _internal_limits(dop: DataObjectProperty) -> tuple[int, int]:
    """The internal values a number of ``dop`` may take: the coded type's range, narrowed
    by the internal constraint, the compu scales' limits and the physical constraint."""
    coded = dop.diag_coded_type
    bits = coded.bit_length if isinstance(coded, StandardLengthType) else 32
    if coded.base_data_type == DataType.A_INT32:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1

    def narrow(lower: object, upper: object) -> None:
        nonlocal low, high
        lo, hi = _limit(lower), _limit(upper)
        if lo is not None and low <= lo <= high:
            low = int(-(-lo // 1))  # ceil
        if hi is not None and low <= hi <= high:
            high = int(hi // 1)

    constr = dop.internal_constr
    if constr is not None:
        narrow(
            constr.lower_limit.value if constr.lower_limit else None,
            constr.upper_limit.value if constr.upper_limit else None,
        )
    table = getattr(dop.compu_method, "compu_internal_to_phys", None)
    scales = getattr(table, "compu_scales", None) or []
    if len(scales) == 1:
        scale = scales[0]
        narrow(
            scale.lower_limit.value if scale.lower_limit else None,
            scale.upper_limit.value if scale.upper_limit else None,
        )
    physical = dop.physical_constr
    if physical is not None:
        ends: list[float] = []
        for limit in (physical.lower_limit, physical.upper_limit):
            value = _limit(limit.value) if limit is not None else None
            if value is None:
                continue
            try:
                internal = dop.compu_method.convert_physical_to_internal(value)
            except Exception:  # a compu method odxtools cannot invert: keep the range
                log.debug("physical limit not invertible", exc_info=True)
                continue
            converted = _limit(internal)
            if converted is not None:
                ends.append(converted)
        if len(ends) == 2:
            narrow(min(ends), max(ends))
    if low > high:
        low, high = high, low
    return low, high


def _float_limits(dop: DataObjectProperty) -> tuple[float, float]:
    constr = dop.physical_constr or dop.internal_constr
    low = high = None
    if constr is not None:
        low = _limit(constr.lower_limit.value) if constr.lower_limit else None
        high = _limit(constr.upper_limit.value) if constr.upper_limit else None
    return (low if low is not None else 0.0, high if high is not None else 100.0)
