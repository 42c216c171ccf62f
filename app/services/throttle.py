"""Rate limits and budgets, all on an injected monotonic clock (tests move time instead of
sleeping) and all with bounded memory (past ``max_keys`` keys, the least recently used go).

- ``SlidingWindow``: at most ``limit`` events per ``window_s`` for each key. ``acquire``
  checks and counts in one step, so requests that run concurrently cannot all pass the
  check before any of them is counted; ``give_back`` undoes an event that should not count.
- ``ConcurrencyGate``: at most N holders at once; never queues, a caller beyond is refused.
- ``Turns``: one holder per key at a time, the others wait in line.
- ``Summary``: of a repeated event, which ones to write down (the first per key per window).
- ``Budget``: at most N per window overall; refusals are counted and handed to the next one.

The login's own limits (failed logins per address and username, what bounds a login's
cost) are built on these in ``app.services.login_throttle``.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final

# A monotonic clock: the service passes its one ``app.clock.Clock``'s ``monotonic``.
Monotonic = Callable[[], float]

MAX_KEYS: Final = 10_000


def whole_seconds(wait_s: float) -> int:
    """A wait as a Retry-After value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(wait_s))


class SlidingWindow:
    def __init__(
        self,
        limit: int,
        window_s: float,
        clock: Monotonic = time.monotonic,
        max_keys: int = MAX_KEYS,
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

    def count(self, key: str) -> int:
        """Events of ``key`` in the window now."""
        events = self._recent(key, self._clock())
        return 0 if events is None else len(events)

    def wait_s(self, key: str) -> float:
        """Seconds until ``key`` has room for one more event; 0 if it has now."""
        now = self._clock()
        events = self._recent(key, now)
        if events is None or len(events) < self.limit:
            return 0.0
        # The oldest events leave first: room comes when the (len - limit + 1)th has left.
        return events[len(events) - self.limit] + self.window_s - now

    def empty_in_s(self, key: str) -> float:
        """Seconds until ``key`` has no event in the window; 0 if it has none now."""
        now = self._clock()
        events = self._recent(key, now)
        return 0.0 if events is None else events[-1] + self.window_s - now

    def retry_after(self, key: str) -> int | None:
        """Seconds until ``key`` may act again (rounded up), or None if it may now."""
        wait = self.wait_s(key)
        return None if wait <= 0 else whole_seconds(wait)

    def load(self, key: str, events: tuple[float, ...]) -> None:
        """Put ``key``'s events (oldest first) in, as kept elsewhere (the shared limits:
        ``app.services.shared_limits`` decides with a window filled from the database)."""
        if events:
            self._events[key] = deque(events)

    def events(self, key: str) -> tuple[float, ...]:
        """``key``'s events in the window now, oldest first."""
        events = self._recent(key, self._clock())
        return () if events is None else tuple(events)

    def acquire(self, key: str) -> float | None:
        """If ``key`` has room, count one event now and return its time (for
        ``give_back``); None if it is at its limit. Check and count are one step."""
        now = self._clock()
        events = self._recent(key, now)
        if events is not None and len(events) >= self.limit:
            return None
        self._append(key, events, now)
        return now

    def hit(self, key: str) -> None:
        """Count one event now, whatever the limit."""
        now = self._clock()
        self._append(key, self._recent(key, now), now)

    def give_back(self, key: str, at: float) -> None:
        """Undo the event counted at ``at`` (if it is still in the window)."""
        events = self._events.get(key)
        if events is None:
            return
        try:
            events.remove(at)
        except ValueError:
            return  # it already left the window, or the key was evicted and came back
        if not events:
            del self._events[key]

    def _append(self, key: str, events: deque[float] | None, now: float) -> None:
        if events is None:
            events = self._events[key] = deque()
        events.append(now)
        self._events.move_to_end(key)
        while len(self._events) > self._max_keys:
            self._events.popitem(last=False)


class ConcurrencyGate:
    """At most ``limit`` holders at once. ``try_enter`` never waits: beyond the limit the
    caller is refused, so work is shed instead of queued. Event-loop use only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._in_use = 0

    @property
    def in_use(self) -> int:
        return self._in_use

    def try_enter(self) -> bool:
        if self._in_use >= self.limit:
            return False
        self._in_use += 1
        return True

    def leave(self) -> None:
        assert self._in_use > 0, "left a gate that was not entered"
        self._in_use -= 1


class Turns:
    """Per key, one holder at a time; the others wait in line. Event-loop use only; the
    caller bounds how many may wait (logins: the throttle's reservations per address).
    Memory: a key is forgotten as soon as nobody holds it or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # holders and waiters per key

    async def take(self, key: str) -> None:
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            await lock.acquire()
        except BaseException:
            self._done_with(key)
            raise

    def give(self, key: str) -> None:
        self._locks[key].release()
        self._done_with(key)

    def __len__(self) -> int:
        return len(self._locks)

    def _done_with(self, key: str) -> None:
        left = self._users[key] - 1
        if left:
            self._users[key] = left
        else:
            del self._users[key], self._locks[key]


class Summary:
    """Of a repeated event, which occurrences to write down: the first per key per
    window. ``note`` says when to write, and how many went unwritten since the last one."""

    def __init__(
        self, window_s: float, clock: Monotonic = time.monotonic, max_keys: int = MAX_KEYS
    ):
        self._window_s = window_s
        self._clock = clock
        self._max_keys = max_keys
        self._keys: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def note(self, key: str) -> int | None:
        """None: already written down in this window (counted only). Otherwise write this
        one: the number of occurrences of ``key`` not written since its last row."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now < entry[0] + self._window_s:
            self._keys[key] = (entry[0], entry[1] + 1)
            self._keys.move_to_end(key)
            return None
        self._keys[key] = (now, 0)
        self._keys.move_to_end(key)
        while len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return 0 if entry is None else entry[1]


class Budget:
    """At most ``limit`` uses per ``window_s`` overall. ``take`` returns None when over
    budget (the refusal is counted), else how many were refused since the last use."""

    _KEY: Final = "all"

    def __init__(self, limit: int, window_s: float, clock: Monotonic = time.monotonic) -> None:
        self._window = SlidingWindow(limit, window_s, clock, max_keys=1)
        self._refused = 0

    def take(self) -> int | None:
        if self._window.acquire(self._KEY) is None:
            self._refused += 1
            return None
        refused, self._refused = self._refused, 0
        return refused
