"""The emulated DoIP entity: a TCP server (asyncio streams) in front of the ECUs.

It speaks the TCP part of ISO 13400-2 that a diagnostic tester uses: the generic
header (a frame it cannot parse gets a generic NACK), routing activation, alive check,
and diagnostic messages, each acknowledged (0x8002) or refused (0x8003) before the ECU's
UDS answer follows. A slow answer is announced with 0x78 response pending, repeated
while the ECU works. Frames are built and parsed by ``app.vehicles.doip`` (pure); this
module only moves bytes.

The ``profile`` mirrors the simulator's, so the same scenarios run over a real socket:
``healthy`` answers; ``slow`` answers every request late, with 0x78 meanwhile;
``timeout`` acknowledges requests and never answers them; ``unreachable`` refuses
routing activation to new connections and drops an established one in the middle of
its next answer; ``malformed`` answers bytes that are not UDS; ``flaky`` draws one of
those per request from the seeded RNG. The profile can be changed while running.

The ECUs are the demo vehicle's of ``ecus.py`` (``settings.ecus``, the default four:
the demo description's base variants with the demo scenario laid over them) and/or ECUs
of any ODX description (``settings.described``: base variants of PDX files), each a
``described.DescribedEcu`` at its logical address.

Simplifications, on purpose: one tester at a time is served per logical address (a new
activation with the same address replaces the old connection instead of running the
alive check of ISO 13400-2 9.6.2); requests on one connection are answered in order,
one at a time; no UDP vehicle discovery, no TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final, Protocol

from app.vehicles import doip, uds
from app.vehicles.emulator.described import DescribedEcu, DescribedSpec
from app.vehicles.emulator.ecus import DEFAULT_ECUS, Ecu, EcuSpec, Timings, make_ecu
from app.vehicles.emulator.reply import Reply

log = logging.getLogger(__name__)

PROFILES: Final = ("healthy", "slow", "timeout", "unreachable", "malformed", "flaky")
# The routing activation code that says "no": the gateway has no socket for this tester,
# the nearest ISO 13400-2 code to "the vehicle is not available".
REFUSAL_CODE: Final = 0x01
# What the ``malformed`` profile answers: not a UDS message (0xFF is no response id).
GARBAGE: Final = b"\xff\xfe\x00 not uds"
READ_SIZE: Final = 4096


class EmulatedEcu(Protocol):
    """What the entity needs of an ECU behind it (``Ecu``, ``DescribedEcu``)."""

    @property
    def address(self) -> int: ...

    def handle(self, request: bytes, now: float) -> Reply: ...

    def reset_session(self) -> None: ...


@dataclass(frozen=True, slots=True)
class EmulatorSettings:
    logical_address: int = 0x0001
    vin: str = "WVWZZZ1KZAW000001"
    profile: str = "healthy"
    seed: int | None = None
    timings: Timings = field(default_factory=Timings)
    slow_s: float = 1.0  # the ``slow`` profile: how late every answer comes
    pending_interval_s: float = 1.0  # 0x78 is repeated this often while an answer waits
    p_timeout: float = 0.10
    p_unreachable: float = 0.05
    p_malformed: float = 0.03
    ecus: tuple[EcuSpec, ...] = DEFAULT_ECUS
    # ECUs answering from a description (``python -m app.vehicles.emulator --pdx``): each
    # draws from its own generator, seeded from ``seed``, its name and address; its
    # routines run ``timings.self_test_s``, its sessions end after ``timings.s3_s``.
    described: tuple[DescribedSpec, ...] = ()
    max_payload: int = 4096


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile {profile!r} is not one of {', '.join(PROFILES)}")
    return profile


@dataclass(eq=False, slots=True)
class _Connection:
    writer: asyncio.StreamWriter
    tester: int | None = None  # the source address routing was activated for
    version: int = doip.PROTOCOL_VERSION  # answer in the version the tester speaks

    def send(self, payload_type: int, payload: bytes) -> None:
        self.writer.write(doip.encode_frame(payload_type, payload, self.version))


class DoipEmulator:
    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings()
        self._profile = check_profile(self.settings.profile)
        self._rng = random.Random(self.settings.seed)
        self.ecus: dict[int, Ecu] = {
            spec.address: make_ecu(spec, self.settings.vin, self.settings.timings, self._rng)
            for spec in self.settings.ecus
        }
        timings = self.settings.timings
        self.described: dict[int, DescribedEcu] = {}
        for described in self.settings.described:
            if described.address in self.ecus or described.address in self.described:
                raise ValueError(f"two ECUs at 0x{described.address:04X}")
            self.described[described.address] = DescribedEcu(
                described,
                described_rng(self.settings.seed, described),
                routine_s=timings.self_test_s,
                s3_s=timings.s3_s,
                vin=self.settings.vin,  # the VIN it announces, on 0xF190 too
            )
        self._targets: dict[int, EmulatedEcu] = {**self.ecus, **self.described}
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connections: set[_Connection] = set()
        self._testers: dict[int, _Connection] = {}
        # Observable by tests and the CLI's log: what the entity has seen.
        self.connections_accepted = 0
        self.activations_refused = 0
        self.requests: Counter[int] = Counter()  # per UDS service id

    # -- lifecycle -----------------------------------------------------------------

    @property
    def profile(self) -> str:
        return self._profile

    @profile.setter
    def profile(self, value: str) -> None:
        self._profile = check_profile(value)

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the emulator is not listening")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def active_connections(self) -> int:
        return len(self._tasks)

    async def start(self, host: str = "127.0.0.1", port: int = doip.TCP_PORT) -> int:
        """Listen on ``host``:``port`` (0: any free port); returns the port."""
        self._server = await asyncio.start_server(self._serve, host, port)
        return self.port

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    def ecu(self, address: int) -> Ecu:
        return self.ecus[address]

    @property
    def addresses(self) -> list[int]:
        """Every ECU's logical address: the demo ECUs', then the ``--pdx`` ones'."""
        return list(self._targets)

    def disconnect_all(self) -> None:
        """Close every tester connection, as a gateway's inactivity timer does."""
        for connection in list(self._connections):
            connection.writer.close()

    # -- one connection ----------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections_accepted += 1
        connection = _Connection(writer)
        self._connections.add(connection)
        decoder = doip.FrameDecoder(self.settings.max_payload)
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    return
                try:
                    frames = decoder.feed(data)
                except doip.FrameError as exc:
                    # The stream cannot be resynchronised after a bad header: say why, close.
                    writer.write(doip.generic_nack(exc.nack_code))
                    await writer.drain()
                    return
                for frame in frames:
                    connection.version = frame.version
                    if not await self._on_frame(connection, frame):
                        return
                    await writer.drain()
        except ConnectionError:
            return  # the tester reset the connection: nothing to answer any more
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("emulator connection failed", extra={"event": "emulator_error"})
        finally:
            self._connections.discard(connection)
            self._forget(connection)
            writer.close()
            self._tasks.discard(task)

    def _forget(self, connection: _Connection) -> None:
        tester = connection.tester
        if tester is not None and self._testers.get(tester) is connection:
            del self._testers[tester]
            # The tester is gone: its sessions end now rather than one S3 later.
            for ecu in self._targets.values():
                ecu.reset_session()

    async def _on_frame(self, connection: _Connection, frame: doip.Frame) -> bool:
        """Handle one frame; False closes the connection."""
        try:
            if frame.payload_type == doip.ROUTING_ACTIVATION_REQUEST:
                return self._activate(
                    connection, doip.RoutingActivationRequest.decode(frame.payload)
                )
            if frame.payload_type == doip.ALIVE_CHECK_REQUEST:
                address = self.settings.logical_address.to_bytes(2, "big")
                connection.send(doip.ALIVE_CHECK_RESPONSE, address)
                return True
            if frame.payload_type == doip.ALIVE_CHECK_RESPONSE:
                return True
            if frame.payload_type == doip.DIAGNOSTIC_MESSAGE:
                return await self._diagnostic(
                    connection, doip.DiagnosticMessage.decode(frame.payload)
                )
        except doip.FrameError as exc:
            connection.writer.write(doip.generic_nack(exc.nack_code, connection.version))
            return False
        connection.writer.write(
            doip.generic_nack(doip.NACK_UNKNOWN_PAYLOAD_TYPE, connection.version)
        )
        return True

    def _activate(self, connection: _Connection, request: doip.RoutingActivationRequest) -> bool:
        if self._profile == "unreachable":
            code = REFUSAL_CODE
        elif request.activation_type not in doip.ACTIVATION_TYPES:
            code = 0x06
        elif request.source_address not in doip.TESTER_ADDRESSES:
            code = 0x00
        else:
            code = doip.ACTIVATION_SUCCESS
        response = doip.RoutingActivationResponse(
            request.source_address, self.settings.logical_address, code
        )
        connection.send(doip.ROUTING_ACTIVATION_RESPONSE, response.encode())
        if code != doip.ACTIVATION_SUCCESS:
            self.activations_refused += 1
            return False  # a denied activation closes the socket (ISO 13400-2 9.6.1)
        previous = self._testers.get(request.source_address)
        if previous is not None and previous is not connection:
            previous.writer.close()
        connection.tester = request.source_address
        self._testers[request.source_address] = connection
        return True

    async def _diagnostic(self, connection: _Connection, message: doip.DiagnosticMessage) -> bool:
        if connection.tester is None or message.source_address != connection.tester:
            nack = doip.DiagnosticAck(
                message.target_address,
                message.source_address,
                doip.DIAGNOSTIC_NACK_INVALID_SOURCE,
            )
            connection.send(doip.DIAGNOSTIC_NACK, nack.encode())
            return False  # an unknown source address closes the socket (ISO 13400-2)
        ecu = self._targets.get(message.target_address)
        if ecu is None:
            nack = doip.DiagnosticAck(
                message.target_address, message.source_address, doip.DIAGNOSTIC_NACK_UNKNOWN_TARGET
            )
            connection.send(doip.DIAGNOSTIC_NACK, nack.encode())
            return True
        ecu_address = ecu.address
        request = message.user_data
        ack = doip.DiagnosticAck(ecu_address, connection.tester, 0x00, request[:4])
        connection.send(doip.DIAGNOSTIC_ACK, ack.encode())
        self.requests[request[0]] += 1

        def answer(payload: bytes) -> None:
            reply = doip.DiagnosticMessage(ecu_address, message.source_address, payload)
            connection.send(doip.DIAGNOSTIC_MESSAGE, reply.encode())

        outcome = self._outcome()
        if outcome == "timeout":
            return True  # acknowledged, never answered
        if outcome == "unreachable":
            # The link breaks in the middle of the answer: half a frame, then the end.
            frame = doip.encode_frame(
                doip.DIAGNOSTIC_MESSAGE,
                doip.DiagnosticMessage(ecu_address, message.source_address, GARBAGE).encode(),
                connection.version,
            )
            connection.writer.write(frame[: len(frame) // 2])
            await connection.writer.drain()
            return False
        if outcome == "malformed":
            answer(GARBAGE)
            return True
        reply = ecu.handle(request, asyncio.get_running_loop().time())
        if reply.payload is None:
            return True  # the positive answer was suppressed
        delay = reply.work_s + (self.settings.slow_s if outcome == "slow" else 0.0)
        while delay > 0:
            # Keep the tester waiting within P2*: 0x78 now and again while the ECU works.
            answer(uds.Negative(request[0], uds.RESPONSE_PENDING).encode())
            await connection.writer.drain()
            step = min(delay, self.settings.pending_interval_s)
            await asyncio.sleep(step)
            delay -= step
        answer(reply.payload)
        return True

    def _outcome(self) -> str:
        if self._profile != "flaky":
            return self._profile
        s = self.settings
        draw = self._rng.random()
        for outcome, probability in (
            ("timeout", s.p_timeout),
            ("unreachable", s.p_unreachable),
            ("malformed", s.p_malformed),
        ):
            if draw < probability:
                return outcome
            draw -= probability
        return "healthy"


def described_rng(seed: int | None, spec: DescribedSpec) -> random.Random:
    """A described ECU's own generator: what it answers does not depend on the traffic to
    the others; no seed: not reproducible."""
    if seed is None:
        return random.Random()
    return random.Random(f"{seed}/{spec.name}/0x{spec.address:04X}")


@contextlib.asynccontextmanager
async def running_emulator(
    settings: EmulatorSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[DoipEmulator]:
    """An emulator listening for the block's duration (port 0: any free port)."""
    emulator = DoipEmulator(settings)
    await emulator.start(host, port)
    try:
        yield emulator
    finally:
        await emulator.close()
