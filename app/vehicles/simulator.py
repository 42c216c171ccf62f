"""A simulated vehicle fleet behind the connector interface.

Each simulated vehicle is a set of emulated ECUs (``app.vehicles.emulator.ecus.Ecu``, the
same the DoIP emulator serves), one per ECU of the vehicle (``DiagnosticRequest.ecus``,
the four defaults when empty): the default ECU at its address, a plain one (no DTCs, no
routines) at any other. Each keeps its own state: DTCs with real status bytes that a
ClearDTC removes and only a self-test brings back, sensor values that drift, its
diagnostic session (no S3 expiry: nobody sends TesterPresent in-process), routines that
take ``self_test_s`` / ``bleed_check_s``. A command runs the same UDS conversation as
on a DoIP vehicle (``app.vehicles.uds_commands``), in-process, so the answer's chunks are
the same; an address the vehicle has no ECU at answers requestOutOfRange (0x31).

The vehicle's ``simulator_profile`` picks its behaviour: ``healthy`` answers, ``timeout``
never answers (the pipeline's deadline ends the command), ``unreachable`` fails at once,
``malformed`` answers with bytes that do not decode (it raises
``app.catalogue.InvalidResponse``, as a real transport does for garbage), and ``flaky`` draws
one of those outcomes per command from a seeded RNG. All randomness comes from one
``random.Random``, so a seed replays a run. A command whose answer the pipeline closes
before the end (cancelled, timed out, service stopping) is recorded in ``aborted``, as a
real transport would abort the request (a routine being run is stopped on the ECU).

Every ECU is a ``DescribedEcu`` (``app.vehicles.emulator.ecus.make_ecu``: answers
encoded by odxtools from a description, with the demo scenario of its address laid over
it: DTCs at start, identification values, live values, routine behaviour). Which
description: the one the vehicle binds the ECU to, if it does and it is loaded
(``DiagnosticRequest.described_ecus``, resolved by the services layer when the command
was submitted: the vehicles layer imports no service); else the demo description's base
variant at a demo address (engine 0x10, transmission 0x18, abs 0x28, body 0x40), and a
generic ECU (identification, sessions, an empty fault memory) anywhere else.

The emulated layer is the one the request carries: the services layer passes the ECU
variant that variant identification picked (``app.services.variants``) once it has, the
base variant before. An ECU is kept per vehicle and address, with its state, and made
anew when what it is emulated from changes (another layer object: a binding changed, a
description replaced, a variant identified; the vehicle's name for it); made anew for a
variant of the same ECU, it keeps its memory (``DescribedEcu.adopt``: stored DTCs,
written values, session). Its random
generator is its own, seeded from the simulator's seed, the VIN, the address and the
layer's name, so a seed replays its values whatever else the simulator does.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final

from app import catalogue
from app.vehicles import uds, uds_commands, uds_conversation
from app.vehicles.connector import Chunk, Connector, DiagnosticRequest, VehicleUnreachable
from app.vehicles.emulator.described import DescribedEcu
from app.vehicles.emulator.ecus import Timings, make_ecu, spec_for
from app.vehicles.pdx.demo import DEFAULT_ECUS
from app.vocabulary import SimulatorProfile

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

ABORTED_KEPT: Final = 1000
# What a ``malformed`` vehicle answers: a negative response cut short, then garbage.
MALFORMED_ANSWER: Final = b"\x7f\x22\xff\xfe not json"


@dataclass(frozen=True, slots=True)
class SimulatorSettings:
    seed: int | None = None
    latency_ms: float = 50.0
    p_timeout: float = 0.10
    p_unreachable: float = 0.05
    p_malformed: float = 0.03
    self_test_s: float = 3.0  # how long an ECU's self-test runs
    bleed_check_s: float = 1.0  # how long the ABS bleed check works before answering
    poll_s: float = 0.1  # RoutineControl run: how often ``results`` is asked


@dataclass(frozen=True, slots=True)
class _Exchanged:
    answer: bytes | None
    nack: int | None = None


@dataclass(slots=True)
class _Kept:
    """A vehicle's ECU, and what it is emulated from (None: its default description)."""

    layer: DiagLayer | None
    name: str
    ecu: DescribedEcu


def _base_of(layer: DiagLayer) -> DiagLayer:
    """An ECU variant's base variant (odxtools' ``EcuVariant.base_variant``); the layer
    itself otherwise."""
    from odxtools.diaglayers.ecuvariant import EcuVariant

    if isinstance(layer, EcuVariant) and layer.base_variant is not None:
        return layer.base_variant
    return layer


def _same_ecu(old: DiagLayer | None, new: DiagLayer | None) -> bool:
    """Whether two bound layers are variants of one ECU (a variant identified, or the
    base again after a forced detection): they share a base variant."""
    return (
        old is not None and new is not None and _base_of(old).short_name == _base_of(new).short_name
    )


