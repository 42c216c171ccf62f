"""The demo ECUs' description, declared here once: ``DEMO_ECUS``, ``demo_spec()`` and
``build_demo_pdx()``.

This is the single source of truth of what the demo ECUs (engine, transmission, abs,
body) offer: their DIDs (with the codecs of ``app.vehicles.uds.DID_CODECS``: sizes,
scaling, units, value tables), DTCs with texts and levels, routines and the sessions they
need. Everything else reads it: the emulated ECUs (``app.vehicles.emulator.ecus``), the
default ECU set (``DEFAULT_ECUS``), the DTC texts of ``ReadDTC`` chunks (``dtc_text``)
and the PDX itself, which the service puts in its description library as ``DEMO_PDX_NAME``
when it seeds the demo vehicles and binds their ECUs to it. What the demo vehicles *do*
beyond what a description says (which DTCs are stored at start, the identification
values, how a routine behaves) is the demo scenario beside it (``app.vehicles.pdx.scenario``).
"""

from __future__ import annotations

import functools
from typing import Final

from app.vehicles import uds
from app.vehicles.pdx.spec import (
    DEFAULT,
    EXTENDED,
    PdxChoice,
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxNumber,
    PdxRoutine,
    PdxSpec,
)

# The sessions the emulated ECUs switch to (0x10 0x02 is subFunctionNotSupported there).
DEMO_SESSIONS: Final = (DEFAULT, EXTENDED)
# Service base names that are not just the SOVD id in PascalCase.
_NAME_OVERRIDES: Final = {"vin": "VIN"}


def pascal_name(sovd_id: str) -> str:
    """The ODX short name of a SOVD id: ``engineRpm`` -> ``EngineRpm``, ``vin`` -> ``VIN``."""
    return _NAME_OVERRIDES.get(sovd_id, sovd_id[:1].upper() + sovd_id[1:])


def _did(did: int, name: str, long_name: str, category: str) -> PdxDid:
    return PdxDid.from_codec(uds.DID_CODECS[did], name, long_name, category)


# Every ECU answers these (ISO 14229-1 identification DIDs); an ECU without a description
# offers them and nothing else (``app.services.sovd.data``, the emulator's generic ECU).
IDENTIFICATION: Final = (
    _did(uds.VIN, "VIN", "Vehicle identification number", "IdentData"),
    _did(uds.ECU_SOFTWARE_VERSION, "SoftwareVersion", "ECU software version", "IdentData"),
    _did(uds.ECU_SERIAL_NUMBER, "SerialNumber", "ECU serial number", "IdentData"),
    _did(uds.ACTIVE_DIAGNOSTIC_SESSION, "ActiveSession", "Active diagnostic session", "SysInfo"),
)
_RPM: Final = _did(uds.ENGINE_RPM, "EngineRpm", "Engine speed", "CurrentData")
_SPEED: Final = _did(uds.VEHICLE_SPEED, "VehicleSpeed", "Vehicle speed", "CurrentData")
_COOLANT: Final = _did(
    uds.COOLANT_TEMPERATURE, "CoolantTemperature", "Coolant temperature", "CurrentData"
)
# The engine's variant coding: read and written (0x2E), a SOVD configuration (varcoding).
CODING: Final = 0x0600
_CODING: Final = PdxDid(
    CODING, "Coding", "Engine variant coding", size=2, category="VarCoding", writable=True
)

SELF_TEST: Final = 0x0201
BLEED_CHECK: Final = 0x0202
_SELF_TEST: Final = PdxRoutine(SELF_TEST, "SelfTest", "Self-test")
# Its start runs it to its end (no Stop), and it needs the extended session.
_BLEED_CHECK: Final = PdxRoutine(
    BLEED_CHECK, "BrakeBleedCheck", "Brake bleed check", ("Start", "RequestResults"), ("Extended",)
)

