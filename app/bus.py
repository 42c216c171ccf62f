"""In-process publish/subscribe of command events, with a bounded queue per subscriber.

A publisher never waits: if a subscriber's queue is full, that subscriber is marked
overflowed and dropped, so one slow reader cannot stall the pipeline or grow memory
without bound. The subscriber learns it on its next ``get`` (``Overflowed``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.events import Event


class Overflowed(Exception):
    """The subscriber fell too far behind and missed events."""


class Subscription:
    def __init__(self, command_id: str, maxsize: int) -> None:
        self.command_id = command_id
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize)
        self.overflowed = asyncio.Event()

    def _offer(self, event: Event) -> bool:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed.set()
            return False
        return True

    async def get(self) -> Event:
        """The next event; raises Overflowed once the queue has overflowed.

        An overflow can only happen while the queue is full, that is while the reader is
        not waiting here, so checking the flag before each wait is enough.
        """
        if self.overflowed.is_set():
            raise Overflowed(self.command_id)
        return await self._queue.get()


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
