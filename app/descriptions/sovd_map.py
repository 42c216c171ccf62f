"""The SOVD tree of one ECU description, by the mapping Eclipse OpenSOVD's Classic
Diagnostic Adapter (CDA) uses (docs/cda-mapping.md; issue #20 item 4): which ODX services
become data items, configurations, operations, modes and the fault memory, and how their
answers read. No I/O: odxtools objects in, frozen dataclasses out; the codec
(``app.descriptions.codec``) encodes requests and reads answers.

- ``data_items(layer)`` / ``find_data``: the 0x22 services, the affix stripped from the
  short name (``VINDataIdentifier_Read`` -> ``VINDataIdentifier``, case kept in the list
  as CDA does; lookups ignore case), with the 0x2E service of the same name to write it.
  ``configurations(layer)`` / ``find_configuration``: those of FUNCT-CLASS ``varcoding``.
- ``operations(layer)`` / ``find_operation``: the 0x31 services grouped under one id
  (``SelfTest_Start``/``_Stop``/``_RequestResults`` -> ``SelfTest``); asynchronous when
  a stop or request-results service exists.
- ``modes(layer)`` / ``find_mode``: ``session`` (0x10, ``Extended_Start`` ->
  ``extended``) and ``dtcsetting`` (0x85, ``DTC_Setting_Mode_Off`` -> ``off``).
- ``fault_services(layer)`` and ``decode_faults``: the 0x19 0x02 answer as CDA's faults
  (``code``, ``display_code``, ``fault_name``, ``severity``, the status bits), and, with
  the mask 0xFF or 0x00, every other DTC the description defines with status 0;
  ``encode_fault_request``: the 0x19 0x04 / 0x06 request for one DTC's environment data
  (read its answer with ``decode_answer``).
- ``preconditions`` / ``check_precondition``: the states of PRE-CONDITION-STATE-REFS and
  the message refusing a service whose state is not the current one.
- ``decode_answer`` / ``decode_read``, ``encode_write``, ``encode_execution``: through
  the codec (an unknown or ill-typed parameter is a ``CodecError`` naming it).

The layer-wide results (the data items, configurations, operations, modes, fault
services, known DTCs) and each service's request prefix are computed once per odxtools
object and kept while it lives (``_once``): they are immutable, and computing them is
tens of milliseconds of Python on the event loop for a layer of 500 services, on every
request otherwise (found in review).
"""

from __future__ import annotations

import re
import warnings
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, TypeVar

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.dtcdop import DtcDop
from odxtools.exceptions import OdxError
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.state import State
from odxtools.statechart import StateChart

from app.descriptions.codec import CodecError, Decoded, Encoded, LayerCodec

# -- the services' names and SIDs -----------------------------------------------------------

READ_DATA: Final = 0x22
WRITE_DATA: Final = 0x2E
ROUTINE_CONTROL: Final = 0x31
SESSION_CONTROL: Final = 0x10
CONTROL_DTC_SETTING: Final = 0x85
READ_DTC_INFORMATION: Final = 0x19
CLEAR_DTCS: Final = 0x14
REPORT_BY_STATUS_MASK: Final = 0x02
REPORT_SNAPSHOT_RECORD: Final = 0x04
REPORT_EXTENDED_DATA_RECORD: Final = 0x06

# CDA's default affixes of data services, in its order: the first that ends the name
# (ignoring case) is cut off.
DATA_SUFFIXES: Final = (
    "_read",
    "_write",
    "_read_dump",
    "_write_dump",
    "_dump",
    "_read_func",
    "_write_func",
    "_read_dump_func",
    "_write_dump_func",
    "_dump_func",
    "_control_func",
    "_control",
)
# CDA's routine affixes, cut before the data ones.
ROUTINE_SUFFIXES: Final = (
    "_start",
    "_stop",
    "_requestresults",
    "_start_func",
    "_stop_func",
    "_requestresults_func",
)
START, STOP, REQUEST_RESULTS = 0x01, 0x02, 0x03
SESSION_SUFFIX: Final = "_start"
DTC_SETTING_PREFIX: Final = "dtc_setting_mode_"
VARCODING: Final = "varcoding"
FAULTMEM: Final = "faultmem"
# A long name's action word, as in "Self test: Start" (not CDA's: its ids only).
_ACTION_WORD = re.compile(r"[\s:_-]+(start|stop|request[\s_]?results)$", re.IGNORECASE)
# ISO 14229-1 D.2, lowest bit first, as CDA's FaultStatus names them.
STATUS_BITS: Final = (
    "test_failed",
    "test_failed_this_operation_cycle",
    "pending_dtc",
    "confirmed_dtc",
    "test_not_completed_since_last_clear",
    "test_failed_since_last_clear",
    "test_not_completed_this_operation_cycle",
    "warning_indicator_requested",
)


