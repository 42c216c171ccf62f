"""The DoIP connector against the project's ECU emulator, over real TCP on loopback.

Each test runs one event loop with the emulator served in it; the connector's blocking
work runs in its per-vehicle worker threads, so the loop keeps serving meanwhile. The
chunks are typed (``app.vehicles.connector.Chunk``): their payloads as the pipeline
stores them, a refusal's ``Negative`` beside.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from app import catalogue
from app.clock import parse_ts
from app.vehicles import doip
from app.vehicles.connector import (
    Chunk,
    DiagnosticRequest,
    Negative,
    VehicleNotResponding,
    VehicleUnreachable,
)
from app.vehicles.doip_connector import DoipConnector, DoipSettings, DoipTarget
from app.vehicles.doip_link import Link
from app.vehicles.emulator import DoipEmulator, EmulatorSettings, Timings, running_emulator
from app.vehicles.simulator import SimulatedConnector, SimulatorSettings
from tests.support.doip_helpers import (
    DEADLINE_S,
    HostilePeer,
    Recorder,
    Script,
    doip_threads,
    eventually,
    uds_answer,
)
from tests.support.ecu_answers import ENGINE_LEAN_DTC, SELF_TEST_RUN_STARTED, Chunks, payloads

pytestmark = pytest.mark.socket

FAST = DoipSettings(
    p2_s=0.5,
    p2_star_s=0.5,
    connect_timeout_s=1.0,
    activation_timeout_s=1.0,
    idle_close_s=5.0,
    tester_present_s=0.1,
    backoff_first_s=0.05,
    backoff_max_s=0.2,
)
QUICK_ECUS = EmulatorSettings(
    timings=Timings(self_test_s=0.2, bleed_check_s=0.2, s3_s=5.0), pending_interval_s=0.05
)


@dataclass
class Bench:
    emulator: DoipEmulator
    connector: DoipConnector
    observer: Recorder
    last: list[Chunk] = field(default_factory=list)  # the chunks of the latest ``run``

    async def run(self, name: str, params: dict[str, str], vehicle: str = "v1") -> Chunks:
        request = DiagnosticRequest("c1", vehicle, "WVWZZZ1KZAW000001", "", name, params)
        answer = self.connector.execute(request)
        self.last = []
        try:
            async for chunk in answer:
                self.last.append(chunk)
            return [(dict(c.payload), c.is_final) for c in self.last]
        finally:
            await answer.aclose()


@asynccontextmanager
async def connector_for(
    targets: dict[str, DoipTarget | None], settings: DoipSettings, observer: Recorder
) -> AsyncIterator[DoipConnector]:
    async def resolve(vehicle_id: str) -> DoipTarget | None:
        return targets.get(vehicle_id)

    connector = DoipConnector(resolve, settings, observer)
    try:
        yield connector
    finally:
        await connector.aclose()
        await eventually(lambda: not doip_threads(), "the worker threads to end")


def bench(
    body: Callable[[Bench], Awaitable[None]],
    emulator: EmulatorSettings = QUICK_ECUS,
    settings: DoipSettings = FAST,
) -> None:
    async def scenario() -> None:
        async with running_emulator(emulator) as emu:
            target = DoipTarget("127.0.0.1", port=emu.port, logical_address=0x0001)
            observer = Recorder()
            async with connector_for({"v1": target}, settings, observer) as connector:
                await body(Bench(emu, connector, observer))

    asyncio.run(scenario())


# -- every command kind --------------------------------------------------------------


def test_read_dtc_streams_one_chunk_per_dtc_then_a_summary() -> None:
    async def body(b: Bench) -> None:
        engine = payloads(await b.run("ReadDTC", {"ecuAddress": "0x10"}))
        assert engine == [
            ENGINE_LEAN_DTC,
            {
                "ecuAddress": "0x0010",
                "dtcCode": "P0420",
                "status": "pending",
                "statusByte": "0x27",
                "statusBits": [
                    "testFailed",
                    "testFailedThisOperationCycle",
                    "pendingDTC",
                    "testFailedSinceLastClear",
                ],
                "failureType": "0x00",
                "description": "Catalyst system efficiency below threshold (bank 1)",
            },
            {"ecuAddress": "0x0010", "status": "complete", "totalDtcs": 2},
        ]
        body_ecu = payloads(await b.run("ReadDTC", {"ecuAddress": "0x40"}))
        assert [(c.get("dtcCode"), c["status"]) for c in body_ecu] == [
            ("B1000", "historic"),
            (None, "complete"),
        ]
        abs_ecu = payloads(await b.run("ReadDTC", {"ecuAddress": "0x28"}))
        assert "warningIndicatorRequested" in abs_ecu[0]["statusBits"]
        assert b.emulator.connections_accepted == 1  # one link for all ECUs and commands

    bench(body)


def test_clear_dtc_one_or_all_changes_what_the_next_read_reports() -> None:
    async def body(b: Bench) -> None:
        one = await b.run("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"})
        assert one == [
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
        assert b.emulator.ecu(0x10).stored_codes() == ("P0171",)
        rest = payloads(await b.run("ReadDTC", {"ecuAddress": "0x10"}))
        assert [c.get("dtcCode") for c in rest] == ["P0171", None]
        everything = payloads(await b.run("ClearDTC", {"ecuAddress": "0x10"}))
        assert everything[0]["clearedDtcs"] == ["P0171"]
        assert everything[0]["remainingDtcs"] == 0
        assert payloads(await b.run("ReadDTC", {"ecuAddress": "0x10"})) == [
            {"ecuAddress": "0x0010", "status": "complete", "totalDtcs": 0}
        ]
        # A DTC the ECU does not know: its negative response, code and name kept.
        unknown = payloads(await b.run("ClearDTC", {"ecuAddress": "0x18", "dtcCode": "P1234"}))
        assert unknown == [
            {
                "ecuAddress": "0x0018",
                "dtcCode": "P1234",
                "negativeResponse": {
                    "nrc": "0x31",
                    "name": "requestOutOfRange",
                    "service": "0x14",
                },
            }
        ]
        # Typed beside the payload: the pipeline fails the command by it.
        assert b.last[-1].negative == Negative(0x31, "requestOutOfRange", 0x14)
        assert b.last[-1].raw == bytes.fromhex("7F1431")
        assert b.emulator.requests[0x14] == 3

    bench(body)


def test_read_data_by_id_decodes_every_catalogued_did() -> None:
    async def body(b: Bench) -> None:
        async def read(ecu: str, did: str) -> dict[str, Any]:
            chunks = payloads(await b.run("ReadDataByID", {"ecuAddress": ecu, "dataId": did}))
            assert len(chunks) == 1
            return chunks[0]

        rpm = await read("0x10", "0x010c")
        assert rpm["dataId"] == "0x010C"
        assert (rpm["name"], rpm["unit"]) == ("engineRpm", "rpm")
        assert 650 <= rpm["value"] <= 4500
        assert (rpm["value"] * 4) == int(rpm["value"] * 4)  # 0.25 rpm resolution
        speed = await read("0x10", "0x010D")
        assert (speed["name"], speed["unit"]) == ("vehicleSpeed", "km/h")
        assert isinstance(speed["value"], int) and 0 <= speed["value"] <= 180
        coolant = await read("0x10", "0x0105")
        assert coolant["name"] == "coolantTemperature" and 80 <= coolant["value"] <= 96
        assert (await read("0x28", "0xF190"))["value"] == "WVWZZZ1KZAW000001"
        version = await read("0x18", "0xF195")
        assert version == {
            "ecuAddress": "0x0018",
            "dataId": "0xF195",
            "name": "ecuSoftwareVersion",
            "value": "TCU 02.03.01",
        }
        assert (await read("0x40", "0xF18C"))["value"] == "BCM0004003"
        assert await read("0x40", "0x010C") == {
            "ecuAddress": "0x0040",
            "dataId": "0x010C",
            "negativeResponse": {"nrc": "0x31", "name": "requestOutOfRange", "service": "0x22"},
        }

    bench(body)


def test_routines_and_sessions() -> None:
    async def body(b: Bench) -> None:
        async def routine(ecu: str, routine_id: str, action: str) -> dict[str, Any]:
            params = {"ecuAddress": ecu, "routineId": routine_id, "action": action}
            return payloads(await b.run("RoutineControl", params))[0]

        # The self-test re-runs the engine's tests: cleared DTCs come back.
        await b.run("ClearDTC", {"ecuAddress": "0x10"})
        started = await routine("0x10", "0x0201", "start")
        assert started == {
            "ecuAddress": "0x0010",
            "routineId": "0x0201",
            "action": "start",
            "status": "running",
            "progress": 0,
            "statusRecord": "0100",
        }
        progress: list[int] = []

        async def finished() -> bool:
            result = await routine("0x10", "0x0201", "results")
            progress.append(result["progress"])
            return bool(result["status"] == "completed")

        deadline = time.monotonic() + DEADLINE_S
        while not await finished():
            assert time.monotonic() < deadline, "the self-test did not finish"
        assert progress == sorted(progress) and progress[-1] == 100
        dtcs = payloads(await b.run("ReadDTC", {"ecuAddress": "0x10"}))
        assert [c.get("dtcCode") for c in dtcs] == ["P0171", "P0420", None]

        # The bleed check needs the extended session, then fails on C0035 after working
        # longer than P2 (0x78 response pending honoured), then passes once it is cleared.
        refused = await routine("0x28", "0x0202", "start")
        assert refused["negativeResponse"] == {
            "nrc": "0x22",
            "name": "conditionsNotCorrect",
            "service": "0x31",
        }
        extended = payloads(
            await b.run("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "extended"})
        )
        assert extended == [
            {
                "ecuAddress": "0x0028",
                "session": "extended",
                "p2ServerMaxMs": 50,
                "p2StarServerMaxMs": 5000,
            }
        ]
        assert b.connector.link_state("v1").sessions == {"0x0028": "extended"}
        failed = await routine("0x28", "0x0202", "start")
        assert failed["negativeResponse"] == {
            "nrc": "0x26",
            "name": "failurePreventsExecutionOfRequestedAction",
            "service": "0x31",
        }
        await b.run("ClearDTC", {"ecuAddress": "0x28", "dtcCode": "C0035"})
        passed = await routine("0x28", "0x0202", "start")
        assert (passed["status"], passed["progress"]) == ("completed", 100)
        bleeds = [e for e in b.observer.kinds("uds") if e[2] == "RoutineControl"]
        assert all(e[3] >= 0.2 for e in bleeds[-2:])  # both waited through 0x78s

        # The body offers no routine control in the default session at all.
        body_refusal = await routine("0x40", "0x0201", "start")
        assert body_refusal["negativeResponse"] == {
            "nrc": "0x7F",
            "name": "serviceNotSupportedInActiveSession",
            "service": "0x31",
        }
        await b.run("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "default"})
        assert b.connector.link_state("v1").sessions == {}

    bench(body, settings=DoipSettings(**{**_fields(FAST), "p2_s": 0.1}))


def _fields(settings: DoipSettings) -> dict[str, float]:
    return {name: getattr(settings, name) for name in settings.__slots__}


def test_tester_present_keeps_a_non_default_session_alive() -> None:
    emulator = EmulatorSettings(
        timings=Timings(bleed_check_s=0.01, s3_s=0.5), pending_interval_s=0.05
    )

    async def body(b: Bench) -> None:
        await b.run("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "extended"})
        abs_ecu = b.emulator.ecu(0x28)
        # Eight TesterPresents, one every 0.1 s: more than the ECU's S3 of 0.5 s has passed.
        await eventually(lambda: abs_ecu.tester_presents >= 8, "TesterPresent")
        params = {"ecuAddress": "0x28", "routineId": "0x0202", "action": "start"}
        still = payloads(await b.run("RoutineControl", params))[0]
        assert still["negativeResponse"]["nrc"] == "0x26"  # not 0x22: still extended
        presents = [e for e in b.observer.kinds("uds") if e[2] == "TesterPresent"]
        assert presents and all(e[4] == "positive" and e[3] > 0 for e in presents)

    bench(body, emulator=emulator)


def test_unknown_ecu_and_unknown_command() -> None:
    async def body(b: Bench) -> None:
        nack = payloads(await b.run("ReadDTC", {"ecuAddress": "0x99"}))
        assert nack == [
            {
                "ecuAddress": "0x0099",
                "negativeResponse": {
                    "nrc": "0x03",
                    "name": "unknownTargetAddress",
                    "service": "0x19",
                    "layer": "doip",
                },
            }
        ]
        assert b.last[-1].negative == Negative(0x03, "unknownTargetAddress", 0x19, "doip")
        assert b.last[-1].raw == b""  # no UDS message: the gateway refused it
        unknown = payloads(await b.run("FlashEcu", {"ecuAddress": "0x10"}))
        assert unknown == [{"negativeResponse": {"nrc": "0x11", "name": "serviceNotSupported"}}]
        assert b.last[-1].negative == Negative(0x11, "serviceNotSupported", None)
        assert b.observer.kinds("uds")[-1][:3] == ("uds", "v1", "ReadDTCInformation")
        assert b.observer.kinds("uds")[-1][4] == "nack"

    bench(body)


# -- timing: response pending, silence, cancellation -------------------------------------


def test_response_pending_extends_the_wait_to_p2_star() -> None:
    slow = EmulatorSettings(profile="slow", slow_s=0.6, pending_interval_s=0.05)
    settings = DoipSettings(**{**_fields(FAST), "p2_s": 0.2, "p2_star_s": 0.4})

    async def body(b: Bench) -> None:
        vin = payloads(await b.run("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}))
        assert vin[0]["value"] == "WVWZZZ1KZAW000001"
        service, duration, outcome = b.observer.kinds("uds")[-1][2:]
        assert (service, outcome) == ("ReadDataByIdentifier", "positive")
        assert duration >= 0.6  # longer than P2 and P2* alone: several 0x78 kept it going

    bench(body, emulator=slow, settings=settings)


def test_no_final_answer_within_p2_star_ends_the_request_then() -> None:
    # One 0x78, then a second of silence: beyond P2* (0.2 s). Round 3: the command ends
    # at P2* (not at its deadline), so the vehicle's lane moves on.
    stalled = EmulatorSettings(profile="slow", slow_s=1.0, pending_interval_s=1.0)
    settings = DoipSettings(**{**_fields(FAST), "p2_s": 0.1, "p2_star_s": 0.2})

    async def body(b: Bench) -> None:
        started = time.monotonic()
        with pytest.raises(VehicleNotResponding, match="did not answer ReadDTCInformation"):
            await b.run("ReadDTC", {"ecuAddress": "0x10"})
        waited = time.monotonic() - started
        assert 0.2 <= waited < 0.9  # P2* after the 0x78, far before the 1 s answer
        assert b.observer.links() == [("up",), ("down", "v1", "no-answer")]
        assert b.observer.kinds("uds")[-1][4] == "no-answer"
        b.emulator.profile = "healthy"
        assert len(await b.run("ReadDTC", {"ecuAddress": "0x10"})) == 3
        assert b.observer.links()[-1] == ("up",)  # a new link, the stale answer left behind

    bench(body, emulator=stalled, settings=settings)


def test_a_silent_ecu_keeps_the_generator_waiting_until_it_is_cancelled() -> None:
    silent = EmulatorSettings(profile="timeout")
    settings = DoipSettings(**{**_fields(FAST), "p2_s": 1.0})

    async def body(b: Bench) -> None:
        # Cancelled before P2 (once the ECU has the request: a fixed 0.1 s was too short
        # for the connection and the request on a loaded machine): the generator stops
        # at once; the worker keeps listening for the answer until P2, then resets the link.
        reading = asyncio.create_task(b.run("ReadDTC", {"ecuAddress": "0x10"}))
        await eventually(lambda: b.emulator.requests[0x19] == 1, "the request to reach the ECU")
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        assert b.observer.links() == [("up",)]  # ended before P2: the link is reset only then
        assert b.emulator.requests[0x19] == 1  # acknowledged and never answered
        b.emulator.profile = "healthy"
        dtcs = await b.run("ReadDTC", {"ecuAddress": "0x10"})
        assert len(dtcs) == 3
        assert b.observer.links() == [("up",), ("down", "v1", "no-answer"), ("up",)]
        assert b.emulator.connections_accepted == 2

    bench(body, emulator=silent, settings=settings)


def test_a_cancelled_request_whose_answer_comes_leaves_the_link_usable() -> None:
    slow = EmulatorSettings(profile="slow", slow_s=0.3, pending_interval_s=0.05)

    async def body(b: Bench) -> None:
        reading = asyncio.create_task(b.run("ReadDTC", {"ecuAddress": "0x10"}))
        await eventually(lambda: b.emulator.requests[0x19] == 1, "the request to arrive")
        reading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await reading
        b.emulator.profile = "healthy"
        vin = payloads(await b.run("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}))
        assert vin[0]["value"] == "WVWZZZ1KZAW000001"  # not the late DTC report
        assert b.emulator.connections_accepted == 1
        assert b.observer.links() == [("up",)]

    bench(body, emulator=slow)


def test_an_answer_closed_after_its_first_chunk_leaves_the_link_usable() -> None:
    """The pipeline closes the generator at a yield (GeneratorExit) when it stops early."""

    async def body(b: Bench) -> None:
        request = DiagnosticRequest("c", "v1", "V", "", "ReadDTC", {"ecuAddress": "0x10"})
        answer = b.connector.execute(request)
        first = await anext(answer)
        assert dict(first.payload)["dtcCode"] == "P0171" and not first.is_final
        await answer.aclose()
        assert len(await b.run("ReadDTC", {"ecuAddress": "0x18"})) == 2
        assert b.emulator.connections_accepted == 1

    bench(body)


# -- failures: unreachable, lost, garbage -------------------------------------------------


def test_a_link_dropped_mid_answer_then_refused_then_back() -> None:
    async def body(b: Bench) -> None:
        assert len(await b.run("ReadDTC", {"ecuAddress": "0x10"})) == 3
        b.emulator.profile = "unreachable"
        with pytest.raises(VehicleUnreachable, match="closed the connection"):
            await b.run("ReadDTC", {"ecuAddress": "0x10"})
        assert b.observer.links() == [("up",), ("down", "v1", "lost")]
        assert b.observer.kinds("uds")[-1][4] == "lost"
        # A lost link is re-opened at once, and here the routing activation is refused.
        with pytest.raises(VehicleUnreachable, match="routing activation denied"):
            await b.run("ReadDTC", {"ecuAddress": "0x10"})
        assert b.observer.links()[-1] == ("failed",)
        assert b.connector.threads == 0  # no link, no thread
        # Within the backoff the next command fails at once, without a connection.
        accepted = b.emulator.connections_accepted
        with pytest.raises(VehicleUnreachable, match="next one is allowed in"):
            await b.run("ReadDTC", {"ecuAddress": "0x10"})
        assert b.emulator.connections_accepted == accepted
        b.emulator.profile = "healthy"

        async def reconnected() -> list[Any] | None:
            try:
                return await b.run("ReadDTC", {"ecuAddress": "0x10"})
            except VehicleUnreachable as exc:
                if "next one is allowed in" not in str(exc):
                    raise  # anything but the backoff is a failure
                return None

        deadline = time.monotonic() + DEADLINE_S
        while (dtcs := await reconnected()) is None:
            assert time.monotonic() < deadline, "no reconnection after the backoff"
            await asyncio.sleep(0.01)
        assert len(dtcs) == 3
        assert b.observer.links()[-1] == ("up",)
        assert b.connector.link_state("v1").connected

    bench(body)


def test_refused_connections_and_vehicles_without_a_target() -> None:
    async def scenario() -> None:
        with socket.socket() as probe:  # a port with nothing listening
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        targets = {"gone": DoipTarget("127.0.0.1", port=port, logical_address=1), "none": None}
        observer = Recorder()
        async with connector_for(targets, FAST, observer) as connector:
            for vehicle, message in (("gone", "cannot connect"), ("none", "no DoIP target")):
                request = DiagnosticRequest(
                    "c", vehicle, "V", "", "ReadDTC", {"ecuAddress": "0x10"}
                )
                with pytest.raises(VehicleUnreachable, match=message):
                    async for _ in connector.execute(request):
                        pass
            assert [e[:2] for e in observer.events] == [("failed", "gone")]
            assert connector.threads == 0
            assert not connector.link_state("gone").connected

    asyncio.run(scenario())


def test_an_answer_that_is_not_uds_is_invalid_and_the_link_stays() -> None:
    async def body(b: Bench) -> None:
        b.emulator.profile = "malformed"
        with pytest.raises(catalogue.InvalidResponse, match="undecodable"):
            await b.run("ReadDTC", {"ecuAddress": "0x10"})
        assert b.observer.kinds("uds")[-1][4] == "invalid"
        b.emulator.profile = "healthy"
        assert len(await b.run("ReadDTC", {"ecuAddress": "0x10"})) == 3
        assert b.emulator.connections_accepted == 1

    bench(body)


def test_a_link_the_vehicle_closed_while_idle_is_reopened_transparently() -> None:
    async def body(b: Bench) -> None:
        await b.run("ReadDTC", {"ecuAddress": "0x10"})
        b.emulator.disconnect_all()
        await eventually(lambda: b.emulator.active_connections == 0, "the link to close")
        assert len(await b.run("ReadDTC", {"ecuAddress": "0x10"})) == 3
        assert b.observer.links() == [("up",), ("down", "v1", "lost"), ("up",)]
        assert b.emulator.connections_accepted == 2

    bench(body)


# -- lifecycle: threads, idle close, observer, shutdown -----------------------------------


def test_one_thread_per_connected_vehicle_closed_when_idle_and_observed() -> None:
    settings = DoipSettings(**{**_fields(FAST), "idle_close_s": 0.5})

    async def scenario() -> None:
        async with running_emulator(QUICK_ECUS) as first, running_emulator(QUICK_ECUS) as second:
            targets = {
                "a": DoipTarget("127.0.0.1", port=first.port, logical_address=1),
                "b": DoipTarget("127.0.0.1", port=second.port, logical_address=1),
            }
            observer = Recorder()
            async with connector_for(targets, settings, observer) as connector:
                b = Bench(first, connector, observer)
                before = time.time()
                await b.run("ReadDTC", {"ecuAddress": "0x10"}, vehicle="a")
                await b.run("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}, "b")
                await b.run("ReadDTC", {"ecuAddress": "0x18"}, vehicle="a")
                assert connector.threads == 2
                assert sorted(name.split("_")[0] for name in doip_threads()) == [
                    "doip-a",
                    "doip-b",
                ]
                # Idle for 0.5 s: each link closes, and its thread ends with it.
                await eventually(lambda: connector.threads == 0, "the idle links to close")
                await eventually(lambda: not doip_threads(), "the threads to end")
                assert sorted(e[1:3] for e in observer.kinds("down")) == [
                    ("a", "idle"),
                    ("b", "idle"),
                ]
                ups, downs = len(observer.kinds("up")), len(observer.kinds("down"))
                assert (ups, downs) == (2, 2)  # a gauge of connected vehicles is back at 0
                exchanges = observer.kinds("uds")
                assert [(e[1], e[2], e[4]) for e in exchanges] == [
                    ("a", "ReadDTCInformation", "positive"),
                    ("b", "ReadDataByIdentifier", "positive"),
                    ("a", "ReadDTCInformation", "positive"),
                ]
                assert all(0 < e[3] < 1 for e in exchanges)
                seen = [parse_ts(e[2]).timestamp() for e in observer.kinds("seen")]
                # Seen on every read as it happens: the routing activations' answers and
                # the three UDS answers (an acknowledgement may come in a read of its own).
                assert len(seen) >= 5 and all(before <= t <= time.time() for t in seen)
                state = connector.link_state("a")
                last_seen_a = [e[2] for e in observer.kinds("seen") if e[1] == "a"][-1]
                assert not state.connected and state.last_seen == last_seen_a
                # Used again after the idle close: connected afresh.
                await b.run("ReadDTC", {"ecuAddress": "0x10"}, vehicle="a")
                assert observer.links()[-1] == ("up",) and first.connections_accepted == 2

    asyncio.run(scenario())


def test_closing_the_connector_stops_a_request_waiting_for_its_answer() -> None:
    silent = EmulatorSettings(profile="timeout")
    patient = DoipSettings(**{**_fields(FAST), "p2_s": 60.0})

    async def body(b: Bench) -> None:
        reading = asyncio.create_task(b.run("ReadDTC", {"ecuAddress": "0x10"}))
        await eventually(lambda: b.emulator.requests[0x19] == 1, "the request to arrive")
        started = time.monotonic()
        await b.connector.aclose()
        assert time.monotonic() - started < 1.0  # not the 60 s of P2
        await eventually(lambda: not doip_threads(), "the worker thread to end")
        assert b.observer.links()[-1] == ("down", "v1", "closed")
        reading.cancel()
        with pytest.raises((asyncio.CancelledError, VehicleUnreachable)):
            await reading

    bench(body, emulator=silent, settings=patient)


def test_targets_and_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="not a TCP port"):
        DoipTarget("127.0.0.1", port=0, logical_address=1)
    with pytest.raises(ValueError, match="2-byte logical address"):
        DoipTarget("127.0.0.1", logical_address=0x10000)
    with pytest.raises(ValueError, match="positive number of seconds"):
        DoipSettings(p2_s=0)
    target = DoipTarget("127.0.0.1", logical_address=0x1000, ecu_addresses=(0x10, 0x18))
    assert (target.port, target.tester_address, target.activation_type) == (13400, 0x0E00, 0)


def test_a_link_closed_under_a_command_is_never_reopened() -> None:
    # Found in review: a command still holding a link that was closed under it (its
    # target changed mid-command) opened it again, with a thread nothing would ever end.
    async def scenario() -> None:
        async with running_emulator(QUICK_ECUS) as emu:
            link = Link("v9", FAST, Recorder())
            link.set_target(DoipTarget("127.0.0.1", port=emu.port, logical_address=0x0001))
            assert await link.connect()
            await link.close()
            await eventually(lambda: not doip_threads(), "the worker thread to end")
            with pytest.raises(VehicleUnreachable, match="link was closed"):
                await link.exchange(0x10, bytes([0x19, 0x02, 0xFF]))
            with pytest.raises(VehicleUnreachable, match="link was closed"):
                await link.connect()
            assert not doip_threads() and not link.up

    asyncio.run(scenario())


# -- peers that misbehave in ways the emulator does not --------------------------------


def with_raw_peer(
    on_request: Script, check: Callable[[DoipConnector, Recorder], Awaitable[None]]
) -> None:
    """A DoIP peer that activates routing, then acknowledges every diagnostic request and
    answers it with ``on_request``; ``check`` drives the connector against it ("v1")."""
    peer = HostilePeer("scripted", script=on_request)

    async def scenario() -> None:
        targets = {"v1": DoipTarget("127.0.0.1", port=peer.port, logical_address=1)}
        observer = Recorder()
        async with connector_for(targets, FAST, observer) as connector:
            await check(connector, observer)

    try:
        asyncio.run(scenario())
    finally:
        peer.close()


READ_DTC = DiagnosticRequest("c", "v1", "V", "", "ReadDTC", {"ecuAddress": "0x10"})


def test_a_frame_that_is_not_doip_resets_the_link() -> None:
    async def on_request(writer: asyncio.StreamWriter) -> None:
        # A diagnostic message of three bytes cannot hold two addresses.
        writer.write(doip.encode_frame(doip.DIAGNOSTIC_MESSAGE, b"\x00\x10\x0e"))

    async def check(connector: DoipConnector, observer: Recorder) -> None:
        with pytest.raises(catalogue.InvalidResponse, match="DoIP frame did not decode"):
            async for _ in connector.execute(READ_DTC):
                pass
        assert observer.links() == [("up",), ("down", "v1", "lost")]

    with_raw_peer(on_request, check)


def test_a_message_declared_larger_than_the_cap_is_refused_not_buffered() -> None:
    # Found in review: a peer declaring a 2 GiB frame could stream memory into the service
    # until the answer's deadline.
    async def on_request(writer: asyncio.StreamWriter) -> None:
        header = doip.encode_frame(doip.DIAGNOSTIC_MESSAGE, b"")[:4]
        writer.write(header + (0x7FFFFFFF).to_bytes(4, "big"))
        for _ in range(32):  # 2 MiB of the promised 2 GiB
            writer.write(bytes(65536))
            await writer.drain()

    async def check(connector: DoipConnector, observer: Recorder) -> None:
        with pytest.raises(catalogue.InvalidResponse, match="larger than 1048576 bytes"):
            async for _ in connector.execute(READ_DTC):
                pass

    with_raw_peer(on_request, check)


def test_a_stray_tester_present_answer_is_not_taken_for_the_requests() -> None:
    # Found in review: an ECU that answers TesterPresent although asked not to (0x3E 0x80)
    # had its 0x7E taken as the answer to the next request.
    async def on_request(writer: asyncio.StreamWriter) -> None:
        uds_answer(writer, b"\x7e\x00")
        uds_answer(writer, b"\x59\x02\xff\x01\x71\x00\x2f")

    async def check(connector: DoipConnector, observer: Recorder) -> None:
        chunks = [dict(c.payload) async for c in connector.execute(READ_DTC)]
        assert [c.get("dtcCode") for c in chunks] == ["P0171", None]

    with_raw_peer(on_request, check)


# -- the same conversations as the simulator -------------------------------------------


def test_a_doip_vehicle_answers_with_the_simulators_chunks() -> None:
    """The conversations are one declaration: a script of commands gives the same chunks
    from the emulator over DoIP as from the simulator in-process (no drifting values)."""
    script: list[tuple[str, dict[str, str]]] = [
        *(("ReadDTC", {"ecuAddress": ecu}) for ecu in ("0x10", "0x18", "0x28", "0x40")),
        ("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}),
        ("ReadDataByID", {"ecuAddress": "0x18", "dataId": "0xF195"}),
        ("ReadDataByID", {"ecuAddress": "0x40", "dataId": "0x010C"}),
        ("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"}),
        ("ClearDTC", {"ecuAddress": "0x40"}),  # refused in the default session
        ("ClearDTC", {"ecuAddress": "0x18", "dtcCode": "P1234"}),
        ("DiagnosticSessionControl", {"ecuAddress": "0x28", "session": "extended"}),
        ("ReadDataByID", {"ecuAddress": "0x28", "dataId": "0xF186"}),
        ("RoutineControl", {"ecuAddress": "0x28", "routineId": "0x0202", "action": "run"}),
        ("RoutineControl", {"ecuAddress": "0x18", "routineId": "0x0201", "action": "start"}),
        ("RoutineControl", {"ecuAddress": "0x40", "routineId": "0x0201", "action": "run"}),
        *(("ReadDTC", {"ecuAddress": ecu}) for ecu in ("0x10", "0x40")),
    ]
    simulator = SimulatedConnector(
        SimulatorSettings(seed=1, latency_ms=0, self_test_s=60, bleed_check_s=0.01)
    )
    simulated = [asyncio.run(_simulated(simulator, name, params)) for name, params in script]
    over_doip: list[list[dict[str, Any]]] = []

    async def body(b: Bench) -> None:
        for name, params in script:
            over_doip.append(payloads(await b.run(name, params)))

    slow_routines = EmulatorSettings(
        timings=Timings(self_test_s=60, bleed_check_s=0.05), pending_interval_s=0.02
    )
    bench(body, emulator=slow_routines)
    for (name, params), mine, theirs in zip(script, simulated, over_doip, strict=True):
        assert mine == theirs, (name, params)
    assert over_doip[8][0]["negativeResponse"]["nrc"] == "0x7F"  # the body said no
    assert over_doip[11][0]["value"] == "extended"


async def _simulated(
    simulator: SimulatedConnector, name: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    request = DiagnosticRequest("c1", "v1", "WVWZZZ1KZAW000001", "healthy", name, params)
    return payloads([(dict(c.payload), c.is_final) async for c in simulator.execute(request)])


def test_routine_run_over_doip_follows_progress_and_a_closed_run_stops_the_routine() -> None:
    polling = DoipSettings(**{**_fields(FAST), "routine_poll_s": 0.02})

    async def to_the_end(b: Bench) -> None:
        params = {"ecuAddress": "0x10", "routineId": "0x0201", "action": "run"}
        chunks = payloads(await b.run("RoutineControl", params))
        assert chunks[0] == SELF_TEST_RUN_STARTED
        progress = [c["progress"] for c in chunks]
        assert len(progress) >= 3 and progress == sorted(set(progress))
        assert (chunks[-1]["status"], chunks[-1]["progress"]) == ("completed", 100)
        assert b.emulator.ecu(0x10).routine_state(0x0201) == "completed"
        assert b.emulator.requests[0x31] >= 3  # start, then results polled

    bench(to_the_end, settings=polling)

    async def cancelled(b: Bench) -> None:
        params = {"ecuAddress": "0x18", "routineId": "0x0201", "action": "run"}
        request = DiagnosticRequest("c1", "v1", "V", "", "RoutineControl", params)
        seen: list[Any] = []

        async def consume() -> None:
            async for chunk in b.connector.execute(request):
                seen.append(chunk)

        task = asyncio.create_task(consume())
        await eventually(lambda: b.emulator.requests[0x31] >= 3, "the run to poll")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert b.emulator.ecu(0x18).routine_state(0x0201) == "stopped"  # DELETE sends stop
        assert len(seen) == 1  # progress 0, nothing changed within the long self-test
        # The link is in step afterwards.
        assert len(payloads(await b.run("ReadDTC", {"ecuAddress": "0x18"}))) == 2

    long_self_test = EmulatorSettings(timings=Timings(self_test_s=60))
    bench(cancelled, emulator=long_self_test, settings=polling)


def test_a_request_its_command_gave_up_on_while_it_waited_is_never_sent() -> None:
    """Round 3: requests queued on the worker behind an ECU answering 0x78 forever were
    all sent once it was free, long after their commands had ended. Now the 0x78 wait
    ends at the command's deadline, and a request whose deadline passed or whose caller
    went away while it waited is dropped unsent."""
    peer = HostilePeer("pending", interval_s=0.05)

    async def drain(request: DiagnosticRequest, connector: DoipConnector) -> None:
        async for _ in connector.execute(request):
            pass

    async def scenario() -> None:
        targets = {"v1": DoipTarget("127.0.0.1", port=peer.port, logical_address=1)}
        async with connector_for(targets, FAST, Recorder()) as connector:
            now = asyncio.get_running_loop().time()
            first = replace(READ_DTC, command_id="c1", deadline=now + 0.8)
            held = asyncio.create_task(drain(first, connector))
            await eventually(lambda: peer.sids() == [0x19], "the first request to arrive")
            # Queued on the worker behind the first: one times out, one is cancelled.
            expiring = replace(READ_DTC, command_id="c2", deadline=now + 0.3)
            timed_out = asyncio.create_task(drain(expiring, connector))
            cancelled = asyncio.create_task(drain(replace(READ_DTC, command_id="c3"), connector))
            await eventually(lambda: connector.jobs("v1") == 3, "both to wait on the worker")
            cancelled.cancel()
            with pytest.raises(VehicleNotResponding):
                async with asyncio.timeout(DEADLINE_S):  # unbounded before: 0x78 for ever
                    await held  # ended at its deadline, though the 0x78 kept coming
            # At its deadline (P2* is 0.5 s, so a 0x78 every 0.05 s kept it going), give
            # or take a loaded machine's scheduling.
            assert asyncio.get_running_loop().time() - (now + 0.8) < 0.4
            with pytest.raises(VehicleNotResponding):
                await timed_out
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            peer.behaviour = "healthy"
            read = replace(
                READ_DTC,
                command_id="c4",
                command_name="ReadDataByID",
                command_params={"ecuAddress": "0x10", "dataId": "0xF190"},
            )
            with pytest.raises(catalogue.InvalidResponse):  # a bare 0x62: too short to decode
                await drain(read, connector)
            assert peer.sids() == [0x19, 0x22]  # neither queued request ever reached it

    try:
        asyncio.run(scenario())
    finally:
        peer.close()
