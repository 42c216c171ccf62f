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
# The OTel semantic conventions' advice for http.server.request.duration.
HTTP_DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
UNMATCHED_ROUTE: Final = "unmatched"
# HTTP durations buffered before they are recorded (and at every collection).
HTTP_BATCH: Final = 256
