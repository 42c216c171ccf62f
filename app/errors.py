"""The service's error vocabulary, shared by the services and the HTTP layer.

Services raise these; the HTTP layer turns them into the contract's error body
``{"error_code", "message", "request_id"}``. Nothing here knows about Starlette.
"""

from __future__ import annotations


class ServiceError(Exception):
    status_code = 500
    error_code = "sovd-server-failure"

    def __init__(self, message: str, *, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class BadRequest(ServiceError):
    status_code = 400
    error_code = "incomplete-request"


class Unauthorized(ServiceError):
    status_code = 401
    error_code = "unauthorized"


class Forbidden(ServiceError):
    status_code = 403
    error_code = "insufficient-access-rights"


class NotFound(ServiceError):
    status_code = 404
    error_code = "not-found"


class MethodNotAllowed(ServiceError):
    status_code = 405
    error_code = "method-not-allowed"


class Conflict(ServiceError):
    status_code = 409
    error_code = "conflict"


class VehicleDisconnected(ServiceError):
    status_code = 409
    error_code = "vehicle-disconnected"


class PayloadTooLarge(ServiceError):
    status_code = 413
    error_code = "payload-too-large"


class RateLimited(ServiceError):
    status_code = 429
    error_code = "rate-limited"


class Overloaded(ServiceError):
    status_code = 503
    error_code = "overloaded"


class NotReady(ServiceError):
    status_code = 503
    error_code = "not-ready"


class RequestTimeout(ServiceError):
    status_code = 408
    error_code = "request-timeout"


class StartupError(Exception):
    """The service cannot start. The message is one line naming what is wrong and what to
    do about it; ``python -m app`` prints it and exits without a traceback."""


class StorageUnavailable(ServiceError):
    """The database cannot write (disk full, I/O error, read-only); nothing was stored."""

    status_code = 503
    error_code = "storage-unavailable"
