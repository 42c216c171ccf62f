"""Operations (0x31 routine control): the start, stop and request-results services
grouped under one id, and an execution's request through the codec."""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.decodestate import DecodeState
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.encodestate import EncodeState
from odxtools.exceptions import OdxError
from odxtools.parameters.valueparameter import ValueParameter

from app.descriptions.codec import Encoded
from app.descriptions.parameters import CodecError
from app.descriptions.sovd_map.common import (
    ROUTINE_CONTROL,
    _codec,
    _once,
    _with_sid,
    strip_suffix,
    subfunction,
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
# A long name's action word, as in "Self test: Start" (not CDA's: its ids only).
_ACTION_WORD = re.compile(r"[\s:_-]+(start|stop|request[\s_]?results)$", re.IGNORECASE)


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


def _check_values(service: DiagService, parameters: Mapping[str, object]) -> None:
    """CodecError naming the first value of the right JSON type that its DOP cannot
    encode (a text not in its text table, a number beyond its coded type), as odxtools
    encodes it alone; the limits are not checked (odxtools does not enforce them): a
    value beyond them reaches the ECU, whose refusal is the answer. Other mistakes
    (unknown, ill-typed, missing) are left to the codec, which names them too."""
    request = service.request
    if request is None:
        return
    for parameter in request.parameters:
        value = parameters.get(parameter.short_name)
        dop = parameter.dop if isinstance(parameter, ValueParameter) else None
        if value is None or not isinstance(dop, DataObjectProperty):
            continue
        texts = dop.compu_method.category.value == "TEXTTABLE"
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (isinstance(value, str) if texts else number):
            continue  # the codec says what type it takes
        field = f"params.{parameter.short_name}"
        state = EncodeState()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                dop.encode_into_pdu(value, state)  # type: ignore[arg-type]
                back = dop.decode_from_pdu(DecodeState(coded_message=state.coded_message))
        except (OdxError, ValueError, TypeError, OverflowError) as exc:
            if texts:
                allowed = ", ".join(
                    str(scale.compu_const.vt)
                    for scale in getattr(
                        dop.compu_method.compu_internal_to_phys, "compu_scales", []
                    )
                    if scale.compu_const is not None
                )
                raise CodecError(
                    f"{field} of {service.short_name} is {value!r:.40}, not one of: {allowed}",
                    field,
                ) from None
            raise CodecError(
                f"{field} of {service.short_name} does not encode: {str(exc)[:200]}", field
            ) from None
        # odxtools rounds a number between two of the coded steps to one of them: the ECU
        # would get another value than the one asked for, so it is refused instead.
        if number and not (
            isinstance(back, int | float)
            and math.isclose(float(back), float(value), rel_tol=1e-9, abs_tol=1e-9)  # type: ignore[arg-type]
        ):
            raise CodecError(
                f"{field} of {service.short_name} is {value!r:.40}, which its coding cannot"
                f" carry exactly (it would be sent as {back!r:.40})",
                field,
            )


def encode_execution(
    layer: DiagLayer, service: DiagService, parameters: Mapping[str, object]
) -> Encoded:
    """An execution's request (its start, stop or request-results service) from the POST
    body's ``parameters``; CodecError naming an unknown, ill-typed or unencodable
    parameter."""
    _check_values(service, parameters)
    return _codec(layer).encode(service.short_name, parameters)
