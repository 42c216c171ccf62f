"""What crosses between a vehicle's DoIP worker thread and the event loop: the events the
worker reports as they happen (``WireEvent``), a request's claim on the wire that the
loop may abandon (``Ticket``), and what a job returns when it is over (``Outcome``, its
``Exchange``s). The worker is ``doip_wire.Wire``; the loop's side is ``doip_link.Link``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from app.clock import monotonic


@dataclass(frozen=True, slots=True)
class WireEvent:
    kind: Literal["up", "down", "refused", "seen"]
    reason: str
    at: str


# The worker's way to tell the event loop what happened, as it happens (thread-safe).
Report = Callable[[WireEvent], None]


class Ticket:
    """One request's claim on the wire: when its command gives up on it (``abandon``,
    from the event loop) before the worker reaches it, the worker drops it unsent;
    ``until`` (monotonic) bounds every wait for its answer."""

    __slots__ = ("_abandoned", "until")

    def __init__(self, until: float | None) -> None:
        self.until = until
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    @property
    def void(self) -> bool:
        return self._abandoned.is_set() or (self.until is not None and monotonic() >= self.until)

    def bound(self, deadline: float) -> float:
        return deadline if self.until is None else min(deadline, self.until)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One UDS request's fate on the wire."""

    answer: bytes | None = None  # the final answer (after any 0x78)
    nack: int | None = None  # DoIP diagnostic negative acknowledgement code
    no_answer: bool = False  # P2/P2* passed without the final answer
    failure: Literal["lost", "invalid"] | None = None  # the link broke / sent garbage
    duration_s: float = 0.0
    sent: bool = True  # False: dropped unsent (its command had given up on it)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a worker job returns to the event loop when it is over (its events were
    reported as they happened); it never raises for the vehicle's faults."""

    exchanges: tuple[Exchange, ...] = ()
    unreachable: str | None = None
    invalid: str | None = None
