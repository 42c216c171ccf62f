"""The service's error vocabulary, shared by the services and the HTTP layer.

Services raise these; the HTTP layer turns them into the contract's error body
``{"error_code", "message", "request_id"}``. Nothing here knows about Starlette.
"""

from __future__ import annotations

from typing import Any, ClassVar

from app.vocabulary import ErrorCode


class ServiceError(Exception):
    status_code: ClassVar[int] = 500
    error_code: ClassVar[ErrorCode] = ErrorCode.SERVER_FAILURE

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        parameters: dict[str, Any] | None = None,
        command_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        # The command the failed call ran (a SOVD call that reached the vehicle): its
        # history and stream tell the rest.
        self.command_id = command_id
        # Machine-readable details (SOVD's GenericError ``parameters``), such as the
        # service and NRC of a negative response.
        self.parameters = parameters


class BadRequest(ServiceError):
    status_code = 400
    error_code = ErrorCode.INCOMPLETE_REQUEST


class Unauthorized(ServiceError):
    status_code = 401
    error_code = ErrorCode.UNAUTHORIZED


class Forbidden(ServiceError):
    status_code = 403
    error_code = ErrorCode.INSUFFICIENT_ACCESS_RIGHTS


class NotFound(ServiceError):
    status_code = 404
    error_code = ErrorCode.NOT_FOUND


class MethodNotAllowed(ServiceError):
    status_code = 405
    error_code = ErrorCode.METHOD_NOT_ALLOWED


class Conflict(ServiceError):
    status_code = 409
    error_code = ErrorCode.CONFLICT


class VehicleDisconnected(ServiceError):
    status_code = 409
    error_code = ErrorCode.VEHICLE_DISCONNECTED


class PayloadTooLarge(ServiceError):
    status_code = 413
    error_code = ErrorCode.PAYLOAD_TOO_LARGE


class RateLimited(ServiceError):
    status_code = 429
    error_code = ErrorCode.RATE_LIMITED


class Overloaded(ServiceError):
    status_code = 503
    error_code = ErrorCode.OVERLOADED


class NotReady(ServiceError):
    status_code = 503
    error_code = ErrorCode.NOT_READY


class RequestTimeout(ServiceError):
    status_code = 408
    error_code = ErrorCode.REQUEST_TIMEOUT


class PreconditionNotFulfilled(ServiceError):
    """The call cannot be made now: another user's lock, or the wrong diagnostic session."""

    status_code = 409
    error_code = ErrorCode.PRECONDITION_NOT_FULFILLED


class LockBroken(ServiceError):
    """The caller's lock was taken away (an admin broke it)."""

    status_code = 409
    error_code = ErrorCode.LOCK_BROKEN


class NotResponding(ServiceError):
    """The vehicle did not answer within the command deadline (or could not be reached)."""

    status_code = 504
    error_code = ErrorCode.NOT_RESPONDING


class ErrorResponse(ServiceError):
    """The ECU answered with a UDS negative response (``parameters``: service and NRC)."""

    status_code = 502
    error_code = ErrorCode.ERROR_RESPONSE


class InvalidResponseContent(ServiceError):
    """The vehicle's answer could not be decoded."""

    status_code = 502
    error_code = ErrorCode.INVALID_RESPONSE_CONTENT


class StartupError(Exception):
    """The service cannot start. The message is one line naming what is wrong and what to
    do about it; ``python -m app`` prints it and exits without a traceback."""


class StorageUnavailable(ServiceError):
    """The database cannot write (disk full, I/O error, read-only); nothing was stored."""

    status_code = 503
    error_code = ErrorCode.STORAGE_UNAVAILABLE


def _all_errors() -> list[type[ServiceError]]:
    found: list[type[ServiceError]] = [ServiceError]
    for kind in found:
        found.extend(kind.__subclasses__())
    return found


# The HTTP status of each error code (every ErrorCode has exactly one).
STATUS_OF: dict[ErrorCode, int] = {kind.error_code: kind.status_code for kind in _all_errors()}
assert set(STATUS_OF) == set(ErrorCode), set(ErrorCode) - set(STATUS_OF)
