"""A simulated vehicle fleet behind the connector interface.

Each vehicle has real state: its stored DTCs (ReadDTC reports them, ClearDTC removes
them) and sensor values that drift between readings. The vehicle's ``simulator_profile``
picks its behaviour: ``healthy`` answers, ``timeout`` never answers (the pipeline's
deadline ends the command), ``unreachable`` fails at once, ``malformed`` answers with
bytes that do not decode, and ``flaky`` draws one of those outcomes per command from a
seeded RNG. All randomness comes from one ``random.Random``, so a seed replays a run.
A command whose answer the pipeline closes before the end (cancelled, timed out, service
stopping) is recorded in ``aborted``, as a real transport would abort the request.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import deque
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, Final

from app.vehicles.connector import DiagnosticRequest, RawChunk, VehicleUnreachable
from app.vocabulary import SimulatorProfile

DTC_DESCRIPTIONS: Final = {
    "P0420": "Catalyst system efficiency below threshold (bank 1)",
    "P0171": "System too lean (bank 1)",
    "P0300": "Random/multiple cylinder misfire detected",
    "P0128": "Coolant thermostat below regulating temperature",
    "U0100": "Lost communication with ECM/PCM",
}
INITIAL_DTCS: Final = ("P0171", "P0420")
ABORTED_KEPT: Final = 1000


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    seed: int | None = None
    latency_ms: float = 50.0
    p_timeout: float = 0.10
    p_unreachable: float = 0.05
    p_malformed: float = 0.03


@dataclass(slots=True)
class _Sensor:
    name: str
    unit: str
    low: float
    high: float
    value: float
    step: float

    def read(self, rng: random.Random) -> float:
        self.value = min(self.high, max(self.low, self.value + rng.uniform(-self.step, self.step)))
        return round(self.value, 1)


def _sensors() -> dict[str, _Sensor]:
    return {
        "0x010C": _Sensor("engineRpm", "rpm", 650, 4500, 820, 120),
        "0x010D": _Sensor("vehicleSpeed", "km/h", 0, 180, 0, 6),
        "0x0105": _Sensor("coolantTemperature", "degC", -20, 120, 88, 1.5),
    }


@dataclass(slots=True)
class _VehicleState:
    dtcs: list[str] = field(default_factory=lambda: list(INITIAL_DTCS))
    sensors: dict[str, _Sensor] = field(default_factory=_sensors)


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class SimulatedConnector:
    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._vehicles: dict[str, _VehicleState] = {}
        # Commands whose answer was closed before its final chunk, oldest first (bounded).
        self.aborted: deque[str] = deque(maxlen=ABORTED_KEPT)

    def stored_dtcs(self, vehicle_id: str) -> tuple[str, ...]:
        return tuple(self._state(vehicle_id).dtcs)

    def _state(self, vehicle_id: str) -> _VehicleState:
        state = self._vehicles.get(vehicle_id)
        if state is None:
            state = self._vehicles[vehicle_id] = _VehicleState()
        return state

    def _outcome(self, profile: str) -> SimulatorProfile:
        """How this request goes: the vehicle's profile, or for ``flaky`` one drawn from the
        seeded RNG. An unknown profile is a ValueError (the store only holds known ones)."""
        chosen = SimulatorProfile(profile)
        if chosen is not SimulatorProfile.FLAKY:
            return chosen
        s = self._settings
        draw = self._rng.random()
        for outcome, probability in (
            (SimulatorProfile.TIMEOUT, s.p_timeout),
            (SimulatorProfile.UNREACHABLE, s.p_unreachable),
            (SimulatorProfile.MALFORMED, s.p_malformed),
        ):
            if draw < probability:
                return outcome
            draw -= probability
        return SimulatorProfile.HEALTHY

    async def _latency(self) -> None:
        base = self._settings.latency_ms
        if base > 0:
            await asyncio.sleep(base / 1000 * self._rng.uniform(0.5, 1.5))

    async def execute(self, request: DiagnosticRequest) -> AsyncGenerator[RawChunk, None]:
        finished = False
        try:
            async with aclosing(self._answer_chunks(request)) as chunks:
                async for chunk in chunks:
                    finished = chunk.is_final
                    yield chunk
            finished = True
        except VehicleUnreachable:
            finished = True  # nothing to abort: the vehicle was never reached
            raise
        finally:
            if not finished:  # closed early: the request is aborted on the vehicle
                self.aborted.append(request.command_id)

    async def _answer_chunks(self, request: DiagnosticRequest) -> AsyncGenerator[RawChunk, None]:
        outcome = self._outcome(request.simulator_profile)
        if outcome is SimulatorProfile.UNREACHABLE:
            raise VehicleUnreachable(f"vehicle {request.vin} does not answer on the network")
        if outcome is SimulatorProfile.TIMEOUT:
            # The answer never comes: wait on an event nobody sets, until the pipeline's
            # deadline cancels us. No sleep stands in for the timeout.
            await asyncio.Event().wait()
        await self._latency()
        if outcome is SimulatorProfile.MALFORMED:
            yield RawChunk(b"\x7f\x22\xff\xfe not json", is_final=True)
            return
        answers = self._answer(request)
        for index, payload in enumerate(answers):
            if index:
                await self._latency()
            yield RawChunk(_encode(payload), is_final=index == len(answers) - 1)

    def _answer(self, request: DiagnosticRequest) -> list[dict[str, Any]]:
        state = self._state(request.vehicle_id)
        params = request.command_params
        ecu = params.get("ecuAddress")
        if request.command_name == "ReadDTC":
            chunks: list[dict[str, Any]] = [
                {
                    "ecuAddress": ecu,
                    "dtcCode": code,
                    "status": "confirmed",
                    "description": DTC_DESCRIPTIONS.get(code, ""),
                }
                for code in state.dtcs
            ]
            return [*chunks, {"status": "complete", "totalDtcs": len(state.dtcs)}]
        if request.command_name == "ClearDTC":
            wanted = params.get("dtcCode")
            cleared = [c for c in state.dtcs if wanted is None or c == wanted]
            state.dtcs = [c for c in state.dtcs if c not in cleared]
            return [
                {
                    "ecuAddress": ecu,
                    "status": "cleared",
                    "clearedDtcs": cleared,
                    "remainingDtcs": len(state.dtcs),
                }
            ]
        if request.command_name == "ReadDataByID":
            data_id = params["dataId"].upper().replace("0X", "0x")
            sensor = state.sensors.get(data_id)
            reading = {"ecuAddress": ecu, "dataId": data_id, "status": "reading"}
            if sensor is None:
                return [
                    {
                        "ecuAddress": ecu,
                        "dataId": data_id,
                        "negativeResponse": {"nrc": "0x31", "name": "requestOutOfRange"},
                    }
                ]
            value = sensor.read(self._rng)
            return [
                reading,
                {
                    "ecuAddress": ecu,
                    "dataId": data_id,
                    "name": sensor.name,
                    "value": value,
                    "unit": sensor.unit,
                },
            ]
        return [{"negativeResponse": {"nrc": "0x11", "name": "serviceNotSupported"}}]
