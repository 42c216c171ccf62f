"""SOVD modes of a component: its diagnostic session (UDS 0x10, read back through DID
0xF186) and its security access state (UDS 0x27, shown only: this service never unlocks
an ECU, so it is ``locked``).

A session set with ``mode_expiration`` goes back to ``default`` when it expires: the
service switches it back with a command of the same user (in the history like any other).
If another user's lock refuses that command (or withdraws it from the lane), the expiry
ends with one warning line and the session is left to the ECU's own S3 timeout.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Final

from app.catalogue import SESSIONS
from app.errors import (
    BadRequest,
    InvalidResponseContent,
    LockBroken,
    MethodNotAllowed,
    NotFound,
    PreconditionNotFulfilled,
)
from app.services.commands import CommandService
from app.services.sovd.calls import VehicleCalls
from app.services.sovd.entities import Target
from app.store.commands import CommandFilter
from app.vehicles import uds
from app.vocabulary import CommandName

log = logging.getLogger(__name__)

SESSION: Final = "session"
SWITCH: Final = CommandName.DIAGNOSTIC_SESSION_CONTROL
DEFAULT_SESSION: Final = SESSIONS[0]
SECURITY: Final = "security"
SECURITY_STATE: Final = "locked"
MAX_EXPIRATION_S: Final = 24 * 3600


@dataclass(frozen=True, slots=True)
class ModeInfo:
    id: str
    name: str


MODES: Final = (
    ModeInfo(SESSION, "Diagnostic session (UDS 0x10)"),
    ModeInfo(SECURITY, "Security access (UDS 0x27), shown as state only"),
)


def mode(mode_id: str) -> ModeInfo:
    for found in MODES:
        if found.id == mode_id:
            return found
    raise NotFound(f"mode {mode_id[:32]} does not exist (modes: {', '.join(m.id for m in MODES)})")


class Modes:
    def __init__(self, calls: VehicleCalls, commands: CommandService) -> None:
        self._calls = calls
        self._commands = commands
        # (vehicle_id, ECU address) -> the task that ends an expiring session; and whose
        # it is (user_id), so it goes when its user's access ends.
        self._expiries: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._owners: dict[asyncio.Task[None], str] = {}

    async def read(self, at: Target, mode_id: str) -> tuple[str, str | None]:
        """The mode's value now, and the command that read it (None: no vehicle call)."""
        if mode(mode_id).id == SECURITY:
            return SECURITY_STATE, None
        did = uds.format_did(uds.ACTIVE_DIAGNOSTIC_SESSION)
        outcome = await self._calls.run(at, CommandName.READ_DATA_BY_ID, {"dataId": did})
        ecu = at.ecu
        self._calls.check(outcome, f"reading the session of {ecu.name}")
        value = outcome.last.get("value") if outcome.last else None
        if not isinstance(value, str):
            raise InvalidResponseContent(
                f"the ECU {ecu.name} answered its session without a name",
                command_id=outcome.command.command_id,
            )
        return value, outcome.command.command_id

    async def set(self, at: Target, mode_id: str, value: str, expiration_s: int | None) -> str:
        """Switch the session; returns the command's id."""
        if mode(mode_id).id == SECURITY:
            raise MethodNotAllowed(
                "mode security is shown as state only: this service does not unlock ECUs"
            )
        wanted = value.lower()
        if wanted not in SESSIONS:
            raise BadRequest(f"body.value: {value[:32]!r} is not a session ({', '.join(SESSIONS)})")
        if expiration_s is not None and wanted == "default":
            raise BadRequest("body.mode_expiration: the default session does not expire")
        outcome = await self._calls.run(at, SWITCH, {"session": wanted})
        self._calls.check(outcome, f"switching {at.ecu.name} to the {wanted} session")
        await self._expire_later(at, expiration_s, outcome.command.command_id)
        return outcome.command.command_id

    async def _expire_later(self, at: Target, expiration_s: int | None, switch: str) -> None:
        key = (at.vehicle.vehicle_id, at.ecu.address)
        previous = self._expiries.pop(key, None)
        if previous is not None:  # a new switch replaces the old expiry
            previous.cancel()
            await asyncio.gather(previous, return_exceptions=True)
        if expiration_s is None:
            return
        task = asyncio.create_task(
            self._expire(at, expiration_s, switch),
            name=f"session-expiry-{at.vehicle.vehicle_id}-{at.ecu.ecu_address}",
            # Its own context: the expiry is not part of the request that asked for it.
            context=contextvars.Context(),
        )
        self._expiries[key] = task
        self._owners[task] = at.who.user_id
        task.add_done_callback(lambda done: self._forget(key, done))

    def _forget(self, key: tuple[str, int], done: asyncio.Task[None]) -> None:
        self._owners.pop(done, None)
        if self._expiries.get(key) is done:
            del self._expiries[key]

    @property
    def pending_expiries(self) -> int:
        return len(self._expiries)

    def cancel_all_of(self, user_id: str) -> None:
        """A user's access ended: no command goes out in their name any more (the
        session stays as it is until someone changes it, or the ECU's S3 ends it)."""
        for task, owner in list(self._owners.items()):
            if owner == user_id:
                task.cancel()

    async def _expire(self, at: Target, expiration_s: int, switch: str) -> None:
        try:
            await asyncio.sleep(expiration_s)
            if not await self._still_current(at, switch):
                return  # the session was changed since (here or on /api/v1/commands)
            outcome = await self._calls.run(at, SWITCH, {"session": DEFAULT_SESSION})
            self._calls.check(outcome, f"ending the session of {at.ecu.name}")
        except asyncio.CancelledError:
            raise
        except (PreconditionNotFulfilled, LockBroken) as refused:
            # Another user's lock (or an admin breaking the user's own) stands in the way:
            # expected, not a fault of the service. The ECU's S3 timer ends the session.
            log.warning(
                "the expiring session of %s on vehicle %s was not switched back to default: %s",
                at.ecu.name,
                at.vehicle.vin,
                refused.message,
                extra={
                    "event": "session_expiry_refused",
                    "vehicle_id": at.vehicle.vehicle_id,
                    "ecu_address": at.ecu.ecu_address,
                },
            )
        except Exception:
            log.exception(
                "an expiring session could not be ended",
                extra={"event": "session_expiry_failed", "vehicle_id": at.vehicle.vehicle_id},
            )

    async def _still_current(self, at: Target, switch: str) -> bool:
        """Whether ``switch`` is still the newest session change of the ECU."""
        newest, _ = await self._commands.find_unrestricted(
            CommandFilter(
                vehicle_id=at.vehicle.vehicle_id,
                command_name=SWITCH,
                params=(("ecuAddress", at.ecu.ecu_address),),
                limit=1,
            )
        )
        return bool(newest) and newest[0].command_id == switch

    async def aclose(self) -> None:
        tasks = list(self._expiries.values())
        self._expiries.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