class _EmulatedEcus:
    """The conversation's channel to one simulated vehicle's ECUs, in-process."""

    def __init__(self, ecus: Mapping[int, DescribedEcu]) -> None:
        self._ecus = ecus

    async def exchange(self, ecu: int, request: bytes) -> _Exchanged:
        target = self._ecus.get(ecu)
        if target is None:
            # No ECU there: the gateway's answer for an address it does not route.
            return _Exchanged(uds.Negative(request[0], 0x31).encode())
        reply = target.handle(request, asyncio.get_running_loop().time())
        if reply.work_s > 0:
            await asyncio.sleep(reply.work_s)  # the ECU works before it answers
        return _Exchanged(reply.payload)

    def session_changed(self, ecu: int, session: int) -> None:
        pass  # no S3 in-process: nothing to keep alive


class SimulatedConnector:
    def __init__(self, settings: SimulatorSettings) -> None:
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._timings = Timings(
            self_test_s=settings.self_test_s, bleed_check_s=settings.bleed_check_s, s3_s=None
        )
        self._conversation = uds_conversation.ConversationSettings(poll_s=settings.poll_s)
        self._vehicles: dict[str, dict[int, _Kept]] = {}
        # Commands whose answer was closed before its final chunk, oldest first (bounded).
        self.aborted: deque[str] = deque(maxlen=ABORTED_KEPT)

    @property
    def settings(self) -> SimulatorSettings:
        return self._settings

    def ecu(self, vehicle_id: str, address: int) -> DescribedEcu:
        """A vehicle's emulated ECU (KeyError until a command reached it)."""
        return self._vehicles[vehicle_id][address].ecu

    def stored_dtcs(self, vehicle_id: str, address: int) -> tuple[str, ...]:
        """The DTCs an ECU of a vehicle has stored, by display code (KeyError until a
        command reached it)."""
        return self.ecu(vehicle_id, address).stored_codes()

    def described_ecu(self, vehicle_id: str, address: int) -> DescribedEcu:
        """A vehicle's emulated ECU (``ecu``; the name says it answers from a description)."""
        return self.ecu(vehicle_id, address)

    def _ecus(self, request: DiagnosticRequest) -> dict[int, DescribedEcu]:
        """The vehicle's ECUs this request may reach: its ECU set, each made on first use
        and kept (an ECU left out of the set keeps its state, unreachable), made anew
        when what it is emulated from changed."""
        kept = self._vehicles.setdefault(request.vehicle_id, {})
        ecus: dict[int, DescribedEcu] = {}
        for name, address in request.ecus or DEFAULT_ECUS:
            layer = request.described_ecus.get(address)
            found = kept.get(address)
            if found is None or found.layer is not layer or found.name != name:
                made = self._make(request, name, address, layer)
                if found is not None and found.name == name and _same_ecu(found.layer, layer):
                    made.adopt(found.ecu)  # its identified variant: the same ECU's memory
                found = kept[address] = _Kept(layer, name, made)
            ecus[address] = found.ecu
        return ecus

    def _make(
        self, request: DiagnosticRequest, name: str, address: int, layer: DiagLayer | None
    ) -> DescribedEcu:
        spec = spec_for(name, address)
        seed = self._settings.seed
        emulated = spec.layer_name if layer is None else layer.short_name
        rng = random.Random(
            None if seed is None else f"{seed}/{request.vin}/{address:04X}/{emulated}"
        )
        return make_ecu(spec, request.vin, self._timings, rng, layer)

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

    async def execute(self, request: DiagnosticRequest) -> AsyncGenerator[Chunk, None]:
        finished = False
        try:
            async with aclosing(self._answer_chunks(request)) as chunks:
                async for chunk in chunks:
                    finished = chunk.is_final
                    yield chunk
            finished = True
        except (VehicleUnreachable, catalogue.InvalidResponse):
            # Nothing to abort: the vehicle was never reached, or its answer ended in
            # garbage (a routine being run was stopped by its conversation).
            finished = True
            raise
        finally:
            if not finished:  # closed early: the request is aborted on the vehicle
                self.aborted.append(request.command_id)

    async def _answer_chunks(self, request: DiagnosticRequest) -> AsyncGenerator[Chunk, None]:
        outcome = self._outcome(request.simulator_profile)
        if outcome is SimulatorProfile.UNREACHABLE:
            raise VehicleUnreachable(f"vehicle {request.vin} does not answer on the network")
        if outcome is SimulatorProfile.TIMEOUT:
            # The answer never comes: wait on an event nobody sets, until the pipeline's
            # deadline cancels us. No sleep stands in for the timeout.
            await asyncio.Event().wait()
        talk = uds_commands.conversation(
            request.command_name,
            request.command_params,
            replace(self._conversation, max_chunks=request.max_chunks),
            request.described,
        )
        if outcome is SimulatorProfile.MALFORMED:
            await self._latency()
            # What a real transport makes of a garbled answer: it does not decode.
            raise catalogue.InvalidResponse(
                f"vehicle {request.vin} answered with bytes that do not decode:"
                f" {MALFORMED_ANSWER.hex().upper()}"
            )
        async with aclosing(talk(_EmulatedEcus(self._ecus(request)))) as chunks:
            async for chunk in chunks:
                await self._latency()  # per chunk, as a vehicle's answer trickles in
                yield chunk


if TYPE_CHECKING:

    def _is_a_connector(connector: SimulatedConnector) -> Connector:
        return connector  # mypy checks SimulatedConnector against the Connector protocol
