"""UDS (ISO 14229-1) vocabulary and codecs: pure functions and frozen dataclasses, no I/O.

Shared by the DoIP connector, which parses answers with udsoncan and names what it
found with these tables, and by the ECU emulator, which encodes its answers with these
functions. Two independent codecs meeting over a socket is how the tests catch a wrong
byte on either side. DTCs (status byte, display codes, the 0x19 report) are
``app.vehicles.trouble_codes``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

# -- service identifiers -------------------------------------------------------------

DIAGNOSTIC_SESSION_CONTROL: Final = 0x10
CLEAR_DIAGNOSTIC_INFORMATION: Final = 0x14
READ_DTC_INFORMATION: Final = 0x19
READ_DATA_BY_IDENTIFIER: Final = 0x22
ROUTINE_CONTROL: Final = 0x31
TESTER_PRESENT: Final = 0x3E
NEGATIVE_RESPONSE: Final = 0x7F
POSITIVE_OFFSET: Final = 0x40
# Subfunction bit 7: the client does not want a positive answer (TesterPresent 0x3E 0x80).
SUPPRESS_POSITIVE_RESPONSE: Final = 0x80

SERVICE_NAMES: Final[dict[int, str]] = {
    DIAGNOSTIC_SESSION_CONTROL: "DiagnosticSessionControl",
    CLEAR_DIAGNOSTIC_INFORMATION: "ClearDiagnosticInformation",
    READ_DTC_INFORMATION: "ReadDTCInformation",
    READ_DATA_BY_IDENTIFIER: "ReadDataByIdentifier",
    ROUTINE_CONTROL: "RoutineControl",
    TESTER_PRESENT: "TesterPresent",
}


def service_name(sid: int) -> str:
    """The ISO 14229-1 name of a request service id (a metric label, so never free text)."""
    return SERVICE_NAMES.get(sid, f"0x{sid:02X}")


# -- negative response codes -----------------------------------------------------------

RESPONSE_PENDING: Final = 0x78

NRC_NAMES: Final[dict[int, str]] = {
    0x10: "generalReject",
    0x11: "serviceNotSupported",
    0x12: "subFunctionNotSupported",
    0x13: "incorrectMessageLengthOrInvalidFormat",
    0x14: "responseTooLong",
    0x21: "busyRepeatRequest",
    0x22: "conditionsNotCorrect",
    0x24: "requestSequenceError",
    0x25: "noResponseFromSubnetComponent",
    0x26: "failurePreventsExecutionOfRequestedAction",
    0x31: "requestOutOfRange",
    0x33: "securityAccessDenied",
    0x34: "authenticationRequired",
    0x35: "invalidKey",
    0x36: "exceedNumberOfAttempts",
    0x37: "requiredTimeDelayNotExpired",
    0x70: "uploadDownloadNotAccepted",
    0x71: "transferDataSuspended",
    0x72: "generalProgrammingFailure",
    0x73: "wrongBlockSequenceCounter",
    RESPONSE_PENDING: "requestCorrectlyReceivedResponsePending",
    0x7E: "subFunctionNotSupportedInActiveSession",
    0x7F: "serviceNotSupportedInActiveSession",
    0x81: "rpmTooHigh",
    0x82: "rpmTooLow",
    0x83: "engineIsRunning",
    0x84: "engineIsNotRunning",
    0x85: "engineRunTimeTooLow",
    0x86: "temperatureTooHigh",
    0x87: "temperatureTooLow",
    0x88: "vehicleSpeedTooHigh",
    0x89: "vehicleSpeedTooLow",
    0x8A: "throttlePedalTooHigh",
    0x8B: "throttlePedalTooLow",
    0x8C: "transmissionRangeNotInNeutral",
    0x8D: "transmissionRangeNotInGear",
    0x8F: "brakeSwitchNotClosed",
    0x90: "shifterLeverNotInPark",
    0x91: "torqueConverterClutchLocked",
    0x92: "voltageTooHigh",
    0x93: "voltageTooLow",
}


def nrc_name(code: int) -> str:
    """The ISO 14229-1 name of a negative response code; codes the standard leaves to
    vehicle manufacturers or reserves get the name of their range."""
    name = NRC_NAMES.get(code)
    if name is not None:
        return name
    if 0x94 <= code <= 0xEF:
        return "reservedForSpecificConditionsNotCorrect"
    if 0xF0 <= code <= 0xFE:
        return "vehicleManufacturerSpecificConditionsNotCorrect"
    return "isoSaeReserved"


def format_nrc(code: int) -> str:
    return f"0x{code:02X}"


@dataclass(frozen=True, slots=True)
class Negative:
    """A negative response: ``0x7F``, the request's service id, the code."""

    sid: int
    nrc: int

    @property
    def name(self) -> str:
        return nrc_name(self.nrc)

    def encode(self) -> bytes:
        return bytes((NEGATIVE_RESPONSE, self.sid, self.nrc))