def strip_suffix(name: str, suffixes: Iterable[str] = DATA_SUFFIXES) -> str:
    """``name`` without the first of ``suffixes`` that ends it (ignoring case)."""
    lowered = name.lower()
    for suffix in suffixes:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


K = TypeVar("K")
R = TypeVar("R")


def _once(compute: Callable[[K], R]) -> Callable[[K], R]:
    """``compute(obj)`` once per live object. odxtools' objects are unhashable
    (dataclasses with ``eq``), so they are keyed by identity and dropped, by a weak
    reference's callback, when the object goes (a removed description's layers)."""
    results: dict[int, tuple[weakref.ref[Any], R]] = {}

    def cached(obj: K) -> R:
        key = id(obj)
        held = results.get(key)
        if held is not None and held[0]() is obj:
            return held[1]
        value = compute(obj)
        results[key] = (weakref.ref(obj, lambda _: results.pop(key, None)), value)
        return value

    return cached


def diag_services(layer: DiagLayer) -> list[DiagService]:
    """The layer's diagnostic services, inherited ones included (no single-ECU jobs)."""
    return [s for s in layer.services if isinstance(s, DiagService)]


@_once
def request_prefix(service: DiagService) -> bytes:
    """The request's leading constant bytes: SID, sub-function, DID or routine id."""
    request = service.request
    if request is None:
        return b""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bytes(request.coded_const_prefix())
    except (OdxError, ValueError, TypeError, KeyError, IndexError):
        return b""


def sid(service: DiagService) -> int | None:
    prefix = request_prefix(service)
    return prefix[0] if prefix else None


def subfunction(service: DiagService) -> int | None:
    """The request's second constant byte without the suppress bit (0x7F mask, as CDA)."""
    prefix = request_prefix(service)
    return prefix[1] & 0x7F if len(prefix) > 1 else None


def _with_sid(layer: DiagLayer, wanted: int) -> list[DiagService]:
    return [s for s in diag_services(layer) if sid(s) == wanted]


def in_functional_class(service: DiagService, name: str) -> bool:
    """Whether one of the service's FUNCT-CLASSes is ``name`` (ignoring case)."""
    return any(fc.short_name.lower() == name.lower() for fc in service.functional_classes)


def _unit_of(service: DiagService) -> tuple[tuple[str, ...], str | None]:
    """The positive response's value parameters, and the first unit among their DOPs."""
    if not service.positive_responses:
        return (), None
    names: list[str] = []
    unit: str | None = None
    for parameter in service.positive_responses[0].parameters:
        if not isinstance(parameter, ValueParameter):
            continue
        names.append(parameter.short_name)
        dop = parameter.dop
        if unit is None and isinstance(dop, DataObjectProperty) and dop.unit is not None:
            unit = dop.unit.display_name or dop.unit.short_name
    return tuple(names), unit


# -- data and configurations (0x22, 0x2E) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class DataItem:
    """One entry of ``GET data`` (or of ``GET configurations``)."""

    id: str  # the short name without its affix, case kept: "VINDataIdentifier"
    name: str  # the LONG-NAME without its affix (the id without one)
    category: str  # the service's SEMANTIC attribute verbatim, "" without one (CDA)
    unit: str | None  # the value DOP's unit (not in CDA's list: an extra field)
    read: DiagService | None  # 0x22; None for a write-only configuration
    write: DiagService | None  # 0x2E of the same name, if any
    configuration: bool  # in FUNCT-CLASS varcoding (read or write)
    value_params: tuple[str, ...] = ()  # the read answer's value parameters

    @property
    def services(self) -> tuple[DiagService, ...]:
        return tuple(s for s in (self.read, self.write) if s is not None)

    @property
    def service_abstract(self) -> tuple[str, ...]:
        """CDA's ``x-sovd2uds-ServiceAbstract``: SID and DID of each service, in hex."""
        return tuple(request_prefix(s)[:3].hex().upper() for s in self.services)


