"""Structured logs: one JSON object per line on stdout, and a bound on repeated lines.

With tracing on, every line written while a span is current carries its ``trace_id`` and
``span_id`` (``include_context``: app.main hands over the function that reads them;
without it no line looks for a span).

At INFO a command is one line, its end (``command_end``): the request that submitted it
(``RequestLog``, read through a context variable) and its streams' routine lines go to
DEBUG, and the end line carries the submit's request id and user.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}

# What asyncio's event loop logs, with a traceback, for every failed accept() once the
# process is out of file descriptors: under a connection flood, thousands a second.
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
FLOOD_INTERVAL_S = 10.0

# Fields of the current trace for each line (trace_id, span_id); None: tracing is off.
ContextFields = Callable[[], Mapping[str, str]]
_context_fields: ContextFields | None = None


def include_context(fields: ContextFields | None) -> None:
    """Add ``fields()`` to every line from now on (None: stop). Process-wide, as the
    handlers are: the function reads the current span, whichever app made it."""
    global _context_fields
    _context_fields = fields


@dataclass(slots=True)
class RequestLog:
    """The HTTP request being handled, as its access-log line will name it; what the
    request starts (a command) reads it to name the request in its own lines."""

    request_id: str
    user: Callable[[], str | None]  # who made it, once authenticated
    # The request accepted a command: its access line is at DEBUG, as the command's end
    # line (at INFO) names the request.
    started_command: bool = False


_request_log: ContextVar[RequestLog | None] = ContextVar("sovd_request_log", default=None)


def begin_request(entry: RequestLog) -> Token[RequestLog | None]:
    """Make ``entry`` the current request's until ``end_request`` (a context variable:
    each request's task sees its own)."""
    return _request_log.set(entry)


def end_request(token: Token[RequestLog | None]) -> None:
    _request_log.reset(token)


def current_request() -> RequestLog | None:
    return _request_log.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if _context_fields is not None:
            entry.update(_context_fields())
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # msgspec writes the line several times faster than json.dumps: this runs for
        # every request (the access log). Anything it cannot encode is written as str().
        return _ENCODER.encode(entry).decode()


_ENCODER = msgspec.json.Encoder(enc_hook=str)


class Sampler:
    """Lets one occurrence through per interval and counts the ones it holds back."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval_s = interval_s
        self._clock = clock
        self._next = float("-inf")
        self._held = 0

    def allow(self) -> int | None:
        """None to hold this one back; else how many were held back since the last."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        self._next = now + self._interval_s
        held, self._held = self._held, 0
        return held


class FloodFilter(logging.Filter):
    """One line per interval for a message that can repeat without end, without its
    traceback, saying how many were dropped; other records pass untouched."""

    def __init__(
        self, prefix: str, interval_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._prefix = prefix
        self._sampler = Sampler(interval_s, clock)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if not message.startswith(self._prefix):
            return True
        held = self._sampler.allow()
        if held is None:
            return False
        reason = record.exc_info[1] if record.exc_info else None
        record.msg = f"{self._prefix}: {reason} ({held} more like it not logged)"
        record.args = ()
        record.exc_info = record.exc_text = None
        record.event = "flood"
        return True


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # No caller's file and line in our JSON lines, so do not look them up for every record
    # (the logging documentation's own advice for speed).
    logging._srcfile = None
    # Hypercorn's own access log would repeat ours, with the query string (tokens).
    logging.getLogger("hypercorn.access").disabled = True
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, FloodFilter) for f in asyncio_log.filters):
        asyncio_log.addFilter(FloodFilter(ACCEPT_OUT_OF_RESOURCES, FLOOD_INTERVAL_S))
