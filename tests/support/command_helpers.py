"""Submitting a command over HTTP, for tests that need more than ``Server.submit`` gives
(extra headers such as a W3C ``traceparent``) or drive a server that is not a ``Server``."""

from __future__ import annotations

import httpx


def submit_read_dtc(http: httpx.Client, token: str, vehicle_id: str, **headers: str) -> str:
    """POSTs a ReadDTC of the engine (0x10) with ``headers``; the new command's id."""
    r = http.post(
        "/api/v1/commands",
        headers={"Authorization": f"Bearer {token}", **headers},
        json={
            "vehicle_id": vehicle_id,
            "command_name": "ReadDTC",
            "command_params": {"ecuAddress": "0x10"},
        },
    )
    assert r.status_code == 201, r.text
    return str(r.json()["command_id"])
