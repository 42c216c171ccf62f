"""The built-in ECUs as an ODX description (ASAM MCD-2D, ISO 22901): a PDX built with odxtools.

Two layers of API:

- ``build_pdx(spec)``: any small set of ECUs, declared with the frozen dataclasses below
  (``PdxSpec`` of ``PdxEcu``, each with ``PdxDid`` / ``PdxDtc`` / ``PdxRoutine`` /
  ``PdxSession``), becomes the bytes of one PDX file. Tests use it for a custom
  description (one ECU with one DID, say).
- ``build_demo_pdx()``: the four demo ECUs (engine, transmission, abs, body) from the
  project's own source of truth, ``app.vehicles.description`` (data items, operations,
  fault names and severities), ``app.vehicles.emulator.ecus`` (DTCs, routines, sessions)
  and ``app.vehicles.uds`` (the DID codecs: sizes, scaling, units, value tables).
  ``demo_spec()`` is that spec; names are the SOVD ids in PascalCase (``pascal_name``:
  ``VIN_Read``, ``EngineRpm_Read``, ``SelfTest_Start``, ``BrakeBleedCheck_Start``). A
  routine whose start runs it to its end (the brake bleed check) has no ``_Stop``.
  Built from those modules at call time, so it follows them when they change.

What one ECU becomes: a diag layer container named like the ECU (``ENGINE``,
``TRANSMISSION``, ``ABS``, ``BODY``: ``PdxEcu.short_name``) holding one base variant of
the same name. The variant has, following the naming the Eclipse OpenSOVD classic
diagnostic adapter (CDA) uses:

- a state chart ``Session`` (semantic ``SESSION``) with one state per session
  (``Default`` 0x01, ``Extended`` 0x03), start state ``Default``, a transition between
  every two states (``Default_Extended`` ...), and per session the service
  ``<State>_Start`` (0x10 <id>), which references the transitions into its state;
- per DID ``<Name>_Read`` (0x22 <did>), its value in the parameter ``<Name>`` with a DOP
  ``<Name>`` (ASCII text, a number scaled ``raw * scale + offset`` with its unit, or a
  text table);
- ``FaultMem_ReportDTCByStatusMask`` (0x19 0x02 <mask>): the answer's records are an
  end-of-PDU field of ``DTCAndStatusRecord`` structures, each a ``DTC`` (the DTC DOP
  ``DTC`` listing the ECU's DTCs: trouble code, display code, text, level) and the
  eight status bits (``testFailed`` ... ``warningIndicatorRequested``);
- ``FaultMem_ClearDTCs`` (0x14 <group>, the group defaults to all, 0xFFFFFF);
- per routine ``<Name>_Start`` / ``<Name>_Stop`` / ``<Name>_RequestResults`` (0x31
  0x01/0x02/0x03 <id>), each answered with the routine id and the project's status
  record (``RoutineState``: running/completed/stopped/failed, ``Progress`` in %);
- one negative response ``NR_Generic`` (0x7F, the request's SID, ``NRC`` with the
  ISO 14229-1 names) on every service;
- PRE-CONDITION-STATE-REFS to the ``Session`` states a service needs (the ECU answers
  it only in those sessions): the body's routines and ClearDTC, the abs brake bleed
  check need ``Extended``;
- functional classes ``IdentData`` / ``CurrentData`` / ``SysInfo`` (the DIDs, as
  ``DataCategory``), ``Session``, ``FaultMem`` and ``Routines``;
- optional, none of them in the demo ECUs: per writable DID ``<Name>_Write`` (0x2E <did>
  <value>, answered 6E <did>; a DID of functional class ``VarCoding`` is a SOVD
  configuration), ``DTC_Setting_Mode_<Name>`` (0x85 <type>, FUNCT-CLASS ``DtcSetting``),
  and the environment data of one DTC: ``FaultMem_ReportDTCSnapshotRecordByDTCNumber``
  (19 04 <dtc> <record>) and ``FaultMem_ReportDTCExtDataRecordByDTCNumber`` (19 06);
- the ECU's logical address as a special data group (``SDG`` semantic ``ECU``, value
  semantic ``LOGICAL-ADDRESS``, ``0x10``).

No protocol layer: odxtools does not need one to encode or decode, and one (CDA's share
``UDS_Ethernet_DoIP``) needs the DoIP/UDS comparam subsets and spec, which this module
does not invent.

Determinism: odxtools' ``write_pdx_file`` stamps the current time on the index's
CREATION-DATE attributes and on the zip entries; the file it writes is repacked with a
fixed date (``PDX_DATE``) on both, so the same spec gives byte-identical bytes.
"""

from __future__ import annotations

