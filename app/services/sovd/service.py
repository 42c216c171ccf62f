"""The SOVD tree's services, built once and handed to the handlers together."""

from __future__ import annotations

from dataclasses import dataclass

from app.clock import Clock
from app.services.commands import CommandService
from app.services.diag_services import DiagServices
from app.services.locks import LockService
from app.services.sovd.calls import VehicleCalls
from app.services.sovd.data import Data
from app.services.sovd.described import Described
from app.services.sovd.described_calls import DescribedCalls
from app.services.sovd.entities import Entities
from app.services.sovd.faults import Faults
from app.services.sovd.modes import Modes
from app.services.sovd.operations import Executions
from app.services.vehicles import VehicleService


@dataclass(frozen=True, slots=True)
class Sovd:
    entities: Entities
    calls: VehicleCalls
    faults: Faults
    data: Data
    modes: Modes
    described_calls: DescribedCalls  # a bound ECU's layer, preconditions, sending
    described: Described  # the tree of ECUs bound to a description
    executions: Executions  # their operations' asynchronous executions

    @classmethod
    def build(
        cls,
        vehicles: VehicleService,
        commands: CommandService,
        command_timeout_s: float,
        queue_wait_s: float,
        diag: DiagServices,
        clock: Clock | None = None,
    ) -> Sovd:
        calls = VehicleCalls(commands, command_timeout_s, queue_wait_s)
        described_calls = DescribedCalls(calls, commands, diag, clock)
        return cls(
            entities=Entities(vehicles),
            calls=calls,
            faults=Faults(calls),
            data=Data(calls),
            modes=Modes(calls, commands),
            described_calls=described_calls,
            described=Described(described_calls),
            executions=Executions(described_calls, commands),
        )

    async def aclose(self) -> None:
        await self.modes.aclose()


@dataclass(frozen=True, slots=True)
class AccessEnded:
    """What goes when a user's access ends (disabled, deleted, password reset): their
    locks (released) and their pending session expiries (cancelled). Registered with
    ``AuthService.on_revocation``."""

    locks: LockService
    modes: Modes

    def session_revoked(self, session_id: str) -> None:
        pass  # locks belong to the user, not to one session

    def user_revoked(self, user_id: str) -> None:
        self.locks.release_all_of(user_id)
        self.modes.cancel_all_of(user_id)