ACTUATOR_TEST: Final = 0x0203
# An actuator driven for a while: its Start takes typed parameters (a duration in s, in
# half seconds from 0.5 to 30, and which actuator), the ECU refuses others with 0x31.
ACTUATORS: Final = ((1, "IdleValve"), (2, "FuelPump"), (3, "CoolingFan"))
_ACTUATOR_TEST: Final = PdxRoutine(
    ACTUATOR_TEST,
    "ActuatorTest",
    "Actuator test",
    parameters=(
        PdxNumber("Duration", size=1, scale=0.5, unit="s", low=0.5, high=30),
        PdxChoice("Target", ACTUATORS),
    ),
)

DEMO_ECUS: Final = (
    PdxEcu(
        short_name="ENGINE",
        long_name="engine ECU",
        logical_address=0x10,
        sessions=DEMO_SESSIONS,
        dids=(*IDENTIFICATION, _RPM, _SPEED, _COOLANT, _CODING),
        dtcs=(
            PdxDtc("P0171", "System too lean (bank 1)", 2),
            PdxDtc("P0420", "Catalyst system efficiency below threshold (bank 1)", 3),
        ),
        routines=(_SELF_TEST, _ACTUATOR_TEST),
    ),
    PdxEcu(
        short_name="TRANSMISSION",
        long_name="transmission ECU",
        logical_address=0x18,
        sessions=DEMO_SESSIONS,
        dids=(*IDENTIFICATION, _SPEED),
        dtcs=(PdxDtc("P0700", "Transmission control system malfunction", 2),),
        routines=(_SELF_TEST,),
    ),
    PdxEcu(
        short_name="ABS",
        long_name="abs ECU",
        logical_address=0x28,
        sessions=DEMO_SESSIONS,
        dids=(*IDENTIFICATION, _SPEED),
        dtcs=(PdxDtc("C0035", "Left front wheel speed sensor circuit", 1),),
        routines=(_SELF_TEST, _BLEED_CHECK),
    ),
    PdxEcu(
        short_name="BODY",
        long_name="body ECU",
        logical_address=0x40,
        sessions=DEMO_SESSIONS,
        dids=IDENTIFICATION,
        dtcs=(PdxDtc("B1000", "Body control module internal fault", 4),),
        # Its routines and ClearDTC only in the extended session.
        routines=(PdxRoutine(SELF_TEST, "SelfTest", "Self-test", sessions=("Extended",)),),
        clear_sessions=("Extended",),
    ),
)


def demo_spec() -> PdxSpec:
    """The four demo ECUs (``DEMO_ECUS``) as a spec."""
    return PdxSpec(DEMO_ECUS, name="SOVD_DEMO")


@functools.cache
def build_demo_pdx() -> bytes:
    """The PDX of the demo ECUs: containers ``ENGINE``, ``TRANSMISSION``, ``ABS``, ``BODY``
    (built on first call, the same bytes every time)."""
    # Imported here: building needs odxtools (0.3-0.4 s to import), and what imports
    # this module for the demo's declarations alone (``app.models``: the default ECU
    # set; the command line) should not pay for it.
    from app.vehicles.pdx.build import build_pdx

    return build_pdx(demo_spec())


# The file the demo description is stored as in the description library (when the demo
# vehicles are seeded: ``app.main``).
DEMO_PDX_NAME: Final = "demo.pdx"
# The default ECU set (a vehicle registered without ``ecus``): (name, logical address).
DEFAULT_ECUS: Final[tuple[tuple[str, int], ...]] = tuple(
    (ecu.short_name.lower(), ecu.logical_address or 0) for ecu in DEMO_ECUS
)
_DTC_TEXTS: Final = {d.code: d.text for ecu in DEMO_ECUS for d in ecu.dtcs}


def dtc_text(code: str) -> str:
    """``P0171`` -> ``System too lean (bank 1)``: a demo DTC's text; "" for any other."""
    return _DTC_TEXTS.get(code.upper(), "")
