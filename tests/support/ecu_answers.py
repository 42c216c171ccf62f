"""What the emulated ECUs answer, as the pipeline decodes it (``app.catalogue``).

The simulator (tests/test_simulator.py) and the DoIP connector against the ECU emulator
(tests/test_doip_connector.py) run the same per-ECU model (app/vehicles/emulator.py), so
both must give these exact chunks: one expected value for both.
"""

from __future__ import annotations

from typing import Any, Final

Chunks = list[tuple[dict[str, Any], bool]]

# The engine's (0x0010) first stored DTC on a healthy vehicle, with its real status byte.
ENGINE_LEAN_DTC: Final[dict[str, Any]] = {
    "ecuAddress": "0x0010",
    "dtcCode": "P0171",
    "status": "confirmed",
    "statusByte": "0x2F",
    "statusBits": [
        "testFailed",
        "testFailedThisOperationCycle",
        "pendingDTC",
        "confirmedDTC",
        "testFailedSinceLastClear",
    ],
    "failureType": "0x00",
    "description": "System too lean (bank 1)",
}

# The first chunk of ``run`` of the engine's self-test routine (0x0201).
SELF_TEST_RUN_STARTED: Final[dict[str, Any]] = {
    "ecuAddress": "0x0010",
    "routineId": "0x0201",
    "action": "run",
    "status": "running",
    "progress": 0,
}


def payloads(chunks: Chunks) -> list[dict[str, Any]]:
    """The chunks' payloads, after checking that only the last one is final."""
    assert [final for _, final in chunks] == [False] * (len(chunks) - 1) + [True]
    return [payload for payload, _ in chunks]
