"""Leases on vehicles' lanes (``Leases``): which node runs a vehicle's lane, on a cluster.

A lease is held by this node's lease connection for as long as that connection lives: a
node that dies (kill -9, a lost host) loses its leases with its connection, and another
node can take them. Only the PostgreSQL engine has leases (session advisory locks,
``app.store.pg_leases``); SQLite is one process, which runs every lane itself.

A vehicle's lease key is the CRC-32 of its id, as a signed 32-bit number (stable across
nodes and versions, unlike Python's ``hash``): two vehicles whose ids collide share one
owner, which is harmless (one node runs both lanes).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Final, Protocol

# The first half of every lane's advisory lock key ("SOVD lanes"): apart from the
# migrations' and the service's single-number locks.
LANE_NAMESPACE: Final = 0x4C414E45


def lease_key(vehicle_id: str) -> int:
    """The vehicle's lease key: CRC-32 of its id as a signed 32-bit integer."""
    key = zlib.crc32(vehicle_id.encode())
    return key - (1 << 32) if key >= 1 << 31 else key


class LeaseLost(Exception):
    """The lease connection was lost: every lease this node held is gone."""


class Leases(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None:
        """Release every lease (the connection closes)."""

    async def take(self, vehicle_ids: Sequence[str]) -> list[str]:
        """Try to take the lease of each vehicle (none held here yet); those taken.
        Raises LeaseLost if the connection that held this node's leases was lost (it
        reconnects, holding none), or StorageUnavailable-like errors if unreachable."""

    async def check(self) -> None:
        """Raise LeaseLost if the leases held were lost with their connection."""
