"""The running service's parts, built once in the app's lifespan and handed to handlers."""

from __future__ import annotations

from dataclasses import dataclass

from app.bus import Bus
from app.config import Config
from app.services.audit import AuditService
from app.services.auth import AuthService
from app.services.commands import CommandService
from app.services.descriptions import DescriptionLibrary
from app.services.diag_services import DiagServices
from app.services.lanes import LaneOwnership
from app.services.lock_desk import LockDesk
from app.services.locks import LockService
from app.services.pipeline import Pipeline
from app.services.sovd.service import Sovd
from app.services.variants import VariantService
from app.services.vehicles import VehicleService
from app.store.engine import Engine
from app.telemetry import Telemetry


@dataclass(frozen=True, slots=True)
class Services:
    config: Config
    db: Engine
    bus: Bus
    pipeline: Pipeline
    auth: AuthService
    vehicles: VehicleService
    commands: CommandService
    audit: AuditService
    telemetry: Telemetry
    locks: LockService  # this node's locks
    # Where the API's lock calls go: this node's locks, or the lane owner's (a cluster).
    lock_desk: LockDesk
    sovd: Sovd
    descriptions: DescriptionLibrary
    diag: DiagServices  # the services of ECUs bound to a description (DiagService)
    variants: VariantService  # their identified ECU variants (diag.layer_for)
    # A cluster (PostgreSQL and NATS): the vehicles' lanes this node runs; else None.
    lanes: LaneOwnership | None = None
