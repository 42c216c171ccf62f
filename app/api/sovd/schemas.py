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
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, Final

from app.api.contract import SCHEMA_DIALECT
from app.vehicles import uds

if TYPE_CHECKING:
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
