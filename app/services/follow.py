"""Following a command: its stored answer replayed, then its live events, each exactly once.

Order matters: subscribe first, read second. Events published while the snapshot is read
wait in the subscription; the replay comes from one consistent read of the command and
its chunks; live events the replay already covered (a chunk at or below the last
replayed sequence number, a second ``in_progress``) are dropped. So a reader that arrives
mid-stream sees every chunk exactly once, in order, and the stream ends with the terminal
event (``Event.is_terminal``), whether that came from the snapshot or live.

A long answer is replayed in pages of ``REPLAY_PAGE`` chunks, each read when the reader
has taken the one before: the snapshot holds the first page, later pages are read after
the last replayed sequence number (stored chunks never change, so a page read later is
the same as one read in the snapshot), and a terminal status seen in the snapshot is
replayed after the last page. Memory per reader stays one page, whatever the answer.

``CommandService.follow`` is the entry point; this module is the mechanism, with no
knowledge of sockets, so it is tested on its own (tests/test_follow.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

from app.bus import Bus, Subscription
from app.events import Event, ResponseChunk, StatusEvent, terminal_event
from app.models import Command
from app.vocabulary import CommandStatus

# Chunks a replay reads at once.
REPLAY_PAGE: Final = 500

# The command and its first page of chunks after ``since``, from one consistent read.
Snapshot = Callable[[], Awaitable[tuple[Command, list[ResponseChunk]]]]
# The next page: chunks after a sequence number, at most REPLAY_PAGE.
Page = Callable[[int], Awaitable[list[ResponseChunk]]]


class _Seen:
    """What the reader has been given, to drop what it would get twice."""

    __slots__ = ("in_progress_sent", "last_sequence")

    def __init__(self, since: int) -> None:
        self.last_sequence = since
        self.in_progress_sent = False

    def wanted(self, event: Event) -> bool:
        if isinstance(event, ResponseChunk):
            if event.sequence_number <= self.last_sequence:
                return False
            self.last_sequence = event.sequence_number
        elif isinstance(event, StatusEvent) and event.status is CommandStatus.IN_PROGRESS:
            if self.in_progress_sent:
                return False
            self.in_progress_sent = True
        return True


def _replayed_start(command: Command) -> list[Event]:
    if command.started_at is None:
        return []
    start = StatusEvent(
        command_id=command.command_id, status=CommandStatus.IN_PROGRESS, at=command.started_at
    )
    return [start]


def _chunk_events(chunks: list[ResponseChunk]) -> list[Event]:
    return [c.read_back() for c in chunks]


def _replayed_end(command: Command) -> Event | None:
    if not command.status.is_terminal:
        return None
    return terminal_event(
        command.command_id,
        command.status,
        command.error_code,
        command.error_message,
        command.completed_at or command.submitted_at,
    )


class Following:
    """One reader's events of one command: the replay, then live events, until and
    including the terminal one; then iteration stops.

    Iterating raises ``app.bus.Overflowed`` if the reader fell so far behind that live
    events were dropped (the stream would have a gap). ``overflowed`` is true from that
    moment, and ``on_overflow`` (if given) is called then, so a caller blocked elsewhere
    (say, on a slow send) can react at once.
    """

    __slots__ = ("_end", "_ended", "_more", "_pending", "_seen", "_sub", "command")

    def __init__(
        self,
        sub: Subscription,
        command: Command,
        first: list[ResponseChunk],
        since: int,
        more: Page | None = None,
    ):
        self.command = command  # as read for the replay
        self._sub = sub
        self._seen = _Seen(since)
        # A full first page may have more behind it: read when the reader gets there.
        self._more = more if more is not None and len(first) >= REPLAY_PAGE else None
        self._end = _replayed_end(command)  # replayed after the last page
        self._pending: list[Event] = []
        self._queue([*_replayed_start(command), *_chunk_events(first)])
        self._ended = False

    def _queue(self, replay: list[Event]) -> None:
        if self._more is None and self._end is not None:
            replay.append(self._end)
            self._end = None
        # Reversed, to be popped from the end: a list, as an idle stream keeps it (empty)
        # for as long as it is open, and an empty deque is ten times its size.
        self._pending = [e for e in replay if self._seen.wanted(e)]
        self._pending.reverse()

    async def _next_page(self) -> None:
        assert self._more is not None
        page = await self._more(self._seen.last_sequence)
        if len(page) < REPLAY_PAGE:
            self._more = None
        self._queue(_chunk_events(page))

    @property
    def overflowed(self) -> bool:
        return self._sub.overflowed

    @property
    def missed(self) -> bool:
        """Overflowed by the bus losing events (``app.bus.Missed``), not by slowness."""
        return self._sub.missed

    def on_overflow(self, callback: Callable[[], object]) -> None:
        self._sub.on_overflow = callback

    def __aiter__(self) -> Following:
        return self

    async def __anext__(self) -> Event:
        if self._ended:
            raise StopAsyncIteration
        while not self._pending and self._more is not None:
            await self._next_page()
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
    bus: Bus, command_id: str, since: int, snapshot: Snapshot, more: Page | None = None
) -> AsyncIterator[Following]:
    """Subscribe to ``command_id``, then read ``snapshot`` (the command and its first
    page of chunks after ``since``; it raises to refuse, e.g. NotFound); yield the
    ``Following``, which reads the later pages with ``more``. The subscription ends when
    the block does, however it ends."""
    async with bus.subscribe(command_id) as sub:
        command, chunks = await snapshot()
        following = Following(sub, command, chunks, since, more)
        del chunks  # the replay has them; this frame lives as long as the stream
        yield following