def _item(read: DiagService | None, write: DiagService | None) -> DataItem:
    main = read if read is not None else write
    assert main is not None
    item_id = strip_suffix(main.short_name)
    value_params, unit = _unit_of(read) if read is not None else ((), None)
    return DataItem(
        id=item_id,
        name=strip_suffix(main.long_name) if main.long_name else item_id,
        category=main.semantic or "",
        unit=unit,
        read=read,
        write=write,
        configuration=any(in_functional_class(s, VARCODING) for s in (read, write) if s),
        value_params=value_params,
    )


def _writes(layer: DiagLayer) -> dict[str, DiagService]:
    found: dict[str, DiagService] = {}
    for service in _with_sid(layer, WRITE_DATA):
        found.setdefault(strip_suffix(service.short_name).lower(), service)
    return found


@_once
def data_items(layer: DiagLayer) -> tuple[DataItem, ...]:
    """Every 0x22 service as a data item, in the layer's order; varcoding ones too (CDA
    lists them under data as well). Two services with one id (``X_Read``, ``X_Read_Dump``):
    the first is the item, as CDA's lookup finds the first."""
    writes = _writes(layer)
    items: dict[str, DataItem] = {}
    for read in _with_sid(layer, READ_DATA):
        key = strip_suffix(read.short_name).lower()
        if key not in items:
            items[key] = _item(read, writes.get(key))
    return tuple(items.values())


@_once
def configurations(layer: DiagLayer) -> tuple[DataItem, ...]:
    """The varcoding data items (CDA: 0x22 and 0x2E services in FUNCT-CLASS varcoding,
    grouped by name), write-only ones included (``read`` None); () when there are none
    (CDA then answers 404)."""
    items = [item for item in data_items(layer) if item.configuration]
    known = {item.id.lower() for item in data_items(layer)}
    for key, write in _writes(layer).items():
        if key not in known and in_functional_class(write, VARCODING):
            items.append(_item(None, write))
    return tuple(items)


def _find(items: Iterable[DataItem], item_id: str) -> DataItem | None:
    wanted = item_id.lower()
    return next((item for item in items if item.id.lower() == wanted), None)


def find_data(layer: DiagLayer, item_id: str) -> DataItem | None:
    """The data item ``item_id``, ignoring case (CDA lowercases every request path)."""
    return _find(data_items(layer), item_id)


def find_configuration(layer: DiagLayer, item_id: str) -> DataItem | None:
    return _find(configurations(layer), item_id)


# -- operations (0x31) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """One routine: its 0x31 services grouped under one id."""

    id: str  # "SelfTest" (case kept; lookups ignore it)
    name: str  # the start's long name without the action word ("Self test")
    start: DiagService | None
    stop: DiagService | None
    request_results: DiagService | None

    @property
    def has_stop(self) -> bool:
        return self.stop is not None

    @property
    def has_request_results(self) -> bool:
        return self.request_results is not None

    @property
    def asynchronous_execution(self) -> bool:
        """CDA's rule: a routine with a stop or request-results service is asynchronous."""
        return self.has_stop or self.has_request_results


def _action(service: DiagService) -> int | None:
    """START, STOP or REQUEST_RESULTS: the sub-function, else the name's suffix."""
    code = subfunction(service)
    if code in (START, STOP, REQUEST_RESULTS):
        return code
    name = strip_suffix(service.short_name.lower(), ("_func",))
    for suffix, action in (
        ("_start", START),
        ("_stop", STOP),
        ("_requestresults", REQUEST_RESULTS),
    ):
        if name.endswith(suffix):
            return action
    return None


def _operation(op_id: str, services: list[DiagService]) -> Operation:
    by_action: dict[int | None, DiagService] = {}
    for service in services:
        by_action.setdefault(_action(service), service)
    main = by_action.get(START, services[0])
    name = op_id
    if main.long_name:
        name = _ACTION_WORD.sub("", strip_suffix(main.long_name, ROUTINE_SUFFIXES)) or op_id
    return Operation(
        id=op_id,
        name=name,
        start=by_action.get(START),
        stop=by_action.get(STOP),
        request_results=by_action.get(REQUEST_RESULTS),
    )


