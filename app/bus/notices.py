"""What one node tells every other: broadcast notices, a msgspec tagged union (``Notice``).

A node applies its own change at once, where it happens, and broadcasts the notice; the
others apply it when it arrives. A bus never hands a node its own notice back, so each
is applied once on every node.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Notice(msgspec.Struct, frozen=True, kw_only=True, tag_field="notice"):
    """Base of the notices: immutable, built by keyword, tagged by ``notice``."""


class SessionRevoked(Notice, frozen=True, kw_only=True, tag="session_revoked"):
    """A session ended (logout, a reused refresh token): its tokens are refused and its
    response streams closed (1008) on every node."""

    session_id: str


class UserRevoked(Notice, frozen=True, kw_only=True, tag="user_revoked"):
    """A user's access ended (disabled, deleted, password changed or reset): every
    session of theirs, as ``SessionRevoked``, and their locks released."""

    user_id: str


LockChange = Literal["taken", "extended", "released", "broken"]


class LockChanged(Notice, frozen=True, kw_only=True, tag="lock_changed"):
    """A SOVD lock was taken, extended, released or broken on the node that sent it.
    ``ecu_address`` None: the whole vehicle; ``user_id`` and ``username``: the holder;
    ``expires_at``: as the lock says it."""

    change: LockChange
    vehicle_id: str
    lock_id: str
    ecu_address: str | None
    component: str | None = None
    user_id: str
    username: str
    expires_at: str


DescriptionChange = Literal["added", "removed"]


class DescriptionsChanged(Notice, frozen=True, kw_only=True, tag="descriptions_changed"):
    """An ECU description file was added to or removed from the shared library (the
    database) through the node that sent it: the others bring their copies in line
    (``app.services.description_sync``). ``sha256``: the file's."""

    change: DescriptionChange
    name: str
    sha256: str


AnyNotice = SessionRevoked | UserRevoked | LockChanged | DescriptionsChanged
