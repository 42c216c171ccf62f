"""Shared by the DoIP tests: an observer that records, and waiting with a deadline."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from app.vehicles.doip_connector import LinkDownReason

DEADLINE_S = 5.0


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
