"""One lane owner per vehicle on a cluster (issue #23 item 3; PostgreSQL and NATS both
set): ``ownership`` (which lanes this node runs, taken by lease; the commands a dead
owner left, ended as interrupted), ``forwarding`` (a submission or cancel for a lane
another node runs, sent to that node over the bus; its answer given as if made here).
A single node (SQLite, or no NATS) has neither: it runs every lane itself."""

from app.services.lanes.forwarding import LaneRouter
from app.services.lanes.ownership import LaneOwnership

__all__ = ["LaneOwnership", "LaneRouter"]
