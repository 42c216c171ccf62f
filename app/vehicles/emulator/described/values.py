"""Values for the parameters of a described ECU's positive answers, seeded, within limits.

- **Positive answers** are encoded by odxtools (``Response.encode`` with the request, so
  matching-request parameters are filled in) with a value for every required
  parameter, from a ``random.Random`` given to the ECU (seeded: the same seed and the
  same requests give the same bytes):

  - numbers: an internal value within the coded type's range (bit length, signedness),
    narrowed by the DOP's internal constraint, its compu scales' limits and its physical
    constraint, converted with the DOP's compu method; each read moves it a little (a
    random walk, so live data look live);
  - text tables: one of the table's texts;
  - text: generated once and kept (identification does not change), as long as the
    coded type says (a ``VIN``: 17 VIN characters; a ``...Version``: digits and dots);
  - DID 0xF186 (active diagnostic session): the active session's 0x10 subfunction;
  - a DID written (0x2E ``<did>``): what was written, read back by 0x22 ``<did>``
    (parameters of the same short name, as ``<Name>_Write`` and ``<Name>_Read`` have);
  - ``P2Server`` / ``P2StarServer`` (the 0x10 answer): 50 ms and 5000 ms, ISO 14229-2's
    defaults;
  - structures and fields: recursively (a field of DTC records: see ``dtcs``).

  A response odxtools cannot be given values for (a multiplexer, a table-key
  parameter...) is answered 0x10 generalReject and logged.
"""

from __future__ import annotations

import logging
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from odxtools.basicstructure import BasicStructure
from odxtools.compumethods.texttablecompumethod import TexttableCompuMethod
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.dopbase import DopBase
from odxtools.dtcdop import DtcDop
from odxtools.field import Field
from odxtools.leadinglengthinfotype import LeadingLengthInfoType
from odxtools.minmaxlengthtype import MinMaxLengthType
from odxtools.odxtypes import AtomicOdxType, DataType, ParameterValue
from odxtools.parameters.parameterwithdop import ParameterWithDOP
from odxtools.response import Response
from odxtools.standardlengthtype import StandardLengthType

from app.vehicles import trouble_codes
from app.vehicles.emulator.described import names
from app.vehicles.emulator.described.dtcs import STATUS_BITS, has_dtc
from app.vehicles.emulator.described.routines import DescribedRoutine
from app.vehicles.emulator.reply import P2_SERVER_MS, P2_STAR_SERVER_MS

log = logging.getLogger(__name__)

_STRING_TYPES: Final = (DataType.A_ASCIISTRING, DataType.A_UTF8STRING, DataType.A_UNICODE2STRING)
_VIN_CHARS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
_TEXT_CHARS: Final = string.ascii_uppercase + string.digits
_DEFAULT_TEXT_LENGTH: Final = 16


# What has parameters to fill in: a response, a structure.
Coded = Response | BasicStructure


class Unsupported(Exception):
    """The description has something this emulator cannot give a value to."""


@dataclass(slots=True)
class Hints:
    """What the ECU's state says some parameters of one answer are."""

    dtc: int | None = None  # a DTC record: its trouble code and status byte
    status: int | None = None
    routine: DescribedRoutine | None = None
    session_id: int | None = None  # the answer of DID 0xF186
    # Physical values by parameter name that the ECU holds (what a 0x2E wrote): used as
    # they are.
    given: Mapping[str, ParameterValue] = field(default_factory=dict)


@dataclass(slots=True)
class _Walk:
    low: int
    high: int
    value: int


