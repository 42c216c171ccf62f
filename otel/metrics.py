"""The service's instruments and the named calls that record them.

Every series a dashboard or alert uses exists from the first scrape: each counter is
created at 0 for each of its label values, and each gauge at its true value.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel import names
from otel.http_durations import HttpDurations, SeriesKey


@dataclass(frozen=True, slots=True)
class MetricLabels:
    """The label values the service uses, given by the app (otel knows no domain words):
    each is pre-registered at 0, and a value not listed here is refused (KeyError), never
    counted under some catch-all."""

    command_statuses: tuple[str, ...]  # the terminal statuses
    timeout_status: str  # the one of them that also counts in sovd_command_timeout_total
    auth_failure_reasons: tuple[str, ...]
    # The ``command`` label: every command name there is (a closed set, so the series
    # are bounded: len(command_names) x len(statuses) per instrument).
    command_names: tuple[str, ...] = ()
    # A command that ended ``failed`` with one of ``refusal_codes`` (the ECU answered with
    # a negative response) is counted under ``refused_status`` instead: the ECU refused
    # what was asked, the service did its job. Empty: no such status.
    refused_status: str = ""
    refusal_codes: frozenset[str] = frozenset()
    # The ``service`` and ``outcome`` labels of sovd_vehicle_request_duration_seconds.
    vehicle_services: tuple[str, ...] = ()
    vehicle_outcomes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.timeout_status not in self.command_statuses:
            raise ValueError("timeout_status must be one of command_statuses")
        if self.refusal_codes and not self.refused_status:
            raise ValueError("refusal_codes need a refused_status")
        if self.refused_status in self.command_statuses:
            raise ValueError("refused_status must not be one of command_statuses")

    @property
    def counted_statuses(self) -> tuple[str, ...]:
        """The ``status`` label's values: the terminal statuses and the refused one."""
        refused = (self.refused_status,) if self.refused_status else ()
        return (*self.command_statuses, *refused)


# Active HTTP requests are counted per (method, scheme).
ActiveKey = tuple[str, str]


class Metrics:
    def __init__(self, meter: Meter, labels: MetricLabels, durations: HttpDurations) -> None:
        self._timeout_status = labels.timeout_status
        self._refused_status = labels.refused_status
        self._refusal_codes = labels.refusal_codes
        self._executed = meter.create_counter(
            names.COMMANDS_EXECUTED,
            unit="{command}",
            description="Commands that reached a terminal status, by command name and status"
            " (interrupted counts as failed; an ECU's negative response as refused)",
        )
        self._duration = meter.create_histogram(
            names.COMMAND_DURATION,
            unit="s",
            description="Time from a command's submission to its terminal status, by command"
            " name and status (commands ended by start-up recovery have no sample)",
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
            description="Vehicles whose connection_status is connected (a DoIP vehicle's"
            " while its link is up)",
        )
        self._lanes = meter.create_gauge(
            names.LANES_OWNED,
            unit="{lane}",
            description="Vehicle lanes this node runs (a cluster: the vehicles whose lease it"
            " holds; 0 on a single node, which runs every lane without one)",
        )
        self._lanes.set(0)
        self._in_flight = meter.create_up_down_counter(
            names.COMMANDS_IN_FLIGHT,
            unit="{command}",
            description="Commands accepted and not yet ended (queued or in progress)",
        )
        self._vehicle_requests = meter.create_histogram(
            names.VEHICLE_REQUEST_DURATION,
            unit="s",
            description="One UDS request to a DoIP vehicle, until its final answer, by UDS"
            " service and outcome",
        )
        self._vehicle_losses = meter.create_counter(
            names.VEHICLE_CONNECTION_LOSSES,
            unit="{loss}",
            description="DoIP links the vehicle closed or broke (not idle or shutdown closes)",
        )
        # http.server.request.duration: aggregated by ``durations`` (otel.http_durations),
        # not by the SDK, whose record() costs several times a small request's share.
        self._durations = durations
        # Active requests change twice per request: counted in a dict owned here (changed
        # only through http_started / http_request, under the lock, as a collection may run
        # in another thread, the OTLP exporter's) and observed at collection.
        self._http_active: dict[ActiveKey, int] = {
            (method, "http"): 0 for method in ("GET", "POST", "PATCH")
        }
        meter.create_observable_up_down_counter(
            names.HTTP_ACTIVE,
            callbacks=[self._observe_active],
            unit="{request}",
            description="Number of active HTTP server requests",
        )
        self._http_lock = threading.Lock()
        # Attribute dicts are made once: recording then allocates nothing per call.
        self._command_attrs = {
            (command, status): {"command": command, "status": status}
            for command in labels.command_names
            for status in labels.counted_statuses
        }
        self._reason_attrs = {r: {"reason": r} for r in labels.auth_failure_reasons}
        self._vehicle_attrs = {
            (service, outcome): {"service": service, "outcome": outcome}
            for service in labels.vehicle_services
            for outcome in labels.vehicle_outcomes
        }
        self._vehicle_losses.add(0)
        for attrs in self._command_attrs.values():
            self._executed.add(0, attrs)
        for attrs in self._reason_attrs.values():
            self._auth_failures.add(0, attrs)
        self._timeouts.add(0)
        self._chunks.add(0)
        self._websockets.add(0)
        self._in_flight.add(0)

    def http_started(self, key: ActiveKey) -> None:
        """An HTTP request (method, scheme) began."""
        with self._http_lock:
            self._http_active[key] = self._http_active.get(key, 0) + 1

    def http_request(
        self,
        key: ActiveKey,
        duration_s: float,
        series: SeriesKey,
        attributes: Mapping[str, str | int],
    ) -> None:
        """The HTTP request ``key`` (as given to ``http_started``) finished, in the
        duration series ``series`` (method, route, status) whose attributes are
        ``attributes`` (never changed afterwards)."""
        with self._http_lock:
            self._http_active[key] -= 1
        self._durations.record(series, attributes, duration_s)

    def _observe_active(self, options: CallbackOptions) -> Iterable[Observation]:
        with self._http_lock:
            active = list(self._http_active.items())
        for (method, scheme), count in active:
            yield Observation(count, {"http.request.method": method, "url.scheme": scheme})

    # The calls below are the app's telemetry seam (app.telemetry.Telemetry).

    def command_finished(
        self, command: str, status: str, error_code: str | None, duration_s: float | None
    ) -> None:
        counted = self._refused_status if error_code in self._refusal_codes else status
        attrs = self._command_attrs[(command, counted)]  # unknown: a bug, KeyError
        self._executed.add(1, attrs)
        if duration_s is not None:  # None: not measured (start-up recovery), no sample
            self._duration.record(duration_s, attrs)
        if status == self._timeout_status:
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

    def lanes_owned(self, count: int) -> None:
        self._lanes.set(count)

    def auth_failure(self, reason: str) -> None:
        self._auth_failures.add(1, self._reason_attrs[reason])  # unknown: KeyError

    def vehicle_request(self, service: str, outcome: str, duration_s: float) -> None:
        attrs = self._vehicle_attrs[(service, outcome)]  # unknown: KeyError
        self._vehicle_requests.record(duration_s, attrs)

    def vehicle_connection_lost(self) -> None:
        self._vehicle_losses.add(1)
