"""The JSON Schemas ``include-schema=true`` returns, as SOVD clients read them (#21 item 7).

Every schema is a JSON Schema 2020-12 document (``"$schema"`` names the dialect, as
ISO 17978's clients check). A response's ``schema`` describes the response body (built
from the same msgspec type ``/openapi.json`` documents), except a data item's: there it
describes the item's ``data`` value (SOVD's ``ReadValue``, what opensovd-core's traversal
validates ``data`` against):

- a component bound to an ECU description: an object with one property per value
  parameter of the read service's positive response, typed from its DOP (integers,
  numbers, texts, a text table's texts, a byte field as hex), its unit in ``x-unit``;
- any other component: the fields ``app.services.sovd.data`` answers (``value`` and
  ``unit`` for a data identifier the service knows, ``raw`` hex otherwise), ``value``
  typed from ``app.vehicles.uds.DID_CODECS``.

An operation's schema describes its response body too, and carries in ``$defs`` the
``ExecutionParameters``: what ``POST .../executions`` takes as ``parameters`` (the
start's settable request parameters, typed from their DOPs: integers and numbers with
the ``minimum``/``maximum`` of the description's limits, a text table's texts as an
``enum``, its unit in ``x-unit``; required unless the description has a default).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Final

from app.api.contract import SCHEMA_DIALECT
from app.vehicles import uds

if TYPE_CHECKING:
    from odxtools.diagservice import DiagService

    from app.descriptions.sovd_map.data import DataItem as DescribedItem
    from app.services.sovd.data import DataItem

_HEX: Final = "^([0-9A-F]{2})*$"  # bytes as a client reads them (parameters.jsonable)


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` as a 2020-12 document: ``$schema`` first (a response type's:
    ``app.api.contract.schema_of``)."""
    return {"$schema": SCHEMA_DIALECT, **schema}


# -- a component without a description -------------------------------------------------------


def _did_value(codec: uds.DidCodec) -> dict[str, Any]:
    """What ``DidCodec.decode`` gives, as a schema."""
    if codec.names:
        named = {"enum": [name for _, name in codec.names]}
        return {"anyOf": [named, {"type": "string", "pattern": "^0x[0-9A-F]{2}$"}]}
    if codec.text:
        text: dict[str, Any] = {"type": "string"}
        if codec.size is not None:
            text["maxLength"] = codec.size
        return text
    whole = codec.scale == 1 and float(codec.offset).is_integer()
    size = codec.size or 1
    low = codec.offset
    high = ((1 << (8 * size)) - 1) * codec.scale + codec.offset
    return {
        "type": "integer" if whole else "number",
        "minimum": int(low) if whole else low,
        "maximum": int(high) if whole else high,
    }


@cache
def unbound_data(item: DataItem) -> dict[str, Any]:
    """The ``data`` of one data item of a component without a description."""
    codec = uds.DID_CODECS.get(item.did)
    if codec is None:
        properties: dict[str, Any] = {
            "raw": {"type": "string", "pattern": _HEX, "description": "the DID's bytes, hex"}
        }
        required = ["raw"]
    else:
        properties = {"value": _did_value(codec)}
        required = ["value"]
        if codec.unit is not None:
            properties["unit"] = {"const": codec.unit}
            required.append("unit")
    return document(
        {
            "title": item.name,
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }
    )


# -- a component bound to a description ------------------------------------------------------


def _parameter(parameter: Any) -> dict[str, Any]:
    """One value parameter of a positive response, as ``parameters.jsonable`` renders it."""
    from odxtools.dataobjectproperty import DataObjectProperty
    from odxtools.odxtypes import DataType

    dop = getattr(parameter, "dop", None)
    if not isinstance(dop, DataObjectProperty):
        return {"description": "a structure of the description"}  # any JSON value
    kind = dop.physical_type.base_data_type
    found: dict[str, Any]
    if kind in (DataType.A_INT32, DataType.A_UINT32):
        found = {"type": "integer"}
    elif kind in (DataType.A_FLOAT32, DataType.A_FLOAT64):
        # A non-finite float is carried as its text (JSON has no NaN or infinity).
        found = {"anyOf": [{"type": "number"}, {"enum": ["nan", "inf", "-inf"]}]}
    elif kind is DataType.A_BYTEFIELD:
        found = {"type": "string", "pattern": _HEX}
    else:
        found = {"type": "string"}
    if dop.unit is not None:
        found["x-unit"] = dop.unit.display_name or dop.unit.short_name
    return found


def _skipped(parameter: Any) -> bool:
    from app.descriptions.codec import SKIPPED_PARAMETER_TYPES

    return parameter.parameter_type in SKIPPED_PARAMETER_TYPES


def described_data(item: DescribedItem) -> dict[str, Any]:
    """The ``data`` of a bound component's data item: the values its read service's
    positive response decodes to, by short name."""
    properties: dict[str, Any] = {}
    service = item.read
    if service is not None and service.positive_responses:
        for parameter in service.positive_responses[0].parameters:
            if not _skipped(parameter):
                properties[parameter.short_name] = _parameter(parameter)
    return document(
        {
            "title": item.name,
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
    )


# -- an operation's parameters ---------------------------------------------------------------


def _request_parameter(parameter: Any) -> dict[str, Any]:
    """One settable parameter of a request, as ``POST .../executions`` takes it (the
    codec's physical values)."""
    from odxtools.dataobjectproperty import DataObjectProperty
    from odxtools.odxtypes import DataType

    from app.descriptions.limits import physical_bounds

    dop = getattr(parameter, "dop", None)
    if not isinstance(dop, DataObjectProperty):
        return {"description": "a structure of the description"}
    kind = dop.physical_type.base_data_type
    found: dict[str, Any]
    if dop.compu_method.category.value == "TEXTTABLE":
        table = getattr(dop.compu_method.compu_internal_to_phys, "compu_scales", None) or []
        texts = [str(s.compu_const.vt) for s in table if s.compu_const and s.compu_const.vt]
        found = {"type": "string", "enum": texts}
    elif kind in (DataType.A_INT32, DataType.A_UINT32, DataType.A_FLOAT32, DataType.A_FLOAT64):
        whole = kind in (DataType.A_INT32, DataType.A_UINT32)
        found = {"type": "integer" if whole else "number"}
        low, high = physical_bounds(dop)
        if low is not None:
            found["minimum"] = low
        if high is not None:
            found["maximum"] = high
    elif kind is DataType.A_BYTEFIELD:
        found = {"type": "string", "pattern": _HEX}
    else:
        found = {"type": "string"}
    if dop.unit is not None:
        found["x-unit"] = dop.unit.display_name or dop.unit.short_name
    return found


def execution_parameters(start: DiagService | None) -> dict[str, Any]:
    """The ``parameters`` of an execution's request: the start's settable ones."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    request = start.request if start is not None else None
    if request is not None:
        for parameter in request.parameters:
            if not parameter.is_settable:
                continue
            properties[parameter.short_name] = _request_parameter(parameter)
            if parameter.is_required:
                required.append(parameter.short_name)
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
    }
    if required:
        schema["required"] = required
    return schema


def operation(response: dict[str, Any], start: DiagService | None) -> dict[str, Any]:
    """The operation's response schema (``response``: ``schema_of`` its type) with its
    ``ExecutionParameters`` in ``$defs``."""
    defs = dict(response.get("$defs", {}))
    defs["ExecutionParameters"] = execution_parameters(start)
    return {**response, "$defs": defs}
