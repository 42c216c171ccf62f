"""The response stream's close codes and reasons: every fixed close it sends (``CLOSES``,
from which the OpenAPI document and docs/api.md's table are made) and the 1008 for a
refused token, its reason cut to what a close frame holds."""

from __future__ import annotations

from typing import Final, NamedTuple

from app.errors import Unauthorized

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
# Sent by the server (Hypercorn) itself, with no reason, for a client message over the
# cap (app.server.WS_MAX_MESSAGE_BYTES, counted after inflating): streams take no data.
CLOSE_TOO_BIG = 1009
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_USER_LIMIT = 4429
CLOSE_SERVICE_LIMIT = 4503
CLOSE_TIMEOUT_S = 2.0
MAX_REASON_BYTES = 123  # a close frame's payload is 125 bytes, 2 of them the code


class Close(NamedTuple):
    code: int
    reason: str


DONE: Final = Close(CLOSE_NORMAL, "command finished")
STOPPING: Final = Close(CLOSE_GOING_AWAY, "service stopping")
REVOKED: Final = Close(CLOSE_POLICY, "token revoked")
NOT_FOUND: Final = Close(CLOSE_NOT_FOUND, "not found")
UNKNOWN_PATH: Final = Close(CLOSE_NOT_FOUND, "unknown path; streams are /ws/responses/{command_id}")
BAD_SINCE: Final = Close(CLOSE_BAD_REQUEST, "bad since: a whole number, at most 9 digits")
TOO_SLOW: Final = Close(CLOSE_TRY_AGAIN, "too slow: reconnect with since=<last sequence>")
# The bus between nodes may have lost events (SOVD_BUS_URL: NATS dropped, a gap).
MISSED: Final = Close(CLOSE_TRY_AGAIN, "events missed: reconnect with since=<last sequence>")
FAILED: Final = Close(CLOSE_INTERNAL_ERROR, "server error")
SERVICE_FULL: Final = Close(CLOSE_SERVICE_LIMIT, "too many open streams on the service")
USER_FULL: Final = Close(CLOSE_USER_LIMIT, "too many open streams of this user")
CROSS_SITE: Final = Close(
    CLOSE_POLICY, "cross-site stream with ambient credentials: send the token as ?token="
)
# Every fixed close the stream can send (docs/api.md's table comes from here).
CLOSES: Final = (
    DONE,
    STOPPING,
    REVOKED,
    NOT_FOUND,
    UNKNOWN_PATH,
    BAD_SINCE,
    TOO_SLOW,
    MISSED,
    FAILED,
    SERVICE_FULL,
    USER_FULL,
)


def token_refused(exc: Unauthorized) -> Close:
    """1008 with the 401's message (missing, invalid, expired, ended) as the reason."""
    return Close(CLOSE_POLICY, fit(exc.message))


def fit(reason: str) -> str:
    raw = reason.encode()
    if len(raw) <= MAX_REASON_BYTES:
        return reason
    return raw[:MAX_REASON_BYTES].decode("utf-8", "ignore")
