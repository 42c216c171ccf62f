"""The bus: command events from the pipeline to whoever follows the command, and notices
(revocations, lock changes, description changes) from one node to every other.

Two backends behind one seam (``seam.Bus``): ``local.EventBus``, in-process queues, the
default; ``nats_bus.NatsBus`` when ``SOVD_BUS_URL`` names a NATS server, so a response
stream on any node follows a command run on another, and a revocation on one node closes
the streams it ends on all of them. ``open_bus`` picks one. The bus imports nothing above
it (``app.events`` is what it carries).
"""

from __future__ import annotations

from app.bus.local import EventBus, Missed, Overflowed, Subscription
from app.bus.notices import (
    AnyNotice,
    DescriptionChange,
    DescriptionsChanged,
    LockChange,
    LockChanged,
    Notice,
    SessionRevoked,
    UserRevoked,
)
from app.bus.seam import Bus

__all__ = [
    "AnyNotice",
    "Bus",
    "DescriptionChange",
    "DescriptionsChanged",
    "EventBus",
    "LockChange",
    "LockChanged",
    "Missed",
    "Notice",
    "Overflowed",
    "SessionRevoked",
    "Subscription",
    "UserRevoked",
    "open_bus",
]


def open_bus(servers: tuple[str, ...], queue_size: int) -> Bus:
    """The NATS bus when ``servers`` (``SOVD_BUS_URL``) names any, else the in-process one.
    Not started: the lifespan starts and closes it."""
    if not servers:
        return EventBus(queue_size)
    # Imported here: a node without SOVD_BUS_URL never loads nats-py.
    from app.bus.nats_bus import NatsBus

    return NatsBus(servers, queue_size)