def parse_negative(payload: bytes) -> Negative | None:
    """The negative response in ``payload``, or None when it is not one."""
    if len(payload) == 3 and payload[0] == NEGATIVE_RESPONSE:
        return Negative(payload[1], payload[2])
    return None


def is_response_pending(payload: bytes, sid: int) -> bool:
    """``0x7F <sid> 0x78``: the server got the request and needs more time (P2* applies)."""
    negative = parse_negative(payload)
    return negative is not None and negative.sid == sid and negative.nrc == RESPONSE_PENDING


def positive(sid: int, body: bytes = b"") -> bytes:
    return bytes((sid + POSITIVE_OFFSET,)) + body


# -- diagnostic sessions (0x10) -------------------------------------------------------

DEFAULT_SESSION: Final = 0x01
PROGRAMMING_SESSION: Final = 0x02
EXTENDED_SESSION: Final = 0x03

SESSIONS: Final[dict[str, int]] = {
    "default": DEFAULT_SESSION,
    "programming": PROGRAMMING_SESSION,
    "extended": EXTENDED_SESSION,
}
_SESSION_NAMES: Final = {code: name for name, code in SESSIONS.items()}


def session_name(code: int) -> str:
    return _SESSION_NAMES.get(code, f"0x{code:02X}")


def encode_session_timing(p2_ms: int, p2_star_ms: int) -> bytes:
    """The 0x50 answer's timing record: P2server_max in ms, P2*server_max in 10 ms."""
    return p2_ms.to_bytes(2, "big") + (p2_star_ms // 10).to_bytes(2, "big")


# -- data identifiers (0x22) ---------------------------------------------------------------

DidValue = int | float | str


class DidError(ValueError):
    """A DID value does not fit its codec, or bytes do not decode as it."""


@dataclass(frozen=True, slots=True)
class DidCodec:
    """How one data identifier is encoded.

    Numbers are unsigned big-endian raw values: ``value = raw * scale + offset``. Text
    is ASCII, ``size`` bytes long, or any length when ``size`` is None. An enumeration
    (``names``: raw value -> name) is one byte decoded to its name; a value the table does
    not name decodes to its hex (``0x05``).
    """

    did: int
    name: str
    unit: str | None
    size: int | None
    scale: float = 1.0
    offset: float = 0.0
    text: bool = False
    names: tuple[tuple[int, str], ...] = ()

    @property
    def data_id(self) -> str:
        return format_did(self.did)

    def decode(self, data: bytes) -> DidValue:
        if self.size is not None and len(data) != self.size:
            raise DidError(f"{self.data_id} has {self.size} bytes, got {len(data)}")
        if self.names:
            if len(data) != 1:
                raise DidError(f"{self.data_id} has 1 byte, got {len(data)}")
            return dict(self.names).get(data[0], f"0x{data[0]:02X}")
        if self.text:
            try:
                text = data.decode("ascii")
            except UnicodeDecodeError:
                raise DidError(f"{self.data_id} is not ASCII text") from None
            # ECUs pad fixed-width text with spaces or NULs; neither is part of the value.
            return text.rstrip("\x00 ")
        if not data:
            raise DidError(f"{self.data_id} is empty")
        value = int.from_bytes(data, "big") * self.scale + self.offset
        if self.scale == 1 and float(self.offset).is_integer():
            return int(value)
        return value

    def encode(self, value: DidValue) -> bytes:
        if self.names:
            codes = {name: code for code, name in self.names}
            if not isinstance(value, str) or value not in codes:
                raise DidError(f"{self.data_id} takes one of {', '.join(codes)}")
            return bytes((codes[value],))
        if self.text:
            if not isinstance(value, str) or not value.isascii():
                raise DidError(f"{self.data_id} takes ASCII text")
            raw = value.encode("ascii")
            if self.size is None:
                return raw
            if len(raw) > self.size:
                raise DidError(f"{self.data_id} holds at most {self.size} characters")
            return raw.ljust(self.size, b" ")
        if isinstance(value, str) or not math.isfinite(value):
            raise DidError(f"{self.data_id} takes a number")
        size = self.size or 1
        raw_value = round((value - self.offset) / self.scale)
        if not 0 <= raw_value < 1 << (8 * size):
            raise DidError(f"{value} is out of the range of {self.data_id}")
        return raw_value.to_bytes(size, "big")


def format_did(did: int) -> str:
    return f"0x{did:04X}"


VIN: Final = 0xF190
ECU_SOFTWARE_VERSION: Final = 0xF195
ECU_SERIAL_NUMBER: Final = 0xF18C
# ISO 14229-1 ActiveDiagnosticSessionDataIdentifier: the session the ECU is in now.
ACTIVE_DIAGNOSTIC_SESSION: Final = 0xF186
ENGINE_RPM: Final = 0x010C
VEHICLE_SPEED: Final = 0x010D
COOLANT_TEMPERATURE: Final = 0x0105

# Live values use the OBD-II PID formulas of the same numbers (SAE J1979); the names and
# units match the simulator's, so a client sees the same fields from either transport.
DID_CODECS: Final[dict[int, DidCodec]] = {
    codec.did: codec
    for codec in (
        DidCodec(ENGINE_RPM, "engineRpm", "rpm", 2, scale=0.25),
        DidCodec(VEHICLE_SPEED, "vehicleSpeed", "km/h", 1),
        DidCodec(COOLANT_TEMPERATURE, "coolantTemperature", "degC", 1, offset=-40),
        DidCodec(VIN, "vin", None, 17, text=True),
        DidCodec(ECU_SOFTWARE_VERSION, "ecuSoftwareVersion", None, None, text=True),
        DidCodec(ECU_SERIAL_NUMBER, "ecuSerialNumber", None, None, text=True),
        DidCodec(
            ACTIVE_DIAGNOSTIC_SESSION,
            "activeDiagnosticSession",
            None,
            1,
            names=tuple((code, name) for name, code in SESSIONS.items()),
        ),
    )
}


# -- routine control (0x31) ----------------------------------------------------------------

ROUTINE_ACTIONS: Final[dict[str, int]] = {"start": 0x01, "stop": 0x02, "results": 0x03}
_ROUTINE_ACTION_NAMES: Final = {code: name for name, code in ROUTINE_ACTIONS.items()}


def routine_action_name(code: int) -> str:
    return _ROUTINE_ACTION_NAMES.get(code, f"0x{code:02X}")


# The routine status record is manufacturer specific (ISO 14229-1 leaves it open). This
# project's convention, spoken by the emulator and understood by the connector: one byte
# of state, one byte of progress in percent. Other ECUs' records are passed on as hex.
ROUTINE_STATES: Final[dict[int, str]] = {
    0x01: "running",
    0x02: "completed",
    0x03: "stopped",
    0x04: "failed",
}
_ROUTINE_STATE_CODES: Final = {name: code for code, name in ROUTINE_STATES.items()}


@dataclass(frozen=True, slots=True)
class RoutineStatus:
    state: str
    progress: int

    def encode(self) -> bytes:
        if self.state not in _ROUTINE_STATE_CODES or not 0 <= self.progress <= 100:
            raise ValueError(f"not a routine status: {self.state} {self.progress}%")
        return bytes((_ROUTINE_STATE_CODES[self.state], self.progress))


def decode_routine_status(record: bytes) -> RoutineStatus | None:
    """The status in a routine status record of this project's convention, or None."""
    if len(record) != 2 or record[0] not in ROUTINE_STATES or record[1] > 100:
        return None
    return RoutineStatus(ROUTINE_STATES[record[0]], record[1])
