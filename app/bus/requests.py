"""Requests between nodes (``Requests``): one node asks the node serving a subject and
waits for its answer (NATS request/reply). Only the NATS bus has them (``nats_requests``);
the in-process bus has no other node to ask (``Bus.requests()`` is None). This module
imports no NATS client: a node without SOVD_BUS_URL never loads it.

A subject is served by at most one node at a time in this service's use of it (the owner
of a vehicle's lane, ``wire.lane_subject``); asking a subject nobody serves fails at once
(``NoResponder``: NATS says so), asking one whose server does not answer in time fails
with ``NoAnswer``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Handler = Callable[[bytes], Awaitable[bytes]]


class NoResponder(Exception):
    """No node serves the subject now."""


class NoAnswer(Exception):
    """The node serving the subject did not answer in time, or the bus is unreachable."""


class Served(Protocol):
    async def stop(self) -> None:
        """Stop serving the subject (requests then find no responder here)."""


class Requests(Protocol):
    async def serve(self, subject: str, handler: Handler) -> Served:
        """Answer requests on ``subject`` with ``handler`` until ``stop``; returns once the
        server knows (a request sent afterwards reaches this node)."""

    async def request(self, subject: str, payload: bytes, timeout_s: float) -> bytes:
        """The answer of the node serving ``subject``; NoResponder or NoAnswer."""
