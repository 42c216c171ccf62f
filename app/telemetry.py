"""The seam between the service and its metrics and traces.

The service reports what happened through these few named calls, in its own vocabulary
(enums), and knows nothing of how they are recorded. ``otel.Metrics`` implements them with
OpenTelemetry (``app.main`` hands it the label values from the enums, pre-registered at
0); ``NoTelemetry`` does nothing, for when metrics are turned off. ``Tracing`` is the
same for traces: ``otel.Tracing`` when tracing is on, ``NoTracing`` (no calls into any
tracer) when it is off. Nothing else of the
service imports ``otel``: ``app.main`` assembles it and passes what the API needs (the
HTTP recorder, the ``/metrics`` exposition) through the types below.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any, Final, Protocol

from app.vocabulary import AuthFailureReason, CommandName, CommandStatus, FailureCode

# The ``command`` label of the command metrics: the catalogue's command names. Every SOVD
# call is one of these commands (data: ReadDataByID, faults: ReadDTC / ClearDTC, modes:
# DiagnosticSessionControl, operations: RoutineControl, a described ECU's services:
# DiagService), so this closed set covers /api/v1/commands and /sovd alike.
METRIC_COMMANDS: Final = tuple(CommandName)
# The ``status`` label beside the terminal statuses: a command that failed because the ECU
# answered with a negative response (it refused what an engineer asked, such as a clear
# outside its session). Counted apart so alerts on service faults leave it out.
REFUSED: Final = "refused"
REFUSAL_CODES: Final = frozenset({FailureCode.REQUEST_OUT_OF_RANGE, FailureCode.ERROR_RESPONSE})


class Telemetry(Protocol):
    def command_finished(
        self,
        command: str,
        status: CommandStatus,
        error_code: FailureCode | None,
        duration_s: float | None,
    ) -> None:
        """Command ``command`` (a ``CommandName``) reached a terminal status (``failed``
        includes interrupted ones; ``error_code`` in ``REFUSAL_CODES``: counted as
        ``refused``); ``duration_s`` from its submission, None when unknown (ended by
        start-up recovery: counted, but no duration sample)."""

    def command_queued(self, delta: int) -> None:
        """Commands waiting or running went up or down by ``delta``."""

    def response_chunk(self) -> None:
        """One chunk of a vehicle's answer was stored and published."""

    def websocket_opened(self) -> None: ...

    def websocket_closed(self) -> None: ...

    def vehicles_connected(self, count: int) -> None:
        """The number of vehicles whose connection_status is ``connected`` is now ``count``."""

    def lanes_owned(self, count: int) -> None:
        """On a cluster, this node now runs ``count`` vehicles' lanes."""

    def auth_failure(self, reason: AuthFailureReason) -> None:
        """A login or token check failed."""

    def vehicle_request(self, service: str, outcome: str, duration_s: float) -> None:
        """One UDS request to a DoIP vehicle: ``service`` as ISO 14229-1 names it
        (``app.vehicles.uds.SERVICE_NAMES``), ``outcome`` one of
        ``app.vehicles.doip_observer.UDS_OUTCOMES``."""

    def vehicle_connection_lost(self) -> None:
        """A DoIP vehicle's link broke (closed or reset by the vehicle, not by us)."""


class NoTelemetry:
    def command_finished(
        self,
        command: str,
        status: CommandStatus,
        error_code: FailureCode | None,
        duration_s: float | None,
    ) -> None:
        pass

    def command_queued(self, delta: int) -> None:
        pass

    def response_chunk(self) -> None:
        pass

    def websocket_opened(self) -> None:
        pass

    def websocket_closed(self) -> None:
        pass

    def vehicles_connected(self, count: int) -> None:
        pass

    def lanes_owned(self, count: int) -> None:
        pass

    def auth_failure(self, reason: AuthFailureReason) -> None:
        pass

    def vehicle_request(self, service: str, outcome: str, duration_s: float) -> None:
        pass

    def vehicle_connection_lost(self) -> None:
        pass


class HttpRecorder(Protocol):
    """HTTP server metrics, fed by the request middleware (``otel.HttpServerMetrics``)."""

    def start(self, scope: Mapping[str, Any]) -> Any:
        """A request begins; returns what ``finish`` needs, or None to skip it."""

    def finish(self, started: Any, scope: Mapping[str, Any], status: int) -> None: ...


# The metrics exposition (``GET /metrics``) as a plain ASGI app: scope, receive, send.
Exposition = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


# -- traces ---------------------------------------------------------------------------


class CommandTrace(Protocol):
    """One command's trace, made in its submit request (``Tracing.command_accepted``) and
    told by the pipeline what happens to the command."""

    def started(self) -> None:
        """The command left its vehicle's queue; its execution begins."""

    def attach(self) -> None:
        """Make the command current in the running task (a task of its own: the
        execution, or the end's write), so its store spans, log lines and exemplars
        belong to its trace."""

    def chunk(self, sequence: int, size: int) -> None:
        """The vehicle sent answer chunk ``sequence`` of ``size`` bytes."""

    def ended(self, status: str, error_code: str | None, error: str | None) -> None:
        """Its terminal status is decided; ``error``: why it failed (None: no failure)."""

    def close(self) -> None:
        """The command left the pipeline: end whatever is still open."""


class Tracing(Protocol):
    def command_accepted(
        self, command_id: str, command_name: str, vehicle_id: str, ecu_address: str | None
    ) -> CommandTrace:
        """A command was accepted, in its submit request (whose span is its parent)."""

    def span(self, name: str) -> AbstractContextManager[None]:
        """A span for a piece of work of the current command (a store write)."""

    def stream_opened(self, command_id: str) -> None:
        """The current request is a response stream following ``command_id``."""


class _NoCommandTrace:
    def started(self) -> None:
        pass

    def attach(self) -> None:
        pass

    def chunk(self, sequence: int, size: int) -> None:
        pass

    def ended(self, status: str, error_code: str | None, error: str | None) -> None:
        pass

    def close(self) -> None:
        pass


NO_COMMAND_TRACE: Final = _NoCommandTrace()
_NO_SPAN: Final = nullcontext()


class NoTracing:
    """Tracing off: every call returns at once, nothing is allocated."""

    def command_accepted(
        self, command_id: str, command_name: str, vehicle_id: str, ecu_address: str | None
    ) -> CommandTrace:
        return NO_COMMAND_TRACE

    def span(self, name: str) -> AbstractContextManager[None]:
        return _NO_SPAN

    def stream_opened(self, command_id: str) -> None:
        pass


# Store writes that get a span of their own in a command's trace.
STORE_START: Final = "store.mark_in_progress"
STORE_CHUNK: Final = "store.add_response"
STORE_FINISH: Final = "store.finish"
