"""Shared by the DoIP tests: an observer that records, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.vehicles import doip
from app.vehicles.doip_connector import LinkDownReason
from app.vehicles.emulator.server import DoipEmulator, EmulatorSettings

DEADLINE_S = 5.0
T = TypeVar("T")


@dataclass
class Recorder:
    """A LinkObserver that keeps what it was told, in order."""

    events: list[tuple[Any, ...]] = field(default_factory=list)

    def link_up(self, vehicle_id: str, at: str) -> None:
        self.events.append(("up", vehicle_id, at))

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None:
        self.events.append(("down", vehicle_id, reason, at))

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None:
        self.events.append(("failed", vehicle_id, reason, at))

    def vehicle_seen(self, vehicle_id: str, at: str) -> None:
        self.events.append(("seen", vehicle_id, at))

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        self.events.append(("uds", vehicle_id, service, duration_s, outcome))

    def kinds(self, *kinds: str) -> list[tuple[Any, ...]]:
        return [e for e in self.events if e[0] in kinds]

    def links(self) -> list[tuple[str, ...]]:
        """Link events without their timestamps: ("up",), ("down", vehicle, reason),
        ("failed",)."""
        return [e[:3] if e[0] == "down" else e[:1] for e in self.kinds("up", "down", "failed")]


def doip_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("doip-")]


async def eventually(predicate: Callable[[], Any], what: str) -> Any:
    """Poll ``predicate`` on the loop until it is truthy, or fail after the deadline."""
    deadline = time.monotonic() + DEADLINE_S
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)
    return value


class ThreadedEmulator:
    """The emulator on its own event loop in a thread."""

    def __init__(self, profile: str, vin: str = "WVWZZZ1KZAW000001") -> None:
        self.emulator = DoipEmulator(EmulatorSettings(vin=vin, profile=profile))
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self.port = self._run(self.emulator.start("127.0.0.1", 0))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE_S)

    def requests(self, sid: int) -> int:
        return self._run(self._count(sid))

    async def _count(self, sid: int) -> int:
        return self.emulator.requests[sid]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.emulator.close(), self.loop).result(DEADLINE_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(DEADLINE_S)
        self.loop.close()


# What a hostile or broken ECU does with each diagnostic request it gets:
# "pending": answers 0x7F <sid> 0x78 (response pending) every ``interval_s``, forever;
# "silent": acknowledges, never answers; "dtc-flood": answers a ReadDTC with ``dtcs``
# DTCs; "garbage": answers with ``garbage`` (bytes that are not DoIP);
# "healthy": a positive answer of the service's SID + 0x40 and nothing else;
# "scripted": whatever ``script`` writes.
PEER_BEHAVIOURS = ("pending", "silent", "dtc-flood", "garbage", "healthy", "scripted")
Script = Callable[[asyncio.StreamWriter], Awaitable[None]]


def uds_answer(writer: asyncio.StreamWriter, user_data: bytes) -> None:
    """Write a UDS message from ECU 0x0010 to tester 0x0E00."""
    message = doip.DiagnosticMessage(0x0010, 0x0E00, user_data)
    writer.write(doip.encode_frame(doip.DIAGNOSTIC_MESSAGE, message.encode()))


@dataclass
class Received:
    sid: int
    at: float  # time.monotonic() on arrival
    wall: float  # time.time() on arrival


class HostilePeer:
    """A DoIP entity (logical address 0x0001, one ECU 0x0010) on its own event loop in a
    thread, that activates routing for tester 0x0E00 and then answers diagnostic
    requests as ``behaviour`` says. It records every request it receives."""

    def __init__(
        self,
        behaviour: str,
        *,
        interval_s: float = 0.05,
        dtcs: int = 0,
        garbage: bytes = b"",
        script: Script | None = None,
    ) -> None:
        assert behaviour in PEER_BEHAVIOURS
        self.behaviour = behaviour
        self.interval_s = interval_s
        self.dtcs = dtcs
        self.garbage = garbage
        self.script = script
        self.connections = 0
        self._handlers: set[asyncio.Task[None]] = set()
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        ).result(DEADLINE_S)
        self.port: int = self._server.sockets[0].getsockname()[1]

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def sids(self) -> list[int]:
        return [r.sid for r in self.received]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        decoder = doip.FrameDecoder(max_payload=1 << 20)
        pending: list[asyncio.Task[None]] = []
        try:
            while data := await reader.read(65536):
                for frame in decoder.feed(data):
                    if frame.payload_type == doip.ROUTING_ACTIVATION_REQUEST:
                        answer = doip.RoutingActivationResponse(0x0E00, 0x0001, 0x10)
                        writer.write(
                            doip.encode_frame(doip.ROUTING_ACTIVATION_RESPONSE, answer.encode())
                        )
                    elif frame.payload_type == doip.DIAGNOSTIC_MESSAGE:
                        request = doip.DiagnosticMessage.decode(frame.payload)
                        sid = request.user_data[0]
                        ack = doip.DiagnosticAck(
                            request.target_address, request.source_address, 0x00
                        )
                        writer.write(doip.encode_frame(doip.DIAGNOSTIC_ACK, ack.encode()))
                        if sid == 0x3E:
                            continue  # TesterPresent: the keepalive, not a request
                        with self._lock:
                            self._received.append(Received(sid, time.monotonic(), time.time()))
                        pending.append(asyncio.create_task(self._answer(writer, sid)))
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass  # the tester hung up on us, or the peer closes
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            writer.close()
            self._handlers.discard(handler)

    async def _answer(self, writer: asyncio.StreamWriter, sid: int) -> None:
        if self.behaviour == "pending":
            while not writer.is_closing():
                uds_answer(writer, bytes([0x7F, sid, 0x78]))
                await asyncio.sleep(self.interval_s)
        elif self.behaviour == "dtc-flood":
            # 0x59 0x02, availability mask, then DTC (3 bytes) + status (1 byte) each.
            uds_answer(writer, b"\x59\x02\xff" + b"\x01\x71\x00\x2f" * self.dtcs)
        elif self.behaviour == "garbage":
            writer.write(self.garbage)
        elif self.behaviour == "healthy":
            uds_answer(writer, bytes([sid + 0x40]))
        elif self.behaviour == "scripted":
            assert self.script is not None
            await self.script(writer)

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            handlers = list(self._handlers)
            for handler in handlers:
                handler.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(DEADLINE_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(DEADLINE_S)
        self.loop.close()
