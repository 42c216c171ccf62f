"""The identified ECU variant of each bound ECU (issue #20 item 3), kept in memory.

An ECU bound to a description (``ecus[].description``) is spoken to with the layer its
identification picks (``app.descriptions.variants``): on first use (the first DiagService
or SOVD call that needs the ECU's layer) the base variant's identification services
named by the ECU variants' ECU-VARIANT-PATTERNs run, each as a ``DiagService`` command
of the caller through the pipeline (so the caller's rate limit, another user's lock,
history and audit apply as to any command: the commands table has no system user), and
the answers pick the ECU variant, or the base variant (said so in the choice's reason).

Kept per (vehicle, ECU name, address, container) until the vehicle's DoIP link goes down
(lost, idle-closed, closed: ``VariantLinks`` wraps the connector's observer), so the next
use after a reconnect identifies again; an identification in flight when the link goes
down is not kept. A simulated vehicle identifies once per process. A description file
replaced (another container object) is identified again.

What is kept: a choice from answers (positive, or negative responses: the ECU said it
has no such identification). Not kept: a choice made while some identification service
got no answer at all (refused at submission, timed out, link down): that call uses the
base variant (and says why), and so does every use for ``RETRY_AFTER_S``; the first use
after that tries again (found in review: each read of an unreachable ECU's component
ran the identification again, every call waiting out its timeouts behind the ECU's lock).

Concurrent first uses of one ECU identify once: the others wait for it. The commands of
an identification encode with the base variant (a context variable marks them, so their
own ``prepare`` does not identify again).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from app.errors import ServiceError
from app.events import ErrorEvent, ResponseEvent, StatusEvent
from app.models import EcuRef, Principal, Vehicle
from app.vehicles.doip_observer import LinkDownReason, LinkObserver
from app.vocabulary import CommandName, CommandStatus

if TYPE_CHECKING:
    from app.descriptions.codec import LayerCodec
    from app.descriptions.variants import IdentificationPlan, VariantChoice
    from app.services.commands import CommandService

log = logging.getLogger(__name__)

# Waited beyond the queue wait and the command deadline for an identification command.
WAIT_MARGIN_S: Final = 5.0
# How long an identification that got no answer is not tried again.
RETRY_AFTER_S: Final = 30.0

_Key = tuple[str, str, str, str]  # vehicle id, ECU name, address, container (lower case)
# The ECU whose identification commands are being submitted in this context.
_IDENTIFYING: contextvars.ContextVar[_Key | None] = contextvars.ContextVar(
    "identifying_variant", default=None
)


@dataclass(frozen=True, slots=True)
class _Known:
    source: object  # the container object the choice was made on (identity compared)
    codec: LayerCodec
    choice: VariantChoice
    until: float = float("inf")  # monotonic; an incomplete one is tried again after it


def _key(vehicle: Vehicle, ref: EcuRef) -> _Key:
    return (vehicle.vehicle_id, ref.name, ref.address, (ref.description or "").lower())


class VariantService:
    """See the module docstring. ``attach(commands)`` once the command service exists
    (it needs the DiagService's codecs, which need this)."""

    def __init__(self, command_timeout_s: float, queue_wait_s: float) -> None:
        self._wait_s = queue_wait_s + command_timeout_s + WAIT_MARGIN_S
        self._commands: CommandService | None = None
        self._known: dict[_Key, _Known] = {}
        self._locks: dict[_Key, asyncio.Lock] = {}
        # Bumped when a vehicle's link goes down: identifications begun before are not kept.
        self._epochs: dict[str, int] = {}

    def attach(self, commands: CommandService) -> None:
        self._commands = commands

    # -- what is known ----------------------------------------------------------------

    def known(self, vehicle: Vehicle, ref: EcuRef, base: LayerCodec) -> VariantChoice | None:
        """The kept choice for the ECU (no I/O), None if it is not identified yet."""
        found = self._kept(_key(vehicle, ref), base)
        return None if found is None else found.choice

    def known_codec(self, vehicle: Vehicle, ref: EcuRef, base: LayerCodec) -> LayerCodec | None:
        """The kept identified codec of the ECU (no I/O), None if it is not identified yet."""
        found = self._kept(_key(vehicle, ref), base)
        return None if found is None else found.codec

    def forget(self, vehicle_id: str, ecu: str | None = None) -> None:
        """The vehicle's ECUs (or its ECU named ``ecu``) are identified again on next use
        (a SOVD ``PUT /components/{ecu}`` forcing detection: this, then ``layer_for``).
        An identification of the vehicle in flight now is not kept."""
        self._epochs[vehicle_id] = self._epochs.get(vehicle_id, 0) + 1
        for key in [k for k in self._known if k[0] == vehicle_id and ecu in (None, k[1])]:
            del self._known[key]

    def _kept(self, key: _Key, base: LayerCodec) -> _Known | None:
        found = self._known.get(key)
        if found is None or found.source is not base.source:
            return None
        if time.monotonic() >= found.until:  # an incomplete one, due to be tried again
            del self._known[key]
            return None
        return found

    # -- identification -----------------------------------------------------------------

    async def identify(
        self,
        vehicle: Vehicle,
        ref: EcuRef,
        base: LayerCodec,
        principal: Principal | None,
        client: str | None = None,
    ) -> tuple[LayerCodec, VariantChoice]:
        """The layer to speak to ``ref`` with and why: the kept choice, or one made now
        (identification commands submitted as ``principal``); the base codec (not kept)
        inside an identification and when there is no caller to run one as."""
        from app.descriptions.variants import PlanError, plan_of, unidentified

        key = _key(vehicle, ref)
        found = self._kept(key, base)
        if found is not None:
            return found.codec, found.choice
        if base.source is None:
            raise ServiceError(f"{ref.description}: the codec does not know its container")
        try:
            plan = plan_of(base.source)
        except PlanError as exc:
            raise ServiceError(str(exc)) from None
        if not plan.variants:  # nothing to identify: the base variant, kept
            codec, choice = self._choose(base, plan, {}, {})
            self._known[key] = _Known(base.source, codec, choice)
            return codec, choice
        if _IDENTIFYING.get() == key:
            return base, unidentified(plan, "being identified: the base variant's services")
        if principal is None or self._commands is None:
            return base, unidentified(plan, "not identified yet: the base variant")
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            found = self._kept(key, base)
            if found is not None:
                return found.codec, found.choice
            epoch = self._epochs.get(vehicle.vehicle_id, 0)
            token = _IDENTIFYING.set(key)
            try:
                answers, failures = await self._run(vehicle, ref, plan, principal, client)
            finally:
                _IDENTIFYING.reset(token)
            codec, choice = self._choose(base, plan, answers, failures)
            kept = not failures or choice.matched
            if self._epochs.get(vehicle.vehicle_id, 0) == epoch:
                until = float("inf") if kept else time.monotonic() + RETRY_AFTER_S
                self._known[key] = _Known(base.source, codec, choice, until)
            log.info(
                "ECU %s of vehicle %s: variant %s (%s)",
                ref.name,
                vehicle.vin,
                choice.name,
                choice.reason,
                extra={
                    "event": "variant_identified",
                    "vehicle_id": vehicle.vehicle_id,
                    "ecu": ref.name,
                    "variant": choice.name,
                    "matched": choice.matched,
                    "kept": kept,
                },
            )
            return codec, choice

    @staticmethod
    def _choose(
        base: LayerCodec,
        plan: IdentificationPlan,
        answers: dict[str, dict[str, Any] | None],
        failures: dict[str, str],
    ) -> tuple[LayerCodec, VariantChoice]:
        from dataclasses import replace

        from app.descriptions.variants import select

        choice = select(plan, answers)
        if failures and not choice.matched:
            unanswered = "; ".join(f"{name}: {why}" for name, why in failures.items())
            choice = replace(
                choice,
                reason=f"{choice.reason}; identification incomplete ({unanswered}),"
                f" tried again after {RETRY_AFTER_S:g} s",
                identified=False,
            )
        codec = base if choice.is_base else base.with_variant(choice.name)
        return codec, choice

    async def _run(
        self,
        vehicle: Vehicle,
        ref: EcuRef,
        plan: IdentificationPlan,
        principal: Principal,
        client: str | None,
    ) -> tuple[dict[str, dict[str, Any] | None], dict[str, str]]:
        """Each identification service as a DiagService command of ``principal``: its
        decoded positive answer, None for a negative one, or why it got no answer."""
        assert self._commands is not None
        answers: dict[str, dict[str, Any] | None] = {}
        failures: dict[str, str] = {}
        for service in plan.services:
            try:
                command = await self._commands.submit(
                    principal,
                    vehicle.vehicle_id,
                    CommandName.DIAG_SERVICE,
                    {"ecu": ref.name, "service": service, "params": {}},
                    client,
                )
                status, why, chunks = await self._wait(principal, command.command_id)
            except ServiceError as exc:
                failures[service] = exc.message
                continue
            except TimeoutError:
                failures[service] = "no answer in time"
                continue
            last = chunks[-1] if chunks else None
            parameters = last.response_payload.get("parameters") if last is not None else None
            if status is CommandStatus.COMPLETED and isinstance(parameters, dict):
                answers[service] = parameters
            elif last is not None and last.negative is not None:
                answers[service] = None  # the ECU answered: not this identification
            else:
                failures[service] = why or f"command {command.command_id} ended {status.value}"
        return answers, failures

    async def _wait(
        self, principal: Principal, command_id: str
    ) -> tuple[CommandStatus, str | None, list[ResponseEvent]]:
        """The command's end (status, error message) and its answer's chunks, typed."""
        assert self._commands is not None
        chunks: list[ResponseEvent] = []
        status = CommandStatus.PENDING
        why: str | None = None
        async with asyncio.timeout(self._wait_s):
            async with self._commands.follow(principal, command_id) as events:
                async for event in events:
                    if isinstance(event, ResponseEvent):
                        chunks.append(event)
                    elif isinstance(event, StatusEvent):
                        status = event.status
                    elif isinstance(event, ErrorEvent):
                        status, why = event.status, event.error_message
        return status, why, chunks


class VariantLinks:
    """The connector's ``LinkObserver``: ``inner``'s, and a link going down makes the
    vehicle's ECUs identified again on next use."""

    def __init__(self, inner: LinkObserver, variants: VariantService) -> None:
        self._inner = inner
        self._variants = variants

    def link_up(self, vehicle_id: str, at: str) -> None:
        self._inner.link_up(vehicle_id, at)

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None:
        self._variants.forget(vehicle_id)
        self._inner.link_down(vehicle_id, reason, at)

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None:
        self._inner.connect_failed(vehicle_id, reason, at)

    def vehicle_seen(self, vehicle_id: str, at: str) -> None:
        self._inner.vehicle_seen(vehicle_id, at)

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        self._inner.uds_exchange(vehicle_id, service, duration_s, outcome)
