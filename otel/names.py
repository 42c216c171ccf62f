"""Instrument names, units and buckets: the contract with dashboards and alerts.

The Prometheus exporter turns ``name`` + unit into the exposed name: counters gain
``_total``, unit ``s`` becomes ``_seconds``, and ``{...}`` annotation units add nothing.
"""

from __future__ import annotations

from typing import Final

COMMANDS_EXECUTED: Final = "commands_executed"  # -> commands_executed_total
COMMAND_DURATION: Final = "command_execution_duration"  # -> ..._seconds histogram
WEBSOCKETS_ACTIVE: Final = "websocket_connections_active"
VEHICLES_CONNECTED: Final = "vehicle_connections_active"
COMMAND_TIMEOUTS: Final = "sovd_command_timeout"  # -> sovd_command_timeout_total
RESPONSE_CHUNKS: Final = "sovd_response_chunks"  # -> sovd_response_chunks_total
AUTH_FAILURES: Final = "sovd_authentication_failures"  # -> ..._total
COMMANDS_IN_FLIGHT: Final = "sovd_commands_in_flight"
HTTP_DURATION: Final = "http.server.request.duration"  # -> http_server_request_duration_seconds
HTTP_ACTIVE: Final = "http.server.active_requests"  # -> http_server_active_requests
VEHICLE_REQUEST_DURATION: Final = "sovd_vehicle_request_duration"  # -> ..._seconds histogram
VEHICLE_CONNECTION_LOSSES: Final = "sovd_vehicle_connection_losses"  # -> ..._total
LANES_OWNED: Final = "sovd_lanes_owned"

# The label values (command statuses, auth-failure reasons) are the app's vocabulary: the
# app hands them over at construction (``MetricLabels``), so they are written once.

COMMAND_DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    30.0,
    60.0,
)
# The OTel semantic conventions' advice for http.server.request.duration (0.005 .. 10 s,
# 14 boundaries) less 0.075, 0.75 and 7.5: every HTTP series carries one line per bucket,
# and these answer in milliseconds, so the in-between boundaries cost a fifth of the
# exposition and tell nothing new (histogram_quantile interpolates within a bucket).
HTTP_DURATION_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The attributes kept on http.server.request.duration: url.scheme is left out (always
# "http": the service serves no TLS itself) to shorten every one of its lines. The
# active-requests gauge keeps it (a handful of lines; its observations must not merge).
HTTP_DURATION_ATTRIBUTES: Final = frozenset(
    {"http.request.method", "http.route", "http.response.status_code"}
)
# One UDS request to an ECU: milliseconds on a bench, seconds with response pending.
VEHICLE_REQUEST_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
UNMATCHED_ROUTE: Final = "unmatched"
# Histograms whose exemplars (trace ids, with tracing on) the OpenMetrics exposition
# shows: instrument name -> the family name Prometheus sees.
EXEMPLAR_HISTOGRAMS: Final = {COMMAND_DURATION: "command_execution_duration_seconds"}
