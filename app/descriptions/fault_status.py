"""The eight ISO 14229-1 DTC status bits (D.2), lowest first, as a fault's ``status``
names them in SOVD (Eclipse OpenSOVD CDA's spelling). One declaration for the SOVD tree
of bound and unbound ECUs alike; ``app.vehicles.trouble_codes.DTC_STATUS_BITS`` has the ISO names
in the same order. Pure: no odxtools, so importing it costs nothing."""

from __future__ import annotations

from typing import Final

STATUS_KEYS: Final = (
    "test_failed",
    "test_failed_this_operation_cycle",
    "pending_dtc",
    "confirmed_dtc",
    "test_not_completed_since_last_clear",
    "test_failed_since_last_clear",
    "test_not_completed_this_operation_cycle",
    "warning_indicator_requested",
)
