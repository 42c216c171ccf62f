"""The login's limits: ``LoginThrottle`` (failed logins per client address and per
username; its docstring says exactly what holds), the addresses a username lately logged
in from with the right password (``KnownAddresses``), and ``LoginLimits``: everything
that bounds what unauthenticated login traffic may cost, built on ``app.services.throttle``.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

from app.services.throttle import (
    MAX_KEYS,
    Budget,
    ConcurrencyGate,
    Monotonic,
    SlidingWindow,
    Summary,
    Turns,
    whole_seconds,
)

# How long, and for how many addresses per username, a right password is remembered.
KNOWN_FOR_S: Final = 30 * 86400.0
KNOWN_PER_USERNAME: Final = 16
ADDRESS_LIMIT: Final = "address"
USERNAME_LIMIT: Final = "username"


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
            return whole_seconds(self._addresses.wait_s(address))
        clean_path = max(self._addresses.empty_in_s(address), self._clean.wait_s(username))
        wait = max(
            self._addresses.wait_s(address), min(self._usernames.wait_s(username), clean_path)
        )
        return whole_seconds(wait)

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
