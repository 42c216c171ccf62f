"""Time: one clock the service reads, and the one timestamp format it stores and sends.

``Clock`` is the only source of the current time: ``create_app`` makes one (or takes a
test's) and hands it to everything that asks what time it is (auth, the principal cache,
throttles, retention, the pipeline, the command service), so a test moves time for the
whole service at once instead of sleeping or rewriting rows. Wall time is for what is
stored and compared with stored times; monotonic time for durations and rate windows.

Timestamps are ISO 8601 in UTC with a fixed width (microseconds, ``+00:00``), so that
SQLite can compare and order them as plain text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc_now() -> str:
    """Now, stored format, from the system clock: only for the schema migrations, which run
    inside ``Database.open`` before any service (and its ``Clock``) exists."""
    return format_ts(datetime.now(UTC))


def monotonic() -> float:
    """The system's monotonic clock, for code outside the service's assembly (the DoIP
    connector keeps its own timing); the service itself reads ``Clock.monotonic``."""
    return time.monotonic()


def parse_ts(raw: str) -> datetime:
    """Parse an ISO 8601 timestamp that carries its zone, as UTC; raise ValueError
    otherwise, also for a moment that is a valid local time but outside the years 1 to
    9999 once moved to UTC (``0001-01-01T00:00:00+14:00``)."""
    value = datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a zone, such as Z or +01:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("timestamp is outside the years 1 to 9999 in UTC") from None


class Clock:
    """The real clock; tests subclass it and override ``wall`` and ``monotonic``."""

    def wall(self) -> datetime:
        """Now, as an aware UTC datetime."""
        return datetime.now(UTC)

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back (only differences mean anything)."""
        return time.monotonic()

    def timestamp(self) -> str:
        """Now, in the stored format."""
        return format_ts(self.wall())

    def unix(self) -> float:
        """Now, in seconds since the epoch (a JWT's ``exp`` is compared with this)."""
        return self.wall().timestamp()
