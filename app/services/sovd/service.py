"""The SOVD tree's services, built once and handed to the handlers together."""

from __future__ import annotations

from dataclasses import dataclass

from app.services.commands import CommandService
from app.services.sovd.calls import VehicleCalls
from app.services.sovd.data import Data
from app.services.sovd.entities import Entities
from app.services.sovd.faults import Faults
from app.services.sovd.modes import Modes
from app.services.sovd.operations import Operations
from app.services.vehicles import VehicleService

# A call waits this much longer than the command deadline, which ends any execution.
WAIT_MARGIN_S = 5.0


@dataclass(frozen=True, slots=True)
class Sovd:
    entities: Entities
    calls: VehicleCalls
    faults: Faults
    data: Data
    operations: Operations
    modes: Modes

    @classmethod
    def build(
        cls, vehicles: VehicleService, commands: CommandService, command_timeout_s: float
    ) -> Sovd:
        calls = VehicleCalls(commands, command_timeout_s + WAIT_MARGIN_S)
        return cls(
            entities=Entities(vehicles),
            calls=calls,
            faults=Faults(calls),
            data=Data(calls),
            operations=Operations(calls, commands),
            modes=Modes(calls),
        )

    async def aclose(self) -> None:
        await self.modes.aclose()
