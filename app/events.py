"""Events about one command, as published on the bus and sent on the response stream:
one msgspec tagged union (``Event``), its ``event`` field naming the member.

A ``ResponseChunk`` is both the stored chunk of a vehicle's answer (``app.store``), the
item of the answer's pages (``app.api.commands`` shows it without its ``command_id``)
and the ``response`` event. Its typed reading (``negative``, ``raw``, ``dtc``) is
internal: the services use it, the store keeps the payload only and the stream never
sends it (``encode`` sends the ``shown`` form).

"Terminal" has one definition, ``CommandStatus.is_terminal``: an event is terminal when
it carries a terminal status (``completed`` in a status event; every error event).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec

from app.models import INTERNAL, show, shown
from app.vehicles import history
from app.vehicles.connector import DtcRecord, Negative
from app.vocabulary import CommandStatus, FailureCode


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="event"):
    """Base of the events: immutable, built by keyword, tagged by ``event``."""

    command_id: str

    @property
    def is_terminal(self) -> bool:
        raise NotImplementedError


class StatusEvent(Event, frozen=True, kw_only=True, tag="status"):
    """The command started (``in_progress``) or completed."""

    status: CommandStatus
    at: str

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


class ResponseChunk(Event, frozen=True, kw_only=True, tag="response"):
    """One stored chunk of the vehicle's answer. Published live, it carries the
    connector's typed reading beside the stored payload (``app.vehicles.connector.Chunk``:
    ``negative``, ``raw``, ``dtc``), which services use instead of re-reading the
    payload; replayed from the store (``read_back``), the same fields read back from the
    stored form (``app.vehicles.history``). What is sent and stored is the payload."""

    sequence_number: Annotated[int, msgspec.Meta(ge=1)]
    response_payload: dict[str, Any]
    is_final: bool
    received_at: str
    negative: Annotated[Negative | None, INTERNAL] = None
    raw: Annotated[bytes, INTERNAL] = b""
    dtc: Annotated[DtcRecord | None, INTERNAL] = None

    @classmethod
    def replayed(
        cls,
        command_id: str,
        sequence_number: int,
        is_final: bool,
        response_payload: dict[str, Any],
        received_at: str,
    ) -> ResponseChunk:
        """A stored chunk as an event, its typed fields read back from the stored form."""
        read = history.reading(response_payload)
        return cls(
            command_id=command_id,
            sequence_number=sequence_number,
            is_final=is_final,
            response_payload=response_payload,
            received_at=received_at,
            negative=read.negative,
            raw=read.raw,
            dtc=read.dtc,
        )

    def read_back(self) -> ResponseChunk:
        """This chunk (as read from the store) with its typed fields read back."""
        read = history.reading(self.response_payload)
        return msgspec.structs.replace(self, negative=read.negative, raw=read.raw, dtc=read.dtc)

    @property
    def is_terminal(self) -> bool:
        return False  # a chunk carries no status; the terminal event follows the last one


# The name the services use for a chunk on the bus: the same type.
ResponseEvent = ResponseChunk


class ErrorEvent(Event, frozen=True, kw_only=True, tag="error"):
    """The command ended ``failed``, ``timeout`` or ``cancelled``."""

    status: CommandStatus
    error_code: FailureCode | Literal[""]  # "": the command ended without one
    error_message: str
    at: str

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal


AnyEvent = StatusEvent | ResponseChunk | ErrorEvent

# The response frame as the stream sends it: the chunk without its typed reading.
RESPONSE_FRAME: Final = shown(ResponseChunk, base=msgspec.Struct, tagged=True)
# The frames of the stream, by their ``event`` tag (the OpenAPI document lists them).
FRAMES: Final[tuple[type[msgspec.Struct], ...]] = (StatusEvent, RESPONSE_FRAME, ErrorEvent)

_encode = msgspec.json.Encoder().encode


def encode(event: Event) -> str:
    """The event's text frame."""
    if isinstance(event, ResponseChunk):
        return _encode(show(event, RESPONSE_FRAME)).decode()
    return _encode(event).decode()


def terminal_event(
    command_id: str,
    status: CommandStatus,
    error_code: FailureCode | None,
    error_message: str | None,
    at: str,
) -> StatusEvent | ErrorEvent:
    """The event that ends a command's stream, for a terminal ``status``."""
    if not status.is_terminal:
        raise ValueError(f"{status} is not a terminal status")
    if status is CommandStatus.COMPLETED:
        return StatusEvent(command_id=command_id, status=status, at=at)
    return ErrorEvent(
        command_id=command_id,
        status=status,
        error_code=error_code or "",
        error_message=error_message or "",
        at=at,
    )
