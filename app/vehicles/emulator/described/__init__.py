"""An emulated ECU driven by its ODX description (an odxtools diag layer), not by tables.

``DescribedEcu`` answers a UDS request the way the description says the ECU does. Each
concept has its module, whose docstring says how it behaves:

- ``services``: finding the service a request is (constant prefixes), the NRC when it
  is none (0x11, 0x12, 0x13, 0x31), the suppress-positive-response bit, TesterPresent;
- ``values``: positive answers, a value for every required parameter (what a 0x2E wrote,
  read back by its 0x22; else seeded random
  numbers within a DOP's limits, text tables, texts such as VINs, DID 0xF186, P2);
- ``dtcs``: the fault memory (DTCs stored at start, status bytes, reports by status
  mask, clearing, failing DTCs stored again when a routine completes);
- ``routines``: Start / Stop / RequestResults, the progress of a running routine;
- ``states``: state charts, sessions, preconditions, S3;
- ``negatives``: negative answers, encoded with the description's negative responses;
- ``ecu``: ``DescribedEcu`` itself and the dispatch of a request to the above;
- ``specs``: ``described_specs``, the base variants of loaded PDX files at their
  logical addresses (for the emulator's ``--pdx``).

Only odxtools' public API is used.
"""

from app.vehicles.emulator.described.dtcs import START_STATUSES
from app.vehicles.emulator.described.ecu import ACTIVE_SESSION_DID, DescribedEcu
from app.vehicles.emulator.described.routines import (
    ROUTINE_RESULTS,
    ROUTINE_START,
    ROUTINE_STOP,
    DescribedRoutine,
)
from app.vehicles.emulator.described.specs import (
    DescribedSpec,
    described_specs,
    load_pdx,
    logical_address,
)

__all__ = [
    "ACTIVE_SESSION_DID",
    "ROUTINE_RESULTS",
    "ROUTINE_START",
    "ROUTINE_STOP",
    "START_STATUSES",
    "DescribedEcu",
    "DescribedRoutine",
    "DescribedSpec",
    "described_specs",
    "load_pdx",
    "logical_address",
]
