"""The NATS bus (``SOVD_BUS_URL=nats://…``): command events and notices shared by every
node on one NATS server (or cluster), through nats-py.

Events: one subject per command (``sovd.cmd.<command_id>``, ``wire``). Subscribers on
this node hang off an in-process ``EventBus`` (the same bounded queues and ``Overflowed``);
the first one of a command subscribes to its subject on NATS and waits for the server's
round trip, so when ``subscribe`` yields the server is already sending the command's
events here: a reader that then reads the store misses nothing (``app.services.follow``
drops what it would get twice). The last one leaving unsubscribes.

Publishing never waits: the event goes to this node's subscribers at once, then into a
bounded outbox that one task sends to NATS in order (so per command too). The connection
is made with ``no_echo`` and every message names its node, so a node never gets its own
events or notices back: they are delivered or applied here once.

When events cannot go out (the outbox full, NATS refusing or unreachable past nats-py's
own reconnect buffer) the command is marked gapped: its later events are not sent either,
and a gap marker goes out as soon as it can, which overflows the command's subscribers on
the other nodes (they start again from the store, where every event is, stored before it
was published). When this node loses NATS, every subscriber here is overflowed at once
and again when the connection is back (events of other nodes' commands may have passed
meanwhile); nats-py reconnects on its own. Local subscribers of local commands keep
getting their events all along; commands run and are stored as ever.

Notices (revocations, lock changes) go on ``sovd.notice`` ahead of the events, kept
(bounded) while NATS is unreachable and sent when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from app.bus import wire
from app.bus.local import EventBus, Subscription
from app.bus.nats_confirm import confirmed
from app.bus.nats_outbox import OUTBOX_SIZE, Outbox
from app.bus.nats_requests import NatsRequests
from app.bus.notices import Notice
from app.errors import StartupError
from app.events import Event
from app.logs import Sampler
from app.vocabulary import BusKind

log = logging.getLogger(__name__)

START_TIMEOUT_S: Final = 10.0  # the first connection, at start
CONNECT_TIMEOUT_S: Final = 2
RECONNECT_WAIT_S: Final = 1
SUBSCRIBE_TIMEOUT_S: Final = 2.0  # the server's round trip after a new subscription
WARN_INTERVAL_S: Final = 10.0


def shown_servers(servers: tuple[str, ...]) -> str:
    """The servers as logs and messages may show them: scheme, host and port only (a URL
    may carry a user and password or a token)."""
    shown = []
    for server in servers:
        parts = urllib.parse.urlsplit(server)
        port = f":{parts.port}" if parts.port else ""
        shown.append(f"{parts.scheme}://{parts.hostname}{port}")
    return ", ".join(shown)


class _Interest:
    """This node's interest in one command's subject: its NATS subscription (made once,
    by the first local subscriber) and how many local subscribers share it."""

    __slots__ = ("command_id", "count", "subscribed")

    def __init__(self, command_id: str) -> None:
        self.command_id = command_id
        self.count = 0
        self.subscribed: asyncio.Future[NatsSubscription | None] | None = None


class NatsBus:
    name = BusKind.NATS

    def __init__(
        self,
        servers: tuple[str, ...],
        queue_size: int = 256,
        *,
        outbox_size: int = OUTBOX_SIZE,
        node: str | None = None,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self._servers = servers
        self._start_timeout_s = start_timeout_s
        self.shown = shown_servers(servers)
        self.node = node or uuid.uuid4().hex  # names this node's messages
        self._local = EventBus(queue_size)
        self._nc = Client()
        self._interest: dict[str, _Interest] = {}
        self._handlers: list[Callable[[Notice], object]] = []
        self._outbox = Outbox(self.node, outbox_size, self._gapped)
        self._up = asyncio.Event()
        self._closing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warn = Sampler(WARN_INTERVAL_S)
        self._last_error: str | None = None  # its type's name: the text may name the URL

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        try:
            async with asyncio.timeout(self._start_timeout_s):
                await self._nc.connect(
                    servers=list(self._servers),
                    name=f"sovd-command-service {self.node[:8]}",
                    no_echo=True,  # our own messages were delivered here already
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,  # forever: the service outlives an outage
                    connect_timeout=CONNECT_TIMEOUT_S,
                    reconnect_time_wait=RECONNECT_WAIT_S,
                    error_cb=self._error,
                    disconnected_cb=self._disconnected,
                    reconnected_cb=self._reconnected,
                )
            await self._nc.subscribe(wire.NOTICES, cb=self._heard)
            await confirmed(self._nc, SUBSCRIBE_TIMEOUT_S)
        except (TimeoutError, OSError, nats.errors.Error) as exc:
            self._closing = True
            await self._nc.close()
            last = self._last_error or "no answer"
            why = last if isinstance(exc, TimeoutError) else type(exc).__name__
            raise StartupError(
                f"SOVD_BUS_URL: cannot reach the NATS server at {self.shown} within"
                f" {self._start_timeout_s:g} s ({why}); start it or unset SOVD_BUS_URL"
            ) from None
        self._up.set()
        self._spawn(self._outbox.send(self._publish), "nats-outbox")
        log.info("bus: NATS at %s", self.shown, extra={"event": "bus_connected"})

    async def aclose(self) -> None:
        """Send what is waiting (briefly), then close the connection."""
        self._closing = True
        if self._nc.is_connected:
            self._outbox.wake()
            for _ in range(100):  # at most about a second
                if self._outbox.empty:
                    break
                await asyncio.sleep(0.01)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._nc.close()  # flushes what nats-py holds

    async def ready(self, timeout_s: float) -> bool:
        """Connected, and the server answers a round trip within ``timeout_s``."""
        if not self._nc.is_connected:
            return False
        try:
            await self._nc.flush(timeout=timeout_s)  # type: ignore[arg-type]
        except (TimeoutError, nats.errors.Error):
            return False
        return True

    # -- events ------------------------------------------------------------------------

    @asynccontextmanager
    async def subscribe(self, command_id: str) -> AsyncIterator[Subscription]:
        # Locally first: an event that arrives from NATS once the subject is subscribed
        # must find this subscription there.
        async with self._local.subscribe(command_id) as sub:
            interest = self._interest.get(command_id)
            if interest is None:
                interest = self._interest[command_id] = _Interest(command_id)
                interest.subscribed = asyncio.ensure_future(self._listen(interest))
            interest.count += 1
            try:
                assert interest.subscribed is not None
                await asyncio.shield(interest.subscribed)
                yield sub
            finally:
                interest.count -= 1
                if interest.count == 0:
                    del self._interest[command_id]
                    self._spawn(self._unlisten(interest), "nats-unsubscribe")

    def publish(self, event: Event) -> None:
        self._local.publish(event)
        self._outbox.event(event)

    def subscriber_count(self, command_id: str) -> int:
        return self._local.subscriber_count(command_id)

    @property
    def pending(self) -> int:
        """Messages not yet handed to NATS, the gap markers owed included."""
        return self._outbox.pending

    @property
    def lost(self) -> int:
        """Events not passed on to NATS (their commands were gapped)."""
        return self._outbox.lost

    async def _listen(self, interest: _Interest) -> NatsSubscription | None:
        """Subscribe to the command's subject and wait until the server has it."""

        async def deliver(msg: Msg) -> None:
            self._arrived(interest, msg)

        subject = wire.command_subject(interest.command_id)
        try:
            nsub = await self._nc.subscribe(subject, cb=deliver)
        except nats.errors.Error as exc:
            self._warn_sampled("bus: cannot subscribe on NATS (%s)", type(exc).__name__)
            return None
        # Unconfirmed while NATS is unreachable (not waited for: the stream replays from
        # the store meanwhile): nats-py subscribes again on reconnect, and the reconnect
        # overflows this subscriber (it may have missed events).
        if self._nc.is_connected:
            try:
                await confirmed(self._nc, SUBSCRIBE_TIMEOUT_S)
            except (TimeoutError, nats.errors.Error):
                # Connected but unconfirmed: events may pass before the server has it, so
                # its subscribers here start again rather than risk a hole.
                self._local.overflow(interest.command_id)
                self._warn_sampled("bus: NATS did not confirm a subscription (%s)", self.shown)
        return nsub

    async def _unlisten(self, interest: _Interest) -> None:
        assert interest.subscribed is not None
        nsub = await interest.subscribed
        if nsub is not None and not self._nc.is_closed:
            # The connection may have gone: so did the subscription.
            with contextlib.suppress(nats.errors.Error):
                await nsub.unsubscribe()

    def _arrived(self, interest: _Interest, msg: Msg) -> None:
        if self._interest.get(interest.command_id) is not interest:
            return  # a subscription on its way out; a newer one delivers
        try:
            origin, event = wire.read_event(msg.data)
        except ValueError as exc:
            self._warn_sampled("bus: dropped a bad message on %s: %s", msg.subject, exc)
            return
        if origin == self.node:
            return  # delivered here when published
        if event is None:  # the sender lost some of the command's events
            self._local.overflow(interest.command_id)
        elif event.command_id == interest.command_id:
            self._local.publish(event)

    # -- notices -----------------------------------------------------------------------

    def broadcast(self, notice: Notice) -> None:
        self._outbox.notice(notice)

    def requests(self) -> NatsRequests:
        return NatsRequests(self._nc)

    def on_notice(self, handler: Callable[[Notice], object]) -> None:
        self._handlers.append(handler)

    async def _heard(self, msg: Msg) -> None:
        try:
            origin, notice = wire.read_notice(msg.data)
        except ValueError as exc:
            self._warn_sampled("bus: dropped a bad notice: %s", exc)
            return
        if origin == self.node:
            return  # applied here when broadcast
        for handler in self._handlers:
            try:
                handler(notice)
            except Exception:  # one handler's fault must not keep the notice from others
                log.exception("bus: a notice handler failed")

    # -- sending -----------------------------------------------------------------------

    async def _publish(self, subject: str, payload: bytes) -> bool:
        """Hand one message to nats-py, waiting out an outage that fills its reconnect
        buffer; False: refused while connected (say, over the server's payload limit)."""
        while True:
            try:
                await self._nc.publish(subject, payload)
            except (nats.errors.Error, OSError, TimeoutError) as exc:  # never the sender's end
                if self._nc.is_connected or self._nc.is_closed:
                    self._warn_sampled("bus: NATS refused a message (%s)", type(exc).__name__)
                    return False
                await self._up.wait()
                continue
            return True

    # -- connection --------------------------------------------------------------------

    async def _error(self, exc: Exception) -> None:
        self._last_error = type(exc).__name__
        self._warn_sampled("bus: NATS (%s): %s", self.shown, type(exc).__name__)

    async def _disconnected(self) -> None:
        self._up.clear()
        if self._closing:
            return
        overflowed = self._local.overflow()
        log.warning(
            "bus: lost NATS at %s, reconnecting; %d followers here start again from the database",
            self.shown,
            overflowed,
            extra={"event": "bus_disconnected"},
        )

    async def _reconnected(self) -> None:
        self._up.set()
        self._outbox.wake()
        # Every subscriber here lived through the outage: events may have passed it.
        overflowed = self._local.overflow()
        log.info(
            "bus: NATS at %s is back; %d followers here start again from the database",
            self.shown,
            overflowed,
            extra={"event": "bus_reconnected"},
        )

    def _gapped(self) -> None:
        self._warn_sampled(
            "bus: events could not go to NATS (%s); followers elsewhere start again from"
            " the database",
            self.shown,
        )

    def _warn_sampled(self, message: str, *args: object) -> None:
        held = self._warn.allow()
        if held is not None:
            log.warning(message, *args, extra={"event": "bus_warning", "not_logged_before": held})

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        """A background task, kept until done; its failure is logged, never silent."""
        task = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("bus: %s failed", task.get_name(), exc_info=task.exception())