import functools
import io
import re
import tempfile
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from odxtools.admindata import AdminData
from odxtools.compumethods.compucategory import CompuCategory
from odxtools.compumethods.compuconst import CompuConst
from odxtools.compumethods.compuinternaltophys import CompuInternalToPhys
from odxtools.compumethods.compumethod import CompuMethod
from odxtools.compumethods.compurationalcoeffs import CompuRationalCoeffs
from odxtools.compumethods.compuscale import CompuScale
from odxtools.compumethods.identicalcompumethod import IdenticalCompuMethod
from odxtools.compumethods.limit import Limit
from odxtools.compumethods.linearcompumethod import LinearCompuMethod
from odxtools.compumethods.texttablecompumethod import TexttableCompuMethod
from odxtools.database import Database
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diagcodedtype import DiagCodedType
from odxtools.diagdatadictionaryspec import DiagDataDictionarySpec
from odxtools.diaglayercontainer import DiagLayerContainer
from odxtools.diaglayers.basevariant import BaseVariant
from odxtools.diaglayers.basevariantraw import BaseVariantRaw
from odxtools.diaglayers.diaglayertype import DiagLayerType
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.docrevision import DocRevision
from odxtools.dtcdop import DtcDop
from odxtools.endofpdufield import EndOfPduField
from odxtools.functionalclass import FunctionalClass
from odxtools.minmaxlengthtype import MinMaxLengthType
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import DocType, OdxDocFragment, OdxLinkId, OdxLinkRef
from odxtools.odxtypes import DataType
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.matchingrequestparameter import MatchingRequestParameter
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.physicaltype import PhysicalType
from odxtools.preconditionstateref import PreConditionStateRef
from odxtools.request import Request
from odxtools.response import Response, ResponseType
from odxtools.specialdata import SpecialData
from odxtools.specialdatagroup import SpecialDataGroup
from odxtools.standardlengthtype import StandardLengthType
from odxtools.state import State
from odxtools.statechart import StateChart
from odxtools.statetransition import StateTransition
from odxtools.statetransitionref import StateTransitionRef
from odxtools.structure import Structure
from odxtools.termination import Termination
from odxtools.text import Text
from odxtools.unit import Unit
from odxtools.unitspec import UnitSpec
from odxtools.writepdxfile import write_pdx_file

from app.vehicles import description, uds
from app.vehicles.emulator import ecus

# -- the spec ----------------------------------------------------------------------------

# ODX SHORT-NAMEs: letters, digits and underscores.
_SHORT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ROUTINE_ACTIONS: Final[dict[str, int]] = {"Start": 0x01, "Stop": 0x02, "RequestResults": 0x03}


def _check_short_name(name: str, what: str) -> None:
    if not _SHORT_NAME.match(name):
        raise ValueError(f"{what} {name!r} is not an ODX short name (letters, digits, _)")


@dataclass(frozen=True, slots=True)
class PdxSession:
    """A diagnostic session: a state of the ``Session`` chart and its ``<name>_Start``."""

    name: str  # the state's short name: "Default", "Extended"
    id: int  # the 0x10 subfunction

    def __post_init__(self) -> None:
        _check_short_name(self.name, "session")
        if not 0 < self.id < 0x80:
            raise ValueError(f"session id 0x{self.id:02X} is not a 0x10 subfunction")


DEFAULT: Final = PdxSession("Default", uds.DEFAULT_SESSION)
EXTENDED: Final = PdxSession("Extended", uds.EXTENDED_SESSION)


@dataclass(frozen=True, slots=True)
class PdxDid:
    """A data identifier read with 0x22, encoded as ``app.vehicles.uds.DidCodec`` does.

    ``text``: ASCII, ``size`` bytes (None: to the end of the answer). ``names``: one
    byte, a text table (raw -> name). Otherwise an unsigned big-endian number of
    ``size`` bytes (1 when None), ``physical = raw * scale + offset`` in ``unit``.
    """

    did: int
    name: str  # the service is ``<name>_Read``, its value parameter ``<name>``
    long_name: str | None = None
    size: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str | None = None
    text: bool = False
    names: tuple[tuple[int, str], ...] = ()
    # Its services' functional class: "IdentData", "CurrentData", ...; "VarCoding" (any
    # case) makes it a SOVD configuration (CDA's varcoding). None: "Data".
    category: str | None = None
    sessions: tuple[str, ...] = ()  # states it needs (any of them); (): any session
    writable: bool = False  # also ``<name>_Write`` (0x2E <did> <value>), answered 6E <did>

    def __post_init__(self) -> None:
        _check_short_name(self.name, "DID name")
        if not 0 <= self.did <= 0xFFFF:
            raise ValueError(f"DID 0x{self.did:X} does not fit two bytes")
        if self.size is not None and self.size < 1:
            raise ValueError(f"{self.name}: size must be at least 1 byte")
        if self.scale == 0:
            raise ValueError(f"{self.name}: scale must not be 0")

    @classmethod
    def from_codec(
        cls,
        codec: uds.DidCodec,
        name: str,
        long_name: str | None = None,
        category: str | None = None,
    ) -> PdxDid:
        """The DID as the project's codec encodes it."""
        return cls(
            did=codec.did,
            name=name,
            long_name=long_name,
            size=codec.size,
            scale=codec.scale,
            offset=codec.offset,
            unit=codec.unit,
            text=codec.text,
            names=codec.names,
            category=category,
        )


