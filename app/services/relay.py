"""What this node tells the others over the bus, and what it does with what they tell it.

Revocations: a session or user revoked here (logout, a reused refresh token, disable,
delete, a password change or reset) is broadcast; another node hearing it forgets the
tokens in its principal cache and tells its own listeners, so its response streams of
that session or user close with 1008 at once, its locks of that user go and its session
expiries are cancelled, as on the node where it happened.

The relay is one of the auth's revocation listeners. Applying another node's revocation
tells the same listeners, this one among them: ``_applying`` keeps it from broadcasting
what it only heard (the calls are synchronous, so the flag covers exactly that one).
With the in-process bus a broadcast goes nowhere and nothing is ever heard.
"""

from __future__ import annotations

import logging

from app.bus import Bus, Notice, SessionRevoked, UserRevoked
from app.services.auth import AuthService

log = logging.getLogger(__name__)


class Relay:
    def __init__(self, bus: Bus, auth: AuthService) -> None:
        self._bus = bus
        self._auth = auth
        self._applying = False
        auth.on_revocation(self)
        bus.on_notice(self.heard)

    # The auth's revocation listener: this node's revocations go to the others.

    def session_revoked(self, session_id: str) -> None:
        if not self._applying:
            self._bus.broadcast(SessionRevoked(session_id=session_id))

    def user_revoked(self, user_id: str) -> None:
        if not self._applying:
            self._bus.broadcast(UserRevoked(user_id=user_id))

    # What the other nodes tell this one.

    def heard(self, notice: Notice) -> None:
        self._applying = True
        try:
            if isinstance(notice, SessionRevoked):
                self._auth.revoked_elsewhere(session_id=notice.session_id)
            elif isinstance(notice, UserRevoked):
                self._auth.revoked_elsewhere(user_id=notice.user_id)
        finally:
            self._applying = False
