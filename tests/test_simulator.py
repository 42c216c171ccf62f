"""The simulator: per-ECU emulated vehicles running the same UDS conversations as DoIP.

Seeded, latency 0, routines shortened through the settings; each test drives the
connector as the pipeline does (``execute``, chunks decoded with ``app.catalogue``).
"""

import asyncio
import time
from collections.abc import AsyncGenerator
from dataclasses import replace
from typing import Any

import pytest
from odxtools.diaglayers.diaglayer import DiagLayer

from app import catalogue
from app.vehicles.connector import Chunk, DiagnosticRequest, VehicleUnreachable
from app.vehicles.pdx import PdxDtc, PdxEcu, PdxSpec, build_database
from app.vehicles.pdx.demo import BLEED_CHECK, SELF_TEST
from app.vehicles.simulator import SimulatedConnector, SimulatorSettings
from tests.support.ecu_answers import ENGINE_LEAN_DTC, SELF_TEST_RUN_STARTED, Chunks, payloads

pytestmark = pytest.mark.fast


def _request(
    name: str,
    params: dict[str, str],
    profile: str = "healthy",
    vehicle: str = "v1",
    ecus: tuple[tuple[str, int], ...] = (),
    command_id: str = "c",
) -> DiagnosticRequest:
    return DiagnosticRequest(
        command_id, vehicle, "WVWZZZ1KZAW000001", profile, name, params, ecus=ecus
    )


async def _collect(sim: SimulatedConnector, request: DiagnosticRequest) -> Chunks:
    return [(dict(c.payload), c.is_final) async for c in sim.execute(request)]


def _run(sim: SimulatedConnector, request: DiagnosticRequest) -> Chunks:
    return asyncio.run(_collect(sim, request))


def _layer(ecu: PdxEcu) -> DiagLayer:
    (layer,) = build_database(PdxSpec((ecu,), name="T")).base_variants
    return layer


def _sim(**kwargs: Any) -> SimulatedConnector:
    return SimulatedConnector(SimulatorSettings(seed=7, latency_ms=0, **kwargs))


def _codes(sim: SimulatedConnector, ecu: str, vehicle: str = "v1") -> list[tuple[str, str]]:
    chunks = payloads(_run(sim, _request("ReadDTC", {"ecuAddress": ecu}, vehicle=vehicle)))
    shown = f"0x{int(ecu, 16):04X}"  # answers name the ECU in four digits
    assert chunks[-1] == {"ecuAddress": shown, "status": "complete", "totalDtcs": len(chunks) - 1}
    return [(c["dtcCode"], c["status"]) for c in chunks[:-1]]


def _routine(ecu: str, routine_id: str, action: str, **kw: Any) -> DiagnosticRequest:
    params = {"ecuAddress": ecu, "routineId": routine_id, "action": action}
    return _request("RoutineControl", params, **kw)


# -- faults, per ECU ---------------------------------------------------------------------


def test_each_ecu_reports_its_own_dtcs_with_real_status_bytes() -> None:
    sim = _sim()
    engine = payloads(_run(sim, _request("ReadDTC", {"ecuAddress": "0x10"})))
    assert engine[0] == ENGINE_LEAN_DTC
    assert (engine[1]["dtcCode"], engine[1]["status"], engine[1]["statusByte"]) == (
        "P0420",
        "pending",
        "0x27",
    )
    assert engine[2] == {"ecuAddress": "0x0010", "status": "complete", "totalDtcs": 2}
    assert _codes(sim, "0x18") == [("P0700", "confirmed")]
    assert _codes(sim, "0x28") == [("C0035", "confirmed")]
    assert _codes(sim, "0x40") == [("B1000", "historic")]


def test_clearing_one_ecu_leaves_the_others_and_other_vehicles() -> None:
    sim = _sim()
    cleared = _run(sim, _request("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"}))
    assert cleared == [
        (
            {
                "ecuAddress": "0x0010",
                "status": "cleared",
                "clearedDtcs": ["P0420"],
                "remainingDtcs": 1,
            },
            True,
        )
    ]
    assert sim.stored_dtcs("v1", 0x10) == ("P0171",)
    everything = payloads(_run(sim, _request("ClearDTC", {"ecuAddress": "0x10"})))
    assert (everything[0]["clearedDtcs"], everything[0]["remainingDtcs"]) == (["P0171"], 0)
    assert _codes(sim, "0x10") == []
    assert _codes(sim, "0x18") == [("P0700", "confirmed")]  # another ECU keeps its own
    assert _codes(sim, "0x28") == [("C0035", "confirmed")]
    assert _codes(sim, "0x10", vehicle="v2") == [("P0171", "confirmed"), ("P0420", "pending")]


