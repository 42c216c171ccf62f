"""The service's records, as frozen dataclasses shared by the store, services and API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

Role = Literal["engineer", "admin"]
ROLES: Final = ("engineer", "admin")

CONNECTION_STATUSES: Final = ("connected", "disconnected")
SIMULATOR_PROFILES: Final = ("healthy", "flaky", "timeout", "unreachable", "malformed")

# A command stopped by its owner or an admin (POST .../cancel), or by disabling its user.
CANCELLED: Final = "cancelled"
COMMAND_STATUSES: Final = ("pending", "in_progress", "completed", "failed", "timeout", CANCELLED)
ACTIVE_STATUSES: Final = ("pending", "in_progress")
TERMINAL_STATUSES: Final = ("completed", "failed", "timeout", CANCELLED)


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    username: str
    role: Role
    disabled: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "username": self.username,
            "role": self.role,
            "disabled": self.disabled,
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is making a request: the user behind a valid access token and its session."""

    user_id: str
    username: str
    role: Role
    session_id: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class Vehicle:
    vehicle_id: str
    vin: str
    make: str
    model: str
    year: int
    connection_status: str
    simulator_profile: str
    last_seen_at: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "vehicle_id": self.vehicle_id,
            "vin": self.vin,
            "make": self.make,
            "model": self.model,
            "year": self.year,
            "connection_status": self.connection_status,
            "simulator_profile": self.simulator_profile,
            "last_seen_at": self.last_seen_at,
        }


@dataclass(frozen=True, slots=True)
class Command:
    command_id: str
    vehicle_id: str
    user_id: str
    command_name: str
    command_params: dict[str, Any]
    status: str
    error_code: str | None
    error_message: str | None
    submitted_at: str
    completed_at: str | None
    started_at: str | None = None  # internal: when execution began

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id,
            "vehicle_id": self.vehicle_id,
            "user_id": self.user_id,
            "command_name": self.command_name,
            "command_params": self.command_params,
            "status": self.status,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "submitted_at": self.submitted_at,
            "completed_at": self.completed_at,
        }


@dataclass(frozen=True, slots=True)
class ResponseChunk:
    command_id: str
    sequence_number: int
    response_payload: dict[str, Any]
    is_final: bool
    received_at: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence_number": self.sequence_number,
            "response_payload": self.response_payload,
            "is_final": self.is_final,
            "received_at": self.received_at,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: int
    at: str
    user_id: str | None
    username: str | None
    action: str
    entity_type: str | None
    entity_id: str | None
    details: dict[str, Any]
    client_address: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "audit_id": self.audit_id,
            "at": self.at,
            "user_id": self.user_id,
            "username": self.username,
            "action": self.action,
            "entity_type": self.entity_type,
            "entity_id": self.entity_id,
            "details": self.details,
            "client_address": self.client_address,
        }


@dataclass(frozen=True, slots=True)
class Actor:
    """Who caused a change, for the audit log."""

    user_id: str | None
    username: str | None
    client_address: str | None


SYSTEM_ACTOR: Final = Actor(user_id=None, username="system", client_address=None)
