"""WS /ws/responses/{command_id}: a command's answer, replayed then streamed live.

Order matters: subscribe first, replay second. Events published while the replay is
read wait in the subscription, and live events at or below the last replayed sequence
number are dropped, so a client that connects mid-stream sees every chunk exactly once.

Close codes: 1000 after the terminal event, 1008 bad or missing token, 4404 command
absent or not visible, 4400 bad ``since``, 1013 the client fell too far behind,
1001 the service is shutting down, 1011 an unexpected server error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Iterator

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from app.api.deps import bearer_token, services
from app.api.schema import is_uuid
from app.bus import Overflowed, Subscription
from app.errors import NotFound, Unauthorized
from app.events import ErrorEvent, Event, ResponseEvent, StatusEvent, encode, terminal_event
from app.models import Command, ResponseChunk

log = logging.getLogger(__name__)

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN = 1013
CLOSE_BAD_REQUEST = 4400
CLOSE_NOT_FOUND = 4404
CLOSE_TIMEOUT_S = 2.0

# What a send raises once the client has gone (Starlette or the server underneath).
_CLIENT_GONE = (WebSocketDisconnect, OSError, RuntimeError)


class StreamRegistry:
    """The open response streams, so shutdown can close them (Hypercorn does not)."""

    def __init__(self) -> None:
        self.closing = asyncio.Event()
        self._open = 0
        self._empty = asyncio.Event()
        self._empty.set()

    @contextlib.contextmanager
    def track(self) -> Iterator[None]:
        self._open += 1
        self._empty.clear()
        try:
            yield
        finally:
            self._open -= 1
            if self._open == 0:
                self._empty.set()

    @property
    def open(self) -> int:
        return self._open

    async def close_all(self, timeout_s: float) -> None:
        self.closing.set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._empty.wait()


class _Replay:
    """What has been sent, to drop live events the replay already covered."""

    def __init__(self, since: int) -> None:
        self.last_sequence = since
        self.in_progress_sent = False

    def wanted(self, event: Event) -> bool:
        if isinstance(event, ResponseEvent):
            if event.sequence_number <= self.last_sequence:
                return False
            self.last_sequence = event.sequence_number
        elif isinstance(event, StatusEvent) and event.status == "in_progress":
            if self.in_progress_sent:
                return False
            self.in_progress_sent = True
        return True


def _replay_events(command: Command, chunks: list[ResponseChunk], seen: _Replay) -> list[Event]:
    events: list[Event] = []
    if command.started_at is not None:
        events.append(StatusEvent(command.command_id, "in_progress", command.started_at))
    events += [
        ResponseEvent(
            c.command_id, c.sequence_number, c.is_final, c.response_payload, c.received_at
        )
        for c in chunks
    ]
    if command.is_terminal:
        events.append(
            terminal_event(
                command.command_id,
                command.status,
                command.error_code,
                command.error_message,
                command.completed_at or command.submitted_at,
            )
        )
    return [e for e in events if seen.wanted(e)]


def _since(websocket: WebSocket) -> int | None:
    raw = websocket.query_params.get("since", "0")
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        return None
    return int(raw)


async def response_stream(websocket: WebSocket) -> None:
    s = services(websocket)
    registry: StreamRegistry = websocket.app.state.streams
    await websocket.accept()
    s.telemetry.websocket_opened()
    try:
        with registry.track():
            try:
                code = await _serve(websocket, registry)
            except _CLIENT_GONE:
                code = None
            if code is not None:
                await _close(websocket, code)
    finally:
        s.telemetry.websocket_closed()


async def _serve(websocket: WebSocket, registry: StreamRegistry) -> int | None:
    s = services(websocket)
    token = websocket.query_params.get("token") or bearer_token(websocket.headers)
    try:
        who = await s.auth.authenticate(token)
    except Unauthorized:
        return CLOSE_POLICY
    command_id = websocket.path_params["command_id"]
    if not is_uuid(command_id):
        return CLOSE_NOT_FOUND
    command_id = command_id.lower()
    since = _since(websocket)
    if since is None:
        return CLOSE_BAD_REQUEST
    async with s.bus.subscribe(command_id) as sub:
        try:
            command, chunks = await s.commands.snapshot(who, command_id, since)
        except NotFound:
            return CLOSE_NOT_FOUND
        seen = _Replay(since)
        for event in _replay_events(command, chunks, seen):
            await websocket.send_text(encode(event))
        if command.is_terminal:
            return CLOSE_NORMAL
        return await _live(websocket, sub, seen, registry)


async def _live(
    websocket: WebSocket, sub: Subscription, seen: _Replay, registry: StreamRegistry
) -> int | None:
    """Forward live events until the terminal one, the client leaves, the client falls
    behind, or the service shuts down; return the close code (None: client gone)."""
    forward = asyncio.create_task(_forward(websocket, sub, seen))
    watchers: dict[asyncio.Task[object], int | None] = {
        asyncio.create_task(_until_disconnect(websocket)): None,
        asyncio.create_task(sub.overflowed.wait()): CLOSE_TRY_AGAIN,
        asyncio.create_task(registry.closing.wait()): CLOSE_GOING_AWAY,
    }
    tasks: set[asyncio.Task[object]] = {forward, *watchers}
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if forward in done:
        exc = forward.exception()
        if exc is None:
            return CLOSE_NORMAL
        if isinstance(exc, Overflowed):
            return CLOSE_TRY_AGAIN
        if not isinstance(exc, _CLIENT_GONE):
            log.error("response stream failed", exc_info=exc)
            return CLOSE_INTERNAL_ERROR
        return None  # the send failed: the client is gone
    finished = next(iter(done))
    return watchers[finished]


async def _forward(websocket: WebSocket, sub: Subscription, seen: _Replay) -> None:
    while True:
        event = await sub.get()
        if not seen.wanted(event):
            continue
        await websocket.send_text(encode(event))
        if isinstance(event, ErrorEvent) or (isinstance(event, StatusEvent) and event.is_terminal):
            return


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


async def _close(websocket: WebSocket, code: int) -> None:
    if websocket.application_state != WebSocketState.CONNECTED:
        return
    # A client that stopped reading can block the close frame; give up after a while.
    with contextlib.suppress(Exception):
        await _bounded(websocket.close(code), CLOSE_TIMEOUT_S)


async def _bounded(awaitable: Awaitable[None], timeout_s: float) -> None:
    async with asyncio.timeout(timeout_s):
        await awaitable
