"""Admission: per-vehicle lanes, the places reserved in them, and how long a wait is.

Capacity is reserved before a command is stored, so a full lane answers 503 with nothing
stored; one user may hold at most ``user_share`` places of a lane (429 beyond), so one
engineer cannot lock everyone else out of a vehicle. The ``Retry-After`` of both
estimates the real wait from the vehicle's recent execution times (an exponentially
weighted average; the command deadline while there is none).
"""

from __future__ import annotations

import asyncio
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Final

from app.clock import Clock
from app.errors import Overloaded, RateLimited
from app.services.pipeline.entries import Entry, PipelineSettings

# Weight of the newest execution time in a vehicle's average.
EWMA_WEIGHT: Final = 0.3


@dataclass(slots=True)
class Lane:
    queued: deque[Entry] = field(default_factory=deque)
    current: Entry | None = None
    started_at: float = 0.0  # monotonic, of the current entry
    reserved: Counter[str] = field(default_factory=Counter)  # per user
    users: Counter[str] = field(default_factory=Counter)  # entries queued or running
    task: asyncio.Task[None] | None = None

    @property
    def size(self) -> int:
        return len(self.queued) + (self.current is not None) + self.reserved.total()

    def share(self, user_id: str) -> int:
        return self.users[user_id] + self.reserved[user_id]

    @property
    def idle(self) -> bool:
        return not self.queued and self.current is None and not self.reserved and self.task is None


def decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]


class Admission:
    """The lanes of every vehicle with work, and each vehicle's recent execution times."""

    def __init__(self, settings: PipelineSettings, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self.lanes: dict[str, Lane] = {}
        self._typical_s: dict[str, float] = {}  # per vehicle: recent execution times

    def reserve(self, vehicle_id: str, user_id: str) -> None:
        """Hold a place in the vehicle's lane for ``user_id``, or raise RateLimited (the
        user holds their share) or Overloaded (the lane is full)."""
        lane = self.lanes.setdefault(vehicle_id, Lane())
        share = self._settings.user_share
        if lane.share(user_id) >= share:
            wait = self._wait_for_user(vehicle_id, lane, user_id)
            raise RateLimited(
                f"you already have {share} commands queued for vehicle {vehicle_id} (the most "
                f"one user may hold); try again in about {wait} s",
                retry_after=wait,
            )
        if lane.size >= self._settings.lane_size:
            wait = self._wait(vehicle_id, lane, 0)
            raise Overloaded(
                f"vehicle {vehicle_id} already has {self._settings.lane_size} commands queued;"
                f" try again in about {wait} s",
                retry_after=wait,
            )
        lane.reserved[user_id] += 1

    def release(self, vehicle_id: str, user_id: str) -> None:
        """Give back a reservation whose command was not stored."""
        lane = self.lanes.get(vehicle_id)
        if lane is not None:
            decrement(lane.reserved, user_id)
            self.forget_if_idle(vehicle_id, lane)

    def queue(self, entry: Entry) -> Lane:
        """Turn the entry's reservation into a place in its lane's queue."""
        lane = self.lanes[entry.job.command.vehicle_id]
        decrement(lane.reserved, entry.user_id)
        lane.queued.append(entry)
        lane.users[entry.user_id] += 1
        return lane

    def forget_if_idle(self, vehicle_id: str, lane: Lane) -> None:
        if lane.idle:
            self.lanes.pop(vehicle_id, None)

    @staticmethod
    def leave(lane: Lane, entry: Entry) -> None:
        decrement(lane.users, entry.user_id)

    # -- Retry-After -------------------------------------------------------------------

    def _typical(self, vehicle_id: str) -> float:
        """How long a command on this vehicle usually runs; without history, its bound."""
        return self._typical_s.get(vehicle_id, self._settings.command_timeout_s)

    def learn(self, vehicle_id: str, duration_s: float) -> None:
        duration_s = min(duration_s, self._settings.command_timeout_s)
        previous = self._typical_s.get(vehicle_id)
        self._typical_s[vehicle_id] = (
            duration_s if previous is None else previous + EWMA_WEIGHT * (duration_s - previous)
        )

    def _wait(self, vehicle_id: str, lane: Lane, queued_ahead: int) -> int:
        """Seconds, at least 1, until the running command and ``queued_ahead`` queued ones
        have ended."""
        typical = self._typical(vehicle_id)
        wait = queued_ahead * typical
        if lane.current is not None:
            wait += max(typical - (self._clock.monotonic() - lane.started_at), 0.0)
        return max(1, math.ceil(wait))

    def _wait_for_user(self, vehicle_id: str, lane: Lane, user_id: str) -> int:
        """Seconds until the user's first command in the lane has ended, freeing a place."""
        if lane.current is not None and lane.current.user_id == user_id:
            return self._wait(vehicle_id, lane, 0)
        for position, entry in enumerate(lane.queued):
            if entry.user_id == user_id:
                return self._wait(vehicle_id, lane, position + 1)
        return 1  # only reservations, which turn into commands or go within moments
