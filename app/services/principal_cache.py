"""Recently verified access tokens, so a request does not re-check its token's signature
and session in the database every time.

Safe because every revocation reaches it: logout and a detected refresh-token reuse drop
the session's entries here in the same step that revokes it in the database, and with
other nodes on the bus (``SOVD_BUS_URL``) their revocations arrive as notices and are
dropped here the same way (``app.services.relay``). Entries also expire after
``max_age_s`` and never outlive the token's own ``exp`` (the bound if a notice is lost).

Listeners hear of every drop, so what outlives a request (an open response stream) can end
with its credentials: ``session_revoked`` means the session is over; ``user_revoked``
means the user was disabled or deleted, so every session of theirs is over.
"""

from __future__ import annotations

import logging
from typing import Protocol

from app.clock import Clock
from app.models import Principal

log = logging.getLogger(__name__)


class RevocationListener(Protocol):
    def session_revoked(self, session_id: str) -> None: ...

    def user_revoked(self, user_id: str) -> None: ...


class PrincipalCache:
    def __init__(
        self,
        max_entries: int = 4096,
        max_age_s: float = 30.0,
        clock: Clock | None = None,
    ) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._max_entries = max_entries
        self._max_age_s = max_age_s
        self._clock = clock or Clock()
        self._listeners: list[RevocationListener] = []

    def add_listener(self, listener: RevocationListener) -> None:
        self._listeners.append(listener)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        principal, valid_until = entry
        if self._clock.monotonic() >= valid_until:
            del self._entries[token]
            return None
        return principal

    def put(self, token: str, principal: Principal, expires_at_unix: float) -> None:
        now = self._clock.monotonic()
        remaining = expires_at_unix - self._clock.unix()
        if remaining <= 0:
            return
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[token] = (principal, now + min(self._max_age_s, remaining))

    def drop_session(self, session_id: str) -> None:
        for token in [t for t, (p, _) in self._entries.items() if p.session_id == session_id]:
            del self._entries[token]
        for listener in self._listeners:
            try:
                listener.session_revoked(session_id)
            except Exception:  # a listener's fault must not fail the logout
                log.exception("a revocation listener failed")

    def drop_user(self, user_id: str) -> None:
        for token in [t for t, (p, _) in self._entries.items() if p.user_id == user_id]:
            del self._entries[token]
        for listener in self._listeners:
            try:
                listener.user_revoked(user_id)
            except Exception:  # a listener's fault must not fail the change
                log.exception("a revocation listener failed")
