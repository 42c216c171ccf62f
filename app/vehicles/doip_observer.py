"""What a DoIP link tells the service, on the event loop thread: up, down (and why), a
connection refused, the vehicle seen, each UDS exchange with its outcome. The connector's
links (``doip_link.Link``) call a ``LinkObserver``; the service
(``app.services.vehicle_links``) is one.
"""

from __future__ import annotations

from typing import Final, Literal, Protocol

# Why a link went down (``LinkObserver.link_down``).
LinkDownReason = Literal["idle", "lost", "no-answer", "closed"]

# What became of one UDS request (``LinkObserver.uds_exchange``); a metric label.
UDS_OUTCOMES: Final = ("positive", "negative", "invalid", "nack", "no-answer", "lost")


class LinkObserver(Protocol):
    """What the connector tells about its links, on the event loop thread. Timestamps
    are in ``app.clock`` format. The service (``app.services.vehicle_links``) maps these
    to ``connection_status`` / ``last_seen_at`` (and so the ``vehicle_connections_active``
    gauge), a connection-loss counter (``link_down`` with reason ``lost``) and a latency
    histogram per UDS service."""

    def link_up(self, vehicle_id: str, at: str) -> None: ...

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None: ...

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None: ...

    def vehicle_seen(self, vehicle_id: str, at: str) -> None: ...

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        """One UDS request: ``service`` as ISO 14229-1 names it, ``outcome`` one of
        positive, negative, invalid, nack, no-answer, lost."""
        ...


class NoLinkObserver:
    def link_up(self, vehicle_id: str, at: str) -> None:
        pass

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None:
        pass

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None:
        pass

    def vehicle_seen(self, vehicle_id: str, at: str) -> None:
        pass

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        pass
