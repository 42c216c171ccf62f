"""A stateful ECU emulator behind a DoIP entity, for benches without a vehicle and for tests:
server (the DoIP entity), ecus (the demo ECUs), described (ECUs from a PDX), reply (UDS answers).

Run it on its own with ``python -m app.vehicles.emulator --host 127.0.0.1 --port 13400``,
or in-process with ``running_emulator()``. With ``--pdx FILE`` (or
``EmulatorSettings(described=...)``) its ECUs are the base variants of an ODX
description, answering as it describes (``described``); without, the demo ECUs of the
demo description with the demo scenario (``ecus``).
"""

from app.vehicles.emulator.described import (
    DescribedEcu,
    DescribedSpec,
    described_specs,
    load_pdx,
)
from app.vehicles.emulator.ecus import (
    DEFAULT_ECUS,
    DEFAULT_SPECS,
    Ecu,
    EcuSpec,
    Timings,
    make_ecu,
    spec_for,
)
from app.vehicles.emulator.server import (
    PROFILES,
    DoipEmulator,
    EmulatorSettings,
    running_emulator,
)

__all__ = [
    "DEFAULT_ECUS",
    "DEFAULT_SPECS",
    "PROFILES",
    "DescribedEcu",
    "DescribedSpec",
    "DoipEmulator",
    "Ecu",
    "EcuSpec",
    "EmulatorSettings",
    "Timings",
    "described_specs",
    "load_pdx",
    "make_ecu",
    "running_emulator",
    "spec_for",
]
