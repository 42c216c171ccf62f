"""The demo vehicle's emulated ECUs (the demo description with the demo scenario laid over
it), without sockets: UDS request bytes in, answer bytes out, with time passed in, so S3
and routine durations are exact. Values come from the scenario, not copied here."""

from __future__ import annotations

import random

import pytest

from app.vehicles import trouble_codes, uds
from app.vehicles.emulator import DEFAULT_ECUS, Ecu, Timings, make_ecu, spec_for
from app.vehicles.emulator.reply import Reply
from app.vehicles.pdx.demo import BLEED_CHECK, SELF_TEST
from app.vehicles.pdx.scenario import DEMO_SCENARIO

pytestmark = pytest.mark.fast

VIN = "WVWZZZ1KZAW000001"


def _ecu(address: int, **timings: float) -> Ecu:
    spec = next(s for s in DEFAULT_ECUS if s.address == address)
    return make_ecu(spec, VIN, Timings(**timings), random.Random(1))


def _answer(ecu: Ecu, request: str, now: float = 0.0) -> bytes | None:
    return ecu.handle(bytes.fromhex(request), now).payload


def test_each_ecu_starts_with_its_dtcs_and_status_bytes() -> None:
    def report(address: int) -> list[tuple[str, str]]:
        payload = _answer(_ecu(address), "1902FF")
        assert payload is not None and payload[:3] == b"\x59\x02\xff"
        body = payload[3:]
        return [
            (
                trouble_codes.dtc_code(int.from_bytes(body[i : i + 3], "big")),
                trouble_codes.status_summary(body[i + 3]),
            )
            for i in range(0, len(body), 4)
        ]

    for spec in DEFAULT_ECUS:  # the scenario's DTCs, with their status bytes
        started = DEMO_SCENARIO[spec.layer_name].dtcs
        assert report(spec.address) == [
            (d.code, trouble_codes.status_summary(d.status)) for d in started
        ]
    assert report(0x10) == [("P0171", "confirmed"), ("P0420", "pending")]
    # The status mask filters: only confirmed ones.
    assert _answer(_ecu(0x10), "190208") == bytes.fromhex("5902FF0171002F")


def test_the_body_clears_dtcs_in_the_extended_session_only() -> None:
    body = _ecu(0x40)
    assert _answer(body, "14FFFFFF") == b"\x7f\x14\x7f"  # serviceNotSupportedInActiveSession
    assert body.stored_codes() == ("B1000",)
    _answer(body, "1003")
    assert _answer(body, "14FFFFFF") == b"\x54"
    assert body.stored_codes() == ()


def test_the_active_session_is_readable_on_f186() -> None:
    engine = _ecu(0x10)
    assert _answer(engine, "22F186") == b"\x62\xf1\x86\x01"
    _answer(engine, "1003")
    assert _answer(engine, "22F186") == b"\x62\xf1\x86\x03"


def test_other_addresses_get_a_generic_ecu_and_sessions_may_never_expire() -> None:
    plain = make_ecu(spec_for("gateway", 0x50), VIN, Timings(s3_s=None), random.Random(1))
    assert _answer(plain, "1902FF") == b"\x59\x02\xff"  # no DTCs
    assert _answer(plain, "22F18C") == b"\x62\xf1\x8cGEN0000050"
    assert _answer(plain, "22F190") == b"\x62\xf1\x90" + VIN.encode()
    assert _answer(plain, "22010C") == b"\x7f\x22\x31"  # no sensors
    assert _answer(plain, "31010201") == b"\x7f\x31\x11"  # no routines at all
    _answer(plain, "1003", now=0.0)
    plain.handle(b"\x22\xf1\x90", 1e6)  # no S3: the session stays
    assert plain.session == "Extended"
    renamed = spec_for("motor", 0x10)
    assert (renamed.name, renamed.layer_name) == ("motor", DEFAULT_ECUS[0].layer_name)


def test_clear_one_or_all_and_refuse_unknown_groups() -> None:
    engine = _ecu(0x10)
    assert _answer(engine, "14042000") == b"\x54"
    assert engine.stored_codes() == ("P0171",)
    assert _answer(engine, "14123400") == b"\x7f\x14\x31"  # not a DTC this ECU has
    assert _answer(engine, "14FFFFFF") == b"\x54"
    assert engine.stored_codes() == ()
    assert _answer(engine, "14FFFF") == b"\x7f\x14\x13"


