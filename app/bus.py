"""In-process publish/subscribe of command events, with a bounded queue per subscriber.

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

from app.events import Event


class Overflowed(Exception):
    """The subscriber fell too far behind and missed events."""


class Subscription:
    __slots__ = ("_events", "_maxsize", "_waiter", "command_id", "on_overflow", "overflowed")

    def __init__(self, command_id: str, maxsize: int) -> None:
        self.command_id = command_id
        self._maxsize = maxsize
        self._events: deque[Event] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        # Called once, when the queue overflows (e.g. to close a stream blocked on a send).
        self.on_overflow: Callable[[], object] | None = None

    def _offer(self, event: Event) -> bool:
        if self._events is None:
            self._events = deque()
        elif 0 < self._maxsize <= len(self._events):  # 0: unbounded, as asyncio.Queue
            self.overflowed = True
            self._wake()
            if self.on_overflow is not None:
                self.on_overflow()
            return False
        self._events.append(event)
        self._wake()
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def get(self) -> Event:
        """The next event; raises Overflowed once the queue has overflowed.

        An overflow can only happen while the queue is full, that is while the reader is
        not waiting here, so checking the flag before each wait is enough.
        """
        while True:
            if self.overflowed:
                raise Overflowed(self.command_id)
            if self._events:
                return self._events.popleft()
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None


class EventBus:
    def __init__(self, queue_size: int = 256) -> None:
        self._queue_size = queue_size
        self._subscribers: dict[str, set[Subscription]] = {}

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

    def _discard(self, sub: Subscription) -> None:
        subs = self._subscribers.get(sub.command_id)
        if subs is None:
            return
        subs.discard(sub)
        if not subs:
            del self._subscribers[sub.command_id]
