"""Sliding-window rate limits: at most ``limit`` events per ``window_s`` for each key.

Used for failed logins (per client address and per username) and for command
submissions (per user). The clock is injected so tests can move time instead of
sleeping. Memory is bounded: past ``max_keys`` keys, the least recently used go.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable


class SlidingWindow:
    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._events: OrderedDict[str, deque[float]] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        events = self._events.get(key)
        if events is None:
            return None
        while events and events[0] <= now - self.window_s:
            events.popleft()
        if not events:
            del self._events[key]
            return None
        return events

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may act again (rounded up), or None if it may now."""
        now = self._clock()
        events = self._recent(key, now)
        if events is None or len(events) < self.limit:
            return None
        # The oldest event in the window leaves it at events[0] + window_s.
        return max(1, math.ceil(events[0] + self.window_s - now))

    def hit(self, key: str) -> None:
        now = self._clock()
        events = self._recent(key, now)
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)
