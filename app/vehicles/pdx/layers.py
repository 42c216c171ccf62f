"""The odxtools parts every service is made of: ``_Layer`` (one base variant's parts,
collected while its services are added), coded types and compu methods, and the request
and response parameters. Package-internal (the other builder modules use them)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from odxtools.compumethods.compucategory import CompuCategory
from odxtools.compumethods.compuconst import CompuConst
from odxtools.compumethods.compuinternaltophys import CompuInternalToPhys
from odxtools.compumethods.compumethod import CompuMethod
from odxtools.compumethods.compurationalcoeffs import CompuRationalCoeffs
from odxtools.compumethods.compuscale import CompuScale
from odxtools.compumethods.identicalcompumethod import IdenticalCompuMethod
from odxtools.compumethods.limit import Limit
from odxtools.compumethods.texttablecompumethod import TexttableCompuMethod
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diagcodedtype import DiagCodedType
from odxtools.diagservice import DiagService
from odxtools.dtcdop import DtcDop
from odxtools.endofpdufield import EndOfPduField
from odxtools.functionalclass import FunctionalClass
from odxtools.internalconstr import InternalConstr
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import DocType, OdxDocFragment, OdxLinkId, OdxLinkRef
from odxtools.odxtypes import DataType
from odxtools.parameters.codedconstparameter import CodedConstParameter
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.valueparameter import ValueParameter
from odxtools.physicaltype import PhysicalType
from odxtools.preconditionstateref import PreConditionStateRef
from odxtools.request import Request
from odxtools.response import Response, ResponseType
from odxtools.standardlengthtype import StandardLengthType
from odxtools.statechart import StateChart
from odxtools.statetransitionref import StateTransitionRef
from odxtools.structure import Structure
from odxtools.unit import Unit

from app.vehicles import uds
from app.vehicles.pdx.spec import PdxEcu, _check_short_name

_SESSION_CHART: Final = "Session"


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
    """Collects one base variant's (or ECU variant's) parts while its services are added."""

    def __init__(self, ecu: PdxEcu, base: str | None = None) -> None:
        self.ecu = ecu
        self.name = ecu.short_name
        # An ECU variant's layer (``base``: its base variant) lives in the base's
        # container and shares its negative response and session chart.
        self.shared = base or ecu.short_name
        self.docs = (OdxDocFragment(self.shared, DocType.CONTAINER),)
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
        limits: InternalConstr | None = None,
    ) -> OdxLinkRef:
        self.dops.append(
            DataObjectProperty(
                odx_id=self.id("DOP", name),
                short_name=name,
                diag_coded_type=coded,
                physical_type=PhysicalType(base_data_type=physical),
                compu_method=compu,
                unit_ref=self.unit(unit) if unit is not None else None,
                internal_constr=limits,
            )
        )
        return self.ref("DOP", name)

    def state_refs(self, states: Sequence[str]) -> list[PreConditionStateRef]:
        return [
            PreConditionStateRef(
                ref_id=f"{self.shared}.SC.{_SESSION_CHART}.ST.{state}", ref_docs=self.docs
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
                neg_response_refs=[
                    OdxLinkRef.from_id(OdxLinkId(f"{self.shared}.NR.NR_Generic", self.docs))
                ],
                pre_condition_state_refs=self.state_refs(sessions),
                state_transition_refs=[
                    StateTransitionRef(
                        ref_id=f"{self.shared}.SC.{_SESSION_CHART}.STT.{t}", ref_docs=self.docs
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
