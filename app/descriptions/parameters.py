"""A diagnostic service's parameters as JSON meets them (odxtools' public API, no I/O,
nothing of ``app`` imported): what a request takes (``ServiceInfo``, ``ParamInfo``: type,
unit, a text table's values), a JSON value checked into the physical type a parameter's
DOP takes (``physical``) and a decoded value made JSON-ready (``jsonable``: byte fields
as upper-case hex, a DTC as ``{"code", "troubleCode", "text", "level"}``, structures as
objects, fields as lists). ``CodecError`` is every refusal of the codec
(``app.descriptions.codec``), naming the service and parameter.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diagnostictroublecode import DiagnosticTroubleCode
from odxtools.diagservice import DiagService
from odxtools.odxtypes import DataType
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.valueparameter import ValueParameter

_INTEGERS: Final = frozenset({DataType.A_INT32, DataType.A_UINT32})
_FLOATS: Final = frozenset({DataType.A_FLOAT32, DataType.A_FLOAT64})
_TEXTS: Final = frozenset(
    {DataType.A_UNICODE2STRING, DataType.A_ASCIISTRING, DataType.A_UTF8STRING}
)
_MAX_MESSAGE: Final = 300  # characters of an odxtools message kept in an error


class CodecError(ValueError):
    """A request that cannot be encoded, or an answer that cannot be decoded; the message
    names the service and parameter, ``field`` what was wrong (``service``,
    ``params.<name>``, ``params``, ``answer``)."""

    def __init__(self, message: str, field: str = "params") -> None:
        super().__init__(message)
        self.field = field


def short_message(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 3] + "..."


# -- what a service takes -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParamInfo:
    """A settable parameter of a service's request."""

    name: str
    type: str  # the physical data type (A_UINT32, A_UNICODE2STRING, ...) or "structure"
    required: bool  # False: it has a default in the description
    unit: str | None = None
    values: tuple[str, ...] = ()  # a text table's texts, the values it takes


@dataclass(frozen=True, slots=True)
class ServiceInfo:
    name: str
    sid: int | None  # the request's first byte, None without a request
    long_name: str | None
    params: tuple[ParamInfo, ...]


def _dop(parameter: Parameter) -> DataObjectProperty | None:
    if isinstance(parameter, ValueParameter):
        dop = parameter.dop
        if isinstance(dop, DataObjectProperty):
            return dop
    return None


def unit_of(parameter: Parameter) -> str | None:
    dop = _dop(parameter)
    if dop is None or dop.unit is None:
        return None
    return dop.unit.display_name or dop.unit.short_name


def _texts(dop: DataObjectProperty) -> tuple[str, ...]:
    internal_to_phys = getattr(dop.compu_method, "compu_internal_to_phys", None)
    scales = getattr(internal_to_phys, "compu_scales", None) or []
    found = []
    for scale in scales:
        const = scale.compu_const
        if const is not None and const.vt is not None:
            found.append(str(const.vt))
    return tuple(found)


def _param_info(parameter: Parameter) -> ParamInfo:
    dop = _dop(parameter)
    if dop is None:
        kind = "structure"
        values: tuple[str, ...] = ()
    else:
        kind = dop.physical_type.base_data_type.value
        values = _texts(dop) if dop.compu_method.category.value == "TEXTTABLE" else ()
    return ParamInfo(
        name=parameter.short_name,
        type=kind,
        required=parameter.is_required,
        unit=unit_of(parameter),
        values=values,
    )


def _sid(service: DiagService) -> int | None:
    request = service.request
    if request is None:
        return None
    prefix = bytes(request.coded_const_prefix())
    return prefix[0] if prefix else None


def service_info(service: DiagService) -> ServiceInfo:
    """The service's SID and its settable request parameters."""
    request = service.request
    params = (
        tuple(_param_info(p) for p in request.parameters if p.is_settable)
        if request is not None
        else ()
    )
    return ServiceInfo(service.short_name, _sid(service), service.long_name, params)


# -- physical values from JSON ------------------------------------------------------------


def physical(service: str, parameter: Parameter, value: object) -> Any:
    """``value`` as the type the parameter's DOP takes, or CodecError naming it."""
    field = f"params.{parameter.short_name}"
    where = f"{field} of {service}"
    dop = _dop(parameter)
    if dop is None:
        return value  # a structure, field or table: odxtools checks its shape
    kind = dop.physical_type.base_data_type
    if kind in _INTEGERS:
        if isinstance(value, bool) or not isinstance(value, int):
            raise CodecError(f"{where} must be an integer ({kind.value}), got {value!r:.80}", field)
        return value
    if kind in _FLOATS:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise CodecError(f"{where} must be a number ({kind.value}), got {value!r:.80}", field)
        try:
            number = float(value)
        except OverflowError:  # an integer too large for a float
            raise CodecError(f"{where} is out of range ({kind.value})", field) from None
        if not math.isfinite(number):
            raise CodecError(f"{where} is out of range ({kind.value})", field)
        return number
    if kind in _TEXTS:
        if not isinstance(value, str):
            raise CodecError(f"{where} must be a string ({kind.value}), got {value!r:.80}", field)
        return value
    if kind is DataType.A_BYTEFIELD:
        try:
            if not isinstance(value, str):
                raise ValueError
            return bytes.fromhex(value)
        except ValueError:
            raise CodecError(
                f"{where} must be bytes in hex such as 0A1B ({kind.value}), got {value!r:.80}",
                field,
            ) from None
    return value


def jsonable(value: object) -> Any:
    """A decoded physical value as JSON can carry it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex().upper()
    if isinstance(value, DiagnosticTroubleCode):
        return {
            "code": value.display_trouble_code or f"{value.trouble_code:06X}",
            "troubleCode": f"0x{value.trouble_code:06X}",
            "text": value.text.text if value.text is not None else None,
            "level": value.level,
        }
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence):
        return [jsonable(v) for v in value]
    return str(value)
