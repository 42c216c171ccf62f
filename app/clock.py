"""Time: one clock the service reads, and the one timestamp format it stores and sends.

Timestamps are ISO 8601 in UTC with a fixed width (microseconds, ``+00:00``), so that
SQLite can compare and order them as plain text.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime


def format_ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def utc_now() -> str:
    return format_ts(datetime.now(UTC))


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


def monotonic() -> float:
    return time.monotonic()