@dataclass
class ValueGenerator:
    """The values of one ECU's answers: drawn from ``rng``, texts kept, numbers walking;
    a field of DTC records gets one record per DTC of ``stored()`` (the ECU's fault
    memory) whose status matches the request's mask."""

    rng: random.Random
    name: str  # the ECU's, the start of its generated texts
    stored: Callable[[], Mapping[int, int]]  # trouble code -> status byte
    _walks: dict[str, _Walk] = field(default_factory=dict, init=False, repr=False)
    _texts: dict[str, AtomicOdxType] = field(default_factory=dict, init=False, repr=False)

    def values(
        self, structure: Coded, hints: Hints, path: str, mask: int | None
    ) -> dict[str, ParameterValue]:
        values: dict[str, ParameterValue] = {}
        for parameter in structure.parameters:
            if not parameter.is_required:
                continue  # constants, matching-request, defaults, computed lengths
            if not isinstance(parameter, ParameterWithDOP):
                raise Unsupported(f"parameter {parameter.short_name} ({type(parameter).__name__})")
            if parameter.short_name in hints.given:
                values[parameter.short_name] = _physical(
                    parameter, hints.given[parameter.short_name]
                )
                continue
            key = f"{path}.{parameter.short_name}"
            values[parameter.short_name] = self._value(
                parameter.short_name, parameter.dop, hints, key, mask
            )
        return values

    def _value(
        self, name: str, dop: DopBase, hints: Hints, key: str, mask: int | None
    ) -> ParameterValue:
        if isinstance(dop, DtcDop):
            if hints.dtc is not None:
                return hints.dtc
            if not dop.dtcs:
                raise Unsupported(f"DTC DOP {dop.short_name} lists no DTC")
            return self.rng.choice(list(dop.dtcs)).trouble_code
        if isinstance(dop, Field):
            structure = dop.structure
            if has_dtc(structure):
                records: list[ParameterValue] = []
                for code, status in self.stored().items():
                    if mask is None or status & mask:
                        record = Hints(dtc=code, status=status)
                        records.append(self.values(structure, record, key, mask))
                return records
            count = max(1, dop.minimum_number_of_items)
            return [self.values(structure, hints, f"{key}[{i}]", mask) for i in range(count)]
        if isinstance(dop, BasicStructure):
            return self.values(dop, hints, key, mask)
        if isinstance(dop, DataObjectProperty):
            return self._simple(name, dop, hints, key)
        raise Unsupported(f"DOP {dop.short_name} ({type(dop).__name__})")

    def _simple(self, name: str, dop: DataObjectProperty, hints: Hints, key: str) -> AtomicOdxType:
        compu = dop.compu_method
        key_name = names.key(name)
        if key_name.startswith("p2") and key_name.endswith("server"):
            # The session timing answered to 0x10: ISO 14229-2's defaults.
            return P2_STAR_SERVER_MS if "star" in key_name else P2_SERVER_MS
        internal = self._hinted(name, hints)
        if internal is not None:
            return compu.convert_internal_to_physical(internal)
        if isinstance(compu, TexttableCompuMethod):
            texts = _texts(compu)
            if not texts:
                raise Unsupported(f"text table {dop.short_name} has no text")
            routine = hints.routine
            if routine is not None and any(w in names.key(name) for w in ("state", "status")):
                for text in texts:
                    if names.key(text) == routine.state:
                        return text
            return self.rng.choice(texts)
        physical = dop.physical_type.base_data_type
        coded = dop.diag_coded_type
        if physical in _STRING_TYPES or physical == DataType.A_BYTEFIELD:
            if key not in self._texts:
                self._texts[key] = self._text(name, coded, physical)
            return self._texts[key]
        if coded.base_data_type in (DataType.A_FLOAT32, DataType.A_FLOAT64):
            return round(self.rng.uniform(*_float_limits(dop)), 3)
        walk = self._walks.get(key)
        if walk is None:
            low, high = _internal_limits(dop)
            walk = self._walks[key] = _Walk(low, high, self.rng.randint(low, high))
        else:
            step = max(1, (walk.high - walk.low) // 40)
            walk.value = min(walk.high, max(walk.low, walk.value + self.rng.randint(-step, step)))
        return compu.convert_internal_to_physical(walk.value)

    def _hinted(self, name: str, hints: Hints) -> int | None:
        """The internal value the ECU's state gives parameter ``name``, if any."""
        key = names.key(name)
        if hints.status is not None:
            if key in STATUS_BITS:
                return (hints.status >> STATUS_BITS[key]) & 1
            if "status" in key and "mask" not in key:
                return hints.status
        if "availabilitymask" in key:
            return trouble_codes.ALL_DTC_STATUS_BITS
        if hints.routine is not None and "progress" in key:
            return hints.routine.progress
        return hints.session_id

    def _text(self, name: str, coded: object, physical: DataType) -> AtomicOdxType:
        size = _text_bytes(coded)
        if physical == DataType.A_BYTEFIELD:
            return bytes(self.rng.randrange(256) for _ in range(size))
        chars = size // 2 if _coded_type(coded) == DataType.A_UNICODE2STRING else size
        key = names.key(name)
        if key == "vin" or "vehicleidentification" in key:
            return "".join(self.rng.choice(_VIN_CHARS) for _ in range(chars))
        if "version" in key:
            digits = [str(self.rng.randrange(10)) for _ in range(chars)]
            return "".join("." if i % 3 == 2 and i < chars - 1 else d for i, d in enumerate(digits))
        prefix = "".join(c for c in self.name.upper() if c.isalnum())[:3]
        if "serial" in key or "number" in key:
            body = "".join(str(self.rng.randrange(10)) for _ in range(chars))
        else:
            body = "".join(self.rng.choice(_TEXT_CHARS) for _ in range(chars))
        return (prefix + body)[:chars]


def _texts(compu: TexttableCompuMethod) -> list[str]:
    table = compu.compu_internal_to_phys
    if table is None:
        return []
    return [
        scale.compu_const.vt
        for scale in table.compu_scales
        if scale.compu_const is not None and scale.compu_const.vt is not None
    ]


def _coded_type(coded: object) -> DataType | None:
    value = getattr(coded, "base_data_type", None)
    return value if isinstance(value, DataType) else None


def _text_bytes(coded: object) -> int:
    if isinstance(coded, StandardLengthType):
        return max(1, coded.bit_length // 8)
    if isinstance(coded, MinMaxLengthType):
        wanted = max(coded.min_length, _DEFAULT_TEXT_LENGTH)
        return wanted if coded.max_length is None else min(wanted, coded.max_length)
    if isinstance(coded, LeadingLengthInfoType):
        return min(_DEFAULT_TEXT_LENGTH, (1 << coded.bit_length) - 1)
    return _DEFAULT_TEXT_LENGTH


def _limit(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return None


def _internal_limits(dop: DataObjectProperty) -> tuple[int, int]:
    """The internal values a number of ``dop`` may take: the coded type's range, narrowed
    by the internal constraint, the compu scales' limits and the physical constraint."""
    coded = dop.diag_coded_type
    bits = coded.bit_length if isinstance(coded, StandardLengthType) else 32
    if coded.base_data_type == DataType.A_INT32:
        low, high = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    else:
        low, high = 0, (1 << bits) - 1

    def narrow(lower: object, upper: object) -> None:
        nonlocal low, high
        lo, hi = _limit(lower), _limit(upper)
        if lo is not None and low <= lo <= high:
            low = int(-(-lo // 1))  # ceil
        if hi is not None and low <= hi <= high:
            high = int(hi // 1)

    constr = dop.internal_constr
    if constr is not None:
        narrow(
            constr.lower_limit.value if constr.lower_limit else None,
            constr.upper_limit.value if constr.upper_limit else None,
        )
    table = getattr(dop.compu_method, "compu_internal_to_phys", None)
    scales = getattr(table, "compu_scales", None) or []
    if len(scales) == 1:
        scale = scales[0]
        narrow(
            scale.lower_limit.value if scale.lower_limit else None,
            scale.upper_limit.value if scale.upper_limit else None,
        )
    physical = dop.physical_constr
    if physical is not None:
        ends: list[float] = []
        for limit in (physical.lower_limit, physical.upper_limit):
            value = _limit(limit.value) if limit is not None else None
            if value is None:
                continue
            try:
                internal = dop.compu_method.convert_physical_to_internal(value)
            except Exception:  # a compu method odxtools cannot invert: keep the range
                log.debug("physical limit not invertible", exc_info=True)
                continue
            converted = _limit(internal)
            if converted is not None:
                ends.append(converted)
        if len(ends) == 2:
            narrow(min(ends), max(ends))
    if low > high:
        low, high = high, low
    return low, high


def _float_limits(dop: DataObjectProperty) -> tuple[float, float]:
    constr = dop.physical_constr or dop.internal_constr
    low = high = None
    if constr is not None:
        low = _limit(constr.lower_limit.value) if constr.lower_limit else None
        high = _limit(constr.upper_limit.value) if constr.upper_limit else None
    return (low if low is not None else 0.0, high if high is not None else 100.0)


def _physical(parameter: ParameterWithDOP, value: ParameterValue) -> ParameterValue:
    """A given number as the DOP's physical type takes it (a walk's float, rounded for an
    integer type)."""
    dop = parameter.dop
    if (
        isinstance(value, float)
        and isinstance(dop, DataObjectProperty)
        and dop.physical_type.base_data_type in (DataType.A_INT32, DataType.A_UINT32)
    ):
        return round(value)
    return value
