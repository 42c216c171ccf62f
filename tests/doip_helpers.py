"""Shared by the DoIP tests: an observer that records, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
