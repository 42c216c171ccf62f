"""The built-in ECUs as an ODX description (ASAM MCD-2D, ISO 22901), a PDX built with odxtools:
spec (the declarations), demo and scenario (the demo ECUs), build, layers, services, fault_memory.

Two layers of API:

- ``build_pdx(spec)``: any small set of ECUs, declared with the frozen dataclasses of ``spec.py``
  (``PdxSpec`` of ``PdxEcu``, each with ``PdxDid`` / ``PdxDtc`` / ``PdxRoutine`` /
  ``PdxSession``), becomes the bytes of one PDX file. Tests use it for a custom
  description (one ECU with one DID, say).
- ``build_demo_pdx()``: the four demo ECUs (engine, transmission, abs, body), declared
  once in ``demo.py`` (``DEMO_ECUS``: DIDs with the codecs of ``app.vehicles.uds``,
  DTCs with texts and levels, routines, sessions): the single source of truth that
  the emulated ECUs (``app.vehicles.emulator.ecus``) read; the service stores the PDX
  in its description library (``DEMO_PDX_NAME``) and binds the demo vehicles' ECUs to
  it, so their SOVD tree is the description's (CDA's mapping). ``demo_spec()`` is that
  spec; names are the SOVD ids in PascalCase (``pascal_name``: ``VIN_Read``, ``EngineRpm_Read``,
  ``SelfTest_Start``, ``BrakeBleedCheck_Start``). A routine whose start runs it to its
  end (the brake bleed check) has no ``_Stop``. What the demo vehicles do beyond their
  description (DTCs stored at start, identification values, routine behaviour) is the
  demo scenario, ``scenario.py`` (``DEMO_SCENARIO``, checked against ``DEMO_ECUS`` by
  ``check_scenario``).

What one ECU becomes: a diag layer container named like the ECU (``ENGINE``,
``TRANSMISSION``, ``ABS``, ``BODY``: ``PdxEcu.short_name``) holding one base variant of
the same name. The variant has, following the naming the Eclipse OpenSOVD classic
diagnostic adapter (CDA) uses:

- a state chart ``Session`` (semantic ``SESSION``) with one state per session
  (``Default`` 0x01, ``Extended`` 0x03), start state ``Default``, a transition between
  every two states (``Default_Extended`` ...), and per session the service
  ``<State>_Start`` (0x10 <id>), which references the transitions into its state;
- per DID ``<Name>_Read`` (0x22 <did>), its value in the parameter ``<Name>`` with a DOP
  ``<Name>`` (ASCII text, a number scaled ``raw * scale + offset`` with its unit, or a
  text table);
- ``FaultMem_ReportDTCByStatusMask`` (0x19 0x02 <mask>): the answer's records are an
  end-of-PDU field of ``DTCAndStatusRecord`` structures, each a ``DTC`` (the DTC DOP
  ``DTC`` listing the ECU's DTCs: trouble code, display code, text, level) and the
  eight status bits (``testFailed`` ... ``warningIndicatorRequested``);
- ``FaultMem_ClearDTCs`` (0x14 <group>, the group defaults to all, 0xFFFFFF);
- per routine ``<Name>_Start`` / ``<Name>_Stop`` / ``<Name>_RequestResults`` (0x31
  0x01/0x02/0x03 <id>), each answered with the routine id and the project's status
  record (``RoutineState``: running/completed/stopped/failed, ``Progress`` in %);
- one negative response ``NR_Generic`` (0x7F, the request's SID, ``NRC`` with the
  ISO 14229-1 names) on every service;
- PRE-CONDITION-STATE-REFS to the ``Session`` states a service needs (the ECU answers
  it only in those sessions): the body's routines and ClearDTC, the abs brake bleed
  check need ``Extended``;
- functional classes ``IdentData`` / ``CurrentData`` / ``SysInfo`` (the DIDs, as
  ``DataCategory``), ``Session``, ``FaultMem`` and ``Routines``;
- optional, none of them in the demo ECUs: per writable DID ``<Name>_Write`` (0x2E <did>
  <value>, answered 6E <did>; a DID of functional class ``VarCoding`` is a SOVD
  configuration), ``DTC_Setting_Mode_<Name>`` (0x85 <type>, FUNCT-CLASS ``DtcSetting``),
  and the environment data of one DTC: ``FaultMem_ReportDTCSnapshotRecordByDTCNumber``
  (19 04 <dtc> <record>) and ``FaultMem_ReportDTCExtDataRecordByDTCNumber`` (19 06);
- ECU variants (``PdxEcu.variants``, ``PdxVariant``): each an ECU-VARIANT of the base
  variant (PARENT-REF), with its ECU-VARIANT-PATTERNs (MATCHING-PARAMETERs: a base
  variant's service, its response parameter, the expected value) and ``<Name>_Read``
  services of its own DIDs; the base variant's services are inherited;
- the ECU's logical address as a special data group (``SDG`` semantic ``ECU``, value
  semantic ``LOGICAL-ADDRESS``, ``0x10``).

No protocol layer: odxtools does not need one to encode or decode, and one (CDA's share
``UDS_Ethernet_DoIP``) needs the DoIP/UDS comparam subsets and spec, which this package
does not invent.

Determinism: odxtools' ``write_pdx_file`` stamps the current time on the index's
CREATION-DATE attributes and on the zip entries; the file it writes is repacked with a
fixed date (``PDX_DATE``) on both, so the same spec gives byte-identical bytes.

The modules:

- ``spec.py``: the frozen dataclasses (``PdxSpec``, ``PdxEcu``, ``PdxDid``, ``PdxDtc``,
  ``PdxRoutine`` with its Start's ``PdxNumber`` / ``PdxChoice`` parameters,
  ``PdxSession``, ``PdxVariant``) and their checks; ``DEFAULT`` / ``EXTENDED``,
  ``ROUTINE_ACTIONS``, ``DTC_SETTING_ON_OFF``;
- ``build.py``: ``build_database`` (one container per ECU), ``build_pdx`` and the
  deterministic repacking of the zip;
- ``layers.py``: the odxtools parts the services are made of (``_Layer``, coded types,
  compu methods, parameters);
- ``services.py``: negative response, sessions and their state chart, DIDs, routines,
  DTC settings;
- ``fault_memory.py``: the DTC DOP, read and clear, and the environment data of one DTC;
- ``demo.py``: ``DEMO_ECUS``, ``IDENTIFICATION``, ``demo_spec``, ``build_demo_pdx``,
  ``pascal_name``, ``DEMO_PDX_NAME``, ``DEFAULT_ECUS``, ``dtc_text``;
- ``scenario.py``: ``DEMO_SCENARIO``, the demo vehicles' behaviour beside the
  description.
"""

