"""What a body or a frame should hold, read from what the service publishes instead of
copied into each test: a response type's fields from /openapi.json, a stream frame's
from its ``x-websockets`` entry, a fault's status object from the declared DTC status
keys (``app.descriptions.fault_status.STATUS_KEYS``, lowest bit first).

A test that compares a body with these checks that the service sends what it documents
(an internal field leaking, or a documented one missing, fails it); what the documented
form itself is stays pinned by the OpenAPI tests and the clients' tests.
"""

from __future__ import annotations

from typing import Any

from app.descriptions.fault_status import STATUS_KEYS
from tests.support.harness import Server


def _document(server: Server) -> dict[str, Any]:
    r = server.http.get("/openapi.json")
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def fields(server: Server, schema: str) -> set[str]:
    """The properties of ``components/schemas/<schema>`` in the served document."""
    properties: dict[str, Any] = _document(server)["components"]["schemas"][schema]["properties"]
    return set(properties)


def frame_fields(server: Server, event: str) -> set[str]:
    """The fields of the response stream's ``event`` frame (status, response, error)."""
    (stream,) = _document(server)["x-websockets"].values()
    return set(stream["messages"][event])


def dtc_status(mask: int) -> dict[str, Any]:
    """A fault's ``status`` object for the status byte ``mask``: each bit by its key, and
    the byte as two hex digits."""
    return {
        **{key: bool(mask >> bit & 1) for bit, key in enumerate(STATUS_KEYS)},
        "mask": f"{mask:02X}",
    }
