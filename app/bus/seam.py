"""What every bus offers (``Bus``): the services see only this.

- ``publish(event)`` never waits and never fails: every subscriber of the event's command
  on this node gets it at once (or overflows); a bus that reaches other nodes sends it on
  in the background, in order per command.
- ``subscribe(command_id)`` is an async context manager yielding a ``Subscription``; it
  always unsubscribes. When it yields, every event published afterwards (here or on any
  node the bus reaches) will reach the subscription, so a reader subscribes first and reads
  the store second (``app.services.follow``). A subscription that may have missed an event
  (its queue full, or the bus lost its connection) raises ``Overflowed``: its reader starts
  again from the store.
- ``broadcast(notice)`` tells the other nodes of a change this node has applied already;
  ``on_notice`` handlers hear the other nodes' notices, never this node's own.
- ``requests()`` asks other nodes and answers them (``app.bus.requests``), or None.
- ``ready`` says whether the bus can reach the other nodes now (``/health/ready``).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from app.bus.local import Subscription
from app.bus.notices import Notice
from app.bus.requests import Requests
from app.events import Event
from app.vocabulary import BusKind


class Bus(Protocol):
    # What /health/ready names.
    @property
    def name(self) -> BusKind: ...

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    async def ready(self, timeout_s: float) -> bool: ...

    def subscribe(self, command_id: str) -> AbstractAsyncContextManager[Subscription]: ...

    def publish(self, event: Event) -> None: ...

    def subscriber_count(self, command_id: str) -> int: ...

    def broadcast(self, notice: Notice) -> None: ...

    def on_notice(self, handler: Callable[[Notice], object]) -> None: ...

    def requests(self) -> Requests | None:
        """Requests to other nodes (NATS request/reply); None: there are no others."""
