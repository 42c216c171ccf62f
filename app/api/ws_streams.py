"""The open response streams: ``Stream`` (one authenticated stream and how it ends early)
and ``StreamRegistry`` (caps overall and per user, closing a revoked session's or user's
streams at once, and all of them at shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from app.api.ws_closes import REVOKED, STOPPING, Close
from app.models import Principal


class Stream:
    """One authenticated stream: whose it is, and how it ends early.

    ``ended`` is the one thing the stream's handler waits on: resolved with the close to
    send (None: the client is gone) by whichever comes first, the forwarding task, the
    task reading the client's frames, an overflow, a revocation or the shutdown. One
    future instead of a task per cause keeps an idle stream small.
    """

    __slots__ = ("ended", "principal", "revoked")

    def __init__(self, principal: Principal) -> None:
        self.principal = principal
        self.revoked = False  # the session or the user's access has ended
        self.ended: asyncio.Future[Close | None] = asyncio.get_running_loop().create_future()

    def end(self, close: Close | None) -> bool:
        """Ask the handler to close with ``close``; False if it already has a reason."""
        if self.ended.done():
            return False
        self.ended.set_result(close)
        return True

    def revoke(self) -> None:
        self.revoked = True
        self.end(REVOKED)


class StreamRegistry:
    """The open response streams: so shutdown can close them (Hypercorn does not), so
    they can be capped overall and per user, and so a revoked session or user closes
    theirs at once (it listens to the principal cache's revocations)."""

    def __init__(self, max_open: int = 1024, max_per_user: int = 64) -> None:
        self.closing = asyncio.Event()
        self._max_open = max_open
        self._max_per_user = max_per_user
        self._open = 0
        self._empty = asyncio.Event()
        self._empty.set()
        self._by_user: dict[str, set[Stream]] = {}

    @property
    def full(self) -> bool:
        return self._open >= self._max_open

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

    @contextlib.contextmanager
    def register(self, principal: Principal) -> Iterator[Stream | None]:
        """The stream's entry, or None if its user already holds the most allowed."""
        streams = self._by_user.setdefault(principal.user_id, set())
        if len(streams) >= self._max_per_user:
            yield None
            return
        stream = Stream(principal)
        streams.add(stream)
        try:
            yield stream
        finally:
            streams.discard(stream)
            if not streams:
                self._by_user.pop(principal.user_id, None)

    # The principal cache's revocation listener:

    def session_revoked(self, session_id: str) -> None:
        for streams in self._by_user.values():
            for stream in streams:
                if stream.principal.session_id == session_id:
                    stream.revoke()

    def user_revoked(self, user_id: str) -> None:
        for stream in self._by_user.get(user_id, ()):
            stream.revoke()

    async def close_all(self, timeout_s: float) -> None:
        self.closing.set()  # a stream not registered yet sees it before it goes live
        for streams in list(self._by_user.values()):
            for stream in list(streams):
                stream.end(STOPPING)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._empty.wait()
