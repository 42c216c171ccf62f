"""The fault memory of a described ECU: the DTCs it stores, their status bytes, clearing.

- **DTCs.** At start a seeded subset of the DTC DOPs' DTCs is stored, each with a status
  byte (confirmed, pending, historic, with the warning lamp). A field whose structure
  has a DTC parameter is answered with one record per stored DTC whose status matches
  the request's ``...Mask`` parameter (if it has one), the record's other parameters
  named by the ISO 14229-1 status bits (``testFailed`` ...) get the bit, one named
  ``...Status...`` the whole byte; a ``...AvailabilityMask`` is 0xFF. 0x14 clears the
  group the request names (0xFFFFFF: all; a described DTC not stored: nothing to clear;
  anything else: 0x31). When a routine completes, the ECU has "re-run its tests": the
  stored-at-start DTCs that were failing (``testFailed``) are stored again; historic
  ones stay cleared.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Final

from odxtools.basicstructure import BasicStructure
from odxtools.diaglayers.diaglayer import DiagLayer
from odxtools.diagservice import DiagService
from odxtools.dtcdop import DtcDop
from odxtools.odxtypes import ParameterValue
from odxtools.parameters.parameter import Parameter
from odxtools.parameters.parameterwithdop import ParameterWithDOP
from odxtools.parameters.valueparameter import ValueParameter

from app.vehicles import trouble_codes
from app.vehicles.emulator.described.names import key
from app.vehicles.pdx.scenario import (
    CONFIRMED_ACTIVE,
    CONFIRMED_WITH_LAMP,
    HISTORIC,
    PENDING_ACTIVE,
)

# The status bytes a stored-at-start DTC gets (drawn from the seeded generator).
START_STATUSES: Final = (CONFIRMED_ACTIVE, PENDING_ACTIVE, CONFIRMED_WITH_LAMP, HISTORIC)
TEST_FAILED: Final = trouble_codes.status_byte("testFailed")
STATUS_BITS: Final = {key(bit): i for i, bit in enumerate(trouble_codes.DTC_STATUS_BITS)}


def known_dtcs(layer: DiagLayer) -> tuple[int, ...]:
    """The trouble codes of the layer's DTC DOPs."""
    return tuple(
        dtc.trouble_code for dop in layer.diag_data_dictionary_spec.dtc_dops for dtc in dop.dtcs
    )


def store_at_start(
    dtcs: dict[int, int], known: tuple[int, ...], rng: random.Random
) -> dict[int, int]:
    """Store a seeded subset of the ``known`` DTCs in ``dtcs``, each with a status byte;
    the failing ones (``testFailed``), which re-running the tests stores again."""
    faults: dict[int, int] = {}
    for code in known:
        if rng.random() < 0.5:
            dtcs[code] = rng.choice(START_STATUSES)
            if dtcs[code] & TEST_FAILED:
                faults[code] = dtcs[code]
    return faults


def clear(
    dtcs: dict[int, int],
    known: tuple[int, ...],
    service: DiagService,
    decoded: Mapping[str, ParameterValue],
) -> int | None:
    """Clear the group the request names (its first value parameter)."""
    assert service.request is not None
    group = next(
        (
            value
            for p in service.request.parameters
            if isinstance(p, ValueParameter) and isinstance(value := decoded.get(p.short_name), int)
        ),
        None,
    )
    if group is None or group == trouble_codes.ALL_DTC_GROUPS:
        dtcs.clear()
    elif group in dtcs or group in known:
        dtcs.pop(group, None)
    else:
        return 0x31  # not a DTC (group) this ECU has
    return None


def mask(decoded: Mapping[str, ParameterValue]) -> int | None:
    """The request's status mask (its ``...Mask`` parameter), if it has one."""
    for name, value in decoded.items():
        if "mask" in key(name) and isinstance(value, int):
            return value
    return None


def has_dtc(structure: BasicStructure) -> bool:
    return any(is_dtc(p) for p in structure.parameters)


def is_dtc(parameter: Parameter) -> bool:
    return isinstance(parameter, ParameterWithDOP) and isinstance(parameter.dop, DtcDop)
