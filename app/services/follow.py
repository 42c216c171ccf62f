"""Following a command: its stored answer replayed, then its live events, each exactly once.

Order matters: subscribe first, read second. Events published while the snapshot is read
wait in the subscription; the replay comes from one consistent read of the command and
its chunks; live events the replay already covered (a chunk at or below the last
replayed sequence number, a second ``in_progress``) are dropped. So a reader that arrives
mid-stream sees every chunk exactly once, in order, and the stream ends with the terminal
event (``Event.is_terminal``), whether that came from the snapshot or live.

``CommandService.follow`` is the entry point; this module is the mechanism, with no
knowledge of sockets, so it is tested on its own (tests/test_follow.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from app.bus import EventBus, Subscription
from app.events import Event, ResponseEvent, StatusEvent, terminal_event
from app.models import Command, ResponseChunk
from app.vocabulary import CommandStatus

Snapshot = Callable[[], Awaitable[tuple[Command, list[ResponseChunk]]]]


class _Seen:
    """What the reader has been given, to drop what it would get twice."""

    __slots__ = ("in_progress_sent", "last_sequence")

    def __init__(self, since: int) -> None:
        self.last_sequence = since
        self.in_progress_sent = False

    def wanted(self, event: Event) -> bool:
        if isinstance(event, ResponseEvent):
            if event.sequence_number <= self.last_sequence:
                return False
            self.last_sequence = event.sequence_number
        elif isinstance(event, StatusEvent) and event.status is CommandStatus.IN_PROGRESS:
            if self.in_progress_sent:
                return False
            self.in_progress_sent = True
        return True


def replay_events(command: Command, chunks: list[ResponseChunk]) -> list[Event]:
    """The stream a reader would have seen so far, rebuilt from what is stored."""
    events: list[Event] = []
    if command.started_at is not None:
        events.append(
            StatusEvent(command.command_id, CommandStatus.IN_PROGRESS, command.started_at)
        )
    events += [
        ResponseEvent(
            c.command_id, c.sequence_number, c.is_final, c.response_payload, c.received_at
        )
        for c in chunks
    ]
    if command.status.is_terminal:
        events.append(
            terminal_event(
                command.command_id,
                command.status,
                command.error_code,
                command.error_message,
                command.completed_at or command.submitted_at,
            )
        )
    return events


class Following:
    """One reader's events of one command: the replay, then live events, until and
    including the terminal one; then iteration stops.

    Iterating raises ``app.bus.Overflowed`` if the reader fell so far behind that live
    events were dropped (the stream would have a gap). ``overflowed`` is true from that
    moment, and ``on_overflow`` (if given) is called then, so a caller blocked elsewhere
    (say, on a slow send) can react at once.
    """

    __slots__ = ("_ended", "_pending", "_seen", "_sub", "command")

    def __init__(self, sub: Subscription, command: Command, replay: list[Event], since: int):
        self.command = command  # as read for the replay
        self._sub = sub
        self._seen = _Seen(since)
        # Reversed, to be popped from the end: a list, as an idle stream keeps it (empty)
        # for as long as it is open, and an empty deque is ten times its size.
        self._pending = [e for e in replay if self._seen.wanted(e)]
        self._pending.reverse()
        self._ended = False

    @property
    def overflowed(self) -> bool:
        return self._sub.overflowed

    def on_overflow(self, callback: Callable[[], object]) -> None:
        self._sub.on_overflow = callback

    def __aiter__(self) -> Following:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        if self._pending:
            event = self._pending.pop()
        else:
            event = await self._sub.get()
            while not self._seen.wanted(event):
                event = await self._sub.get()
        if event.is_terminal:
            self._ended = True
        return event


@asynccontextmanager
async def follow(
    bus: EventBus, command_id: str, since: int, snapshot: Snapshot
) -> AsyncIterator[Following]:
    """Subscribe to ``command_id``, then read ``snapshot`` (the command and its chunks
    after ``since``; it raises to refuse, e.g. NotFound); yield the ``Following``. The
    subscription ends when the block does, however it ends."""
    async with bus.subscribe(command_id) as sub:
        command, chunks = await snapshot()
        following = Following(sub, command, replay_events(command, chunks), since)
        del chunks  # the replay has them; this frame lives as long as the stream
        yield following
