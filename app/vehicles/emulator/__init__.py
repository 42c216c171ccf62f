"""A stateful ECU emulator behind a DoIP entity, for benches without a vehicle and for tests:
server (the DoIP entity), ecus (the demo ECUs), described (ECUs from a PDX), reply (UDS answers).

Run it on its own with ``python -m app.vehicles.emulator --host 127.0.0.1 --port 13400``,
or in-process with ``running_emulator()``. With ``--pdx FILE`` (or
``EmulatorSettings(described=...)``) its ECUs are the base variants of an ODX
description, answering as it describes (``described``); without, the demo ECUs of the
demo description with the demo scenario (``ecus``).
"""

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each name loads its module on first use (PEP 562): the service's simulator imports the
# ECU models (``ecus``, ``described``: with the service, in its main thread, odxtools too),
# and the DoIP entity (``server``) is imported only when the demo serves one.
_MODULE_OF = {
    **dict.fromkeys(("DescribedEcu", "DescribedSpec", "described_specs", "load_pdx"), "described"),
    **dict.fromkeys(
        ("DEFAULT_ECUS", "DEFAULT_SPECS", "Ecu", "EcuSpec", "Timings", "make_ecu", "spec_for"),
        "ecus",
    ),
    **dict.fromkeys(("PROFILES", "DoipEmulator", "EmulatorSettings", "running_emulator"), "server"),
}

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


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{module}"), name)
