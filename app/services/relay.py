"""What this node tells the others over the bus, and what it does with what they tell it.

Revocations: a session or user revoked here (logout, a reused refresh token, disable,
delete, a password change or reset) is broadcast; another node hearing it forgets the
tokens in its principal cache and tells its own listeners, so its response streams of
that session or user close with 1008 at once, its locks of that user go and its session
expiries are cancelled, as on the node where it happened.

Lock changes: every lock taken, extended, released or broken here is broadcast; a lock
taken elsewhere withdraws the queued commands it covers on this node too (as one taken
here does). The locks themselves are decided by the vehicle's lane owner
(``app.services.lock_desk``), so the other changes are heard and only logged at DEBUG.

The relay is one of the auth's revocation listeners. Applying another node's revocation
tells the same listeners, this one among them: ``_applying`` keeps it from broadcasting
what it only heard (the calls are synchronous, so the flag covers exactly that one).
With the in-process bus a broadcast goes nowhere and nothing is ever heard. Changes to
the ECU description library have a listener of their own (``app.services.description_sync``).
"""

from __future__ import annotations

import logging

from app.bus import Bus, LockChange, LockChanged, Notice, SessionRevoked, UserRevoked
from app.services.auth import AuthService
from app.services.lock_scope import Lock
from app.services.locks import LockService

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, bus: Bus, auth: AuthService, locks: LockService) -> None:
        self._bus = bus
        self._auth = auth
        self._locks = locks
        self._applying = False
        auth.on_revocation(self)
        locks.on_change = self.lock_changed
        bus.on_notice(self.heard)

    # The auth's revocation listener: this node's revocations go to the others.

    def session_revoked(self, session_id: str) -> None:
        if not self._applying:
            self._bus.broadcast(SessionRevoked(session_id=session_id))

    def user_revoked(self, user_id: str) -> None:
        if not self._applying:
            self._bus.broadcast(UserRevoked(user_id=user_id))

    # The locks' listener.

    def lock_changed(self, change: LockChange, lock: Lock) -> None:
        self._bus.broadcast(
            LockChanged(
                change=change,
                vehicle_id=lock.vehicle_id,
                lock_id=lock.lock_id,
                ecu_address=lock.ecu_address,
                component=lock.component,
                user_id=lock.user_id,
                username=lock.username,
                expires_at=lock.expires_at,
            )
        )

    # What the other nodes tell this one.

    def heard(self, notice: Notice) -> None:
        self._applying = True
        try:
            if isinstance(notice, SessionRevoked):
                self._auth.revoked_elsewhere(session_id=notice.session_id)
            elif isinstance(notice, UserRevoked):
                self._auth.revoked_elsewhere(user_id=notice.user_id)
            elif isinstance(notice, LockChanged):
                self._lock_changed_elsewhere(notice)
        finally:
            self._applying = False

    def _lock_changed_elsewhere(self, notice: LockChanged) -> None:
        log.debug(
            "lock %s %s on another node",
            notice.lock_id,
            notice.change,
            extra={"event": "lock_elsewhere", "vehicle_id": notice.vehicle_id},
        )
        if notice.change != "taken":
            return
        lock = Lock(
            lock_id=notice.lock_id,
            vehicle_id=notice.vehicle_id,
            ecu_address=notice.ecu_address,
            component=notice.component,
            user_id=notice.user_id,
            username=notice.username,
            expires_at_monotonic=0.0,  # not kept here: only its scope and holder count
            expires_at=notice.expires_at,
        )
        self._locks.taken_elsewhere(lock)