@_once
def operations(layer: DiagLayer) -> tuple[Operation, ...]:
    """The 0x31 services grouped by their name without the routine affix, then without
    the data affix (CDA's ``trim_routine_name``), in the layer's order."""
    groups: dict[str, tuple[str, list[DiagService]]] = {}
    for service in _with_sid(layer, ROUTINE_CONTROL):
        op_id = strip_suffix(strip_suffix(service.short_name, ROUTINE_SUFFIXES))
        groups.setdefault(op_id.lower(), (op_id, []))[1].append(service)
    return tuple(_operation(op_id, services) for op_id, services in groups.values())


def find_operation(layer: DiagLayer, op_id: str) -> Operation | None:
    wanted = op_id.lower()
    return next((op for op in operations(layer) if op.id.lower() == wanted), None)


# -- modes (0x10 session, 0x85 DTC setting) -------------------------------------------------


@dataclass(frozen=True, slots=True)
class ModeValue:
    value: str  # lowercased: "extended", "off"
    name: str  # case kept: "Extended", "Off"
    service: DiagService
    state: str | None = None  # the state the service moves to ("Extended"), if it says


@dataclass(frozen=True, slots=True)
class Mode:
    id: str  # "session" or "dtcsetting"
    name: str  # "Diagnostic session", "DTC setting" (CDA's names)
    values: tuple[ModeValue, ...]

    @property
    def possible_values(self) -> tuple[str, ...]:
        return tuple(v.value for v in self.values)

    def value(self, wanted: str) -> ModeValue | None:
        """The value ``wanted``, ignoring case."""
        return next((v for v in self.values if v.value == wanted.lower()), None)


def _target_state(service: DiagService) -> str | None:
    targets = {t.target_state.short_name for t in service.state_transitions}
    return targets.pop() if len(targets) == 1 else None


def _session_value(service: DiagService) -> ModeValue:
    name = service.short_name
    if name.lower().endswith(SESSION_SUFFIX) and len(name) > len(SESSION_SUFFIX):
        name = name[: -len(SESSION_SUFFIX)]
    return ModeValue(name.lower(), name, service, _target_state(service) or name)


def _dtc_setting_value(service: DiagService) -> ModeValue:
    name = service.short_name
    if name.lower().startswith(DTC_SETTING_PREFIX) and len(name) > len(DTC_SETTING_PREFIX):
        name = name[len(DTC_SETTING_PREFIX) :]
    return ModeValue(name.lower(), name, service)


def _unique(values: Iterable[ModeValue]) -> tuple[ModeValue, ...]:
    found: dict[str, ModeValue] = {}
    for value in values:
        found.setdefault(value.value, value)
    return tuple(found.values())


@_once
def modes(layer: DiagLayer) -> tuple[Mode, ...]:
    """``session`` and ``dtcsetting``, each only if the layer has such services."""
    found = []
    sessions = _unique(_session_value(s) for s in _with_sid(layer, SESSION_CONTROL))
    if sessions:
        found.append(Mode("session", "Diagnostic session", sessions))
    settings = _unique(_dtc_setting_value(s) for s in _with_sid(layer, CONTROL_DTC_SETTING))
    if settings:
        found.append(Mode("dtcsetting", "DTC setting", settings))
    return tuple(found)


def find_mode(layer: DiagLayer, mode_id: str) -> Mode | None:
    return next((m for m in modes(layer) if m.id == mode_id.lower()), None)


# -- preconditions (state charts) --------------------------------------------------------------


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


# -- faults (0x19, 0x14) ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FaultServices:
    report_by_status_mask: DiagService | None  # 0x19 0x02
    snapshots: DiagService | None  # 0x19 0x04
    extended_data: DiagService | None  # 0x19 0x06
    clear: DiagService | None  # 0x14 (FUNCT-CLASS FaultMem preferred, as CDA)