@dataclass(frozen=True, slots=True)
class PdxDtc:
    """A DTC the ECU may report: its SAE display code (``P0171``), the failure type byte
    (the trouble code is ``uds.dtc_number(code, ftb)``), its text and level (1 most
    severe .. 4)."""

    code: str
    text: str
    level: int | None = None
    ftb: int = 0

    def __post_init__(self) -> None:
        uds.dtc_number(self.code, self.ftb)  # ValueError for a code that is not one

    @property
    def trouble_code(self) -> int:
        return uds.dtc_number(self.code, self.ftb)


@dataclass(frozen=True, slots=True)
class PdxRoutine:
    """A routine (0x31): a service ``<name>_<action>`` per action, each answered with the
    routine id and the status record of ``app.vehicles.uds.RoutineStatus``."""

    routine_id: int
    name: str  # "SelfTest"
    long_name: str | None = None
    actions: tuple[str, ...] = ("Start", "Stop", "RequestResults")
    sessions: tuple[str, ...] = ()  # states it needs (any of them); (): any session

    def __post_init__(self) -> None:
        _check_short_name(self.name, "routine name")
        if not 0 <= self.routine_id <= 0xFFFF:
            raise ValueError(f"routine id 0x{self.routine_id:X} does not fit two bytes")
        unknown = set(self.actions) - set(ROUTINE_ACTIONS)
        if unknown or not self.actions:
            raise ValueError(f"{self.name}: actions are some of {', '.join(ROUTINE_ACTIONS)}")


# The DTC settings of ISO 14229-1 (0x85 0x01 / 0x02): ``DTC_Setting_Mode_On`` / ``_Off``.
DTC_SETTING_ON_OFF: Final = (("On", 0x01), ("Off", 0x02))


@dataclass(frozen=True, slots=True)
class PdxEcu:
    """One ECU: a diag layer container and its base variant, both named ``short_name``."""

    short_name: str  # "ENGINE"
    long_name: str | None = None
    logical_address: int | None = None
    sessions: tuple[PdxSession, ...] = (DEFAULT, EXTENDED)
    dids: tuple[PdxDid, ...] = ()
    dtcs: tuple[PdxDtc, ...] = ()
    routines: tuple[PdxRoutine, ...] = ()
    clear_sessions: tuple[str, ...] = ()  # states ClearDTC needs (any of them); (): any
    fault_memory: bool = True  # the 0x19 0x02 and 0x14 services
    # ``DTC_Setting_Mode_<name>`` (0x85 <type>) per (name, type), answered C5 <type>:
    # ``DTC_SETTING_ON_OFF`` and any extra values (CDA's TimeTravelDTCsOn 0x42, say).
    dtc_settings: tuple[tuple[str, int], ...] = ()
    # ``FaultMem_ReportDTCSnapshotRecordByDTCNumber`` (19 04 <dtc> <record>) and
    # ``FaultMem_ReportDTCExtDataRecordByDTCNumber`` (19 06 <dtc> <record>); with the
    # fault memory only.
    snapshots: bool = False
    extended_data: bool = False

    def __post_init__(self) -> None:
        _check_short_name(self.short_name, "ECU short name")
        if not self.sessions:
            raise ValueError(f"{self.short_name}: an ECU has at least one session")
        states = {s.name for s in self.sessions}
        for what, names in (
            ("sessions", [s.name for s in self.sessions]),
            ("DIDs", [d.name for d in self.dids]),
            ("DID ids", [f"{d.did}" for d in self.dids]),
            ("DTCs", [d.code for d in self.dtcs]),
            ("routines", [r.name for r in self.routines]),
            ("DTC settings", [n for n, _ in self.dtc_settings]),
            ("DTC setting types", [f"{t}" for _, t in self.dtc_settings]),
        ):
            if len(set(names)) != len(names):
                raise ValueError(f"{self.short_name}: {what} must be unique")
        needed = [
            *self.clear_sessions,
            *(s for did in self.dids for s in did.sessions),
            *(s for routine in self.routines for s in routine.sessions),
        ]
        unknown = sorted(set(needed) - states)
        if unknown:
            raise ValueError(f"{self.short_name}: no session named {', '.join(unknown)}")
        for name, kind in self.dtc_settings:
            _check_short_name(name, "DTC setting")
            if not 0 < kind < 0x80:
                raise ValueError(f"DTC setting type 0x{kind:02X} is not a 0x85 subfunction")
        if (self.snapshots or self.extended_data) and not self.fault_memory:
            raise ValueError(f"{self.short_name}: snapshots and extended data need fault_memory")


@dataclass(frozen=True, slots=True)
class PdxSpec:
    """A whole description: its ECUs, and what the PDX's catalogue is called."""

    ecus: tuple[PdxEcu, ...]
    name: str = "SOVD_DEMO"
    revision: str = "1.0"
    date: str = "2024-01-01T00:00:00+00:00"  # the doc revision's date (fixed: deterministic)

    def __post_init__(self) -> None:
        _check_short_name(self.name, "PDX name")
        names = [ecu.short_name for ecu in self.ecus]
        if not names or len(set(names)) != len(names):
            raise ValueError("a PDX spec has at least one ECU, with unique short names")


# -- building ------------------------------------------------------------------------------

# The zip entries' and the index's dates: fixed, so the bytes only depend on the spec.
PDX_DATE: Final = (2024, 1, 1, 0, 0, 0)
_INDEX_DATE: Final = "2024-01-01T00:00:00"
_CREATION_DATE = re.compile(rb'CREATION-DATE="[^"]*"')

