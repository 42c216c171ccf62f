"""The demo ECUs' description, built from the project's own tables (see the package's
docstring): ``demo_spec()`` and ``build_demo_pdx()``."""

from __future__ import annotations

import functools
from typing import Final

from app.vehicles import description, uds
from app.vehicles.emulator import ecus
from app.vehicles.pdx.build import build_pdx
from app.vehicles.pdx.spec import DEFAULT, EXTENDED, PdxDid, PdxDtc, PdxEcu, PdxRoutine, PdxSpec

# The sessions the emulated ECUs switch to (0x10 0x02 is subFunctionNotSupported there).
DEMO_SESSIONS: Final = (DEFAULT, EXTENDED)
# Service base names that are not just the SOVD id in PascalCase.
_NAME_OVERRIDES: Final = {"vin": "VIN"}


def pascal_name(sovd_id: str) -> str:
    """The ODX short name of a SOVD id: ``engineRpm`` -> ``EngineRpm``, ``vin`` -> ``VIN``."""
    return _NAME_OVERRIDES.get(sovd_id, sovd_id[:1].upper() + sovd_id[1:])


def _state(session: str | None) -> tuple[str, ...]:
    """The ``Session`` state of a session name of ``app.vehicles.uds`` ("extended")."""
    if session is None:
        return ()
    code = uds.SESSIONS[session]
    return tuple(s.name for s in DEMO_SESSIONS if s.id == code)


def _demo_ecu(spec: ecus.EcuSpec) -> PdxEcu:
    described = description.describe(spec.address)
    return PdxEcu(
        short_name=spec.name.upper(),
        long_name=f"{spec.name} ECU",
        logical_address=spec.address,
        sessions=DEMO_SESSIONS,
        dids=tuple(
            PdxDid.from_codec(
                uds.DID_CODECS[item.did],
                pascal_name(item.id),
                item.name,
                pascal_name(item.category.value),
            )
            for item in described.data
        ),
        dtcs=tuple(
            PdxDtc(dtc.code, description.fault_name(dtc.code), description.severity(dtc.code))
            for dtc in (*spec.faults, *spec.history)
        ),
        routines=tuple(
            PdxRoutine(
                operation.routine_id,
                pascal_name(operation.id),
                operation.name,
                # A synchronous routine runs to its end within the start: no stop.
                ("Start", "Stop", "RequestResults")
                if operation.asynchronous
                else ("Start", "RequestResults"),
                _state(operation.session),
            )
            for operation in described.operations
        ),
        clear_sessions=_state(described.clear_session),
    )


def demo_spec() -> PdxSpec:
    """The four demo ECUs (``app.vehicles.emulator.ecus.DEFAULT_ECUS``) as a spec."""
    return PdxSpec(tuple(_demo_ecu(spec) for spec in ecus.DEFAULT_ECUS), name="SOVD_DEMO")


@functools.cache
def build_demo_pdx() -> bytes:
    """The PDX of the demo ECUs: containers ``ENGINE``, ``TRANSMISSION``, ``ABS``, ``BODY``
    (built from the project's tables on first call, the same bytes every time)."""
    return build_pdx(demo_spec())
