"""Locks: a user reserves a vehicle, or one of its ECUs, for their state-changing calls.

While a user holds a lock, everyone else's state-changing calls there (clearing faults,
executions, session changes, and the same commands through ``/api/v1/commands``) are
refused with ``precondition-not-fulfilled`` naming the holder; reads are never blocked.
Scope (``app.services.lock_scope``): a lock on the whole vehicle (``ecu_address`` None)
covers every ECU; a lock on one ECU covers that ECU and any whole-vehicle call. So a
vehicle lock conflicts with any other user's lock on the vehicle, and two ECU locks only
on the same ECU. A user's own locks never block that user.

A lock ends when it expires (``Clock``-driven: expired locks are dropped lazily, when
the vehicle's locks are next looked at), when its owner releases it, or when an admin
who does not own it breaks it: the holder's next call that touches the lock (a
state-changing call or a new lock where it was, or the lock's id itself) is refused
once with ``lock-broken``, and the call after that is treated as any other.

A lock covers what is already queued: taking one withdraws the other users'
state-changing commands still waiting in the vehicle's lane for the locked scope (never
sent; they end ``cancelled`` with a message starting ``LOCK_WITHDRAWAL``, and a SOVD call
waiting on one answers ``precondition-not-fulfilled``), and so does a command that
reaches the lane after a lock was taken while its submit was storing it. A command that
is already running is left to finish: it went to the vehicle before the lock existed.

An admin can also break every lock of a vehicle at once (``break_all``): each holder is
told once, on their next call there, however many of its locks they held.

Locks live in memory: a restart forgets them (and the pipeline's commands with them).
On a cluster a vehicle's locks live on the node that runs its lane: every lock call is
made there (``app.services.lock_desk``), as is every state-changing command's check, so
one node decides; when a lane moves (its owner died, or lost its lease:
``forget_vehicles``) its locks go with the old owner. Every change (taken, extended,
released, broken) is told to ``on_change``: the relay (``app.services.relay``) tells the
other nodes, where a lock taken here withdraws the covered queued commands too
(``taken_elsewhere``).
Bounded: at most ``max_per_vehicle`` locks, and as many broken-lock notices, per vehicle,
and at most ``max_per_user`` of one user on one vehicle (``SOVD_LOCKS_PER_USER``), so one
user cannot take every slot of a vehicle.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from app.bus import LockChange
from app.clock import Clock, format_ts
from app.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    LockBroken,
    NotFound,
    PreconditionNotFulfilled,
)
from app.models import Actor, Command, Principal
from app.services.lock_scope import Lock, covers, normalise_address, overlap, scope_text
from app.services.pipeline import Cancellation, Pipeline
from app.vocabulary import FailureCode

log = logging.getLogger(__name__)

MAX_EXPIRATION_S: Final = 3600.0
MAX_LOCKS_PER_VEHICLE: Final = 64
MAX_LOCKS_PER_USER: Final = 8  # of one user on one vehicle
MIN_EXPIRATION_S: Final = 1.0
# How the message of a command a lock withdrew from its lane begins (its error_code is
# ``locked-out``).
LOCK_WITHDRAWAL: Final = "cancelled before it ran: "


@dataclass(frozen=True, slots=True)
class _Broken:
    """A lock an admin broke, until its holder has been told (or it would have expired)."""

    lock: Lock
    by: str  # the admin's username
    # The break of every lock of the vehicle it was part of (None: this lock alone): its
    # holder is told once for all of theirs.
    batch: str | None = None


class LockService:
    def __init__(
        self,
        clock: Clock,
        max_expiration_s: float = MAX_EXPIRATION_S,
        max_per_vehicle: int = MAX_LOCKS_PER_VEHICLE,
        *,
        max_per_user: int = MAX_LOCKS_PER_USER,
        pipeline: Pipeline | None = None,
    ) -> None:
        self._clock = clock
        self._max_per_user = max_per_user
        # Where a new lock withdraws the queued commands it covers (None: nothing to do).
        self._pipeline = pipeline
        self._max_expiration_s = max_expiration_s
        self._max_per_vehicle = max_per_vehicle
        # vehicle_id -> lock_id -> lock, in the order taken. All methods are synchronous
        # (no await inside): each runs whole on the event loop, so check-then-act is safe.
        self._locks: dict[str, dict[str, Lock]] = {}
        # vehicle_id -> lock_id -> the broken lock whose holder has not been told yet.
        self._broken: dict[str, dict[str, _Broken]] = {}
        # Told of every change made here (the relay tells the other nodes).
        self.on_change: Callable[[LockChange, Lock], object] | None = None

    # -- reads -------------------------------------------------------------------------

    def locks(self, vehicle_id: str, ecu_address: str | None) -> list[Lock]:
        """The unexpired locks at exactly that scope (None: the whole-vehicle ones)."""
        scope = normalise_address(ecu_address)
        return [lock for lock in self._live(vehicle_id).values() if lock.ecu_address == scope]

    def get(self, vehicle_id: str, lock_id: str) -> Lock:
        lock = self._live(vehicle_id).get(lock_id)
        if lock is None:
            raise NotFound(f"lock {lock_id} does not exist on vehicle {vehicle_id}")
        return lock

    # -- changes -----------------------------------------------------------------------

    def take(
        self,
        who: Principal,
        vehicle_id: str,
        ecu_address: str | None,
        component: str | None,
        expiration_s: float,
    ) -> Lock:
        """Lock the vehicle (``ecu_address`` None) or one ECU for ``expiration_s``."""
        self._check_expiration(expiration_s)
        scope = normalise_address(ecu_address)
        live = self._live(vehicle_id)
        self._tell_broken(who, vehicle_id, scope)
        self._refuse_others(who, vehicle_id, scope, live)
        mine = sum(lock.user_id == who.user_id for lock in live.values())
        if mine >= self._max_per_user:
            raise Conflict(
                f"you hold {mine} locks on vehicle {vehicle_id}, the most one user may hold"
                f" (SOVD_LOCKS_PER_USER={self._max_per_user}); release one first"
            )
        if len(live) >= self._max_per_vehicle:
            raise Conflict(
                f"vehicle {vehicle_id} has {len(live)} locks, the most it may have; "
                "release one first"
            )
        lock = Lock(
            lock_id=str(uuid.uuid4()),
            vehicle_id=vehicle_id,
            ecu_address=scope,
            component=component,
            user_id=who.user_id,
            username=who.username,
            expires_at_monotonic=self._clock.monotonic() + expiration_s,
            expires_at=self._wall_in(expiration_s),
        )
        self._locks.setdefault(vehicle_id, {})[lock.lock_id] = lock
        self._withdraw_covered(lock)
        self._changed("taken", lock)
        return lock

    def extend(self, who: Principal, vehicle_id: str, lock_id: str, expiration_s: float) -> Lock:
        """The owner's lock, now expiring ``expiration_s`` from now."""
        self._check_expiration(expiration_s)
        lock = self._owned(who, vehicle_id, lock_id, "extend")
        extended = dataclasses.replace(
            lock,
            expires_at_monotonic=self._clock.monotonic() + expiration_s,
            expires_at=self._wall_in(expiration_s),
        )
        self._locks[vehicle_id][lock_id] = extended
        self._changed("extended", extended)
        return extended

    def release(self, who: Principal, vehicle_id: str, lock_id: str) -> None:
        """The owner releases the lock; an admin who is not the owner breaks it (its
        holder's next call there is refused once with ``lock-broken``)."""
        live = self._live(vehicle_id)
        lock = live.get(lock_id)
        if lock is not None and lock.user_id != who.user_id and who.is_admin:
            del live[lock_id]
            self._notice(_Broken(lock, who.username))
            self._forget_empty(vehicle_id)
            self._changed("broken", lock)
            return
        owned = self._owned(who, vehicle_id, lock_id, "release")
        del live[lock_id]
        self._forget_empty(vehicle_id)
        self._changed("released", owned)

    def break_all(self, who: Principal, vehicle_id: str) -> int:
        """An admin breaks every lock of the vehicle and its ECUs at once (one user
        holding many must not make them break one by one). Each other holder's next call
        that touches one of them is refused once with ``lock-broken``, however many they
        held; the admin's own are released. Returns how many locks went."""
        if not who.is_admin:
            raise Forbidden("only an admin can break every lock of a vehicle")
        live = self._live(vehicle_id)
        broken = list(live.values())
        batch = str(uuid.uuid4())
        for lock in broken:
            del live[lock.lock_id]
            if lock.user_id != who.user_id:
                self._notice(_Broken(lock, who.username, batch))
            self._changed("broken", lock)
        self._forget_empty(vehicle_id)
        if broken:
            log.info(
                "%s broke every lock of vehicle %s: %d locks of %d users",
                who.username,
                vehicle_id,
                len(broken),
                len({lock.user_id for lock in broken}),
                extra={"event": "locks_broken", "vehicle_id": vehicle_id, "locks": len(broken)},
            )
        return len(broken)

    def release_all_of(self, user_id: str) -> int:
        """Release every lock of a user whose access ended (disabled, deleted, password
        reset): a lock must not outlive its holder's right to hold it. Returns how many."""
        released = 0
        for vehicle_id in list(self._locks):
            live = self._locks[vehicle_id]
            for lock_id in [i for i, lock in live.items() if lock.user_id == user_id]:
                del live[lock_id]
                released += 1
            self._forget_empty(vehicle_id)
        return released

    def forget_vehicles(self, vehicle_ids: list[str]) -> None:
        """This node no longer runs these vehicles' lanes (a cluster: its lease was
        lost): their locks and notices go with them, as they would with a dead node.
        The lane's next owner decides its locks from then on."""
        for vehicle_id in vehicle_ids:
            self._locks.pop(vehicle_id, None)
            self._broken.pop(vehicle_id, None)

    def check(self, who: Principal, vehicle_id: str, ecu_address: str | None) -> None:
        """Before a state-changing call of ``who`` on the vehicle (``ecu_address`` None)
        or one ECU: ``LockBroken`` once if ``who``'s lock there was broken;
        ``PreconditionNotFulfilled`` naming the holder if another user's lock covers it."""
        scope = normalise_address(ecu_address)
        live = self._live(vehicle_id)
        self._tell_broken(who, vehicle_id, scope)
        self._refuse_others(who, vehicle_id, scope, live)

    def withdraw_if_locked(self, command: Command) -> bool:
        """Withdraw a command that reached its lane after another user's lock over it
        was taken (its submit checked before the lock existed, then stored it): it ends
        as if it had been queued when the lock was taken. Whether it was withdrawn."""
        if self._pipeline is None:
            return False
        for lock in self._live(command.vehicle_id).values():
            if covers(lock, command):
                return self._pipeline.withdraw(command.command_id, _withdrawal(lock)) is not None
        return False

    def taken_elsewhere(self, lock: Lock) -> int:
        """Another node took ``lock``: withdraw this node's queued commands it covers, as
        taking it here would have; how many. (On a cluster the lock's node runs the
        vehicle's lane, so there are none here unless the lane moved meanwhile.)"""
        return self._withdraw_covered(lock)

    # -- helpers -----------------------------------------------------------------------

    def _changed(self, change: LockChange, lock: Lock) -> None:
        if self.on_change is not None:
            self.on_change(change, lock)

    def _withdraw_covered(self, lock: Lock) -> int:
        """Withdraw the other users' state-changing commands queued where ``lock`` now
        is (in the same step as taking it: none can start in between); how many."""
        if self._pipeline is None:
            return 0
        cancellation = _withdrawal(lock)
        withdrawn = sum(
            self._pipeline.withdraw(command.command_id, cancellation) is not None
            for command in self._pipeline.queued(lock.vehicle_id)
            if covers(lock, command)
        )
        if withdrawn:
            log.info(
                "%s's lock on %s withdrew %d queued commands of other users",
                lock.username,
                scope_text(lock.vehicle_id, lock.ecu_address),
                withdrawn,
                extra={
                    "event": "lock_withdrew_queued",
                    "vehicle_id": lock.vehicle_id,
                    "commands": withdrawn,
                },
            )
        return withdrawn

    def _check_expiration(self, expiration_s: float) -> None:
        # Written so that NaN fails too.
        if not MIN_EXPIRATION_S <= expiration_s <= self._max_expiration_s:
            raise BadRequest(
                f"lock_expiration must be from {MIN_EXPIRATION_S:g} to "
                f"{self._max_expiration_s:g} seconds, got {expiration_s:g}"
            )

    def _wall_in(self, seconds: float) -> str:
        return format_ts(self._clock.wall() + timedelta(seconds=seconds))

    def _live(self, vehicle_id: str) -> dict[str, Lock]:
        """The vehicle's locks, the expired ones (and stale notices) dropped first."""
        now = self._clock.monotonic()
        locks = self._locks.get(vehicle_id, {})
        for lock_id in [k for k, lock in locks.items() if lock.expires_at_monotonic <= now]:
            del locks[lock_id]
        notices = self._broken.get(vehicle_id, {})
        # A broken lock would have ended by now anyway: nothing left to tell its holder.
        for lock_id in [k for k, b in notices.items() if b.lock.expires_at_monotonic <= now]:
            del notices[lock_id]
        self._forget_empty(vehicle_id)
        return self._locks.get(vehicle_id, {})

    def _notice(self, broken: _Broken) -> None:
        """Keep a broken lock's notice for its holder (the oldest goes untold if full)."""
        notices = self._broken.setdefault(broken.lock.vehicle_id, {})
        if len(notices) >= self._max_per_vehicle:
            del notices[next(iter(notices))]
        notices[broken.lock.lock_id] = broken

    def _told(self, vehicle_id: str, broken: _Broken) -> LockBroken:
        """The holder is being told of ``broken``: its notice goes, and with it those of
        the holder's other locks broken in the same break of every lock."""
        notices = self._broken.get(vehicle_id, {})
        for lock_id, other in list(notices.items()):
            same_batch = broken.batch is not None and other.batch == broken.batch
            if other is broken or (same_batch and other.lock.user_id == broken.lock.user_id):
                del notices[lock_id]
        self._forget_empty(vehicle_id)
        return _lock_broken(broken)

    def _forget_empty(self, vehicle_id: str) -> None:
        if not self._locks.get(vehicle_id, True):
            del self._locks[vehicle_id]
        if not self._broken.get(vehicle_id, True):
            del self._broken[vehicle_id]

    def _tell_broken(self, who: Principal, vehicle_id: str, scope: str | None) -> None:
        """Raise LockBroken (once) if an admin broke ``who``'s lock meeting ``scope``."""
        notices = self._broken.get(vehicle_id, {})
        for broken in notices.values():
            if broken.lock.user_id == who.user_id and overlap(broken.lock.ecu_address, scope):
                raise self._told(vehicle_id, broken)

    def _refuse_others(
        self, who: Principal, vehicle_id: str, scope: str | None, live: dict[str, Lock]
    ) -> None:
        for lock in live.values():
            if lock.user_id != who.user_id and overlap(lock.ecu_address, scope):
                raise PreconditionNotFulfilled(
                    f"{scope_text(vehicle_id, lock.ecu_address)} is locked by {lock.username}"
                    f" until {lock.expires_at}"
                )

    def _owned(self, who: Principal, vehicle_id: str, lock_id: str, doing: str) -> Lock:
        """``who``'s live lock ``lock_id``: LockBroken once if an admin broke it, NotFound
        if there is none, Forbidden if it is someone else's."""
        lock = self._live(vehicle_id).get(lock_id)
        if lock is None:
            broken = self._broken.get(vehicle_id, {}).get(lock_id)
            if broken is not None and broken.lock.user_id == who.user_id:
                raise self._told(vehicle_id, broken)
            raise NotFound(f"lock {lock_id} does not exist on vehicle {vehicle_id}")
        if lock.user_id != who.user_id:
            raise Forbidden(
                f"lock {lock_id} is held by {lock.username}; only its holder can {doing} it"
                + (" (an admin can release it)" if doing == "release" else "")
            )
        return lock


def _withdrawal(lock: Lock) -> Cancellation:
    """How a command ``lock`` withdrew ends: cancelled by the holder, saying why."""
    return Cancellation(
        Actor(user_id=lock.user_id, username=lock.username, client_address=None),
        f"{LOCK_WITHDRAWAL}{scope_text(lock.vehicle_id, lock.ecu_address)} was locked by"
        f" {lock.username} until {lock.expires_at}",
        FailureCode.LOCKED_OUT,
    )


def _lock_broken(broken: _Broken) -> LockBroken:
    lock = broken.lock
    every = f", with every lock of vehicle {lock.vehicle_id}" if broken.batch else ""
    return LockBroken(
        f"your lock {lock.lock_id} on {scope_text(lock.vehicle_id, lock.ecu_address)}"
        f" was broken by {broken.by}{every}"
    )