_SESSION_CHART: Final = "Session"
_STATUS_BITS: Final = uds.DTC_STATUS_BITS


def _uint(bits: int) -> StandardLengthType:
    return StandardLengthType(base_data_type=DataType.A_UINT32, bit_length=bits)


def _identical(internal: DataType, physical: DataType) -> CompuMethod:
    return IdenticalCompuMethod(
        category=CompuCategory.IDENTICAL, internal_type=internal, physical_type=physical
    )


def _texttable(table: Iterable[tuple[int, str]]) -> CompuMethod:
    return TexttableCompuMethod(
        category=CompuCategory.TEXTTABLE,
        compu_internal_to_phys=CompuInternalToPhys(
            compu_scales=[
                CompuScale(
                    lower_limit=Limit(value_raw=str(raw), value_type=DataType.A_UINT32),
                    upper_limit=Limit(value_raw=str(raw), value_type=DataType.A_UINT32),
                    compu_const=CompuConst(vt=name, data_type=DataType.A_UNICODE2STRING),
                    domain_type=DataType.A_UINT32,
                    range_type=DataType.A_UNICODE2STRING,
                )
                for raw, name in table
            ]
        ),
        internal_type=DataType.A_UINT32,
        physical_type=DataType.A_UNICODE2STRING,
    )


def _unit_short_name(unit: str) -> str:
    name = unit.replace("/", "_per_").replace("%", "percent")
    return re.sub(r"[^A-Za-z0-9_]", "_", name)


class _Layer:
    """Collects one base variant's parts while its services are added."""

    def __init__(self, ecu: PdxEcu) -> None:
        self.ecu = ecu
        self.name = ecu.short_name
        self.docs = (OdxDocFragment(ecu.short_name, DocType.CONTAINER),)
        self.requests: list[Request] = []
        self.positive: list[Response] = []
        self.negative: list[Response] = []
        self.services: list[DiagService] = []
        self.dops: list[DataObjectProperty] = []
        self.dtc_dops: list[DtcDop] = []
        self.structures: list[Structure] = []
        self.eopf: list[EndOfPduField] = []
        self.units: dict[str, Unit] = {}
        self.classes: dict[str, FunctionalClass] = {}
        self.charts: list[StateChart] = []

    def id(self, kind: str, name: str) -> OdxLinkId:
        return OdxLinkId(f"{self.name}.{kind}.{name}", self.docs)

    def ref(self, kind: str, name: str) -> OdxLinkRef:
        return OdxLinkRef.from_id(self.id(kind, name))

    def functional_class(self, name: str) -> OdxLinkRef:
        if name not in self.classes:
            _check_short_name(name, "functional class")
            self.classes[name] = FunctionalClass(odx_id=self.id("FNC", name), short_name=name)
        return OdxLinkRef.from_id(self.classes[name].odx_id)

    def unit(self, display: str) -> OdxLinkRef:
        short = _unit_short_name(display)
        if short not in self.units:
            self.units[short] = Unit(
                odx_id=self.id("UNIT", short), short_name=short, display_name=display
            )
        return OdxLinkRef.from_id(self.units[short].odx_id)

    def dop(
        self,
        name: str,
        coded: DiagCodedType,
        physical: DataType,
        compu: CompuMethod,
        unit: str | None = None,
    ) -> OdxLinkRef:
        self.dops.append(
            DataObjectProperty(
                odx_id=self.id("DOP", name),
                short_name=name,
                diag_coded_type=coded,
                physical_type=PhysicalType(base_data_type=physical),
                compu_method=compu,
                unit_ref=self.unit(unit) if unit is not None else None,
            )
        )
        return self.ref("DOP", name)

    def state_refs(self, states: Sequence[str]) -> list[PreConditionStateRef]:
        return [
            PreConditionStateRef(
                ref_id=f"{self.name}.SC.{_SESSION_CHART}.ST.{state}", ref_docs=self.docs
            )
            for state in states
        ]

    def service(
        self,
        name: str,
        request: list[Parameter],
        response: list[Parameter],
        functional_class: str,
        *,
        long_name: str | None = None,
        sessions: Sequence[str] = (),
        transitions: Sequence[str] = (),
    ) -> None:
        self.requests.append(
            Request(
                odx_id=self.id("RQ", f"RQ_{name}"),
                short_name=f"RQ_{name}",
                parameters=NamedItemList(request),
            )
        )
        self.positive.append(
            Response(
                odx_id=self.id("PR", f"PR_{name}"),
                short_name=f"PR_{name}",
                response_type=ResponseType.POSITIVE,
                parameters=NamedItemList(response),
            )
        )
        self.services.append(
            DiagService(
                odx_id=self.id("DC", name),
                short_name=name,
                long_name=long_name,
                functional_class_refs=[self.functional_class(functional_class)],
                request_ref=self.ref("RQ", f"RQ_{name}"),
                pos_response_refs=[self.ref("PR", f"PR_{name}")],
                neg_response_refs=[self.ref("NR", "NR_Generic")],
                pre_condition_state_refs=self.state_refs(sessions),
                state_transition_refs=[
                    StateTransitionRef(
                        ref_id=f"{self.name}.SC.{_SESSION_CHART}.STT.{t}", ref_docs=self.docs
                    )
                    for t in transitions
                ],
            )
        )