def test_three_bytes_clear_one_failure_type_and_a_display_code_clears_each() -> None:
    # An engine whose description has P0171 with two failure types (the demo one has one).
    layer = _layer(
        PdxEcu(
            "ENGINE",
            logical_address=0x10,
            dtcs=(
                PdxDtc("P0171", "lean"),
                PdxDtc("P0171", "lean", ftb=0x13),
                PdxDtc("P0420", "cat"),
            ),
        )
    )
    sim = _sim()

    def run(name: str, params: dict[str, str]) -> Chunks:
        request = replace(_request(name, params), described_ecus={0x10: layer})
        return _run(sim, request)

    run("ReadDTC", {"ecuAddress": "0x10"})  # the ECUs exist from here
    engine = sim.ecu("v1", 0x10)
    engine.dtcs[0x017113] = engine.dtcs[0x017100]  # P0171 with another failure type
    run("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "017113"})
    assert sorted(engine.dtcs) == [0x017100, 0x042000]  # that one only
    engine.dtcs[0x017113] = engine.dtcs[0x017100]
    run("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0171"})
    assert sorted(engine.dtcs) == [0x042000]  # each failure type of P0171


def test_dtcs_come_back_only_when_a_self_test_reruns_the_tests() -> None:
    sim = _sim(self_test_s=0.1, poll_s=0.02)
    _run(sim, _request("ClearDTC", {"ecuAddress": "0x18"}))

    async def later_and_after_a_self_test() -> tuple[list[str], Chunks]:
        await asyncio.sleep(0.15)  # longer than a self-test: time alone brings nothing
        still = sim.stored_dtcs("v1", 0x18)
        return list(still), await _collect(sim, _routine("0x18", "0x0201", "run"))

    still, run = asyncio.run(later_and_after_a_self_test())
    assert still == []
    assert run[-1] == (
        {
            "ecuAddress": "0x0018",
            "routineId": "0x0201",
            "action": "run",
            "status": "completed",
            "progress": 100,
        },
        True,
    )
    assert _codes(sim, "0x18") == [("P0700", "confirmed")]


def test_body_refuses_clearing_in_the_default_session_and_clears_in_extended() -> None:
    sim = _sim()
    refused = payloads(_run(sim, _request("ClearDTC", {"ecuAddress": "0x40"})))
    assert refused == [
        {
            "ecuAddress": "0x0040",
            "negativeResponse": {
                "nrc": "0x7F",
                "name": "serviceNotSupportedInActiveSession",
                "service": "0x14",
            },
        }
    ]
    assert sim.stored_dtcs("v1", 0x40) == ("B1000",)
    _run(sim, _request("DiagnosticSessionControl", {"ecuAddress": "0x40", "session": "extended"}))
    cleared = payloads(_run(sim, _request("ClearDTC", {"ecuAddress": "0x40"})))
    assert cleared[0]["clearedDtcs"] == ["B1000"]
    assert sim.stored_dtcs("v1", 0x40) == ()


# -- the vehicle's ECU set ---------------------------------------------------------------


def test_an_address_outside_the_vehicles_ecus_is_request_out_of_range() -> None:
    sim = _sim()
    for name, params in (
        ("ReadDTC", {"ecuAddress": "0x0099"}),
        ("ReadDataByID", {"ecuAddress": "0x0099", "dataId": "0xF190"}),
    ):
        answer = payloads(_run(sim, _request(name, params)))
        assert answer[-1]["ecuAddress"] == "0x0099"
        assert answer[-1]["negativeResponse"] == {
            "nrc": "0x31",
            "name": "requestOutOfRange",
            "service": "0x19" if name == "ReadDTC" else "0x22",
        }
    # A vehicle with its own ECU set: 0x18 is not in it, 0x50 is a plain ECU.
    ecus = (("engine", 0x10), ("gateway", 0x50))
    gone = payloads(_run(sim, _request("ReadDTC", {"ecuAddress": "0x18"}, ecus=ecus)))
    assert gone[0]["negativeResponse"]["nrc"] == "0x31"
    plain = payloads(_run(sim, _request("ReadDTC", {"ecuAddress": "0x50"}, ecus=ecus)))
    assert plain == [{"ecuAddress": "0x0050", "status": "complete", "totalDtcs": 0}]
    serial = payloads(
        _run(
            sim,
            _request("ReadDataByID", {"ecuAddress": "0x50", "dataId": "0xF18C"}, ecus=ecus),
        )
    )
    assert serial[0]["value"] == "GEN0000050"
    assert _codes(sim, "0x10") == [("P0171", "confirmed"), ("P0420", "pending")]


# -- data and sessions -------------------------------------------------------------------