from typing import TYPE_CHECKING, Any

from app.vehicles.pdx.demo import DEMO_SESSIONS, build_demo_pdx, demo_spec, pascal_name
from app.vehicles.pdx.spec import (
    DEFAULT,
    DTC_SETTING_ON_OFF,
    EXTENDED,
    ROUTINE_ACTIONS,
    PdxChoice,
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxNumber,
    PdxRoutine,
    PdxSession,
    PdxSpec,
    PdxVariant,
)

__all__ = [
    "DEFAULT",
    "DEMO_SESSIONS",
    "DTC_SETTING_ON_OFF",
    "EXTENDED",
    "PDX_DATE",
    "ROUTINE_ACTIONS",
    "PdxChoice",
    "PdxDid",
    "PdxDtc",
    "PdxEcu",
    "PdxNumber",
    "PdxRoutine",
    "PdxSession",
    "PdxSpec",
    "PdxVariant",
    "build_database",
    "build_demo_pdx",
    "build_pdx",
    "demo_spec",
    "pascal_name",
]

if TYPE_CHECKING:
    from app.vehicles.pdx.build import PDX_DATE, build_database, build_pdx
# Building needs odxtools (0.3-0.4 s to import): its names load on first use, so what
# imports this package for the declarations alone (the service's models, the command
# line) does not import odxtools.
_BUILD_NAMES = frozenset({"PDX_DATE", "build_database", "build_pdx"})


def __getattr__(name: str) -> Any:
    if name in _BUILD_NAMES:
        from app.vehicles.pdx import build

        return getattr(build, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
