"""The contract's error bodies, and the handlers that turn exceptions into them.

Two shapes: ``{"error_code", "message", "request_id"}`` everywhere, and SOVD's
``GenericError`` (ISO 17978) under ``/sovd/``, where SOVD clients expect exactly its fields:
``error_code`` is one of SOVD's standard codes where one fits, else ``vendor-specific``
with ours in ``vendor_code``; the request id stays in the ``X-Request-ID`` header.
"""

from __future__ import annotations

import logging
from typing import Any, Final

import msgspec
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from app.errors import ServiceError, StorageUnavailable, Unauthorized
from app.services.tokens import TokenRejected
from app.vocabulary import ErrorCode

log = logging.getLogger(__name__)

REQUEST_ID_KEY = "sovd.request_id"
USER_KEY = "sovd.user"
REALM = "sovd"
# The command a SOVD call ran, on its answer (success or error): find it in the history.
COMMAND_ID_HEADER = "X-Command-ID"

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


# Where the SOVD resource tree lives: its errors are GenericError.
SOVD_ROOT: Final = "/sovd/"
VENDOR_SPECIFIC: Final = "vendor-specific"
# Our codes that are SOVD's standard codes too; every other one is vendor-specific.
SOVD_STANDARD_CODES: Final = frozenset(
    {
        ErrorCode.INCOMPLETE_REQUEST,
        ErrorCode.INSUFFICIENT_ACCESS_RIGHTS,
        ErrorCode.PRECONDITION_NOT_FULFILLED,
        ErrorCode.LOCK_BROKEN,
        ErrorCode.NOT_RESPONDING,
        ErrorCode.ERROR_RESPONSE,
        ErrorCode.INVALID_RESPONSE_CONTENT,
        ErrorCode.SERVER_FAILURE,
    }
)


class GenericError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """SOVD's error body (ISO 17978 GenericError): these fields and no others."""

    error_code: str
    message: str
    vendor_code: str | msgspec.UnsetType = msgspec.UNSET
    translation_id: str | msgspec.UnsetType = msgspec.UNSET
    parameters: dict[str, Any] | msgspec.UnsetType = msgspec.UNSET


def is_sovd(path: str) -> bool:
    return path.startswith(SOVD_ROOT)


def generic_error(
    error_code: str, message: str, parameters: dict[str, Any] | None = None
) -> GenericError:
    standard = error_code in SOVD_STANDARD_CODES
    return GenericError(
        error_code=error_code if standard else VENDOR_SPECIFIC,
        message=message,
        vendor_code=msgspec.UNSET if standard else error_code,
        parameters=msgspec.UNSET if parameters is None else parameters,
    )


def request_id(scope: Any) -> str:
    return str(scope.get(REQUEST_ID_KEY, ""))


def error_response(
    scope: Any,
    status: int,
    error_code: str,
    message: str,
    headers: dict[str, str] | None = None,
    parameters: dict[str, Any] | None = None,
) -> Response:
    if is_sovd(str(scope.get("path", ""))):
        return Response(
            msgspec.json.encode(generic_error(error_code, message, parameters)),
            status_code=status,
            headers=headers,
            media_type="application/json",
        )
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
    if exc.command_id is not None:
        headers[COMMAND_ID_HEADER] = exc.command_id
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
        request.scope, exc.status_code, exc.error_code, exc.message, headers or None, exc.parameters
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
