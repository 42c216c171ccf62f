"""What the service says each ECU offers, read from the demo description
(``app.vehicles.pdx.demo.DEMO_ECUS``), checked against what the emulated ECUs do: every
data item it lists reads back, every operation it lists runs (in the session it names),
and the fault clearing session it names is the one the ECU needs. Values come from the
description and the scenario, not copied here."""

from __future__ import annotations

import random

import pytest

from app.vehicles import description, uds
from app.vehicles.description import DataCategory, describe, fault_name, severity
from app.vehicles.emulator import Ecu, Timings, make_ecu, spec_for
from app.vehicles.pdx.demo import DEMO_ECUS, IDENTIFICATION
from app.vehicles.pdx.scenario import DEMO_SCENARIO, check_scenario

pytestmark = pytest.mark.fast


def _ecu(address: int) -> Ecu:
    name = dict((a, n) for n, a in description.DEFAULT_ECUS).get(address, "other")
    return make_ecu(spec_for(name, address), "V", Timings(s3_s=None), random.Random(1))


def test_the_default_ecus_are_the_demo_descriptions() -> None:
    assert (
        tuple((ecu.short_name.lower(), ecu.logical_address) for ecu in DEMO_ECUS)
        == description.DEFAULT_ECUS
    )
    assert [name for name, _ in description.DEFAULT_ECUS] == [
        "engine",
        "transmission",
        "abs",
        "body",
    ]


def test_data_items_are_the_described_dids_and_other_ecus_have_identification() -> None:
    for ecu in DEMO_ECUS:
        assert ecu.logical_address is not None
        described = describe(ecu.logical_address)
        assert [(d.did, d.name) for d in described.data] == [
            (did.did, did.long_name) for did in ecu.dids
        ]
    engine = describe(0x10)
    assert [(d.id, d.category) for d in engine.data] == [
        ("vin", DataCategory.IDENT),
        ("softwareVersion", DataCategory.IDENT),
        ("serialNumber", DataCategory.IDENT),
        ("activeSession", DataCategory.SYSTEM),
        ("engineRpm", DataCategory.CURRENT),
        ("vehicleSpeed", DataCategory.CURRENT),
        ("coolantTemperature", DataCategory.CURRENT),
    ]
    other = describe(0x77)
    assert [d.did for d in other.data] == [d.did for d in IDENTIFICATION]
    assert [d.id for d in other.data] == ["vin", "softwareVersion", "serialNumber", "activeSession"]
    assert other.operations == () and other.clear_session is None


@pytest.mark.parametrize("address", [0x10, 0x18, 0x28, 0x40, 0x77])
def test_every_data_item_described_reads_back_with_its_codec(address: int) -> None:
    ecu = _ecu(address)
    for item in describe(address).data:
        answer = ecu.handle(b"\x22" + item.did.to_bytes(2, "big"), 0.0).payload
        assert answer is not None and answer[:3] == b"\x62" + item.did.to_bytes(2, "big"), item
        uds.DID_CODECS[item.did].decode(answer[3:])
        assert item.name


def test_operations_and_the_sessions_they_need() -> None:
    assert [(o.id, o.routine_id, o.asynchronous, o.session) for o in describe(0x28).operations] == [
        ("selfTest", 0x0201, True, None),
        ("brakeBleedCheck", 0x0202, False, "extended"),
    ]
    assert [(o.id, o.session) for o in describe(0x40).operations] == [("selfTest", "extended")]
    assert describe(0x40).clear_session == "extended"
    assert describe(0x10).clear_session is None


@pytest.mark.parametrize("address", [0x10, 0x18, 0x28, 0x40])
def test_operations_run_in_the_session_described_and_not_below_it(address: int) -> None:
    for operation in describe(address).operations:
        start = b"\x31\x01" + operation.routine_id.to_bytes(2, "big")
        ecu = _ecu(address)
        refused = ecu.handle(start, 0.0).payload
        if operation.session is None:
            assert refused is not None and refused[0] == 0x71, operation
            continue
        assert refused is not None and refused[0] == uds.NEGATIVE_RESPONSE, operation
        ecu.handle(b"\x10" + bytes((uds.SESSIONS[operation.session],)), 0.0)
        ecu.dtcs.clear()  # the bleed check fails on C0035: here only the session counts
        answer = ecu.handle(start, 0.0).payload
        assert answer is not None and answer[0] == 0x71, operation


def test_clearing_faults_needs_the_session_described() -> None:
    body = _ecu(0x40)
    assert body.handle(bytes.fromhex("14FFFFFF"), 0.0).payload == b"\x7f\x14\x7f"
    body.handle(b"\x10" + bytes((uds.SESSIONS[describe(0x40).clear_session or ""],)), 0.0)
    assert body.handle(bytes.fromhex("14FFFFFF"), 0.0).payload == b"\x54"


def test_fault_names_and_severities_are_the_described_texts_and_levels() -> None:
    for ecu in DEMO_ECUS:
        for dtc in ecu.dtcs:
            assert fault_name(dtc.code) == dtc.text
            assert fault_name(dtc.code.lower()) == dtc.text
            assert severity(dtc.code) == dtc.level
    assert fault_name("P9999") == ""
    assert severity("P9999") == description.DEFAULT_SEVERITY == 3
    for _, address in description.DEFAULT_ECUS:
        for code in _ecu(address).stored_codes():
            assert fault_name(code), code  # every fault an ECU can report has a name
            assert 1 <= severity(code) <= 4


def test_the_scenario_names_only_what_the_description_declares() -> None:
    check_scenario()
    for ecu in DEMO_ECUS:
        scenario = DEMO_SCENARIO[ecu.short_name]
        assert ecu.logical_address is not None
        emulated = _ecu(ecu.logical_address)
        assert emulated.stored_codes() == tuple(d.code for d in scenario.dtcs)
        assert emulated.dtcs == {uds.dtc_number(d.code): d.status for d in scenario.dtcs}
