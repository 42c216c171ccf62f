"""The demo description (``app.vehicles.pdx.demo.DEMO_ECUS``) checked against what the
emulated ECUs do, and the generic identification items an ECU without a description
offers (``app.services.sovd.data.IDENTIFICATION``): every DID reads back, every routine
runs in the session it names (and not below it), the fault clearing session is the one
the ECU needs. Values come from the description and the scenario, not copied here."""

from __future__ import annotations

import random

import pytest

from app.services.sovd.data import IDENTIFICATION
from app.vehicles import trouble_codes, uds
from app.vehicles.emulator import Ecu, Timings, make_ecu, spec_for
from app.vehicles.pdx.demo import DEFAULT_ECUS, DEMO_ECUS, dtc_text
from app.vehicles.pdx.scenario import DEMO_SCENARIO, check_scenario
from app.vehicles.pdx.spec import PdxChoice, PdxEcu, PdxRoutine

pytestmark = pytest.mark.fast


def _ecu(address: int) -> Ecu:
    name = dict((a, n) for n, a in DEFAULT_ECUS).get(address, "other")
    return make_ecu(spec_for(name, address), "V", Timings(s3_s=None), random.Random(1))


def _demo(address: int) -> PdxEcu:
    return next(e for e in DEMO_ECUS if e.logical_address == address)


def test_the_default_ecus_are_the_demo_descriptions() -> None:
    assert tuple((ecu.short_name.lower(), ecu.logical_address) for ecu in DEMO_ECUS) == DEFAULT_ECUS
    assert [name for name, _ in DEFAULT_ECUS] == ["engine", "transmission", "abs", "body"]


@pytest.mark.parametrize("address", [0x10, 0x18, 0x28, 0x40])
def test_every_described_did_reads_back(address: int) -> None:
    ecu = _ecu(address)
    for did in _demo(address).dids:
        answer = ecu.handle(b"\x22" + did.did.to_bytes(2, "big"), 0.0).payload
        assert answer is not None and answer[:3] == b"\x62" + did.did.to_bytes(2, "big"), did
        codec = uds.DID_CODECS.get(did.did)
        if codec is not None:
            codec.decode(answer[3:])
        else:  # the engine's coding: a number of its size
            assert did.size is not None and len(answer) == 3 + did.size, did


@pytest.mark.parametrize("address", [0x10, 0x18, 0x28, 0x40, 0x77])
def test_the_generic_identification_items_read_back_at_any_address(address: int) -> None:
    ecu = _ecu(address)
    for item in IDENTIFICATION:
        answer = ecu.handle(b"\x22" + item.did.to_bytes(2, "big"), 0.0).payload
        assert answer is not None and answer[:3] == b"\x62" + item.did.to_bytes(2, "big"), item
        uds.DID_CODECS[item.did].decode(answer[3:])
        assert item.name
    assert [i.id for i in IDENTIFICATION] == [
        "vin",
        "softwareVersion",
        "serialNumber",
        "activeSession",
    ]


def _in_range(routine: PdxRoutine) -> bytes:
    """The Start's parameters at their lowest allowed values (the actuator test's)."""
    found = b""
    for parameter in routine.parameters:
        if isinstance(parameter, PdxChoice):
            raw = parameter.names[0][0]
        else:
            raw = parameter.raw(parameter.low if parameter.low is not None else parameter.offset)
        found += raw.to_bytes(parameter.size, "big")
    return found


@pytest.mark.parametrize("address", [0x10, 0x18, 0x28, 0x40])
def test_routines_run_in_the_session_described_and_not_below_it(address: int) -> None:
    for routine in _demo(address).routines:
        start = b"\x31\x01" + routine.routine_id.to_bytes(2, "big") + _in_range(routine)
        ecu = _ecu(address)
        refused = ecu.handle(start, 0.0).payload
        if not routine.sessions:
            assert refused is not None and refused[0] == 0x71, routine
            continue
        assert refused is not None and refused[0] == uds.NEGATIVE_RESPONSE, routine
        ecu.handle(b"\x10" + bytes((uds.SESSIONS[routine.sessions[0].lower()],)), 0.0)
        ecu.dtcs.clear()  # the bleed check fails on C0035: here only the session counts
        answer = ecu.handle(start, 0.0).payload
        assert answer is not None and answer[0] == 0x71, routine


def test_clearing_faults_needs_the_session_described() -> None:
    body = _demo(0x40)
    assert body.clear_sessions
    ecu = _ecu(0x40)
    assert ecu.handle(bytes.fromhex("14FFFFFF"), 0.0).payload == b"\x7f\x14\x7f"
    ecu.handle(b"\x10" + bytes((uds.SESSIONS[body.clear_sessions[0].lower()],)), 0.0)
    assert ecu.handle(bytes.fromhex("14FFFFFF"), 0.0).payload == b"\x54"
    assert not _demo(0x10).clear_sessions


def test_dtc_texts_are_the_described_ones() -> None:
    for ecu in DEMO_ECUS:
        for dtc in ecu.dtcs:
            assert dtc_text(dtc.code) == dtc_text(dtc.code.lower()) == dtc.text
    assert dtc_text("P9999") == ""
    for _, address in DEFAULT_ECUS:
        for code in _ecu(address).stored_codes():
            assert dtc_text(code), code  # every fault a demo ECU can report has a text


def test_the_scenario_names_only_what_the_description_declares() -> None:
    check_scenario()
    for ecu in DEMO_ECUS:
        scenario = DEMO_SCENARIO[ecu.short_name]
        assert ecu.logical_address is not None
        emulated = _ecu(ecu.logical_address)
        assert emulated.stored_codes() == tuple(d.code for d in scenario.dtcs)
        assert emulated.dtcs == {trouble_codes.dtc_number(d.code): d.status for d in scenario.dtcs}