def _const(
    name: str, value: int, position: int, bits: int = 8, semantic: str = "DATA"
) -> Parameter:
    return CodedConstParameter(
        short_name=name,
        semantic=semantic,
        byte_position=position,
        coded_value_raw=str(value),
        diag_coded_type=_uint(bits),
    )


def _sid_rq(sid: int) -> Parameter:
    return _const("SID_RQ", sid, 0, semantic="SERVICE-ID")


def _sid_pr(sid: int) -> Parameter:
    return _const("SID_PR", sid + uds.POSITIVE_OFFSET, 0, semantic="SERVICE-ID")


def _value(name: str, dop: OdxLinkRef, position: int, default: str | None = None) -> Parameter:
    return ValueParameter(
        short_name=name,
        semantic="DATA",
        byte_position=position,
        dop_ref=dop,
        physical_default_value_raw=default,
    )


def _add_negative_response(layer: _Layer) -> None:
    nrc = layer.dop("NRC", _uint(8), DataType.A_UNICODE2STRING, _texttable(uds.NRC_NAMES.items()))
    layer.negative.append(
        Response(
            odx_id=layer.id("NR", "NR_Generic"),
            short_name="NR_Generic",
            response_type=ResponseType.NEGATIVE,
            parameters=NamedItemList(
                [
                    _const("SID_NR", uds.NEGATIVE_RESPONSE, 0, semantic="SERVICE-ID"),
                    MatchingRequestParameter(
                        short_name="SIDRQ_NR",
                        semantic="SERVICEIDRQ",
                        byte_position=1,
                        request_byte_position=0,
                        byte_length=1,
                    ),
                    _value("NRC", nrc, 2),
                ]
            ),
        )
    )


def _add_sessions(layer: _Layer) -> None:
    sessions = layer.ecu.sessions
    chart_id = f"{layer.name}.SC.{_SESSION_CHART}"
    pairs = [(a.name, b.name) for a in sessions for b in sessions]
    layer.charts.append(
        StateChart(
            odx_id=OdxLinkId(chart_id, layer.docs),
            short_name=_SESSION_CHART,
            semantic="SESSION",
            start_state_snref=sessions[0].name,
            states=NamedItemList(
                [
                    State(
                        odx_id=OdxLinkId(f"{chart_id}.ST.{s.name}", layer.docs), short_name=s.name
                    )
                    for s in sessions
                ]
            ),
            state_transitions=[
                StateTransition(
                    odx_id=OdxLinkId(f"{chart_id}.STT.{a}_{b}", layer.docs),
                    short_name=f"{a}_{b}",
                    source_snref=a,
                    target_snref=b,
                )
                for a, b in pairs
            ],
        )
    )
    sid = uds.DIAGNOSTIC_SESSION_CONTROL
    timing = layer.dop("P2Timing", _uint(16), DataType.A_UINT32, _identical(*_UINT), "ms")
    star = layer.dop(
        "P2StarTiming",
        _uint(16),
        DataType.A_UINT32,
        LinearCompuMethod(
            category=CompuCategory.LINEAR,
            compu_internal_to_phys=_linear(10, 0, DataType.A_UINT32),
            internal_type=DataType.A_UINT32,
            physical_type=DataType.A_UINT32,
        ),
        "ms",
    )
    for session in sessions:
        layer.service(
            f"{session.name}_Start",
            [_sid_rq(sid), _const("SessionType", session.id, 1, semantic="SUBFUNCTION")],
            [
                _sid_pr(sid),
                _const("SessionType", session.id, 1, semantic="SUBFUNCTION"),
                _value("P2Server", timing, 2),
                _value("P2StarServer", star, 4),
            ],
            "Session",
            long_name=f"{session.name} session",
            transitions=[f"{source.name}_{session.name}" for source in sessions],
        )


_UINT: Final = (DataType.A_UINT32, DataType.A_UINT32)


def _linear(scale: float, offset: float, value_type: DataType) -> CompuInternalToPhys:
    def number(x: float) -> int | float:
        return int(x) if float(x).is_integer() else x

    return CompuInternalToPhys(
        compu_scales=[
            CompuScale(
                compu_rational_coeffs=CompuRationalCoeffs(
                    value_type=value_type,
                    numerators=[number(offset), number(scale)],
                    denominators=[1],
                ),
                domain_type=DataType.A_UINT32,
                range_type=value_type,
            )
        ]
    )


