"""The ECUs of a demo vehicle, as the simulator and the DoIP emulator run them: each a
``DescribedEcu`` answering as its description says, with the demo scenario laid over it.

A demo ECU (``DEFAULT_ECUS``: engine 0x10, transmission 0x18, abs 0x28, body 0x40) is
emulated from its base variant in the demo description (``app.vehicles.pdx.demo``:
DIDs, DTCs, routines, sessions, preconditions; answers encoded by odxtools), and the
scenario (``app.vehicles.pdx.scenario``) says what the demo vehicle does beyond that:
the DTCs stored at start, the identification values (the VIN is the vehicle's), live
values, and how each routine behaves (the self-test re-runs the ECU's tests; the ABS
bleed check answers 0x22 outside the extended session, works a while with 0x78 and
fails 0x26 while C0035 is stored). An ECU at any other address is a generic one
(``GENERIC``): the identification DIDs of ISO 14229-1, sessions, an empty fault memory,
no routines. ``make_ecu`` builds either, or an ECU from a description a vehicle binds
(``layer``): the scenario of the demo ECU the spec names (the one at a demo address)
applies to it too, for what that description has.

Time is passed in (``now``, seconds on a monotonic clock) and randomness comes from the
``random.Random`` given, so the same inputs give the same answers.
"""

from __future__ import annotations

import dataclasses
import functools
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from app.vehicles.emulator.described import DescribedEcu, DescribedSpec
from app.vehicles.emulator.described.overlay import Overlay
from app.vehicles.emulator.reply import P2_SERVER_MS, P2_STAR_SERVER_MS, Reply
from app.vehicles.pdx.demo import DEMO_ECUS, DEMO_SESSIONS, IDENTIFICATION
from app.vehicles.pdx.scenario import DEMO_SCENARIO, Duration, EcuScenario
from app.vehicles.pdx.spec import PdxEcu, PdxSpec

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

__all__ = [
    "DEFAULT_ECUS",
    "DEFAULT_SPECS",
    "GENERIC",
    "P2_SERVER_MS",
    "P2_STAR_SERVER_MS",
    "Ecu",
    "EcuSpec",
    "Reply",
    "Timings",
    "demo_layer",
    "make_ecu",
    "scenario_for",
    "spec_for",
]

# What the simulator and the emulator run: an ECU answering as a description says.
Ecu = DescribedEcu

# An ECU without a description: identification, sessions, an empty fault memory.
GENERIC: Final = PdxEcu(
    short_name="GENERIC",
    long_name="An ECU without a description",
    sessions=DEMO_SESSIONS,
    dids=IDENTIFICATION,
)


@dataclass(frozen=True, slots=True)
class EcuSpec:
    """An ECU of a vehicle: its name there, its address, and the base variant it is
    emulated from (a demo ECU's, or ``GENERIC``)."""

    name: str
    address: int
    layer_name: str = GENERIC.short_name


DEFAULT_ECUS: Final = tuple(
    EcuSpec(ecu.short_name.lower(), ecu.logical_address or 0, ecu.short_name) for ecu in DEMO_ECUS
)
DEFAULT_SPECS: Final[dict[int, EcuSpec]] = {spec.address: spec for spec in DEFAULT_ECUS}


@dataclass(frozen=True, slots=True)
class Timings:
    self_test_s: float = 2.0  # how long a routine runs (the self-test)
    bleed_check_s: float = 1.0  # how long the ABS bleed check works before answering
    # A non-default session ends after this long without a request; None: never (no
    # tester in-process sends TesterPresent, so the simulator has no S3).
    s3_s: float | None = 5.0


def spec_for(name: str, address: int) -> EcuSpec:
    """The ECU a vehicle has at ``address``: the demo ECU there (under the vehicle's
    name for it), else a generic one."""
    default = DEFAULT_SPECS.get(address)
    if default is not None:
        return dataclasses.replace(default, name=name)
    return EcuSpec(name, address)


def scenario_for(spec: EcuSpec) -> EcuScenario:
    """The demo scenario of the demo ECU ``spec`` is (wherever it sits); a generic ECU's
    otherwise (its own software version and serial number, no DTCs)."""
    found = DEMO_SCENARIO.get(spec.layer_name)
    if found is not None:
        return found
    return EcuScenario("GEN 01.00.00", f"GEN{spec.address:07X}")


@functools.cache
def _layers() -> dict[str, DiagLayer]:
    # Imported here: building the databases needs odxtools (about 0.3 s to import).
    from app.vehicles.pdx.build import build_database

    layers: dict[str, DiagLayer] = {}
    for spec in (PdxSpec(DEMO_ECUS, name="SOVD_DEMO"), PdxSpec((GENERIC,), name="GENERIC")):
        for layer in build_database(spec).base_variants:
            layers[layer.short_name] = layer
    return layers


def demo_layer(short_name: str) -> DiagLayer:
    """A base variant of the demo description (or ``GENERIC``), built once."""
    return _layers()[short_name]


def make_ecu(
    spec: EcuSpec,
    vin: str,
    timings: Timings,
    rng: random.Random,
    layer: DiagLayer | None = None,
) -> DescribedEcu:
    """The ECU ``spec`` names, emulated from ``layer`` (default: its demo or generic base
    variant) with its scenario laid over it."""
    overlay = Overlay(
        scenario_for(spec),
        vin,
        {Duration.SELF_TEST: timings.self_test_s, Duration.BLEED_CHECK: timings.bleed_check_s},
    )
    return DescribedEcu(
        DescribedSpec(spec.name, spec.address, layer or demo_layer(spec.layer_name)),
        rng,
        routine_s=timings.self_test_s,
        s3_s=timings.s3_s,
        overlay=overlay,
    )
