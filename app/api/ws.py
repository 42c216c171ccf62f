"""WS /ws/responses/{command_id}: a command's answer, replayed then streamed live.

What is sent, and that it is every chunk exactly once even for a client that connects
mid-stream, is ``CommandService.follow`` (app/services/follow.py); this handler only maps
its outcomes, and the socket's, to frames and close codes.

Close codes, each with a short reason in the close frame (``CLOSES``): 1000 after the
terminal event, 1008 bad or missing token (the reason says which: missing, invalid,
expired) and, at once, "token revoked" when the session is logged out, the password
changed or reset, or the user disabled or deleted, 4404 command absent or not visible,
4400 bad ``since``, 1013 the client fell too far behind ("too slow") or the bus between
nodes may have lost events ("events missed"; both: reconnect with ``since``), 1001 the service is
shutting down ("service stopping"), 1011 an unexpected server error, 4503 too many open
streams on the service, 4429 too many open streams of this user. A WebSocket to any other
path is accepted and closed at once with 4404 "unknown path" (``app.api.middleware``).
The stream needs nothing from its client: a message over ``WS_MAX_MESSAGE_BYTES`` (4 KiB,
counted after inflating) is closed with 1009 by the server underneath, before the handler
sees it and without holding or inflating more than that (``app.server``).
Each stream logs one line when accepted and one when closed or refused, with the code and
reason (never the token).

The caps cost a refused client nothing of ours: over the overall cap a socket is closed
before its token is looked at; over the user's cap right after the token check (served
from memory for a token already seen), before any read of the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.api.contract import is_uuid
from app.api.deps import ambient_credentials, authenticate, bearer_token, cross_site, services
from app.api.error_bodies import request_id
from app.api.ws_closes import (
    BAD_SINCE,
    CLOSE_TIMEOUT_S,
    CROSS_SITE,
    DONE,
    FAILED,
    MISSED,
    NOT_FOUND,
    REVOKED,
    SERVICE_FULL,
    STOPPING,
    TOO_SLOW,
    USER_FULL,
    Close,
    token_refused,
)
from app.api.ws_streams import Stream, StreamRegistry
from app.bus import Missed, Overflowed
from app.errors import NotFound, Unauthorized
from app.events import encode
from app.logs import Sampler
from app.models import Principal
from app.services.follow import Following
from app.telemetry import Tracing

log = logging.getLogger(__name__)

FULL_LOG_INTERVAL_S = 10.0
_FULL_LOG = Sampler(FULL_LOG_INTERVAL_S)


# What a send raises once the client has gone (Starlette or the server underneath).
_CLIENT_GONE = (WebSocketDisconnect, OSError, RuntimeError)


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since", "0")
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        return None
    return int(raw)


class _Log:
    """What one stream's log lines share."""

    def __init__(self, websocket: WebSocket) -> None:
        self.fields: dict[str, object] = {
            "command_id": str(websocket.path_params.get("command_id", ""))[:64],
            "request_id": request_id(websocket.scope),
            "client": websocket.client.host if websocket.client else None,
        }
        self.accepted = False

    def accept(self, who: Principal) -> None:
        self.accepted = True
        self.fields["user"] = who.username
        # At DEBUG: a stream that ends as expected is no news at INFO (its command's end
        # line is); one that ends otherwise logs its end at INFO with these fields.
        log.debug("stream accepted", extra={"event": "ws_accept", **self.fields})

    def end(self, close: Close | None, held: int = 0) -> None:
        """One line for the stream's end; ``held``: like refusals not logged before it."""
        if held:
            self.fields["not_logged_before"] = held
        if close is None:
            code, reason, what = None, "client gone", "ws_closed"
        else:
            code, reason = close
            what = "ws_closed" if self.accepted else "ws_rejected"
        log.log(
            logging.DEBUG if close == DONE else logging.INFO,
            "stream %s: %s",
            "closed" if what == "ws_closed" else "refused",
            reason,
            extra={"event": what, "code": code, "reason": reason, **self.fields},
        )


