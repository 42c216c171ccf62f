"""``confirmed``: returns once the NATS server has read everything a connection sent
before, a new subscription in particular, so a message published anywhere afterwards
reaches it.

nats-py's ``flush()`` cannot say that: it writes its PING straight to the socket, ahead of
the commands still waiting in the client's buffer (2.16.0's ``_send_ping``), so its PONG
may come back before the server has read a SUB made just before it. A server trace showed
it: a node's ``SUB sovd.notice`` read after the flush had returned and after another
node's notices had gone by, lost (tests/test_bus_nats_confirm.py pins the library's
behaviour). A request goes through the same buffer as the SUB, after it, and the server
answers it ("no responders", nobody subscribes to ``wire.CONFIRM``) only once it has read
it: one round trip, like the flush it replaces.
"""

from __future__ import annotations

import nats
from nats.aio.client import Client

from app.bus import wire


async def confirmed(nc: Client, timeout_s: float) -> None:
    """Raises ``TimeoutError`` (or a ``nats.errors.Error``) when the server does not
    answer within ``timeout_s``."""
    try:
        await nc.request(wire.CONFIRM, b"", timeout=timeout_s)
    except nats.errors.NoRespondersError:
        return  # the answer expected
