"""The in-process bus (the default): publish/subscribe of command events within this
process, with a bounded queue per subscriber.

A publisher never waits: if a subscriber's queue is full, that subscriber is marked
overflowed and dropped, so one slow reader cannot stall the pipeline or grow memory
without bound. The subscriber learns it on its next ``get`` (``Overflowed``), and at once
through ``on_overflow`` if it set one.

A subscription is small on purpose: an idle response stream holds one for as long as it
is open (a thousand idle sockets are a thousand of these). Its queue is a deque made on
the first event and its reader waits on one future; no ``asyncio.Queue`` (four deques)
or ``asyncio.Event`` (one more) per subscriber.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from app.bus.notices import Notice
from app.events import Event
from app.vocabulary import BusKind


class Overflowed(Exception):
    """The subscriber fell too far behind and missed events."""


class Missed(Overflowed):
    """The bus may have lost events on their way to this subscriber (a connection to the
    other nodes dropped, a sender's gap), however fast it read."""


class Subscription:
    __slots__ = (
        "_events",
        "_maxsize",
        "_waiter",
        "command_id",
        "missed",
        "on_overflow",
        "overflowed",
    )

    def __init__(self, command_id: str, maxsize: int) -> None:
        self.command_id = command_id
        self._maxsize = maxsize
        self._events: deque[Event] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.missed = False  # overflowed by the bus (Missed), not by a full queue
        # Called once, when the queue overflows (e.g. to close a stream blocked on a send).
        self.on_overflow: Callable[[], object] | None = None

    def _offer(self, event: Event) -> bool:
        if self._events is None:
            self._events = deque()
        elif 0 < self._maxsize <= len(self._events):  # 0: unbounded, as asyncio.Queue
            self._overflow()
            return False
        self._events.append(event)
        self._wake()
        return True

    def _overflow(self, missed: bool = False) -> None:
        if self.overflowed:
            return
        self.overflowed = True
        self.missed = missed
        self._wake()
        if self.on_overflow is not None:
            self.on_overflow()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Event:
        """The next event; raises Overflowed once the queue has overflowed (or the bus
        marked it so): the flag is checked before each wait and an overflow wakes the
        waiter."""
        while True:
            if self.overflowed:
                raise (Missed if self.missed else Overflowed)(self.command_id)
            if self._events:
                return self._events.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class EventBus:
    """One process's bus: there are no other nodes, so a broadcast goes nowhere (the
    caller has applied it here already) and no notice ever arrives."""

    name = BusKind.IN_PROCESS

    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {}

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    async def ready(self, timeout_s: float) -> bool:
        return True

    def broadcast(self, notice: Notice) -> None:
        pass  # no other node to tell

    def requests(self) -> None:
        return None  # one process: no other node to ask

    def on_notice(self, handler: Callable[[Notice], object]) -> None:
        pass  # no other node to hear from

    @asynccontextmanager
    async def subscribe(self, command_id: str) -> AsyncIterator[Subscription]:
        sub = Subscription(command_id, self._queue_size)
        self._subscribers.setdefault(command_id, set()).add(sub)
        try:
            yield sub
        finally:
            self._discard(sub)

    def publish(self, event: Event) -> None:
        subs = self._subscribers.get(event.command_id)
        if not subs:
            return
        for sub in list(subs):
            if not sub._offer(event):
                self._discard(sub)

    def subscriber_count(self, command_id: str) -> int:
        return len(self._subscribers.get(command_id, ()))

    def overflow(self, command_id: str | None = None) -> int:
        """Mark the subscribers of ``command_id`` (None: every one) overflowed with
        ``Missed``: they may have missed events (a gap elsewhere, say a message bus that
        lost its connection), so their readers must start again from the store. How many
        were marked."""
        ids = list(self._subscribers) if command_id is None else [command_id]
        marked = 0
        for cid in ids:
            for sub in list(self._subscribers.get(cid, ())):
                sub._overflow(missed=True)
                self._discard(sub)
                marked += 1
        return marked

    def _discard(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.command_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.command_id]
