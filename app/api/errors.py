"""The contract's error body, and the handlers that turn exceptions into it."""

from __future__ import annotations

import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import ServiceError, StorageUnavailable, Unauthorized
from app.services.auth import TokenRejected
from app.vocabulary import ErrorCode

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "sovd.request_id"
USER_KEY = "sovd.user"
REALM = "sovd"

_HTTP_CODES = {
    400: ErrorCode.INCOMPLETE_REQUEST,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.INSUFFICIENT_ACCESS_RIGHTS,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
    429: ErrorCode.RATE_LIMITED,
    503: ErrorCode.OVERLOADED,
}


def request_id(scope: Any) -> str:
    return str(scope.get(REQUEST_ID_KEY, ""))


def error_response(
    scope: Any, status: int, error_code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error_code": error_code, "message": message, "request_id": request_id(scope)}
    return JSONResponse(body, status_code=status, headers=headers)


def challenge(exc: Unauthorized) -> str:
    """The ``WWW-Authenticate`` value of a 401 (RFC 6750 section 3): no ``error`` when no
    token was sent, ``invalid_token`` with the message when one was and failed."""
    if not isinstance(exc, TokenRejected) or exc.missing:
        return f'Bearer realm="{REALM}"'
    description = exc.message.replace("\\", "").replace('"', "'")
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = challenge(exc)
    if isinstance(exc, StorageUnavailable):
        log.warning(
            "storage error: %s",
            exc.message,
            extra={
                "event": "storage_error",
                "request_id": request_id(request.scope),
                "path": request.url.path,
            },
        )
    return error_response(
        request.scope, exc.status_code, exc.error_code, exc.message, headers or None
    )


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, ErrorCode.SERVER_FAILURE)
    message = {
        404: f"no route for {request.url.path}",
        405: f"method {request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return error_response(
        request.scope, exc.status_code, code, message, dict(exc.headers) if exc.headers else None
    )


EXCEPTION_HANDLERS = {ServiceError: service_error, HTTPException: http_error}