def _did_dop(layer: _Layer, did: PdxDid) -> OdxLinkRef:
    if did.names:
        return layer.dop(did.name, _uint(8), DataType.A_UNICODE2STRING, _texttable(did.names))
    if did.text:
        coded: DiagCodedType
        if did.size is None:
            coded = MinMaxLengthType(
                base_data_type=DataType.A_ASCIISTRING,
                min_length=0,
                termination=Termination.END_OF_PDU,
            )
        else:
            coded = StandardLengthType(
                base_data_type=DataType.A_ASCIISTRING, bit_length=8 * did.size
            )
        return layer.dop(
            did.name,
            coded,
            DataType.A_UNICODE2STRING,
            _identical(DataType.A_ASCIISTRING, DataType.A_UNICODE2STRING),
        )
    coded = _uint(8 * (did.size or 1))
    if did.scale == 1 and did.offset == 0:
        return layer.dop(did.name, coded, DataType.A_UINT32, _identical(*_UINT), did.unit)
    integral = did.scale == 1 and float(did.offset).is_integer()
    physical = DataType.A_INT32 if integral else DataType.A_FLOAT64
    compu = LinearCompuMethod(
        category=CompuCategory.LINEAR,
        compu_internal_to_phys=_linear(did.scale, did.offset, physical),
        internal_type=DataType.A_UINT32,
        physical_type=physical,
    )
    return layer.dop(did.name, coded, physical, compu, did.unit)


WRITE_DATA_BY_IDENTIFIER: Final = 0x2E
CONTROL_DTC_SETTING: Final = 0x85
REPORT_SNAPSHOT_RECORD_BY_DTC: Final = 0x04
REPORT_EXTENDED_DATA_RECORD_BY_DTC: Final = 0x06


def _add_dids(layer: _Layer) -> None:
    sid = uds.READ_DATA_BY_IDENTIFIER
    for did in layer.ecu.dids:
        dop = _did_dop(layer, did)
        layer.service(
            f"{did.name}_Read",
            [_sid_rq(sid), _const("DID_RQ", did.did, 1, 16, semantic="DID")],
            [
                _sid_pr(sid),
                _const("DID_PR", did.did, 1, 16, semantic="DID"),
                _value(did.name, dop, 3),
            ],
            did.category or "Data",
            long_name=did.long_name,
            sessions=did.sessions,
        )
        if did.writable:
            write = WRITE_DATA_BY_IDENTIFIER
            layer.service(
                f"{did.name}_Write",
                [
                    _sid_rq(write),
                    _const("DID_RQ", did.did, 1, 16, semantic="DID"),
                    _value(did.name, dop, 3),
                ],
                [_sid_pr(write), _const("DID_PR", did.did, 1, 16, semantic="DID")],
                did.category or "Data",
                long_name=did.long_name,
                sessions=did.sessions,
            )


def _add_dtc_settings(layer: _Layer) -> None:
    sid = CONTROL_DTC_SETTING
    for name, kind in layer.ecu.dtc_settings:
        layer.service(
            f"DTC_Setting_Mode_{name}",
            [_sid_rq(sid), _const("DTCSettingType", kind, 1, semantic="SUBFUNCTION")],
            [_sid_pr(sid), _const("DTCSettingType", kind, 1, semantic="SUBFUNCTION")],
            "DtcSetting",
            long_name=f"DTC setting {name}",
        )


def _add_environment_data(layer: _Layer) -> None:
    """19 04 / 19 06 <dtc> <record>: answered with the DTC (echoed), its status, the
    record number and one value (a snapshot: one DID and its two bytes; extended data:
    an occurrence counter)."""
    ecu = layer.ecu
    if not (ecu.snapshots or ecu.extended_data):
        return
    byte = layer.dop("EnvByte", _uint(8), DataType.A_UINT32, _identical(*_UINT))
    word = layer.dop("EnvWord", _uint(16), DataType.A_UINT32, _identical(*_UINT))
    number = layer.dop("DTCNumber", _uint(24), DataType.A_UINT32, _identical(*_UINT))
    sid = uds.READ_DTC_INFORMATION
    kinds = [
        (
            "FaultMem_ReportDTCSnapshotRecordByDTCNumber",
            REPORT_SNAPSHOT_RECORD_BY_DTC,
            "DTCSnapshotRecordNumber",
            [
                _value("DTCSnapshotRecordNumberOfIdentifiers", byte, 7),
                _value("DTCSnapshotRecordDid", word, 8),
                _value("DTCSnapshotRecordDidData", word, 10),
            ],
            ecu.snapshots,
        ),
        (
            "FaultMem_ReportDTCExtDataRecordByDTCNumber",
            REPORT_EXTENDED_DATA_RECORD_BY_DTC,
            "DTCExtDataRecordNumber",
            [_value("OccurrenceCounter", byte, 7)],
            ecu.extended_data,
        ),
    ]
    for name, sub, record, values, wanted in kinds:
        if not wanted:
            continue
        layer.service(
            name,
            [
                _sid_rq(sid),
                _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
                _value("DTCNumber", number, 2),
                _value(record, byte, 5),
            ],
            [
                _sid_pr(sid),
                _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
                MatchingRequestParameter(
                    short_name="DTCNumber",
                    semantic="DATA",
                    byte_position=2,
                    request_byte_position=2,
                    byte_length=3,
                ),
                _value("StatusOfDTC", byte, 5),
                _value(record, byte, 6),
                *values,
            ],
            "FaultMem",
            long_name=name.removeprefix("FaultMem_"),
        )


