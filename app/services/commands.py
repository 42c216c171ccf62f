"""Commands: submission, cancellation, history and visibility.

Visibility: an engineer sees only their own commands; anyone else's is reported as
absent (404), never as forbidden, so ids cannot be probed. Admins see every command.

Cancelling (owner or admin) stops a queued or running command, which ends
``cancelled``; one that has ended is a 409. Disabling a user cancels all of theirs
unless the admin asks otherwise (``cancel_all_of``).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, NoReturn

from app import catalogue
from app.bus import Bus
from app.clock import Clock
from app.errors import (
    BadRequest,
    Conflict,
    NotFound,
    RateLimited,
    ServiceError,
    VehicleDisconnected,
)
from app.events import ResponseChunk
from app.models import Actor, Command, Principal, Vehicle
from app.services.descriptions import DescriptionLibrary
from app.services.diag_services import DiagServices
from app.services.follow import REPLAY_PAGE, Following, follow
from app.services.lanes import LaneRouter
from app.services.locks import LockService
from app.services.pipeline import Cancellation, Job, Pipeline
from app.services.shared_limits import SharedWindow
from app.services.throttle import SlidingWindow
from app.store.commands import CommandFilter, CommandStore
from app.store.vehicles import VehicleStore
from app.vehicles.connector import DescribedRequest, DiagnosticRequest
from app.vocabulary import CommandName, CommandStatus, Transport

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer

log = logging.getLogger(__name__)

# How long a cancel request waits for the command to be stopped and the stop stored.
CANCEL_WAIT_S: Final = 5.0


def _visible(principal: Principal, command: Command | None) -> bool:
    return command is not None and (principal.is_admin or command.user_id == principal.user_id)


def _rate_limited(limit: int, wait: int) -> NoReturn:
    raise RateLimited(
        f"at most {limit} commands per minute per user; try again in {wait} s",
        retry_after=wait,
    )


def _absent(command_id: str) -> NotFound:
    return NotFound(f"command {command_id} does not exist")


class CommandService:
    def __init__(
        self,
        store: CommandStore,
        vehicles: VehicleStore,
        pipeline: Pipeline,
        bus: Bus,
        rate: SlidingWindow | None = None,
        clock: Clock | None = None,
        *,
        locks: LockService | None = None,
        diag: DiagServices | None = None,
        descriptions: DescriptionLibrary | None = None,
        lanes: LaneRouter | None = None,
        shared_rate: SharedWindow | None = None,
    ) -> None:
        self._clock = clock or Clock()
        # A cluster: the rate counted over every node (app.services.shared_limits).
        self._shared_rate = shared_rate
        # A cluster: calls for a lane another node runs go to it (app.services.lanes).
        self._lanes = lanes
        if lanes is not None:
            lanes.attach(self._submit_here, self._cancel_here, self._withdraw_here)
        self._diag = diag  # DiagService: bound ECUs' descriptions encode and decode
        # A simulated vehicle's bound ECUs are emulated from their description's layer.
        self._descriptions = descriptions
        self._locks = locks  # another user's lock refuses state-changing commands
        self._bus = bus
        self._store = store
        self._vehicles = vehicles
        self._pipeline = pipeline
        self._rate = rate  # accepted submissions per user; None: unlimited

    async def submit(
        self,
        principal: Principal,
        vehicle_id: str,
        command_name: str,
        command_params: dict[str, Any],
        client: str | None,
        timeout_s: float | None = None,
    ) -> Command:
        # Checked and counted in one step, before anything is awaited, so submissions
        # that arrive together cannot all pass; every submission that passes counts.
        if self._rate is not None and self._rate.acquire(principal.user_id) is None:
            _rate_limited(self._rate.limit, self._rate.retry_after(principal.user_id) or 1)
        if self._shared_rate is not None:
            # One atomic statement in the shared database: the same on every node.
            wait = await self._shared_rate.acquire(principal.user_id)
            if wait is not None:
                _rate_limited(self._shared_rate.limit, wait)
        if self._lanes is not None:
            forwarded = await self._lanes.submit(
                principal, vehicle_id, command_name, command_params, client, timeout_s
            )
            if forwarded is not None:
                return forwarded
        return await self._submit_here(
            principal, vehicle_id, command_name, command_params, client, timeout_s
        )

    async def _submit_here(
        self,
        principal: Principal,
        vehicle_id: str,
        command_name: str,
        command_params: dict[str, Any],
        client: str | None,
        timeout_s: float | None = None,
    ) -> Command:
        """A submission to a lane this node runs (or to its only node)."""
        try:
            name, params = catalogue.validate(command_name, command_params)
        except catalogue.InvalidParams as exc:
            raise BadRequest(str(exc)) from None
        vehicle = await self._vehicles.get(vehicle_id)
        if vehicle is None:
            raise NotFound(f"vehicle {vehicle_id} does not exist")
        described: DescribedRequest | None = None
        if name is CommandName.DIAG_SERVICE:
            if self._diag is None:
                raise BadRequest("command_name DiagService: this service has no ECU descriptions")
            # Checked and encoded now: a refusal is a 400 before anything is stored.
            params, described = await self._diag.prepare(vehicle, params, principal, client)
        # (a DiagService's by the SID its check filled in)
        changes_state = catalogue.changes_state(name, params)
        if self._locks is not None and changes_state:
            self._locks.check(principal, vehicle_id, params.get("ecuAddress"))
        if vehicle.transport is Transport.SIMULATOR and vehicle.connection_status != "connected":
            raise VehicleDisconnected(f"vehicle {vehicle_id} is disconnected")
        # A DoIP vehicle's status is its link, which the command opens if it is down.
        described_ecus = await self._described_ecus(vehicle)
        self._pipeline.reserve(vehicle_id, principal.user_id)
        command = Command(
            command_id=str(uuid.uuid4()),
            vehicle_id=vehicle_id,
            user_id=principal.user_id,
            command_name=name,
            command_params=params,
            status=CommandStatus.PENDING,
            error_code=None,
            error_message=None,
            submitted_at=self._clock.timestamp(),
            completed_at=None,
        )
        try:
            await self._store.insert(
                command,
                Actor(
                    user_id=principal.user_id, username=principal.username, client_address=client
                ),
            )
        except BaseException:
            self._pipeline.release(vehicle_id, principal.user_id)
            raise
        request = DiagnosticRequest(
            command.command_id,
            vehicle.vehicle_id,
            vehicle.vin,
            vehicle.simulator_profile,
            name,
            params,
            vehicle.transport,
            ecus=tuple((ecu.name, int(ecu.address, 16)) for ecu in vehicle.ecus),
            described=described,
            described_ecus=described_ecus,
        )
        self._pipeline.enqueue(Job(command, request, self._clock.monotonic(), timeout_s))
        if self._locks is not None and changes_state:
            # Another user may have locked it while this was being stored: then it is
            # withdrawn now, as the lock withdrew what was queued then (never sent).
            self._locks.withdraw_if_locked(command)
        return command

    async def _described_ecus(self, vehicle: Vehicle) -> dict[int, DiagLayer]:
        """A simulated vehicle's bound ECUs, by address, with the layer of their
        description for the simulator to emulate them from (``DiagnosticRequest.
        described_ecus``): its identified ECU variant once known, else the base variant
        (``DiagServices.emulated_layer``). An ECU whose description is not loaded (yet)
        is left out: the simulator's demo or generic ECU answers for it meanwhile. Loads
        a file's odxtools database on its first use here, as a DiagService does."""
        if self._descriptions is None or vehicle.transport is not Transport.SIMULATOR:
            return {}
        layers: dict[int, DiagLayer] = {}
        for ref in vehicle.ecus:
            if ref.description is None:
                continue
            try:
                codec = await self._descriptions.codec(ref.description)
            except ServiceError as exc:
                log.warning(
                    "ECU %s of vehicle %s: description not usable, default ECU answers: %s",
                    ref.name,
                    vehicle.vin,
                    exc.message,
                    extra={"event": "simulated_description_unusable", "ecu": ref.name},
                )
                continue
            if codec is not None:
                # The identified ECU variant once known, the base variant before.
                layer = (
                    codec.layer
                    if self._diag is None
                    else self._diag.emulated_layer(vehicle, ref, codec)
                )
                layers[int(ref.address, 16)] = layer
        return layers

    async def get(self, principal: Principal, command_id: str) -> Command:
        command = await self._store.get(command_id)
        if command is None or not _visible(principal, command):
            raise _absent(command_id)
        return command

    async def cancel(
        self, principal: Principal, command_id: str, client: str | None
    ) -> tuple[Command, bool]:
        """Stop a queued or running command (owner or admin). Returns the command as now
        stored and whether its ``cancelled`` state is stored yet (False: the database
        refused the write, which is retried until it lands)."""
        if self._lanes is not None:
            command = await self.get(principal, command_id)
            if not command.is_terminal:
                forwarded = await self._lanes.cancel(
                    principal, command.vehicle_id, command_id, client
                )
                if forwarded is not None:
                    return forwarded
        return await self._cancel_here(principal, command_id, client)

    async def _cancel_here(
        self, principal: Principal, command_id: str, client: str | None
    ) -> tuple[Command, bool]:
        """A cancel of a command in a lane this node runs (or on its only node)."""
        command = await self.get(principal, command_id)
        if command.is_terminal:
            raise Conflict(f"command {command_id} has already ended ({command.status})")
        actor = Actor(user_id=principal.user_id, username=principal.username, client_address=client)
        outcome = self._pipeline.cancel(
            command_id, Cancellation(actor, f"cancelled by {principal.username}")
        )
        if outcome is None:
            raise Conflict(f"command {command_id} is already ending")
        try:
            async with asyncio.timeout(CANCEL_WAIT_S):
                stored = await asyncio.shield(outcome)
        except TimeoutError:
            stored = False
        return await self._store.get(command_id) or command, stored

    async def withdraw(self, principal: Principal, command_id: str, client: str | None) -> bool:
        """Take the caller's command out of its vehicle's queue if it has not started
        (it ends ``cancelled``, never sent; the end is stored, or being retried, when this
        returns); False if it has started or ended."""
        if self._lanes is not None:
            command = await self._store.get(command_id)
            if command is not None and not command.is_terminal:
                forwarded = await self._lanes.withdraw(
                    principal, command.vehicle_id, command_id, client
                )
                if forwarded is not None:
                    return forwarded
        return await self._withdraw_here(principal, command_id, client)

    async def _withdraw_here(
        self, principal: Principal, command_id: str, client: str | None
    ) -> bool:
        """A withdrawal from a lane this node runs (or on its only node)."""
        actor = Actor(user_id=principal.user_id, username=principal.username, client_address=client)
        reason = f"withdrawn unsent: {principal.username}'s call stopped waiting for its turn"
        outcome = self._pipeline.withdraw(command_id, Cancellation(actor, reason))
        if outcome is None:
            return False
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CANCEL_WAIT_S):
                await asyncio.shield(outcome)
        return True

    def cancel_all_of(self, user_id: str, username: str, actor: Actor) -> int:
        """Cancel every queued or running command of a user who was just disabled."""
        reason = f"cancelled: the account {username} was disabled by {actor.username}"
        return self._pipeline.cancel_user(user_id, Cancellation(actor, reason))

    async def responses(
        self, principal: Principal, command_id: str, after: int = 0, limit: int | None = None
    ) -> list[ResponseChunk]:
        """A page of a command's stored chunks: those after sequence number ``after``, at
        most ``limit``."""
        _, chunks = await self.snapshot(principal, command_id, after, limit)
        return chunks

    async def snapshot(
        self, principal: Principal, command_id: str, after: int, limit: int | None = None
    ) -> tuple[Command, list[ResponseChunk]]:
        """The command and its stored chunks after ``after`` (at most ``limit``), from one
        consistent read."""
        command, chunks = await self._store.snapshot(command_id, after, limit)
        if command is None or not _visible(principal, command):
            raise _absent(command_id)
        return command, chunks

    @asynccontextmanager
    async def follow(
        self, principal: Principal, command_id: str, since: int = 0
    ) -> AsyncIterator[Following]:
        """A command's answer for a live reader: the stored events (chunks after ``since``),
        then live ones, each exactly once, ending with the terminal event (see
        app.services.follow). Raises NotFound on entry for a command absent or not
        visible to ``principal``; iterating raises ``Overflowed`` if the reader fell too
        far behind. Unsubscribes when the block ends, however it ends::

            async with commands.follow(principal, command_id, since) as events:
                async for event in events:
                    ...
        """

        async def page(after: int) -> list[ResponseChunk]:
            return await self._store.responses(command_id, after, REPLAY_PAGE)

        async with follow(
            self._bus,
            command_id,
            since,
            lambda: self.snapshot(principal, command_id, since, REPLAY_PAGE),
            page,
        ) as following:
            yield following

    async def find_unrestricted(self, flt: CommandFilter) -> tuple[list[Command], int]:
        """Every user's commands: for checks the services make (is an operation running
        already?), never to show a caller."""
        return await self._store.find(flt)

    async def find(self, principal: Principal, flt: CommandFilter) -> tuple[list[Command], int]:
        if not principal.is_admin:
            if flt.user_id is not None and flt.user_id != principal.user_id:
                return [], 0
            flt = dataclasses.replace(flt, user_id=principal.user_id)
        return await self._store.find(flt)
