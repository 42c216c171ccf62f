"""The service's instruments and the named calls that record them.

Every series a dashboard or alert uses exists from the first scrape: each counter is
created at 0 for each of its label values, and each gauge at its true value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel import names


class Metrics:
    def __init__(self, meter: Meter) -> None:
        self._executed = meter.create_counter(
            names.COMMANDS_EXECUTED,
            unit="{command}",
            description="Commands that reached a terminal status (interrupted counts as failed)",
        )
        self._duration = meter.create_histogram(
            names.COMMAND_DURATION,
            unit="s",
            description="Time from a command's submission to its terminal status"
            " (commands ended by start-up recovery have no sample)",
        )
        self._timeouts = meter.create_counter(
            names.COMMAND_TIMEOUTS,
            unit="{command}",
            description="Commands ended because the vehicle did not answer in time",
        )
        self._chunks = meter.create_counter(
            names.RESPONSE_CHUNKS,
            unit="{chunk}",
            description="Chunks of vehicle answers stored and streamed",
        )
        self._auth_failures = meter.create_counter(
            names.AUTH_FAILURES,
            unit="{failure}",
            description="Failed logins and rejected tokens, by reason",
        )
        self._websockets = meter.create_up_down_counter(
            names.WEBSOCKETS_ACTIVE,
            unit="{connection}",
            description="Open response-stream WebSockets",
        )
        self._vehicles = meter.create_gauge(
            names.VEHICLES_CONNECTED,
            unit="{vehicle}",
            description="Vehicles whose connection_status is connected",
        )
        self._in_flight = meter.create_up_down_counter(
            names.COMMANDS_IN_FLIGHT,
            unit="{command}",
            description="Commands accepted and not yet ended (queued or in progress)",
        )
        self.http_duration = meter.create_histogram(
            names.HTTP_DURATION,
            unit="s",
            description="Duration of HTTP server requests",
        )
        # Active requests change twice per request: counted in a plain dict by the HTTP
        # middleware and observed at collection, which costs nothing per request.
        self.http_active: dict[tuple[str, str], int] = {
            (method, "http"): 0 for method in ("GET", "POST", "PATCH")
        }
        meter.create_observable_up_down_counter(
            names.HTTP_ACTIVE,
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests",
        )
        # Request durations are buffered and recorded in batches: one record() amid a
        # request's work costs several times what it costs in a tight loop. Collection
        # flushes first (see _observe_active), so a scrape never misses a request.
        self._http_pending: list[tuple[float, dict[str, str | int]]] = []
        self._http_lock = threading.Lock()
        # Attribute dicts are made once: recording then allocates nothing per call.
        self._status_attrs = {s: {"status": s} for s in names.COMMAND_STATUSES}
        self._reason_attrs = {r: {"reason": r} for r in names.AUTH_FAILURE_REASONS}
        for attrs in self._status_attrs.values():
            self._executed.add(0, attrs)
        for attrs in self._reason_attrs.values():
            self._auth_failures.add(0, attrs)
        self._timeouts.add(0)
        self._chunks.add(0)
        self._websockets.add(0)
        self._in_flight.add(0)

    def http_request(self, duration_s: float, attributes: dict[str, str | int]) -> None:
        """One HTTP request finished; ``attributes`` must not be changed afterwards."""
        with self._http_lock:
            self._http_pending.append((duration_s, attributes))
            full = len(self._http_pending) >= names.HTTP_BATCH
        if full:
            self.flush_http()

    def flush_http(self) -> None:
        with self._http_lock:
            pending, self._http_pending = self._http_pending, []
        record = self.http_duration.record
        for duration_s, attributes in pending:
            record(duration_s, attributes)

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        # The SDK runs observable callbacks before it reads synchronous instruments, so
        # flushing here puts every finished request into this collection.
        self.flush_http()
        for (method, scheme), count in list(self.http_active.items()):
            yield Observation(count, {"http.request.method": method, "url.scheme": scheme})

    # The calls below are the app's telemetry seam (app.telemetry.Telemetry).

    def command_finished(self, status: str, duration_s: float | None) -> None:
        attrs = self._status_attrs.get(status, self._status_attrs["failed"])
        self._executed.add(1, attrs)
        if duration_s is not None:  # None: not measured (start-up recovery), no sample
            self._duration.record(duration_s, attrs)
        if status == "timeout":
            self._timeouts.add(1)

    def command_queued(self, delta: int) -> None:
        self._in_flight.add(delta)

    def response_chunk(self) -> None:
        self._chunks.add(1)

    def websocket_opened(self) -> None:
        self._websockets.add(1)

    def websocket_closed(self) -> None:
        self._websockets.add(-1)

    def vehicles_connected(self, count: int) -> None:
        self._vehicles.set(count)

    def auth_failure(self, reason: str) -> None:
        attrs = self._reason_attrs.get(reason)
        self._auth_failures.add(1, attrs if attrs is not None else {"reason": "other"})
