"""Shared helpers of the SOVD mapping: the services' SIDs, CDA's affix stripping, a
layer's diagnostic services, a service's request prefix, SID and sub-function, the
``_once`` per-object memo, and reading any answer through the codec."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.exceptions import OdxError

from app.descriptions.codec import Decoded, Encoded, LayerCodec

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


def _codec(layer: DiagLayer) -> LayerCodec:
    return LayerCodec(layer, layer.short_name)


def decode_answer(service: DiagService, answer: bytes) -> Decoded:
    """Any answer to ``service`` read by the description (codec.py's ``Encoded.decode``):
    a positive one's value parameters by short name, physical (numbers scaled, text
    tables as their texts) with their units; a negative one's NRC and the description's
    name for it. CodecError for an answer that is neither."""
    return Encoded(service.short_name, request_prefix(service), service).decode(answer)
