"""The typed reading of an answer's chunk read back from the history.

A connector gives each chunk typed (``app.vehicles.connector.Chunk``: the payload, the
``Negative``, the ECU's bytes, the ``DtcRecord``), and the pipeline publishes it so
(``app.events.ResponseEvent``). The history keeps the payload only, in the form the
conversations write it (``app.vehicles.uds_commands``, ``uds_conversation``): a refusal's
``negativeResponse`` object, a ReadDTC chunk's ``dtcCode`` / ``failureType`` /
``statusByte``, a DiagService chunk's ``response`` bytes in hex. ``reading`` is that
form read back, for a chunk replayed from the store (a reader that arrived after the
chunk was stored, an execution looked at after it ended), so an event carries the same
typed fields whether it was live or replayed, and the services above read only those.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.vehicles import trouble_codes, uds
from app.vehicles.connector import DtcRecord, Negative

_BYTE: Final = re.compile(r"0x[0-9A-Fa-f]{2}")
_HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")


@dataclass(frozen=True, slots=True)
class Reading:
    negative: Negative | None = None
    raw: bytes = b""
    dtc: DtcRecord | None = None


def reading(payload: Mapping[str, Any]) -> Reading:
    """The typed fields of a stored chunk's payload (empty where it has none)."""
    return Reading(_negative(payload), _raw(payload), _dtc(payload))


def _byte(value: object) -> int | None:
    """A byte as the conversations write it (``0x31``)."""
    if not isinstance(value, str) or not _BYTE.fullmatch(value):
        return None
    return int(value, 16)


def _negative(payload: Mapping[str, Any]) -> Negative | None:
    found = payload.get("negativeResponse")
    if not isinstance(found, Mapping):
        return None
    nrc = _byte(found.get("nrc"))
    if nrc is None:
        return None
    text = found.get("text")
    return Negative(
        nrc,
        str(found.get("name") or uds.nrc_name(nrc)),
        _byte(found.get("service")),
        "doip" if found.get("layer") == "doip" else "uds",
        text if isinstance(text, str) else None,
    )


def _raw(payload: Mapping[str, Any]) -> bytes:
    response = payload.get("response")
    if not isinstance(response, str) or not _HEX.fullmatch(response):
        return b""
    return bytes.fromhex(response)


def _dtc(payload: Mapping[str, Any]) -> DtcRecord | None:
    code, status = payload.get("dtcCode"), _byte(payload.get("statusByte"))
    failure_type = _byte(payload.get("failureType", "0x00"))
    if not isinstance(code, str) or status is None or failure_type is None:
        return None
    try:
        return DtcRecord(trouble_codes.dtc_number(code, failure_type), status)
    except ValueError:
        return None