def test_identification_and_live_values() -> None:
    engine = _ecu(0x10)
    assert _answer(engine, "22F190") == b"\x62\xf1\x90" + VIN.encode()
    scenario = DEMO_SCENARIO["ENGINE"]
    assert _answer(engine, "22F195") == b"\x62\xf1\x95" + scenario.software_version.encode()
    assert _answer(engine, "22F18C") == b"\x62\xf1\x8c" + scenario.serial_number.encode()
    rpm = _answer(engine, "22010C")
    assert rpm is not None and rpm[:3] == b"\x62\x01\x0c"
    walk = scenario.sensors[uds.ENGINE_RPM]
    for _ in range(50):  # the walk stays within the scenario's limits
        rpm = _answer(engine, "22010C")
        assert rpm is not None and rpm[:3] == b"\x62\x01\x0c"
        value = uds.DID_CODECS[uds.ENGINE_RPM].decode(rpm[3:])
        assert isinstance(value, float) and walk.low <= value <= walk.high
    # One DID a request, as the description's services are.
    assert _answer(engine, "22F18C0105") == b"\x7f\x22\x13"
    assert _answer(_ecu(0x40), "22010C") == b"\x7f\x22\x31"  # the body has no engine
    assert _answer(engine, "22F1") == b"\x7f\x22\x13"
    # Writing: the engine writes its coding only (its one 0x2E service), no other DID.
    assert _answer(engine, "2E F190 00".replace(" ", "")) == b"\x7f\x2e\x31"
    assert _answer(_ecu(0x40), "2E F190 00".replace(" ", "")) == b"\x7f\x2e\x11"


def test_sessions_end_after_s3_unless_the_tester_is_present() -> None:
    abs_ecu = _ecu(0x28, s3_s=5.0)
    assert _answer(abs_ecu, "1003", now=0.0) == bytes.fromhex("5003003201F4")
    assert _answer(abs_ecu, "3E80", now=4.0) is None  # suppressed, yet it keeps the session
    assert abs_ecu.session == "Extended"
    assert _answer(abs_ecu, "3E00", now=8.0) == b"\x7e\x00"
    assert abs_ecu.tester_presents == 2
    assert abs_ecu.session == "Extended"
    abs_ecu.handle(b"\x22\xf1\x90", 13.5)  # 5.5 s of silence: back to default
    assert abs_ecu.session == "Default"
    assert _answer(abs_ecu, "1002") == b"\x7f\x10\x12"  # no programming session here


def test_self_test_reports_progress_and_brings_the_faults_back() -> None:
    engine = _ecu(0x10, self_test_s=10.0)
    _answer(engine, "14FFFFFF", now=0.0)
    assert _answer(engine, "31030201", now=0.5) == b"\x7f\x31\x24"  # never started
    assert _answer(engine, "31010201", now=1.0) == bytes.fromhex("710102010100")
    assert _answer(engine, "31010201", now=2.0) == b"\x7f\x31\x22"  # already running
    assert _answer(engine, "31030201", now=5.0) == bytes.fromhex("710302010128")  # 40 %
    assert engine.stored_codes() == ()
    assert _answer(engine, "31030201", now=11.0) == bytes.fromhex("710302010264")
    assert engine.stored_codes() == ("P0171", "P0420")
    # A stopped self-test finds nothing.
    transmission = _ecu(0x18, self_test_s=10.0)
    _answer(transmission, "14FFFFFF", now=0.0)
    _answer(transmission, "31010201", now=0.0)
    assert _answer(transmission, "31020201", now=3.0) == bytes.fromhex("71020201031E")
    transmission.handle(b"\x22\xf1\x90", 20.0)
    assert transmission.stored_codes() == ()


def test_bleed_check_needs_the_extended_session_and_fails_while_c0035_is_stored() -> None:
    abs_ecu = _ecu(0x28, bleed_check_s=1.5)
    assert _answer(abs_ecu, "31010202") == b"\x7f\x31\x22"  # conditionsNotCorrect
    _answer(abs_ecu, "1003")
    slow = abs_ecu.handle(bytes.fromhex("31010202"), 0.1)
    assert slow == Reply(b"\x7f\x31\x26", 1.5)  # after 1.5 s of work
    assert _answer(abs_ecu, "31030202", now=0.2) == bytes.fromhex("710302020464")
    _answer(abs_ecu, "14FFFFFF", now=0.3)
    assert abs_ecu.handle(bytes.fromhex("31010202"), 0.4).payload == bytes.fromhex("710102020264")
    # The engine has no bleed check; the body offers no routines in the default session.
    assert _answer(_ecu(0x10), "31010202") == b"\x7f\x31\x31"
    assert _answer(_ecu(0x40), "31010201") == b"\x7f\x31\x7f"
    body = _ecu(0x40)
    _answer(body, "1003")
    assert _answer(body, "31010201") == bytes.fromhex("710102010100")
    assert SELF_TEST == 0x0201 and BLEED_CHECK == 0x0202
