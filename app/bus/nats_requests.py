"""Requests between nodes over NATS (``app.bus.requests``): request/reply on the bus's
own connection."""

from __future__ import annotations

import asyncio
import logging
from typing import Final

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription as NatsSubscription

from app.bus.nats_confirm import confirmed
from app.bus.requests import Handler, NoAnswer, NoResponder, Served

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT_S: Final = 2.0


class _NatsServed:
    def __init__(self, sub: NatsSubscription) -> None:
        self._sub = sub

    async def stop(self) -> None:
        try:
            await self._sub.unsubscribe()
        except nats.errors.Error as exc:  # the connection is gone: so is the subscription
            log.debug("unsubscribe failed: %s", type(exc).__name__)


class NatsRequests:
    """Requests over a NATS connection the bus made and owns."""

    def __init__(self, client: Client) -> None:
        self._nc = client
        self._answering: set[asyncio.Task[None]] = set()

    async def serve(self, subject: str, handler: Handler) -> Served:
        async def answer(msg: Msg) -> None:
            try:
                reply = await handler(msg.data)
                await msg.respond(reply)
            except Exception:  # the handler answers its refusals itself: this is a bug
                log.exception("request on %s failed", subject)  # the asker gets NoAnswer

        async def arrived(msg: Msg) -> None:
            # Each in a task of its own: nats-py runs one subscription's callbacks one
            # after the other, and a request may wait (a description loading).
            task = asyncio.create_task(answer(msg), name=f"answer-{subject}")
            self._answering.add(task)
            task.add_done_callback(self._answering.discard)

        sub = await self._nc.subscribe(subject, cb=arrived)
        await confirmed(self._nc, CONFIRM_TIMEOUT_S)  # askers elsewhere reach it from now
        return _NatsServed(sub)

    async def request(self, subject: str, payload: bytes, timeout_s: float) -> bytes:
        try:
            msg = await self._nc.request(subject, payload, timeout=timeout_s)
        except nats.errors.NoRespondersError:
            raise NoResponder(subject) from None
        except (nats.errors.Error, TimeoutError) as exc:
            raise NoAnswer(type(exc).__name__) from None
        return bytes(msg.data)
