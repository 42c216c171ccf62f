"""Data items and configurations (0x22 read, 0x2E write): which services become
``GET data`` / ``GET configurations`` entries, and a read's answer and a write's request
through the codec."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.parameters.valueparameter import ValueParameter

from app.descriptions.codec import Decoded, Encoded
from app.descriptions.parameters import CodecError
from app.descriptions.sovd_map.common import (
    READ_DATA,
    WRITE_DATA,
    _codec,
    _once,
    _with_sid,
    decode_answer,
    in_functional_class,
    request_prefix,
    strip_suffix,
)

VARCODING: Final = "varcoding"


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
