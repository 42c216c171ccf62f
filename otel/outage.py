"""A missing collector is quiet and quick: one warning per outage, a bounded last flush.

While the OTLP receiver is gone, the SDK's exporter logs each failed attempt and each
retry (about once a second), and at shutdown it retries its last export for up to its
timeout (10 s by default, per signal). Two parts fix that, with public SDK parts only:

- ``ExportHealth``, one per exported signal: a ``logging.Filter`` on the exporter's own
  logger that lets the first warning or error of an outage through (marked
  ``event=otlp_export_failing`` and saying it is said once) and drops the rest, and the
  export wrapper's ``exported(ok)`` that ends the outage at the first export that works
  again, with one INFO line (``otlp_export_recovered``) saying how many lines were left
  out. A failure streak that is no outage (a 4xx from the collector, say) is treated the
  same: said once until an export works.
- The last flush at shutdown is bounded: ``METRICS_FLUSH_S`` for the metrics' last export
  (``MeterProvider.shutdown(timeout_millis)``) and ``TRACES_FLUSH_S`` for the spans still
  buffered, ``SHUTDOWN_FLUSH_S`` in all. What the collector has not taken by then is
  dropped; the exporter is shut down, which ends its retry wait at once. The filter stays
  on until the export under way has returned (``close``, within the same bound), so the
  exporter's words about being shut down mid-retry are left out too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Final

SHUTDOWN_FLUSH_S: Final = 2.0
METRICS_FLUSH_S: Final = SHUTDOWN_FLUSH_S / 2
TRACES_FLUSH_S: Final = SHUTDOWN_FLUSH_S - METRICS_FLUSH_S
# Of each signal's flush, kept for the export under way to return once its exporter is
# shut down (it then returns at once, unless blocked in a socket).
SETTLE_S: Final = 0.1
EVENT_FAILING: Final = "otlp_export_failing"
EVENT_RECOVERED: Final = "otlp_export_recovered"

log = logging.getLogger(__name__)


class ExportHealth(logging.Filter):
    """Whether one signal's exports reach the collector, and the filter that keeps its
    exporter's warnings to one per outage (see the module's docstring)."""

    def __init__(self, signal: str, logger_names: Iterable[str]) -> None:
        super().__init__()
        self.signal = signal
        self._loggers = [logging.getLogger(name) for name in dict.fromkeys(logger_names)]
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._down = False
        self._left_out = 0
        self._exporting = 0

    @property
    def down(self) -> bool:
        with self._lock:
            return self._down

    def attach(self) -> None:
        for logger in self._loggers:
            logger.addFilter(self)

    def detach(self) -> None:
        for logger in self._loggers:
            logger.removeFilter(self)

    @contextmanager
    def exporting(self) -> Iterator[None]:
        """Around one export call (``close`` waits for it)."""
        with self._lock:
            self._exporting += 1
        try:
            yield
        finally:
            with self._lock:
                self._exporting -= 1
                self._idle.notify_all()

    def close(self, deadline: float) -> bool:
        """Once the exporter is shut down: wait (until ``deadline``, ``time.monotonic``)
        for the export under way to return, then take the filter off. Whether it did."""
        with self._lock:
            idle = self._idle.wait_for(
                lambda: self._exporting == 0, max(0.0, deadline - time.monotonic())
            )
        self.detach()
        return idle

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        with self._lock:
            if self._down:
                self._left_out += 1
                return False
            self._down = True
        # The one line of this outage: said so, and marked for whoever reads the log.
        record.msg = (
            f"OTLP {self.signal} export failing (said once until it works again):"
            f" {record.getMessage()}"
        )
        record.args = None
        record.event = EVENT_FAILING
        record.signal = self.signal
        return True

    def exported(self, ok: bool) -> None:
        """An export ended: ``ok`` ends an outage (one INFO line); a failure starts one
        if the exporter said nothing (it always does: then this is a no-op)."""
        with self._lock:
            was_down, left_out = self._down, self._left_out
            self._down = not ok
            if ok:
                self._left_out = 0
        if ok and was_down:
            log.info(
                "OTLP %s export works again: the collector is reachable (%d warnings"
                " left out during the outage)",
                self.signal,
                left_out,
                extra={"event": EVENT_RECOVERED, "signal": self.signal},
            )
        elif not ok and not was_down:
            log.warning(
                "OTLP %s export failing (said once until it works again)",
                self.signal,
                extra={"event": EVENT_FAILING, "signal": self.signal},
            )
