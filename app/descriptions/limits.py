"""The limits a description puts on a number: a DOP's INTERNAL-CONSTR (on the coded value)
and PHYS-CONSTR (on the physical value), read with odxtools' public API.

- ``within(dop, physical)``: whether a physical value keeps to both (what a described
  ECU checks before it runs a request: outside, 0x31 requestOutOfRange);
- ``physical_bounds(dop)``: the physical lowest and highest values those limits allow
  (what a schema offers as ``minimum``/``maximum``), None where a side is open.

odxtools itself does not enforce either constraint (its ``InternalConstr`` says so), so
encoding a value outside them works: the ECU is the one that refuses.
"""

from __future__ import annotations

import logging

from odxtools.compumethods.limit import Limit
from odxtools.dataobjectproperty import DataObjectProperty
from odxtools.internalconstr import InternalConstr

log = logging.getLogger(__name__)

Number = int | float


def _complies(constr: InternalConstr | None, value: Number) -> bool:
    if constr is None:
        return True
    lower, upper = constr.lower_limit, constr.upper_limit
    return (lower is None or lower.complies_to_lower(value)) and (
        upper is None or upper.complies_to_upper(value)
    )


def within(dop: DataObjectProperty, physical: Number) -> bool:
    """Whether ``physical`` keeps to the DOP's physical and internal constraints (a
    value whose internal form odxtools cannot compute is left to the coded type)."""
    if not _complies(dop.physical_constr, physical):
        return False
    if dop.internal_constr is None:
        return True
    try:
        internal = dop.compu_method.convert_physical_to_internal(physical)
    except Exception:  # not invertible: nothing to compare
        log.debug("physical value not invertible", exc_info=True)
        return True
    if isinstance(internal, bool) or not isinstance(internal, int | float):
        return True
    return _complies(dop.internal_constr, internal)


def _number(limit: Limit | None) -> Number | None:
    value = limit.value if limit is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return value


def physical_bounds(dop: DataObjectProperty) -> tuple[Number | None, Number | None]:
    """The physical ``(lowest, highest)`` the DOP's constraints allow (None: that side is
    open); the internal limits converted with the compu method, narrowed by the
    physical ones."""
    low: Number | None = None
    high: Number | None = None
    internal = dop.internal_constr
    if internal is not None:
        ends = []
        for limit in (internal.lower_limit, internal.upper_limit):
            raw = _number(limit)
            converted: object = None
            if raw is not None:
                try:
                    converted = dop.compu_method.convert_internal_to_physical(raw)
                except Exception:
                    log.debug("internal limit not convertible", exc_info=True)
            ends.append(
                converted
                if isinstance(converted, int | float) and not isinstance(converted, bool)
                else None
            )
        low, high = ends[0], ends[1]
        if low is not None and high is not None and low > high:  # a falling compu method
            low, high = high, low
    physical = dop.physical_constr
    if physical is not None:
        lo, hi = _number(physical.lower_limit), _number(physical.upper_limit)
        if lo is not None:
            low = lo if low is None else max(low, lo)
        if hi is not None:
            high = hi if high is None else min(high, hi)
    return low, high
