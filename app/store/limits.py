"""Limits a cluster shares (``LimitStore``): sliding windows of events per (kind, key),
counted in the shared database so that every node decides against the same counts
(issue #23 item 4). Only the PostgreSQL engine on a cluster has them
(``app.store.pg_limits``); a single node keeps its limits in memory
(``app.services.throttle``), as fast as before.

A window is the times (epoch seconds, from each node's wall clock) of the events of one
key within the last ``window_s`` seconds, oldest first. Two operations:

- ``acquire``: count one event now if the window holds fewer than ``limit``; check and
  count are one atomic statement, so requests on any node that run at once cannot all
  pass the check before any is counted.
- ``update``: read a few windows, decide in Python (``decide`` runs on the store's
  connection thread and must not block), write back what it changed: for a limit over
  several windows at once (the login throttle). Serialised per key across nodes by
  transaction-scoped advisory locks.

Rows whose window has emptied are swept now and then by whichever node passes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeVar

T = TypeVar("T")

# The first half of every limit's advisory lock key ("SOVD limits"): apart from the
# lanes' (``app.store.leases``) and the migrations' and the service's locks.
LIMIT_NAMESPACE: Final = 0x4C494D54

Window = tuple[str, str]  # (kind, key)


@dataclass(frozen=True, slots=True)
class Written:
    """A window's events as ``decide`` leaves them, and when its row may be swept."""

    events: tuple[float, ...]
    expires_at: float


# What ``update`` hands ``decide``: each window asked for, its events (empty if none).
Read = Mapping[Window, tuple[float, ...]]
Decide = Callable[[Read], tuple[T, Mapping[Window, Written]]]


def lock_key(window: Window) -> int:
    """A window's advisory lock key: CRC-32 of kind and key, as a signed 32-bit number
    (stable across nodes); two windows that collide share a lock, which is harmless."""
    key = zlib.crc32(f"{window[0]}\x00{window[1]}".encode())
    return key - (1 << 32) if key >= 1 << 31 else key


class LimitStore(Protocol):
    async def close(self) -> None: ...

    async def acquire(
        self, window: Window, limit: int, window_s: float, now: float
    ) -> tuple[float, ...] | None:
        """Count one event at ``now`` if the window holds fewer than ``limit`` events
        after ``now - window_s``: then None; else the window's events (it is full)."""

    async def give_back(self, window: Window, at: float) -> None:
        """Undo the event counted at ``at`` (if it is still there)."""

    async def update(
        self, locks: Sequence[Window], windows: Sequence[Window], decide: Decide[T], now: float
    ) -> T:
        """``decide`` over ``windows`` as stored, holding the locks of ``locks`` (in one
        order on every node: no deadlock); what it returns written back; its result.
        Windows that emptied before ``now`` are swept now and then."""
