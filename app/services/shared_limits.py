"""The login throttle and the command rate decided against the cluster's shared counts
(issue #23 item 4), when PostgreSQL and NATS are both set (``Config.cluster``): failed
logins beyond the limit are refused, and commands beyond a user's rate, whichever node
they reach. A single node keeps both in memory (``app.services.throttle``); this module
is not used there.

- ``SharedWindow``: a ``SlidingWindow`` whose events are rows of the shared database:
  ``acquire`` checks and counts in one atomic statement (``app.store.pg_limits``).
- ``SharedLoginThrottle``: ``LoginThrottle``'s rules exactly, decided by the same code
  (a ``LoginThrottle`` filled with the address's and username's stored windows, inside a
  transaction that holds both keys' advisory locks) and its outcome written back.

Time is each node's wall clock (epoch seconds): nodes' clocks are assumed to agree
within a fraction of the window (NTP). A success gives its attempt back in the
background (``settle`` waits for those writes): the login answers without waiting.
What stays per node: the turns (one check at a time per address and username on each
node), the cap on password checks at once (CPU is per node), and the audit budget and
refusal summary of unauthenticated traffic (audit rows are bounded per node).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine
from typing import Any, Final

from app.clock import Clock
from app.services.login_throttle import KNOWN_FOR_S, LoginRefused, LoginSlot, LoginThrottle
from app.services.throttle import SlidingWindow
from app.store.limits import LimitStore, Read, Window, Written

log = logging.getLogger(__name__)

COMMAND_RATE: Final = "command-rate"  # per user id
LOGIN_ADDRESS: Final = "login-address"  # per client address
LOGIN_USERNAME: Final = "login-username"  # per username key
LOGIN_CLEAN: Final = "login-clean"  # the username's clean-address allowance
LOGIN_KNOWN: Final = "login-known"  # per username key and address: a right password


class SharedWindow:
    """At most ``limit`` events per ``window_s`` for each key, over every node."""

    def __init__(
        self, store: LimitStore, kind: str, limit: int, window_s: float, clock: Clock
    ) -> None:
        self._store = store
        self._kind = kind
        self.limit = limit
        self.window_s = window_s
        self._clock = clock

    async def acquire(self, key: str) -> int | None:
        """Count one event of ``key`` now if it has room: None. Else the whole seconds
        until it has (the Retry-After)."""
        now = self._clock.unix()
        full = await self._store.acquire((self._kind, key), self.limit, self.window_s, now)
        if full is None:
            return None
        window = SlidingWindow(self.limit, self.window_s, lambda: now, max_keys=1)
        window.load(key, full)
        return _at_most_the_window(window.retry_after(key) or 1, self.window_s)


class SharedLoginThrottle:
    """``LoginThrottle`` over every node (its docstring says exactly what holds)."""

    def __init__(self, store: LimitStore, max_failures: int, window_s: float, clock: Clock) -> None:
        self._store = store
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._writes: set[asyncio.Task[None]] = set()

    async def reserve(self, address: str, username: str) -> LoginSlot | LoginRefused:
        """As ``LoginThrottle.reserve``, against the counts every node shares."""
        now = self._clock.unix()
        by_address = (LOGIN_ADDRESS, address)
        by_username = (LOGIN_USERNAME, username)
        clean = (LOGIN_CLEAN, username)
        known = (LOGIN_KNOWN, _pair(username, address))

        def decide(read: Read) -> tuple[LoginSlot | LoginRefused, dict[Window, Written]]:
            throttle = LoginThrottle(self.max_failures, self.window_s, lambda: now)
            seen = read[known]
            throttle.load(
                address,
                username,
                (read[by_address], read[by_username], read[clean]),
                bool(seen) and now - seen[-1] < KNOWN_FOR_S,
            )
            outcome = throttle.reserve(address, username)
            if isinstance(outcome, LoginRefused):
                wait = _at_most_the_window(outcome.retry_after, self.window_s)
                return LoginRefused(wait, outcome.limits), {}
            expires = now + self.window_s
            after = throttle.windows(address, username)
            written = {
                window: Written(events, expires)
                for window, events, before in zip(
                    (by_address, by_username, clean),
                    after,
                    (read[by_address], read[by_username], read[clean]),
                    strict=True,
                )
                if events != before
            }
            return outcome, written

        # The address's and the username's: every window this decision reads or writes
        # is one of theirs.
        return await self._store.update(
            (by_address, by_username), (by_address, by_username, clean, known), decide, now
        )

    def give_back(self, slot: LoginSlot) -> None:
        """No password was checked, or it was right: the attempt does not count."""
        self._spawn(self._give_back(slot))

    def succeeded(self, slot: LoginSlot) -> None:
        """The right password: the attempt does not count, and its address is known."""
        self._spawn(self._succeeded(slot))

    async def settle(self) -> None:
        """Wait for the writes of give-backs and successes started so far."""
        while self._writes:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _give_back(self, slot: LoginSlot) -> None:
        await self._store.give_back((LOGIN_ADDRESS, slot.address), slot.address_at)
        if slot.username_at is not None:
            kind = LOGIN_CLEAN if slot.clean_allowance else LOGIN_USERNAME
            await self._store.give_back((kind, slot.username), slot.username_at)

    async def _succeeded(self, slot: LoginSlot) -> None:
        await self._give_back(slot)
        now = self._clock.unix()
        known = (LOGIN_KNOWN, _pair(slot.username, slot.address))

        def remember(read: Read) -> tuple[None, dict[Window, Written]]:
            return None, {known: Written((now,), now + KNOWN_FOR_S)}

        await self._store.update((), (), remember, now)

    def _spawn(self, write: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(write)
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        # Guarded: a lost write only leaves an attempt counted (the safe side).
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning(
                "a login's attempt could not be given back in the shared throttle: %s",
                task.exception(),
                extra={"event": "shared_limit_write_failed"},
            )


def _at_most_the_window(wait: int, window_s: float) -> int:
    """A Retry-After no longer than the window: an event another node counted a moment
    after this node read its clock would otherwise stretch it by a second."""
    return min(wait, math.ceil(window_s))


def _pair(username: str, address: str) -> str:
    return f"{username}\x1f{address}"  # PostgreSQL text cannot hold NUL
