"""The service's vocabulary: every domain word that crosses a module boundary, as an enum.

Statuses, failure codes, roles, profiles, audit actions and the reasons a login or token
fails are written here once. The store, the services, the metrics (whose label values
are pre-registered from these), the OpenAPI document and the docs' tables take them
from here, so a typo is a type error instead of a silent miscount. Pure: imports nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Role(StrEnum):
    ENGINEER = "engineer"
    ADMIN = "admin"


class AccountKind(StrEnum):
    """A person (logs in with a password) or a service account (a machine client: OAuth 2.0
    client credentials, or its client certificate)."""

    PERSON = "person"
    SERVICE = "service"


class AuthMethod(StrEnum):
    """How a session or request was authenticated (the audit rows say it)."""

    PASSWORD = "password"  # noqa: S105 (a method name)
    CLIENT_CREDENTIALS = "client_credentials"
    CLIENT_CERTIFICATE = "client_certificate"


class Access(StrEnum):
    """Who may call an endpoint."""

    ANONYMOUS = "anonymous"
    USER = "user"  # any signed-in user, engineer or admin
    ADMIN = "admin"


class ConnectionStatus(StrEnum):
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"


class BusKind(StrEnum):
    """The bus between the service's parts (``/health/ready`` names it)."""

    IN_PROCESS = "in-process"  # one node: asyncio queues
    NATS = "nats"  # SOVD_BUS_URL


class DatabaseKind(StrEnum):
    """The database behind the store (``/health/ready`` names it)."""

    SQLITE = "sqlite"  # one node: a file in the data directory
    POSTGRESQL = "postgresql"  # SOVD_DATABASE_URL


class SimulatorProfile(StrEnum):
    HEALTHY = "healthy"
    FLAKY = "flaky"
    TIMEOUT = "timeout"
    UNREACHABLE = "unreachable"
    MALFORMED = "malformed"


class Transport(StrEnum):
    """How the service reaches a vehicle."""

    SIMULATOR = "simulator"  # the in-process simulator (its ``simulator_profile``)
    DOIP = "doip"  # UDS over DoIP to a real DoIP entity (or the emulator)


class CommandName(StrEnum):
    """The catalogue's commands (``app.catalogue.CATALOGUE``), each a UDS conversation."""

    READ_DTC = "ReadDTC"
    CLEAR_DTC = "ClearDTC"
    READ_DATA_BY_ID = "ReadDataByID"
    DIAGNOSTIC_SESSION_CONTROL = "DiagnosticSessionControl"
    ROUTINE_CONTROL = "RoutineControl"
    # Any service of a bound ECU's description, encoded and decoded by it (issue #20).
    DIAG_SERVICE = "DiagService"


class CommandStatus(StrEnum):
    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self not in ACTIVE_STATUSES


ACTIVE_STATUSES: Final = frozenset({CommandStatus.PENDING, CommandStatus.IN_PROGRESS})
TERMINAL_STATUSES: Final = tuple(s for s in CommandStatus if s not in ACTIVE_STATUSES)


class FailureCode(StrEnum):
    """Why a command ended other than ``completed`` (its ``error_code``)."""

    NOT_RESPONDING = "not-responding"
    VEHICLE_UNREACHABLE = "vehicle-unreachable"
    INVALID_RESPONSE_CONTENT = "invalid-response-content"
    REQUEST_OUT_OF_RANGE = "request-out-of-range"  # the negative response 0x31
    ERROR_RESPONSE = "error-response"  # any other UDS negative response
    INTERRUPTED = "interrupted"
    STORAGE_UNAVAILABLE = "storage-unavailable"
    CANCELLED = "cancelled"
    # Withdrawn before it ran because another user locked its ECU or vehicle.
    LOCKED_OUT = "locked-out"
    SERVER_FAILURE = "sovd-server-failure"


class AuditAction(StrEnum):
    LOGIN = "auth.login"
    LOGIN_FAILED = "auth.login_failed"
    LOGIN_THROTTLED = "auth.login_throttled"
    LOGOUT = "auth.logout"
    REFRESH = "auth.refresh"
    REFRESH_REUSED = "auth.refresh_reused"
    PASSWORD_CHANGE = "auth.password_change"  # noqa: S105 (an action: own password changed)
    COMMAND_SUBMIT = "command.submit"
    COMMAND_START = "command.start"
    COMMAND_FINISH = "command.finish"
    COMMAND_CANCEL = "command.cancel"
    USER_CREATE = "user.create"
    USER_UPDATE = "user.update"
    USER_DELETE = "user.delete"
    USER_PASSWORD_RESET = "user.password_reset"  # noqa: S105 (an admin or the CLI set it)
    VEHICLE_CREATE = "vehicle.create"
    VEHICLE_UPDATE = "vehicle.update"


class AuthFailureReason(StrEnum):
    """The ``reason`` label of ``sovd_authentication_failures_total``."""

    BAD_CREDENTIALS = "bad_credentials"
    MISSING_TOKEN = "missing_token"  # noqa: S105 (a label value, not a secret)
    INVALID_TOKEN = "invalid_token"  # noqa: S105
    REVOKED_SESSION = "revoked_session"
    STALE_REFRESH = "stale_refresh"
    THROTTLED = "throttled"


class ErrorCode(StrEnum):
    """The ``error_code`` of an error response (each with its HTTP status in app.errors)."""

    INCOMPLETE_REQUEST = "incomplete-request"
    UNAUTHORIZED = "unauthorized"
    INSUFFICIENT_ACCESS_RIGHTS = "insufficient-access-rights"
    NOT_FOUND = "not-found"
    METHOD_NOT_ALLOWED = "method-not-allowed"
    REQUEST_TIMEOUT = "request-timeout"
    CONFLICT = "conflict"
    VEHICLE_DISCONNECTED = "vehicle-disconnected"
    PAYLOAD_TOO_LARGE = "payload-too-large"
    RATE_LIMITED = "rate-limited"
    OVERLOADED = "overloaded"
    STORAGE_UNAVAILABLE = "storage-unavailable"
    NOT_READY = "not-ready"
    SERVER_FAILURE = "sovd-server-failure"
    # SOVD's standard codes (ISO 17978 GenericError) for what a vehicle or a lock says.
    PRECONDITION_NOT_FULFILLED = "precondition-not-fulfilled"
    LOCK_BROKEN = "lock-broken"
    NOT_RESPONDING = "not-responding"
    ERROR_RESPONSE = "error-response"
    INVALID_RESPONSE_CONTENT = "invalid-response-content"