def test_read_data_by_id_gives_one_chunk_with_a_changing_plausible_value() -> None:
    sim = _sim()
    values = []
    for _ in range(5):
        chunks = _run(sim, _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}))
        assert len(chunks) == 1 and chunks[0][1]
        answer = chunks[0][0]
        assert (answer["dataId"], answer["name"], answer["unit"]) == ("0x010C", "engineRpm", "rpm")
        assert 650 <= answer["value"] <= 4500
        values.append(answer["value"])
    assert len(set(values)) > 1
    for data_id, name in (("0x010D", "vehicleSpeed"), ("0x0105", "coolantTemperature")):
        chunks = _run(sim, _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": data_id}))
        assert chunks[0][0]["name"] == name
    vin = _run(sim, _request("ReadDataByID", {"ecuAddress": "0x28", "dataId": "0xF190"}))
    assert vin[0][0]["value"] == "WVWZZZ1KZAW000001"


def test_unknown_data_id_gets_a_negative_response_naming_the_service() -> None:
    chunks = _run(_sim(), _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xBEEF"}))
    assert chunks == [
        (
            {
                "ecuAddress": "0x0010",
                "dataId": "0xBEEF",
                "negativeResponse": {
                    "nrc": "0x31",
                    "name": "requestOutOfRange",
                    "service": "0x22",
                },
            },
            True,
        )
    ]


def test_a_session_switch_is_read_back_on_0xf186_and_stays() -> None:
    sim = _sim()

    def session(ecu: str) -> Any:
        chunks = _run(sim, _request("ReadDataByID", {"ecuAddress": ecu, "dataId": "0xF186"}))
        return chunks[0][0]["value"]

    assert session("0x28") == "default"
    switched = payloads(
        _run(
            sim, _request("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "extended"})
        )
    )
    assert switched == [
        {
            "ecuAddress": "0x0028",
            "session": "extended",
            "p2ServerMaxMs": 50,
            "p2StarServerMaxMs": 5000,
        }
    ]
    assert session("0x28") == "extended"
    assert session("0x10") == "default"  # per ECU
    # No S3 in-process: the session stays until changed, however long it is idle.
    sim.ecu("v1", 0x28).handle(b"\x22\xf1\x90", time.monotonic() + 3600)
    assert session("0x28") == "extended"
    _run(sim, _request("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "default"}))
    assert session("0x28") == "default"


# -- routines ----------------------------------------------------------------------------


def test_routine_run_reports_progress_then_the_end() -> None:
    sim = _sim(self_test_s=0.3, poll_s=0.03)
    _run(sim, _request("ClearDTC", {"ecuAddress": "0x10"}))
    chunks = payloads(_run(sim, _routine("0x10", "0x0201", "run")))
    assert chunks[0] == SELF_TEST_RUN_STARTED
    running = [c["progress"] for c in chunks[:-1]]
    assert all(c["status"] == "running" for c in chunks[:-1])
    assert len(running) >= 3 and running == sorted(set(running))  # one per change
    assert (chunks[-1]["status"], chunks[-1]["progress"]) == ("completed", 100)
    assert sim.ecu("v1", 0x10).routine_state(SELF_TEST) == "completed"
    assert _codes(sim, "0x10") == [("P0171", "confirmed"), ("P0420", "pending")]


def test_start_stop_and_results_are_one_chunk_each() -> None:
    sim = _sim(self_test_s=60)
    started = payloads(_run(sim, _routine("0x18", "0x0201", "start")))
    assert started == [
        {
            "ecuAddress": "0x0018",
            "routineId": "0x0201",
            "action": "start",
            "status": "running",
            "progress": 0,
            "statusRecord": "0100",
        }
    ]
    stopped = payloads(_run(sim, _routine("0x18", "0x0201", "stop")))
    assert (stopped[0]["status"], stopped[0]["statusRecord"]) == ("stopped", "0300")
    again = payloads(_run(sim, _routine("0x18", "0x0201", "stop")))
    assert again[0]["negativeResponse"] == {
        "nrc": "0x24",
        "name": "requestSequenceError",
        "service": "0x31",
    }


def test_a_run_closed_before_its_end_stops_the_routine_on_the_ecu() -> None:
    sim = _sim(self_test_s=60, poll_s=0.01)

    async def closed_at_a_chunk() -> None:
        answer = sim.execute(_routine("0x10", "0x0201", "run", command_id="closed"))
        first = await anext(answer)
        assert dict(first.payload)["status"] == "running"
        assert sim.ecu("v1", 0x10).routine_state(SELF_TEST) == "running"
        await answer.aclose()  # as the pipeline does when it stops at a yield

    async def cancelled_while_polling() -> None:
        first = asyncio.Event()

        async def consume() -> None:
            async for _ in sim.execute(_routine("0x18", "0x0201", "run", command_id="gone")):
                first.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first.wait(), 2)
        await asyncio.sleep(0.03)  # a few polls: the run waits between them
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(closed_at_a_chunk())
    assert sim.ecu("v1", 0x10).routine_state(SELF_TEST) == "stopped"
    asyncio.run(cancelled_while_polling())
    assert sim.ecu("v1", 0x18).routine_state(SELF_TEST) == "stopped"
    assert list(sim.aborted) == ["closed", "gone"]
    # A routine that ended is not stopped afterwards: the pipeline closes at the final chunk.
    quick = _sim(self_test_s=0.05, poll_s=0.01)
    _run(quick, _routine("0x10", "0x0201", "run"))
    assert quick.ecu("v1", 0x10).routine_state(SELF_TEST) == "completed"


def test_the_bleed_check_answers_its_start_with_its_result() -> None:
    sim = _sim(bleed_check_s=0.01)
    refused = payloads(_run(sim, _routine("0x28", "0x0202", "run")))
    assert refused[0]["negativeResponse"] == {
        "nrc": "0x22",
        "name": "conditionsNotCorrect",
        "service": "0x31",
    }
    _run(sim, _request("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "extended"}))
    failed = payloads(_run(sim, _routine("0x28", "0x0202", "run")))
    assert failed == [
        {
            "ecuAddress": "0x0028",
            "routineId": "0x0202",
            "action": "run",
            "negativeResponse": {
                "nrc": "0x26",
                "name": "failurePreventsExecutionOfRequestedAction",
                "service": "0x31",
            },
        }
    ]
    assert sim.ecu("v1", 0x28).routine_state(BLEED_CHECK) == "failed"
    _run(sim, _request("ClearDTC", {"ecuAddress": "0x28", "dtcCode": "C0035"}))
    passed = _run(sim, _routine("0x28", "0x0202", "run"))
    assert passed == [
        (
            {
                "ecuAddress": "0x0028",
                "routineId": "0x0202",
                "action": "run",
                "status": "completed",
                "progress": 100,
            },
            True,
        )
    ]
    # The body offers routines in the extended session only.
    body = payloads(_run(sim, _routine("0x40", "0x0201", "start")))
    assert body[0]["negativeResponse"]["nrc"] == "0x7F"


# -- profiles ----------------------------------------------------------------------------


def test_unreachable_profile_fails_at_once() -> None:
    with pytest.raises(VehicleUnreachable):
        _run(_sim(), _request("ReadDTC", {"ecuAddress": "0x10"}, profile="unreachable"))


def test_malformed_profile_answers_bytes_that_do_not_decode() -> None:
    sim = _sim()
    request = _request("ReadDTC", {"ecuAddress": "0x10"}, profile="malformed")
    with pytest.raises(catalogue.InvalidResponse, match="bytes that do not decode: 7F22FFFE"):
        _run(sim, request)
    assert not sim.aborted  # the answer ended (in garbage): nothing to abort


def test_timeout_profile_never_answers() -> None:
    async def scenario() -> None:
        gen = _sim().execute(_request("ReadDTC", {"ecuAddress": "0x10"}, profile="timeout"))
        task = asyncio.ensure_future(gen.__anext__())
        done, _ = await asyncio.wait({task}, timeout=0.05)
        assert not done  # still waiting: the answer never comes
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())


def test_latency_applies_per_chunk() -> None:
    sim = SimulatedConnector(SimulatorSettings(seed=7, latency_ms=40))

    async def gaps() -> list[float]:
        times: list[float] = []
        answer: AsyncGenerator[Chunk, None] = sim.execute(
            _request("ReadDTC", {"ecuAddress": "0x10"})
        )
        started = time.monotonic()
        async for _ in answer:
            times.append(time.monotonic() - started)
        return times

    times = asyncio.run(gaps())
    assert len(times) == 3
    assert times[0] >= 0.02 and times[-1] >= 0.06  # 40 ms ±50% before each chunk


def _flaky_outcomes(seed: int, n: int) -> list[str]:
    sim = SimulatedConnector(
        SimulatorSettings(
            seed=seed, latency_ms=0, p_timeout=0.2, p_unreachable=0.2, p_malformed=0.2
        )
    )
    return [sim._outcome("flaky") for _ in range(n)]


def test_flaky_profile_is_reproducible_from_the_seed_and_draws_every_outcome() -> None:
    outcomes = _flaky_outcomes(99, 400)
    assert outcomes == _flaky_outcomes(99, 400)
    counts = {o: outcomes.count(o) for o in set(outcomes)}
    assert set(counts) == {"healthy", "timeout", "unreachable", "malformed"}
    # Each fault was configured at 20%: 80 of 400 expected; allow generous sampling noise.
    for fault in ("timeout", "unreachable", "malformed"):
        assert 40 <= counts[fault] <= 120, counts
