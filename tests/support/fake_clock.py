"""The service's one clock (``app.clock.Clock``), moved by the test instead of sleeping.

``now`` is its monotonic reading, frozen until the test moves it; wall time is the real
time at creation plus however far the test has moved ``now``. So moving it ages
everything at once: rate windows, token and session expiry, the principal cache,
retention cut-offs and every timestamp the service stores.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.clock import Clock


class FakeClock(Clock):
    def __init__(self, now: float = 5000.0) -> None:
        self.now = now
        self._start = now

    def __call__(self) -> float:
        """The monotonic reading, for what takes a bare ``Callable[[], float]``."""
        return self.now

    def monotonic(self) -> float:
        return self.now

    def wall(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.now - self._start)

    def advance(self, seconds: float) -> None:
        self.now += seconds
