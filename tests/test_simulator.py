import asyncio
import json
from typing import Any

import pytest

from app.vehicles.connector import DiagnosticRequest, VehicleUnreachable
from app.vehicles.simulator import INITIAL_DTCS, SimulatedConnector, SimulatorSettings


def _request(
    name: str, params: dict[str, str], profile: str = "healthy", vehicle: str = "v1"
) -> DiagnosticRequest:
    return DiagnosticRequest("c", vehicle, "WVWZZZ1KZAW000001", profile, name, params)


def _run(sim: SimulatedConnector, request: DiagnosticRequest) -> list[tuple[Any, bool]]:
    async def collect() -> list[tuple[Any, bool]]:
        return [(json.loads(c.payload), c.is_final) async for c in sim.execute(request)]

    return asyncio.run(collect())


def _sim(**kwargs: Any) -> SimulatedConnector:
    return SimulatedConnector(SimulatorSettings(seed=7, latency_ms=0, **kwargs))


def test_read_dtc_streams_one_chunk_per_dtc_then_a_summary() -> None:
    chunks = _run(_sim(), _request("ReadDTC", {"ecuAddress": "0x10"}))
    assert [c["dtcCode"] for c, _ in chunks[:-1]] == list(INITIAL_DTCS)
    assert chunks[-1] == ({"status": "complete", "totalDtcs": len(INITIAL_DTCS)}, True)
    assert [final for _, final in chunks[:-1]] == [False] * len(INITIAL_DTCS)


def test_clear_dtc_changes_what_the_next_read_reports() -> None:
    sim = _sim()
    cleared = _run(sim, _request("ClearDTC", {"ecuAddress": "0x10", "dtcCode": "P0420"}))
    assert cleared == [
        (
            {
                "ecuAddress": "0x10",
                "status": "cleared",
                "clearedDtcs": ["P0420"],
                "remainingDtcs": 1,
            },
            True,
        )
    ]
    assert _run(sim, _request("ReadDTC", {"ecuAddress": "0x10"}))[-1][0]["totalDtcs"] == 1
    _run(sim, _request("ClearDTC", {"ecuAddress": "0x10"}))
    assert _run(sim, _request("ReadDTC", {"ecuAddress": "0x10"})) == [
        ({"status": "complete", "totalDtcs": 0}, True)
    ]
    # Another vehicle keeps its own DTCs.
    assert sim.stored_dtcs("v2") == INITIAL_DTCS


def test_read_data_by_id_acknowledges_then_gives_a_changing_plausible_value() -> None:
    sim = _sim()
    values = []
    for _ in range(5):
        chunks = _run(sim, _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}))
        assert chunks[0] == ({"ecuAddress": "0x10", "dataId": "0x010C", "status": "reading"}, False)
        answer, final = chunks[1]
        assert final and answer["name"] == "engineRpm" and answer["unit"] == "rpm"
        assert 650 <= answer["value"] <= 4500
        values.append(answer["value"])
    assert len(set(values)) > 1
    for data_id, name in (("0x010D", "vehicleSpeed"), ("0x0105", "coolantTemperature")):
        chunks = _run(sim, _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": data_id}))
        assert chunks[1][0]["name"] == name


def test_unknown_data_id_gets_a_negative_response() -> None:
    chunks = _run(_sim(), _request("ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xBEEF"}))
    assert chunks[0][0]["negativeResponse"] == {"nrc": "0x31", "name": "requestOutOfRange"}


def test_unreachable_profile_fails_at_once() -> None:
    with pytest.raises(VehicleUnreachable):
        _run(_sim(), _request("ReadDTC", {"ecuAddress": "0x10"}, profile="unreachable"))


def test_malformed_profile_answers_bytes_that_are_not_json() -> None:
    async def first() -> bytes:
        gen = _sim().execute(_request("ReadDTC", {"ecuAddress": "0x10"}, profile="malformed"))
        chunk = await gen.__anext__()
        await gen.aclose()
        return chunk.payload

    with pytest.raises(UnicodeDecodeError):
        asyncio.run(first()).decode()


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