def _add_fault_memory(layer: _Layer) -> None:
    ecu = layer.ecu
    mask = layer.dop("DTCStatusMask", _uint(8), DataType.A_UINT32, _identical(*_UINT))
    flag = layer.dop(
        "StatusBit", _uint(1), DataType.A_UNICODE2STRING, _texttable([(0, "false"), (1, "true")])
    )
    layer.dtc_dops.append(
        DtcDop(
            odx_id=layer.id("DOP", "DTC"),
            short_name="DTC",
            diag_coded_type=_uint(24),
            physical_type=PhysicalType(base_data_type=DataType.A_UINT32),
            compu_method=_identical(*_UINT),
            dtcs_raw=[
                DiagnosticTroubleCode(
                    odx_id=layer.id("DTC", dtc.code),
                    short_name=dtc.code,
                    trouble_code=dtc.trouble_code,
                    display_trouble_code=dtc.code,
                    text=Text(text=dtc.text),
                    level=dtc.level,
                )
                for dtc in ecu.dtcs
            ],
        )
    )
    status_bits: list[Parameter] = [
        ValueParameter(
            short_name=bit, semantic="DATA", byte_position=3, bit_position=i, dop_ref=flag
        )
        for i, bit in enumerate(_STATUS_BITS)
    ]
    layer.structures.append(
        Structure(
            odx_id=layer.id("STRUCT", "DTCAndStatusRecord"),
            short_name="DTCAndStatusRecord",
            byte_size=4,
            parameters=NamedItemList([_value("DTC", layer.ref("DOP", "DTC"), 0), *status_bits]),
        )
    )
    layer.eopf.append(
        EndOfPduField(
            odx_id=layer.id("EOPF", "DTCAndStatusRecords"),
            short_name="DTCAndStatusRecords",
            structure_ref=layer.ref("STRUCT", "DTCAndStatusRecord"),
        )
    )
    sid = uds.READ_DTC_INFORMATION
    sub = uds.REPORT_DTC_BY_STATUS_MASK
    layer.service(
        "FaultMem_ReportDTCByStatusMask",
        [
            _sid_rq(sid),
            _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
            _value("DTCStatusMask", mask, 2, str(uds.ALL_DTC_STATUS_BITS)),
        ],
        [
            _sid_pr(sid),
            _const("SubFunction", sub, 1, semantic="SUBFUNCTION"),
            _value("DTCStatusAvailabilityMask", mask, 2),
            _value("DTCAndStatusRecord", layer.ref("EOPF", "DTCAndStatusRecords"), 3),
        ],
        "FaultMem",
        long_name="Report DTC by status mask",
    )
    group = layer.dop("GroupOfDTC", _uint(24), DataType.A_UINT32, _identical(*_UINT))
    sid = uds.CLEAR_DIAGNOSTIC_INFORMATION
    layer.service(
        "FaultMem_ClearDTCs",
        [_sid_rq(sid), _value("GroupOfDTC", group, 1, str(uds.ALL_DTC_GROUPS))],
        [_sid_pr(sid)],
        "FaultMem",
        long_name="Clear diagnostic information",
        sessions=ecu.clear_sessions,
    )


def _add_routines(layer: _Layer) -> None:
    if not layer.ecu.routines:
        return
    state = layer.dop(
        "RoutineState", _uint(8), DataType.A_UNICODE2STRING, _texttable(uds.ROUTINE_STATES.items())
    )
    progress = layer.dop("Progress", _uint(8), DataType.A_UINT32, _identical(*_UINT), "%")
    sid = uds.ROUTINE_CONTROL
    for routine in layer.ecu.routines:
        for action in routine.actions:
            code = ROUTINE_ACTIONS[action]
            layer.service(
                f"{routine.name}_{action}",
                [
                    _sid_rq(sid),
                    _const("RoutineControlType", code, 1, semantic="SUBFUNCTION"),
                    _const("RoutineId", routine.routine_id, 2, 16),
                ],
                [
                    _sid_pr(sid),
                    _const("RoutineControlType", code, 1, semantic="SUBFUNCTION"),
                    _const("RoutineId", routine.routine_id, 2, 16),
                    _value("RoutineState", state, 4),
                    _value("Progress", progress, 5),
                ],
                "Routines",
                long_name=f"{routine.long_name or routine.name}: {action}",
                sessions=routine.sessions,
            )


