"""Events about one command, as published on the bus and sent on the response stream.

"Terminal" has one definition, ``CommandStatus.is_terminal``: an event is terminal when
it carries a terminal status (``completed`` in a status event; every error event).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from app.vehicles import history
from app.vehicles.connector import DtcRecord, Negative
from app.vocabulary import CommandStatus, FailureCode


@dataclass(frozen=True, slots=True)
class StatusEvent:
    """The command started (``in_progress``) or completed."""

    command_id: str
    status: CommandStatus
    at: str

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": "status",
            "command_id": self.command_id,
            "status": self.status,
            "at": self.at,
        }


@dataclass(frozen=True, slots=True)
class ResponseEvent:
    """One stored chunk of the vehicle's answer. Published live, it carries the
    connector's typed reading beside the stored payload (``app.vehicles.connector.Chunk``:
    ``negative``, ``raw``, ``dtc``), which services use instead of re-reading the
    payload; replayed from the store (``replayed``), the same fields read back from the
    stored form (``app.vehicles.history``). The wire form (``as_dict``) is the stored
    one either way."""

    command_id: str
    sequence_number: int
    is_final: bool
    response_payload: dict[str, Any]
    received_at: str
    negative: Negative | None = None
    raw: bytes = b""
    dtc: DtcRecord | None = None

    @classmethod
    def replayed(
        cls,
        command_id: str,
        sequence_number: int,
        is_final: bool,
        response_payload: dict[str, Any],
        received_at: str,
    ) -> ResponseEvent:
        """A stored chunk as an event, its typed fields read back from the stored form."""
        read = history.reading(response_payload)
        return cls(
            command_id,
            sequence_number,
            is_final,
            response_payload,
            received_at,
            negative=read.negative,
            raw=read.raw,
            dtc=read.dtc,
        )

    @property
    def is_terminal(self) -> bool:
        return False  # a chunk carries no status; the terminal event follows the last one

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": "response",
            "command_id": self.command_id,
            "sequence_number": self.sequence_number,
            "is_final": self.is_final,
            "response_payload": self.response_payload,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class ErrorEvent:
    """The command ended ``failed``, ``timeout`` or ``cancelled``."""

    command_id: str
    status: CommandStatus
    error_code: FailureCode | None
    error_message: str
    at: str

    @property
    def is_terminal(self) -> bool:
        return self.status.is_terminal

    def as_dict(self) -> dict[str, Any]:
        return {
            "event": "error",
            "command_id": self.command_id,
            "status": self.status,
            "error_code": self.error_code or "",
            "error_message": self.error_message,
            "at": self.at,
        }


Event = StatusEvent | ResponseEvent | ErrorEvent


def encode(event: Event) -> str:
    return json.dumps(event.as_dict(), separators=(",", ":"))


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
        return StatusEvent(command_id, status, at)
    return ErrorEvent(command_id, status, error_code, error_message or "", at)
