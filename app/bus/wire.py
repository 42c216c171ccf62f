"""What travels on NATS: command events and notices as msgpack (msgspec), each in an
envelope naming the node that sent it, so a node skips its own messages (it delivered or
applied them locally already).

An event travels whole, with its typed reading (``ResponseChunk.negative``, ``raw``,
``dtc``), so a subscriber on another node gets the same event a local one does. An event
envelope without an event is a gap: the sender could not pass on some of the command's
events, so its subscribers elsewhere must start again from the store.
"""

from __future__ import annotations

from typing import Final

import msgspec

from app.bus.notices import AnyNotice, Notice
from app.events import ErrorEvent, Event, ResponseChunk, StatusEvent
from app.vocabulary import CommandStatus, FailureCode

SUBJECT_PREFIX: Final = "sovd"
NOTICES: Final = f"{SUBJECT_PREFIX}.notice"
# Nobody subscribes here: a request on it comes back "no responders" from the server
# itself, once it has read everything the connection sent before (``app.bus.nats_confirm``).
CONFIRM: Final = f"{SUBJECT_PREFIX}.confirm"


def command_subject(command_id: str) -> str:
    """The subject of one command's events."""
    return f"{SUBJECT_PREFIX}.cmd.{command_id}"


def lane_subject(vehicle_id: str) -> str:
    """The subject the owner of a vehicle's lane serves its submissions on."""
    return f"{SUBJECT_PREFIX}.lane.{vehicle_id}"


class _ErrorIn(msgspec.Struct, frozen=True, kw_only=True, tag_field="event", tag="error"):
    """``ErrorEvent`` as decoded: msgspec cannot decode its ``FailureCode | ""`` union."""

    command_id: str
    status: CommandStatus
    error_code: str
    error_message: str
    at: str

    def event(self) -> ErrorEvent:
        return ErrorEvent(
            command_id=self.command_id,
            status=self.status,
            error_code=FailureCode(self.error_code) if self.error_code else "",
            error_message=self.error_message,
            at=self.at,
        )


class _EventOut(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    event: Event | None


class _EventIn(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    event: StatusEvent | ResponseChunk | _ErrorIn | None


class _NoticeOut(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    notice: Notice


class _NoticeIn(msgspec.Struct, frozen=True, array_like=True):
    origin: str
    notice: AnyNotice


_encode = msgspec.msgpack.Encoder().encode
_decode_event = msgspec.msgpack.Decoder(_EventIn).decode
_decode_notice = msgspec.msgpack.Decoder(_NoticeIn).decode


def event_message(origin: str, event: Event | None) -> bytes:
    """An event's message (None: the gap marker)."""
    return _encode(_EventOut(origin, event))


def read_event(data: bytes) -> tuple[str, Event | None]:
    """The sender and the event (None: a gap) of an event message; ValueError if bad."""
    try:
        wire = _decode_event(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not an event message: {exc}") from None
    event = wire.event.event() if isinstance(wire.event, _ErrorIn) else wire.event
    return wire.origin, event


def notice_message(origin: str, notice: Notice) -> bytes:
    return _encode(_NoticeOut(origin, notice))


def read_notice(data: bytes) -> tuple[str, AnyNotice]:
    try:
        wire = _decode_notice(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a notice message: {exc}") from None
    return wire.origin, wire.notice