def _container(ecu: PdxEcu, spec: PdxSpec) -> DiagLayerContainer:
    layer = _Layer(ecu)
    _add_negative_response(layer)
    _add_sessions(layer)
    _add_dids(layer)
    if ecu.fault_memory:
        _add_fault_memory(layer)
        _add_environment_data(layer)
    _add_routines(layer)
    _add_dtc_settings(layer)
    sdgs = []
    if ecu.logical_address is not None:
        sdgs.append(
            SpecialDataGroup(
                semantic_info="ECU",
                values=[
                    SpecialData(
                        semantic_info="LOGICAL-ADDRESS", value=f"0x{ecu.logical_address:02X}"
                    )
                ],
            )
        )
    raw = BaseVariantRaw(
        variant_type=DiagLayerType.BASE_VARIANT,
        odx_id=layer.id("BV", ecu.short_name),
        short_name=ecu.short_name,
        long_name=ecu.long_name,
        functional_classes=NamedItemList(layer.classes.values()),
        diag_data_dictionary_spec=DiagDataDictionarySpec(
            dtc_dops=NamedItemList(layer.dtc_dops),
            data_object_props=NamedItemList(layer.dops),
            structures=NamedItemList(layer.structures),
            end_of_pdu_fields=NamedItemList(layer.eopf),
            unit_spec=UnitSpec(units=NamedItemList(layer.units.values())) if layer.units else None,
        ),
        diag_comms_raw=list(layer.services),
        requests=NamedItemList(layer.requests),
        positive_responses=NamedItemList(layer.positive),
        negative_responses=NamedItemList(layer.negative),
        state_charts=NamedItemList(layer.charts),
        sdgs=sdgs,
    )
    return DiagLayerContainer(
        odx_id=OdxLinkId(f"DLC.{ecu.short_name}", layer.docs),
        short_name=ecu.short_name,
        long_name=ecu.long_name,
        admin_data=AdminData(
            language="en-US",
            doc_revisions=[
                DocRevision(revision_label=spec.revision, state="released", date=spec.date)
            ],
        ),
        base_variants=NamedItemList([BaseVariant(diag_layer_raw=raw)]),
    )


def build_database(spec: PdxSpec) -> Database:
    """The odxtools database of ``spec`` (references resolved), before it is written."""
    database = Database()
    database.short_name = spec.name
    database.diag_layer_containers = NamedItemList(_container(ecu, spec) for ecu in spec.ecus)
    database.refresh()
    return database


def _repack(written: bytes) -> bytes:
    """The PDX with fixed dates on its entries and in its index: deterministic bytes."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(written)) as source,
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target,
    ):
        for entry in source.infolist():
            data = source.read(entry)
            if entry.filename == "index.xml":
                data = _CREATION_DATE.sub(f'CREATION-DATE="{_INDEX_DATE}"'.encode(), data)
            info = zipfile.ZipInfo(entry.filename, date_time=PDX_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, data)
    return out.getvalue()


def build_pdx(spec: PdxSpec) -> bytes:
    """The bytes of a PDX file describing ``spec``'s ECUs (see the module's docstring for
    the layers and services); the same spec gives the same bytes."""
    database = build_database(spec)
    with tempfile.TemporaryDirectory(prefix="pdx-") as directory:
        path = Path(directory) / f"{spec.name}.pdx"
        write_pdx_file(str(path), database)
        return _repack(path.read_bytes())


# -- the demo ECUs ---------------------------------------------------------------------------

# The sessions the emulated ECUs switch to (0x10 0x02 is subFunctionNotSupported there).
DEMO_SESSIONS: Final = (DEFAULT, EXTENDED)
# Service base names that are not just the SOVD id in PascalCase.
_NAME_OVERRIDES: Final = {"vin": "VIN"}


def pascal_name(sovd_id: str) -> str:
    """The ODX short name of a SOVD id: ``engineRpm`` -> ``EngineRpm``, ``vin`` -> ``VIN``."""
    return _NAME_OVERRIDES.get(sovd_id, sovd_id[:1].upper() + sovd_id[1:])


def _state(session: str | None) -> tuple[str, ...]:
    """The ``Session`` state of a session name of ``app.vehicles.uds`` ("extended")."""
    if session is None:
        return ()
    code = uds.SESSIONS[session]
    return tuple(s.name for s in DEMO_SESSIONS if s.id == code)


def _demo_ecu(spec: ecus.EcuSpec) -> PdxEcu:
    described = description.describe(spec.address)
    return PdxEcu(
        short_name=spec.name.upper(),
        long_name=f"{spec.name} ECU",
        logical_address=spec.address,
        sessions=DEMO_SESSIONS,
        dids=tuple(
            PdxDid.from_codec(
                uds.DID_CODECS[item.did],
                pascal_name(item.id),
                item.name,
                pascal_name(item.category.value),
            )
            for item in described.data
        ),
        dtcs=tuple(
            PdxDtc(dtc.code, description.fault_name(dtc.code), description.severity(dtc.code))
            for dtc in (*spec.faults, *spec.history)
        ),
        routines=tuple(
            PdxRoutine(
                operation.routine_id,
                pascal_name(operation.id),
                operation.name,
                # A synchronous routine runs to its end within the start: no stop.
                ("Start", "Stop", "RequestResults")
                if operation.asynchronous
                else ("Start", "RequestResults"),
                _state(operation.session),
            )
            for operation in described.operations
        ),
        clear_sessions=_state(described.clear_session),
    )


def demo_spec() -> PdxSpec:
    """The four demo ECUs (``app.vehicles.emulator.ecus.DEFAULT_ECUS``) as a spec."""
    return PdxSpec(tuple(_demo_ecu(spec) for spec in ecus.DEFAULT_ECUS), name="SOVD_DEMO")


@functools.cache
def build_demo_pdx() -> bytes:
    """The PDX of the demo ECUs: containers ``ENGINE``, ``TRANSMISSION``, ``ABS``, ``BODY``
    (built from the project's tables on first call, the same bytes every time)."""
    return build_pdx(demo_spec())
