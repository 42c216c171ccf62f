"""The services of a base variant other than the fault memory: the negative response,
the sessions (state chart ``Session`` and ``<State>_Start``), the DIDs (``_Read``,
``_Write``), the routines and the DTC settings."""

from __future__ import annotations

from typing import Final

from odxtools.compumethods.compucategory import CompuCategory
from odxtools.compumethods.limit import Limit
from odxtools.compumethods.linearcompumethod import LinearCompuMethod
from odxtools.diagcodedtype import DiagCodedType
from odxtools.internalconstr import InternalConstr
from odxtools.minmaxlengthtype import MinMaxLengthType
from odxtools.nameditemlist import NamedItemList
from odxtools.odxlink import OdxLinkId, OdxLinkRef
from odxtools.odxtypes import DataType
from odxtools.parameters.matchingrequestparameter import MatchingRequestParameter
from odxtools.parameters.parameter import Parameter
from odxtools.response import Response, ResponseType
from odxtools.standardlengthtype import StandardLengthType
from odxtools.state import State
from odxtools.statechart import StateChart
from odxtools.statetransition import StateTransition
from odxtools.termination import Termination

from app.vehicles import uds
from app.vehicles.pdx.layers import (
    _SESSION_CHART,
    _UINT,
    _const,
    _identical,
    _Layer,
    _linear,
    _sid_pr,
    _sid_rq,
    _texttable,
    _uint,
    _value,
)
from app.vehicles.pdx.spec import ROUTINE_ACTIONS, PdxChoice, PdxDid, PdxNumber, PdxRoutine

WRITE_DATA_BY_IDENTIFIER: Final = 0x2E
CONTROL_DTC_SETTING: Final = 0x85


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


def _number_dop(layer: _Layer, name: str, number: PdxNumber) -> OdxLinkRef:
    """A request number: its coded size, scale and offset, and its limits as the raw
    values' INTERNAL-CONSTR (odxtools 11.7's writer prints a PHYS-CONSTR with the
    internal one's limits, so the physical limits are written as the raw ones)."""
    limits = None
    if number.low is not None or number.high is not None:

        def limit(value: float | None) -> Limit | None:
            if value is None:
                return None
            return Limit(value_raw=str(number.raw(value)), value_type=DataType.A_UINT32)

        limits = InternalConstr(
            lower_limit=limit(number.low),
            upper_limit=limit(number.high),
            value_type=DataType.A_UINT32,
        )
    coded = _uint(8 * number.size)
    if number.scale == 1 and number.offset == 0:
        return layer.dop(name, coded, DataType.A_UINT32, _identical(*_UINT), number.unit, limits)
    physical = DataType.A_INT32 if number.integral else DataType.A_FLOAT64
    compu = LinearCompuMethod(
        category=CompuCategory.LINEAR,
        compu_internal_to_phys=_linear(number.scale, number.offset, physical),
        internal_type=DataType.A_UINT32,
        physical_type=physical,
    )
    return layer.dop(name, coded, physical, compu, number.unit, limits)


def _start_parameters(layer: _Layer, routine: PdxRoutine) -> list[Parameter]:
    """The Start request's parameters after the routine id (byte 4 on), each with a DOP
    of its own (``<routine>_<parameter>``)."""
    found: list[Parameter] = []
    position = 4
    for parameter in routine.parameters:
        name = f"{routine.name}_{parameter.name}"
        if isinstance(parameter, PdxChoice):
            dop = layer.dop(
                name,
                _uint(8 * parameter.size),
                DataType.A_UNICODE2STRING,
                _texttable(parameter.names),
            )
        else:
            dop = _number_dop(layer, name, parameter)
        found.append(_value(parameter.name, dop, position))
        position += parameter.size
    return found


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
                    *(_start_parameters(layer, routine) if action == "Start" else ()),
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