@_once
def fault_services(layer: DiagLayer) -> FaultServices:
    by_sub: dict[int, DiagService] = {}
    for service in _with_sid(layer, READ_DTC_INFORMATION):
        code = subfunction(service)
        if code is not None:
            by_sub.setdefault(code, service)
    clears = sorted(
        _with_sid(layer, CLEAR_DTCS), key=lambda s: not in_functional_class(s, FAULTMEM)
    )
    return FaultServices(
        report_by_status_mask=by_sub.get(REPORT_BY_STATUS_MASK),
        snapshots=by_sub.get(REPORT_SNAPSHOT_RECORD),
        extended_data=by_sub.get(REPORT_EXTENDED_DATA_RECORD),
        clear=clears[0] if clears else None,
    )


@dataclass(frozen=True, slots=True)
class FaultStatus:
    """A DTC status byte (ISO 14229-1 D.2) with CDA's names for its bits."""

    mask: int

    def bit(self, name: str) -> bool:
        return bool(self.mask & (1 << STATUS_BITS.index(name)))

    def as_dict(self) -> dict[str, Any]:
        """CDA's ``status``: each bit by its snake_case name, ``mask`` as 2 hex digits."""
        bits: dict[str, Any] = {name: self.bit(name) for name in STATUS_BITS}
        bits["mask"] = f"{self.mask:02X}"
        return bits


@dataclass(frozen=True, slots=True)
class Fault:
    trouble_code: int
    display_code: str | None  # DISPLAY-TROUBLE-CODE; None where the description has none
    fault_name: str | None  # the DTC's TEXT; None for a DTC the description lacks
    severity: int  # the DTC's LEVEL, 0 without one (CDA)
    status: FaultStatus
    scope: str = "FaultMem"

    @property
    def code(self) -> str:
        """The trouble code as 6 upper-case hex digits: ``"017100"``."""
        return f"{self.trouble_code:06X}"

    def as_dict(self) -> dict[str, Any]:
        """CDA's Fault: ``display_code`` left out when there is none."""
        fault: dict[str, Any] = {"code": self.code, "scope": self.scope}
        if self.display_code is not None:
            fault["display_code"] = self.display_code
        fault["fault_name"] = self.fault_name
        fault["severity"] = self.severity
        fault["status"] = self.status.as_dict()
        return fault


def _fault(dtc: DiagnosticTroubleCode, status: int) -> Fault:
    return Fault(
        trouble_code=dtc.trouble_code,
        display_code=dtc.display_trouble_code or None,
        fault_name=dtc.text.text if dtc.text is not None else None,
        severity=dtc.level if dtc.level is not None else 0,
        status=FaultStatus(status),
    )


def _undescribed(trouble_code: int, status: int) -> Fault:
    """A DTC the description does not define: its code and status, nothing else."""
    return Fault(trouble_code, None, None, 0, FaultStatus(status))


@_once
def known_dtcs(layer: DiagLayer) -> tuple[DiagnosticTroubleCode, ...]:
    """Every DTC the layer's DTC DOPs define, in their order."""
    return tuple(dtc for dop in layer.diag_data_dictionary_spec.dtc_dops for dtc in dop.dtcs)


def _normal(name: str) -> str:
    return name.replace("_", "").lower()


_BIT_BY_NORMAL: Final = {_normal(name): i for i, name in enumerate(STATUS_BITS)}


def _status_of(record: Mapping[str, Any]) -> int | None:
    """The status byte of a decoded record: its eight bit parameters (true/1), or one
    integer parameter whose name says status."""
    status, bits = 0, 0
    for name, value in record.items():
        index = _BIT_BY_NORMAL.get(_normal(name))
        if index is not None:
            bits += 1
            if value in (True, 1, "true", "1"):
                status |= 1 << index
    if bits:
        return status
    for name, value in record.items():
        if "status" in name.lower() and isinstance(value, int) and not isinstance(value, bool):
            return value & 0xFF
    return None


