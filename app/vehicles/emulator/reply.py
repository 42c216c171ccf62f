"""What an emulated ECU answers a request with, and the session timing it announces."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# P2server_max and P2*server_max announced in the 0x50 answer (ISO 14229-2 defaults).
P2_SERVER_MS: Final = 50
P2_STAR_SERVER_MS: Final = 5000


@dataclass(frozen=True, slots=True)
class Reply:
    """What the ECU answers: ``payload`` after ``work_s`` seconds (the server keeps the
    tester waiting with 0x78 meanwhile), or nothing (``payload`` None: the positive
    answer was suppressed)."""

    payload: bytes | None
    work_s: float = 0.0