async def response_stream(websocket: WebSocket) -> None:
    s = services(websocket)
    registry: StreamRegistry = websocket.app.state.streams
    await websocket.accept()
    trail = _Log(websocket)
    if registry.full:  # before anything else: refusing costs nothing
        held = _FULL_LOG.allow()  # a flood of these is one line per interval
        if held is not None:
            trail.end(SERVICE_FULL, held)
        await _close(websocket, SERVICE_FULL)
        return
    s.telemetry.websocket_opened()
    close: Close | None = None
    try:
        with registry.track():
            try:
                close = await _serve(websocket, registry, trail)
            except _CLIENT_GONE:
                close = None
            if close is not None:
                await _close(websocket, close)
    finally:
        s.telemetry.websocket_closed()
        trail.end(close)


async def _serve(websocket: WebSocket, registry: StreamRegistry, trail: _Log) -> Close | None:
    s = services(websocket)
    token = websocket.query_params.get("token") or bearer_token(websocket.headers)
    if ambient_credentials(websocket) and cross_site(websocket, s.config.cors_origins):
        return CROSS_SITE
    try:
        who = await authenticate(websocket, token)
    except Unauthorized as exc:
        return token_refused(exc)
    command_id = websocket.path_params["command_id"]
    if not is_uuid(command_id):
        return NOT_FOUND
    command_id = command_id.lower()
    since = _since(websocket)
    if since is None:
        return BAD_SINCE
    with registry.register(who) as stream:
        if stream is None:
            return USER_FULL
        # A logout, disable or delete that landed while the token was being checked told
        # nobody about this stream yet: check once more now that revocations reach it.
        try:
            await authenticate(websocket, token)
        except Unauthorized:
            return REVOKED
        try:
            async with s.commands.follow(who, command_id, since) as events:
                trail.accept(who)
                # With tracing on, this stream's span links to the command's trace.
                tracing: Tracing = websocket.app.state.tracing
                tracing.stream_opened(command_id)
                return await _live(websocket, events, registry, stream)
        except NotFound:
            return NOT_FOUND


async def _live(
    websocket: WebSocket,
    events: Following,
    registry: StreamRegistry,
    stream: Stream,
) -> Close | None:
    """Send the command's events until the terminal one, the client leaves, the client
    falls behind, its credentials end, or the service shuts down; return the close code
    (None: client gone).

    Two tasks per stream, the sender and the reader of the client's frames; every other
    cause (overflow, revocation, shutdown) resolves ``stream.ended`` directly."""
    if registry.closing.is_set():
        return STOPPING
    events.on_overflow(lambda: stream.end(MISSED if events.missed else TOO_SLOW))
    forward = asyncio.create_task(_forward(websocket, events, stream))
    reader = asyncio.create_task(_until_disconnect(websocket))
    forward.add_done_callback(lambda task: _forwarded(task, stream))
    reader.add_done_callback(lambda _: stream.end(None))  # the client is gone
    try:
        return await stream.ended
    finally:
        forward.cancel()
        reader.cancel()
        await asyncio.gather(forward, reader, return_exceptions=True)


def _forwarded(task: asyncio.Task[None], stream: Stream) -> None:
    """The sender ended: map how to the close."""
    if task.cancelled():
        return  # cancelled by the handler: it has its reason already
    exc = task.exception()
    if exc is None:
        stream.end(DONE)
    elif isinstance(exc, Missed):
        stream.end(MISSED)
    elif isinstance(exc, Overflowed):
        stream.end(TOO_SLOW)
    elif isinstance(exc, _Revoked):
        stream.end(REVOKED)
    elif isinstance(exc, _CLIENT_GONE):
        stream.end(None)  # the send failed: the client is gone
    elif stream.end(FAILED):
        log.error("response stream failed", exc_info=exc)


class _Revoked(Exception):
    """The stream's credentials ended while an event was waiting to be sent."""


async def _forward(websocket: WebSocket, events: Following, stream: Stream) -> None:
    async for event in events:  # ends after the terminal event
        # Checked before every send, so an event published after the revocation (say,
        # the cancellation that disabling a user causes) never reaches the old holder.
        if stream.revoked:
            raise _Revoked
        await websocket.send_text(encode(event))


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, close: Close) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    # A client that stopped reading can block the close frame; give up after a while.
    with contextlib.suppress(Exception):
        await _bounded(websocket.close(close.code, close.reason), CLOSE_TIMEOUT_S)


async def _bounded(awaitable: Awaitable[None], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await awaitable