def _records(params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The DTC records of a decoded 0x19 0x02 answer: the list of structures in it."""
    for value in params.values():
        if isinstance(value, list) and all(isinstance(r, dict) for r in value):
            return value
    return []


def _by_description(service: DiagService, answer: bytes) -> list[Fault]:
    """The records as the response's structures say, OdxError if they do not decode
    (odxtools refuses a DTC its DOP does not list)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        message = service.decode_message(answer)
    found = []
    for index, record in enumerate(_records(message.param_dict)):
        dtc = next((v for v in record.values() if isinstance(v, DiagnosticTroubleCode)), None)
        status = _status_of(record)
        offset = 3 + 4 * index + 3  # ISO 14229-1: DTC (3 bytes) and status, after 59 02 mask
        if status is None and offset < len(answer):
            status = answer[offset]
        if dtc is None or status is None:
            raise CodecError(
                f"the answer to {service.short_name}: record {index} has no DTC", "answer"
            )
        found.append(_fault(dtc, status))
    return found


def _by_iso_layout(layer: DiagLayer, answer: bytes) -> list[Fault]:
    """The records by ISO 14229-1's layout (59 02 mask, then DTC (3 bytes) and status
    per record), each DTC looked up in the DTC DOPs: for an answer holding a DTC the
    description lacks."""
    known = {dtc.trouble_code: dtc for dtc in known_dtcs(layer)}
    found = []
    for offset in range(3, len(answer), 4):
        code, status = int.from_bytes(answer[offset : offset + 3], "big"), answer[offset + 3]
        dtc = known.get(code)
        found.append(_fault(dtc, status) if dtc is not None else _undescribed(code, status))
    return found


def _decode_report(layer: DiagLayer, service: DiagService, answer: bytes) -> list[Fault]:
    where = f"the answer to {service.short_name}"
    if len(answer) < 3 or answer[:2] != bytes((READ_DTC_INFORMATION + 0x40, 0x02)):
        raise CodecError(f"{where} is not a positive 0x19 0x02 answer", "answer")
    try:
        return _by_description(service, answer)
    except (OdxError, ValueError, IndexError, KeyError, TypeError) as exc:
        if (len(answer) - 3) % 4 == 0:
            return _by_iso_layout(layer, answer)
        raise CodecError(f"{where} does not decode: {exc}", "answer") from None


def _record_names(service: DiagService) -> tuple[str, str, str]:
    """The positive response's names for the availability mask (byte 2), the records
    (byte 3) and a record's DTC, else ISO 14229-1's."""
    mask, records, dtc = "DTCStatusAvailabilityMask", "DTCAndStatusRecord", "DTC"
    response = service.positive_responses[0] if service.positive_responses else None
    for parameter in response.parameters if response is not None else ():
        if parameter.byte_position == 2 and isinstance(parameter, ValueParameter):
            mask = parameter.short_name
        elif parameter.byte_position == 3 and isinstance(parameter, ValueParameter):
            records = parameter.short_name
            structure = getattr(parameter.dop, "structure", None)
            for inner in getattr(structure, "parameters", ()):
                if isinstance(inner, ValueParameter) and isinstance(inner.dop, DtcDop):
                    dtc = inner.short_name
    return mask, records, dtc


def _iso_report(layer: DiagLayer, service: DiagService) -> Callable[[bytes], Decoded]:
    """A 0x19 0x02 answer read by ISO 14229-1's layout, for DiagService (the answer
    holds a DTC the description lacks, so odxtools refuses it): ``{<mask>: n,
    <records>: [{<DTC>: {"code", "troubleCode", "text", "level"}, "statusOfDTC": n}]}``
    in the response's names; a DTC the description lacks has its code in hex and no
    text or level. ValueError (CodecError) for an answer of another layout."""
    mask, records, dtc_name = _record_names(service)

    def read(answer: bytes) -> Decoded:
        if (
            len(answer) < 3
            or answer[:2] != bytes((READ_DTC_INFORMATION + 0x40, REPORT_BY_STATUS_MASK))
            or (len(answer) - 3) % 4
        ):
            raise CodecError(f"the answer to {service.short_name} is not ISO 14229-1's layout")
        found = []
        for fault in _by_iso_layout(layer, answer):
            dtc = {
                "code": fault.display_code or fault.code,
                "troubleCode": f"0x{fault.code}",
                "text": fault.fault_name,
                "level": fault.severity if fault.fault_name is not None else None,
            }
            found.append({dtc_name: dtc, "statusOfDTC": fault.status.mask})
        return Decoded(parameters={mask: answer[2], records: found})

    return read


def with_fallback(layer: DiagLayer, encoded: Encoded) -> Encoded:
    """``encoded`` reading its answer by ISO 14229-1's layout when the description
    cannot (a 0x19 0x02 request: a reported DTC the DTC DOP lacks); others unchanged."""
    if encoded.payload[:2] != bytes((READ_DTC_INFORMATION, REPORT_BY_STATUS_MASK)):
        return encoded
    return replace(encoded, fallback=_iso_report(layer, encoded.service))


def decode_faults(
    layer: DiagLayer,
    answer: bytes,
    *,
    mask: int = 0xFF,
    service: DiagService | None = None,
) -> tuple[Fault, ...]:
    """The faults of a positive 0x19 0x02 answer (to ``service``, by default the layer's
    report-by-status-mask service), decoded with the DTC DOP, in the answer's order;
    with the request ``mask`` 0xFF or 0x00 followed by every other DTC the description
    defines, with status 0 (CDA: ``GET faults`` lists all known DTCs). A reported DTC
    the description lacks: its code and status only. CodecError for an answer that is
    not one."""
    service = service or fault_services(layer).report_by_status_mask
    if service is None:
        raise CodecError(f"{layer.short_name} has no 0x19 0x02 service", "service")
    faults = _decode_report(layer, service, answer)
    if mask in (0x00, 0xFF):
        reported = {fault.trouble_code for fault in faults}
        for dtc in known_dtcs(layer):
            if dtc.trouble_code not in reported:
                reported.add(dtc.trouble_code)
                faults.append(_fault(dtc, 0))
    return tuple(faults)


# -- encoding requests, reading answers (the codec) ----------------------------------------


def _codec(layer: DiagLayer) -> LayerCodec:
    return LayerCodec(layer, layer.short_name)


def decode_answer(service: DiagService, answer: bytes) -> Decoded:
    """Any answer to ``service`` read by the description (codec.py's ``Encoded.decode``):
    a positive one's value parameters by short name, physical (numbers scaled, text
    tables as their texts) with their units; a negative one's NRC and the description's
    name for it. CodecError for an answer that is neither."""
    return Encoded(service.short_name, request_prefix(service), service).decode(answer)


def decode_read(item: DataItem, answer: bytes) -> Decoded:
    """The answer to the data item's read: ``Decoded.parameters`` is CDA's ``data``."""
    if item.read is None:
        raise CodecError(f"{item.id} cannot be read (no 0x22 service)", "service")
    return decode_answer(item.read, answer)


def encode_write(layer: DiagLayer, item: DataItem, data: Mapping[str, object]) -> Encoded:
    """The 0x2E request writing ``data`` (``{param short name: physical value}``);
    CodecError naming an unknown or ill-typed parameter, or for an item without one."""
    if item.write is None:
        raise CodecError(f"{item.id} cannot be written (no 0x2E service)", "service")
    return _codec(layer).encode(item.write.short_name, data)


def encode_execution(
    layer: DiagLayer, service: DiagService, parameters: Mapping[str, object]
) -> Encoded:
    """An execution's request (its start, stop or request-results service) from the POST
    body's ``parameters``; CodecError naming an unknown or ill-typed parameter."""
    return _codec(layer).encode(service.short_name, parameters)


def fault_request_params(
    service: DiagService, trouble_code: int, record: int = 0xFF
) -> dict[str, object] | None:
    """The parameters of a 0x19 0x04 (snapshots) or 0x19 0x06 (extended data) request for
    one DTC, as CDA sends it (``19 04 <dtc> FF``): its settable parameters by their place
    in ISO 14229-1's layout, the DTC at byte 2, the record number at byte 5. None for a
    service of another layout."""
    request = service.request
    settable = [p for p in request.parameters if p.is_settable] if request is not None else []
    values: dict[str, object] = {}
    for parameter in settable:
        if parameter.byte_position == 2:
            values[parameter.short_name] = trouble_code
        elif parameter.byte_position == 5:
            values[parameter.short_name] = record
    return values if len(values) == 2 else None


def encode_fault_request(
    layer: DiagLayer, service: DiagService, trouble_code: int, record: int = 0xFF
) -> Encoded:
    """That request encoded (``fault_request_params``); CodecError for a service of
    another layout or a DTC the DTC DOP does not list."""
    values = fault_request_params(service, trouble_code, record)
    if values is None:
        raise CodecError(f"{service.short_name} does not take a DTC and a record number", "service")
    return _codec(layer).encode(service.short_name, values)
