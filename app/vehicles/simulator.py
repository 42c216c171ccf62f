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
``app.sovd.InvalidResponse``, as a real transport does for garbage), and ``flaky`` draws
one of those outcomes per command from a seeded RNG. All randomness comes from one
``random.Random``, so a seed replays a run. A command whose answer the pipeline closes
before the end (cancelled, timed out, service stopping) is recorded in ``aborted``, as a
real transport would abort the request (a routine being run is stopped on the ECU).

ECUs bound to a description (issue #20): the request carries, per address, the base
variant of each bound ECU's description (``DiagnosticRequest.described_ecus``, resolved
by the services layer from the description library when the command was submitted: the
vehicles layer imports no service). Such an ECU is emulated from it by a ``DescribedEcu``
(``app.vehicles.emulator.described``: answers encoded by odxtools, values seeded within
the DOPs' limits, DTCs, routines with progress, state charts and preconditions), so every
service of the description answers:

- at an address the tables have no ECU at (anything but the four defaults), the
  described ECU answers everything;
- at one of the four default addresses, the table ECU answers what it knows and the
  described ECU what it does not (a table answer of 0x11 serviceNotSupported, 0x12
  subFunctionNotSupported or 0x31 requestOutOfRange goes to the described ECU instead;
  a session switch the table ECU accepts switches the described ECU's too, so its
  preconditions see the same session). The tables are the built-in description's
  emulation (``build_demo_pdx`` is made from them) with more behaviour than a description
  says (the vehicle's own VIN, DTCs a self-test brings back, the ABS bleed check refused
  while C0035 is stored), and bound demo ECUs keep it; a description that disagrees with
  the tables about a service they know is answered by the tables there.

The base variant is emulated, not an ECU variant that variant identification may pick
(``app.services.variants``): a service only an ECU variant has answers as the base
variant's ECU does (0x11 / 0x31). The described ECU is kept per vehicle and address like
a table ECU, and made anew when the binding changes (another layer object: another
container, or its file replaced; a command that finds it unbound, or its description
not loaded, lets the table ECU answer alone and drops the described one). Its
random generator is its own, seeded from the simulator's seed, the VIN, the address and
the layer's name, so a seed replays its values whatever else the simulator does; its
routines run ``self_test_s``.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Final, Protocol

from app import sovd
from app.vehicles import description, uds, uds_commands
from app.vehicles.connector import Chunk, Connector, DiagnosticRequest, VehicleUnreachable
from app.vehicles.emulator.ecus import DEFAULT_SPECS, Ecu, Reply, Timings, spec_for
from app.vocabulary import SimulatorProfile

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

    from app.vehicles.emulator.described import DescribedEcu

ABORTED_KEPT: Final = 1000
# What a table ECU answers a request it does not know with: serviceNotSupported,
# subFunctionNotSupported, requestOutOfRange. A bound ECU's described ECU answers then.
NOT_KNOWN_NRCS: Final = frozenset({0x11, 0x12, 0x31})
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


class _Emulated(Protocol):
    def handle(self, request: bytes, now: float) -> Reply: ...


@dataclass(slots=True)
class _Described:
    """A bound ECU: its described ECU, made from ``layer`` (see the module docstring)."""

    layer: DiagLayer
    name: str
    ecu: DescribedEcu


@dataclass(frozen=True, slots=True)
class _Bound:
    """A bound ECU at a default address: the table ECU first, the described one for what
    the table does not know."""

    table: Ecu
    described: DescribedEcu

    def handle(self, request: bytes, now: float) -> Reply:
        reply = self.table.handle(request, now)
        answer = reply.payload or b""
        negative = answer[:1] == bytes((uds.NEGATIVE_RESPONSE,))
        if negative and answer[2:3] and answer[2] in NOT_KNOWN_NRCS:
            return self.described.handle(request, now)
        if not negative and request[:1] == bytes((uds.DIAGNOSTIC_SESSION_CONTROL,)):
            self.described.handle(request, now)  # the same session on both
        return reply


class _EmulatedEcus:
    """The conversation's channel to one simulated vehicle's ECUs, in-process."""

    def __init__(self, ecus: Mapping[int, _Emulated]) -> None:
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
        self._conversation = uds_commands.ConversationSettings(poll_s=settings.poll_s)
        self._vehicles: dict[str, dict[int, Ecu]] = {}
        # The described ECUs of bound ECUs, per vehicle and address.
        self._described: dict[str, dict[int, _Described]] = {}
        # Commands whose answer was closed before its final chunk, oldest first (bounded).
        self.aborted: deque[str] = deque(maxlen=ABORTED_KEPT)

    def ecu(self, vehicle_id: str, address: int) -> Ecu:
        """A vehicle's emulated ECU (KeyError until a command reached it)."""
        return self._vehicles[vehicle_id][address]

    def stored_dtcs(self, vehicle_id: str, address: int) -> tuple[str, ...]:
        """The DTCs an ECU of a vehicle has stored (KeyError until a command reached it)."""
        return self.ecu(vehicle_id, address).stored_codes()

    def described_ecu(self, vehicle_id: str, address: int) -> DescribedEcu:
        """A bound ECU's described ECU (KeyError until a command reached it bound)."""
        return self._described[vehicle_id][address].ecu

    def _ecus(self, request: DiagnosticRequest) -> dict[int, _Emulated]:
        """The vehicle's ECUs this request may reach: its ECU set, each made on first use
        and kept (an ECU left out of the set keeps its state, unreachable); a bound one
        with its described ECU (made anew when the binding changed)."""
        made = self._vehicles.setdefault(request.vehicle_id, {})
        described = self._described.setdefault(request.vehicle_id, {})
        ecus: dict[int, _Emulated] = {}
        for name, address in request.ecus or description.DEFAULT_ECUS:
            layer = request.described_ecus.get(address)
            if layer is None:
                described.pop(address, None)  # unbound (or not loaded): made anew if bound
            else:
                bound = self._described_ecu(request, described, name, address, layer)
                if address not in DEFAULT_SPECS:  # no table ECU there: the description's
                    ecus[address] = bound
                    continue
            ecu = made.get(address)
            if ecu is None:
                spec = spec_for(name, address)
                ecu = made[address] = Ecu(spec, request.vin, self._timings, self._rng)
            ecus[address] = ecu if layer is None else _Bound(ecu, bound)
        return ecus

    def _described_ecu(
        self,
        request: DiagnosticRequest,
        described: dict[int, _Described],
        name: str,
        address: int,
        layer: DiagLayer,
    ) -> DescribedEcu:
        kept = described.get(address)
        if kept is not None and kept.layer is layer and kept.name == name:
            return kept.ecu
        # Imported on first use: odxtools' import alone takes about 0.3 s.
        from app.vehicles.emulator.described import DescribedEcu, DescribedSpec

        seed = self._settings.seed
        rng = random.Random(
            None if seed is None else f"{seed}/{request.vin}/{address:04X}/{layer.short_name}"
        )
        ecu = DescribedEcu(
            DescribedSpec(name, address, layer),
            rng,
            routine_s=self._settings.self_test_s,
            s3_s=None,  # as the table ECUs: nobody sends TesterPresent in-process
        )
        described[address] = _Described(layer, name, ecu)
        return ecu

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
        except (VehicleUnreachable, sovd.InvalidResponse):
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
            raise sovd.InvalidResponse(
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
