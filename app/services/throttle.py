"""Rate limits and budgets, all on an injected monotonic clock (tests move time instead of
sleeping) and all with bounded memory (past ``max_keys`` keys, the least recently used go).

- ``SlidingWindow``: at most ``limit`` events per ``window_s`` for each key. ``acquire``
  checks and counts in one step, so requests that run concurrently cannot all pass the
  check before any of them is counted; ``give_back`` undoes an event that should not count.
- ``LoginThrottle``: failed logins per client address and per username (see its docstring
  for exactly what holds).
- ``ConcurrencyGate``: at most N holders at once; never queues, a caller beyond is refused.
- ``Turns``: one holder per key at a time, the others wait in line.
- ``Summary``: of a repeated event, which ones to write down (the first per key per window).
- ``Budget``: at most N per window overall; refusals are counted and handed to the next one.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

# A monotonic clock: the service passes its one ``app.clock.Clock``'s ``monotonic``.
Monotonic = Callable[[], float]

MAX_KEYS: Final = 10_000
# How long, and for how many addresses per username, a right password is remembered.
KNOWN_FOR_S: Final = 30 * 86400.0
KNOWN_PER_USERNAME: Final = 16
ADDRESS_LIMIT: Final = "address"
USERNAME_LIMIT: Final = "username"


def _whole_seconds(wait_s: float) -> int:
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
        return None if wait <= 0 else _whole_seconds(wait)

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


class KnownAddresses:
    """The addresses each username logged in from with the right password lately: up to
    ``per_key`` per username, each for ``keep_s``. Only a right password puts an address
    here, so an attacker cannot; memory is bounded like the windows'."""

    def __init__(
        self,
        clock: Monotonic,
        keep_s: float = KNOWN_FOR_S,
        per_key: int = KNOWN_PER_USERNAME,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self._clock = clock
        self._keep_s = keep_s
        self._per_key = per_key
        self._max_keys = max_keys
        self._by_key: OrderedDict[str, OrderedDict[str, float]] = OrderedDict()

    def remember(self, key: str, address: str) -> None:
        addresses = self._by_key.setdefault(key, OrderedDict())
        addresses[address] = self._clock()
        addresses.move_to_end(address)
        while len(addresses) > self._per_key:
            addresses.popitem(last=False)
        self._by_key.move_to_end(key)
        while len(self._by_key) > self._max_keys:
            self._by_key.popitem(last=False)

    def known(self, key: str, address: str) -> bool:
        addresses = self._by_key.get(key)
        seen = addresses.get(address) if addresses is not None else None
        return seen is not None and self._clock() - seen < self._keep_s


@dataclass(frozen=True, slots=True)
class LoginSlot:
    """A reserved login attempt: the events it counted, given back if it succeeds."""

    address: str
    username: str
    address_at: float
    # When it was counted on the username (None: a known address, counted on its own
    # address only), and whether in the username's clean-address allowance.
    username_at: float | None
    clean_allowance: bool


@dataclass(frozen=True, slots=True)
class LoginRefused:
    retry_after: int  # whole seconds until this address may try this username again
    limits: tuple[str, ...]  # which limits refused: ADDRESS_LIMIT, USERNAME_LIMIT


class LoginThrottle:
    """Failed logins per address and per username, reserved before the password is checked.

    With N = ``max_failures`` per ``window_s``:
    - an address gets at most N attempts that did not succeed (in flight or failed);
    - a username gets at most N such attempts from any address; after that, only an
      address with no attempt in its window may still try that username, and those are
      capped at N more per window (the clean-address allowance).
    - an address the username logged in from with the right password in the last 30 days
      (a known address: the admin's own desk) may always try, within its own address
      limit, however full the username's windows are.
    So no address ever sees more than N failed password checks per window, and no
    username more than 2N from addresses it has not logged in from, whatever the
    concurrency; the right password from a known address is never refused for the
    username's sake (a typo there costs one of that address's own N); from a new address
    that has not failed, it is refused only once more than N fresh addresses have failed
    on that username within the window. A success gives its attempt back and makes its
    address known.
    """

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        clock: Monotonic = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        # Separate windows, so that a flood of usernames cannot evict the addresses.
        self._addresses = SlidingWindow(max_failures, window_s, clock, max_keys)
        self._usernames = SlidingWindow(max_failures, window_s, clock, max_keys)
        self._clean = SlidingWindow(max_failures, window_s, clock, max_keys)
        self._known = KnownAddresses(clock, max_keys=max_keys)

    def reserve(self, address: str, username: str) -> LoginSlot | LoginRefused:
        """Count an attempt of ``address`` on ``username`` (a normalised key) now, or say
        why not and for how long. Synchronous: concurrent logins each see the others."""
        address_ok = self._addresses.wait_s(address) == 0
        username_ok = self._usernames.wait_s(username) == 0
        clean = self._addresses.count(address) == 0
        clean_ok = clean and self._clean.wait_s(username) == 0
        known = self._known.known(username, address)
        if address_ok and (username_ok or clean_ok or known):
            address_at = self._addresses.acquire(address)
            assert address_at is not None  # room was checked
            username_at: float | None = None
            if username_ok or clean_ok:
                window = self._usernames if username_ok else self._clean
                username_at = window.acquire(username)
                assert username_at is not None  # room was checked
            return LoginSlot(address, username, address_at, username_at, not username_ok)
        limits = (() if address_ok else (ADDRESS_LIMIT,)) + (
            () if username_ok or clean_ok or known else (USERNAME_LIMIT,)
        )
        return LoginRefused(self._retry_after(address, username, known), limits)

    def load(
        self,
        address: str,
        username: str,
        windows: tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]],
        known: bool,
    ) -> None:
        """Fill in one address's and one username's state as kept elsewhere (the shared
        limits decide with a throttle filled from the database): the address's events,
        the username's, its clean-address allowance's, and whether the address is known."""
        self._addresses.load(address, windows[0])
        self._usernames.load(username, windows[1])
        self._clean.load(username, windows[2])
        if known:
            self._known.remember(username, address)

    def windows(
        self, address: str, username: str
    ) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
        """The events now in the address's, the username's and its allowance's windows."""
        return (
            self._addresses.events(address),
            self._usernames.events(username),
            self._clean.events(username),
        )

    def _retry_after(self, address: str, username: str, known: bool) -> int:
        # Allowed again when the address has room and either the username has room, or
        # the address is clean (empty) and the clean allowance has room (a known address
        # needs room on itself only). Each of these only becomes true as time passes, so
        # the earliest moment is exact.
        if known:
            return _whole_seconds(self._addresses.wait_s(address))
        clean_path = max(self._addresses.empty_in_s(address), self._clean.wait_s(username))
        wait = max(
            self._addresses.wait_s(address), min(self._usernames.wait_s(username), clean_path)
        )
        return _whole_seconds(wait)

    def give_back(self, slot: LoginSlot) -> None:
        """No password was checked: the attempt does not count."""
        self._addresses.give_back(slot.address, slot.address_at)
        if slot.username_at is not None:
            window = self._clean if slot.clean_allowance else self._usernames
            window.give_back(slot.username, slot.username_at)

    def succeeded(self, slot: LoginSlot) -> None:
        """The right password: the attempt does not count, and its address is known."""
        self.give_back(slot)
        self._known.remember(slot.username, slot.address)


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


class LoginLimits:
    """Everything that bounds what unauthenticated login traffic may cost."""

    def __init__(
        self,
        max_failures: int,
        window_s: float,
        max_concurrent_checks: int,
        audit_rows_per_min: int,
        clock: Monotonic = time.monotonic,
    ) -> None:
        self.throttle = LoginThrottle(max_failures, window_s, clock)
        # One password check at a time per address and per username: a client, however
        # many requests it sends at once, holds at most one of the process's checks, and
        # each attempt is counted before the next one on the same key is decided.
        self.turns = Turns()
        # Password checks running at once, process-wide (argon2 is CPU and memory heavy).
        self.checks = ConcurrencyGate(max_concurrent_checks)
        # Refusals are audited once per limited key per window, the rest only counted.
        self.refusals = Summary(window_s, clock)
        # Audit rows caused by unauthenticated traffic (failed and refused logins).
        self.audit = Budget(audit_rows_per_min, 60.0, clock)
