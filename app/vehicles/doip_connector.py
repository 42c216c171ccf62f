"""Reach real ECUs: UDS (ISO 14229-1) over DoIP (ISO 13400-2) behind the Connector interface.

Each command is its conversation of ``app.vehicles.uds_commands`` (the same the
simulator runs against its emulated ECUs, so the chunks are the same), sent to the ECU
named by ``ecuAddress`` through the vehicle's DoIP entity (its gateway) on the vehicle's
link (``app.vehicles.doip_link``: threads, lifecycle, timing). The link is the
conversation's channel: it sends each request, honours 0x78 response pending, and keeps
a non-default session alive with TesterPresent.

Links: opened on first use, or kept up for always-on vehicles (``keep_up``); a watch
(``start``) notices idle links the vehicle closed and reconnects the always-on ones
within the backoff; ``disconnect`` drops a link whose target changed.

A negative response or a DoIP negative acknowledgement is the final chunk (see
``uds_conversation``). Every request carries the command's deadline down to the wire: one
not sent by then is dropped, and no answer is waited for past it. An ECU that does not
answer in time raises ``VehicleNotResponding`` at once (P2, or P2* after a 0x78). A
refused connection, a
denied routing activation or a link lost mid-answer raise ``VehicleUnreachable``; bytes
that do not decode raise ``app.catalogue.InvalidResponse``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.vehicles import uds_commands, uds_conversation
from app.vehicles.connector import Chunk, Connector, DiagnosticRequest, VehicleUnreachable
from app.vehicles.doip_jobs import Exchange
from app.vehicles.doip_link import Link, LinkState
from app.vehicles.doip_observer import LinkDownReason, LinkObserver, NoLinkObserver
from app.vehicles.doip_settings import DoipSettings, DoipTarget, Resolver

log = logging.getLogger(__name__)

__all__ = [
    "DoipConnector",
    "DoipSettings",
    "DoipTarget",
    "LinkDownReason",
    "LinkObserver",
    "LinkState",
    "NoLinkObserver",
    "Resolver",
]


@dataclass(frozen=True, slots=True)
class _Bounded:
    """The link as one command's channel: no request of it is sent, nor waited for,
    past the command's deadline."""

    link: Link
    until: float | None

    async def exchange(self, ecu: int, request: bytes) -> Exchange:
        return await self.link.exchange(ecu, request, self.until)

    def session_changed(self, ecu: int, session: int) -> None:
        self.link.session_changed(ecu, session)


class DoipConnector:
    """The ``Connector`` for vehicles reached over DoIP (see the module docstring)."""

    def __init__(
        self,
        resolve: Resolver,
        settings: DoipSettings | None = None,
        observer: LinkObserver | None = None,
    ) -> None:
        self._resolve = resolve
        self._settings = settings or DoipSettings()
        self._observer: LinkObserver = observer or NoLinkObserver()
        self._links: dict[str, Link] = {}
        self._always_on: set[str] = set()
        self._watch: asyncio.Task[None] | None = None

    def link_state(self, vehicle_id: str) -> LinkState:
        link = self._links.get(vehicle_id)
        if link is None:
            return LinkState(False, None, {})
        return link.state()

    def jobs(self, vehicle_id: str) -> int:
        """Requests (and link chores) on the vehicle's worker, running or waiting."""
        link = self._links.get(vehicle_id)
        return 0 if link is None else link.jobs

    @property
    def threads(self) -> int:
        """Worker threads alive or about to end: at most one per connected vehicle."""
        return sum(link.has_thread for link in self._links.values())

    async def aclose(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        self._always_on.clear()
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links))

    # -- links kept up, links watched ----------------------------------------------------

    def start(self) -> None:
        """Watch the links every ``tester_present_s``: an idle link the vehicle closed is
        marked down then (not at the next command), and the always-on vehicles are
        (re)connected, within the backoff."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_links(), name="doip-watch")

    def keep_up(self, vehicle_id: str, on: bool) -> None:
        """Keep the vehicle connected (connect now, reconnect after a loss, never close it
        for idleness), or stop doing so."""
        if on:
            self._always_on.add(vehicle_id)
        else:
            self._always_on.discard(vehicle_id)
        link = self._links.get(vehicle_id)
        if link is not None:
            link.always_on = on

    async def connect(self, vehicle_id: str) -> bool:
        """Open the vehicle's link now; False if it cannot be reached (or is in backoff)."""
        try:
            link = await self._link(vehicle_id)
        except VehicleUnreachable:
            return False
        return link.up or await link.connect()

    async def check_links(self) -> None:
        """One round of the watch (see ``start``)."""
        for link in list(self._links.values()):
            if link.up:
                await link.probe()
        for vehicle_id in sorted(self._always_on):
            kept = self._links.get(vehicle_id)
            if kept is None or not kept.up:
                await self.connect(vehicle_id)

    async def _watch_links(self) -> None:
        # The first round at once: the always-on vehicles connect at start.
        while True:
            try:
                await self.check_links()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad round (a store read failing, ...) must not end the watch.
                log.exception("watching the DoIP links failed", extra={"event": "doip_watch_error"})
            await asyncio.sleep(self._settings.tester_present_s)

    async def disconnect(self, vehicle_id: str) -> None:
        """Close a vehicle's link now (its target changed, or it was removed)."""
        link = self._links.pop(vehicle_id, None)
        if link is not None:
            await link.close()

    async def _link(self, vehicle_id: str) -> Link:
        link = self._links.get(vehicle_id)
        if link is None:
            link = self._links[vehicle_id] = Link(vehicle_id, self._settings, self._observer)
            link.always_on = vehicle_id in self._always_on
        if not link.up:
            link.check_backoff()
            target = await self._resolve(vehicle_id)
            if target is None:
                raise VehicleUnreachable(f"vehicle {vehicle_id} has no DoIP target configured")
            link.set_target(target)
        return link

    async def execute(self, request: DiagnosticRequest) -> AsyncGenerator[Chunk, None]:
        talk = uds_commands.conversation(
            request.command_name,
            request.command_params,
            uds_conversation.ConversationSettings(
                poll_s=self._settings.routine_poll_s, max_chunks=request.max_chunks
            ),
            request.described,
        )
        link = await self._link(request.vehicle_id)
        link.busy += 1
        try:
            # aclosing: an early close reaches the conversation now (a routine to stop).
            async with aclosing(talk(_Bounded(link, request.deadline))) as chunks:
                async for chunk in chunks:
                    yield chunk
        finally:
            link.busy -= 1
            link.touch()


if TYPE_CHECKING:

    def _is_a_connector(connector: DoipConnector) -> Connector:
        return connector  # mypy checks DoipConnector against the Connector protocol
