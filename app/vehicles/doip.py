"""DoIP (ISO 13400-2) frames: encode and decode, pure, no I/O.

The ECU emulator speaks DoIP through this module; the connector sends frames built with
``encode_frame`` and reads answers with doipclient's parser, so the two sides of the
tests are independent implementations of the same standard.

A frame is the 8-byte generic header (protocol version, its inverse, payload type,
payload length) and the payload. Only what a diagnostic TCP connection needs is here:
routing activation, alive check, diagnostic message and its acknowledgements, and the
generic negative acknowledgement.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

HEADER: Final = struct.Struct("!BBHI")
HEADER_SIZE: Final = HEADER.size
# ISO 13400-2:2012, what most vehicles in the field speak; 2019 is 0x03.
PROTOCOL_VERSION: Final = 0x02
# Versions a frame may carry on TCP; 0xFF (the default) is for UDP discovery only.
KNOWN_VERSIONS: Final = frozenset({0x01, 0x02, 0x03})
TCP_PORT: Final = 13400

GENERIC_NACK: Final = 0x0000
ROUTING_ACTIVATION_REQUEST: Final = 0x0005
ROUTING_ACTIVATION_RESPONSE: Final = 0x0006
ALIVE_CHECK_REQUEST: Final = 0x0007
ALIVE_CHECK_RESPONSE: Final = 0x0008
DIAGNOSTIC_MESSAGE: Final = 0x8001
DIAGNOSTIC_ACK: Final = 0x8002
DIAGNOSTIC_NACK: Final = 0x8003

# Generic header negative acknowledgement codes (ISO 13400-2 table 19).
NACK_INCORRECT_PATTERN: Final = 0x00
NACK_UNKNOWN_PAYLOAD_TYPE: Final = 0x01
NACK_MESSAGE_TOO_LARGE: Final = 0x02
NACK_OUT_OF_MEMORY: Final = 0x03
NACK_INVALID_PAYLOAD_LENGTH: Final = 0x04
GENERIC_NACK_NAMES: Final[dict[int, str]] = {
    NACK_INCORRECT_PATTERN: "incorrectPatternFormat",
    NACK_UNKNOWN_PAYLOAD_TYPE: "unknownPayloadType",
    NACK_MESSAGE_TOO_LARGE: "messageTooLarge",
    NACK_OUT_OF_MEMORY: "outOfMemory",
    NACK_INVALID_PAYLOAD_LENGTH: "invalidPayloadLength",
}

# Routing activation response codes (ISO 13400-2 table 25).
ACTIVATION_SUCCESS: Final = 0x10
ACTIVATION_CODE_NAMES: Final[dict[int, str]] = {
    0x00: "deniedUnknownSourceAddress",
    0x01: "deniedAllSocketsRegisteredAndActive",
    0x02: "deniedSourceAddressMismatch",
    0x03: "deniedSourceAddressAlreadyRegistered",
    0x04: "deniedMissingAuthentication",
    0x05: "deniedRejectedConfirmation",
    0x06: "deniedUnsupportedActivationType",
    0x07: "deniedRequiresTls",
    ACTIVATION_SUCCESS: "success",
    0x11: "confirmationRequired",
}
ACTIVATION_TYPES: Final = frozenset({0x00, 0x01})  # default, required by regulation

# Diagnostic message negative acknowledgement codes (ISO 13400-2 table 23).
DIAGNOSTIC_NACK_INVALID_SOURCE: Final = 0x02
DIAGNOSTIC_NACK_UNKNOWN_TARGET: Final = 0x03
DIAGNOSTIC_NACK_NAMES: Final[dict[int, str]] = {
    DIAGNOSTIC_NACK_INVALID_SOURCE: "invalidSourceAddress",
    DIAGNOSTIC_NACK_UNKNOWN_TARGET: "unknownTargetAddress",
    0x04: "diagnosticMessageTooLarge",
    0x05: "outOfMemory",
    0x06: "targetUnreachable",
    0x07: "unknownNetwork",
    0x08: "transportProtocolError",
}

# Logical addresses of external test equipment (ISO 13400-2 table 13).
TESTER_ADDRESSES: Final = range(0x0E00, 0x1000)


def code_name(names: dict[int, str], code: int) -> str:
    return names.get(code, f"reserved0x{code:02X}")


class FrameError(ValueError):
    """Bytes that are not a valid DoIP frame; ``nack_code`` is the generic NACK to send."""

    def __init__(self, message: str, nack_code: int) -> None:
        super().__init__(message)
        self.nack_code = nack_code


@dataclass(frozen=True, slots=True)
class Frame:
    version: int
    payload_type: int
    payload: bytes


def encode_frame(payload_type: int, payload: bytes, version: int = PROTOCOL_VERSION) -> bytes:
    return HEADER.pack(version, version ^ 0xFF, payload_type, len(payload)) + payload


def decode_header(data: bytes) -> tuple[int, int, int]:
    """(version, payload type, payload length) of an 8-byte header, or FrameError."""
    version, inverse, payload_type, length = HEADER.unpack(data)
    if inverse != version ^ 0xFF or version not in KNOWN_VERSIONS:
        raise FrameError(
            f"bad protocol version 0x{version:02X}/0x{inverse:02X}", NACK_INCORRECT_PATTERN
        )
    return version, payload_type, length


class FrameDecoder:
    """Cuts a TCP byte stream into frames. It holds at most one frame's bytes: a header
    announcing more than ``max_payload`` is refused before its payload is buffered."""

    def __init__(self, max_payload: int = 4096) -> None:
        self._max_payload = max_payload
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= HEADER_SIZE:
            version, payload_type, length = decode_header(bytes(self._buffer[:HEADER_SIZE]))
            if length > self._max_payload:
                raise FrameError(
                    f"payload of {length} bytes exceeds {self._max_payload}",
                    NACK_MESSAGE_TOO_LARGE,
                )
            end = HEADER_SIZE + length
            if len(self._buffer) < end:
                break
            frames.append(Frame(version, payload_type, bytes(self._buffer[HEADER_SIZE:end])))
            del self._buffer[:end]
        return frames


# -- messages ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RoutingActivationRequest:
    source_address: int
    activation_type: int
    oem: bytes | None = None

    @classmethod
    def decode(cls, payload: bytes) -> RoutingActivationRequest:
        if len(payload) not in (7, 11):
            raise FrameError(
                f"routing activation request of {len(payload)} bytes",
                NACK_INVALID_PAYLOAD_LENGTH,
            )
        source, activation_type = struct.unpack_from("!HB", payload)
        return cls(source, activation_type, payload[7:] or None)

    def encode(self) -> bytes:
        return struct.pack("!HBI", self.source_address, self.activation_type, 0) + (self.oem or b"")


@dataclass(frozen=True, slots=True)
class RoutingActivationResponse:
    tester_address: int
    entity_address: int
    code: int

    @classmethod
    def decode(cls, payload: bytes) -> RoutingActivationResponse:
        if len(payload) not in (9, 13):
            raise FrameError(
                f"routing activation response of {len(payload)} bytes",
                NACK_INVALID_PAYLOAD_LENGTH,
            )
        return cls(*struct.unpack_from("!HHB", payload))

    def encode(self) -> bytes:
        return struct.pack("!HHBI", self.tester_address, self.entity_address, self.code, 0)


@dataclass(frozen=True, slots=True)
class DiagnosticMessage:
    source_address: int
    target_address: int
    user_data: bytes

    @classmethod
    def decode(cls, payload: bytes) -> DiagnosticMessage:
        if len(payload) < 5:  # two addresses and at least one byte of UDS
            raise FrameError(
                f"diagnostic message of {len(payload)} bytes", NACK_INVALID_PAYLOAD_LENGTH
            )
        source, target = struct.unpack_from("!HH", payload)
        return cls(source, target, payload[4:])

    def encode(self) -> bytes:
        return struct.pack("!HH", self.source_address, self.target_address) + self.user_data


@dataclass(frozen=True, slots=True)
class DiagnosticAck:
    """Positive (0x8002) or negative (0x8003) acknowledgement of a diagnostic message;
    ``previous`` echoes the start of the acknowledged UDS request."""

    source_address: int
    target_address: int
    code: int
    previous: bytes = b""

    @classmethod
    def decode(cls, payload: bytes) -> DiagnosticAck:
        if len(payload) < 5:
            raise FrameError(
                f"diagnostic acknowledgement of {len(payload)} bytes",
                NACK_INVALID_PAYLOAD_LENGTH,
            )
        source, target, code = struct.unpack_from("!HHB", payload)
        return cls(source, target, code, payload[5:])

    def encode(self) -> bytes:
        return struct.pack("!HHB", self.source_address, self.target_address, self.code) + (
            self.previous
        )


def alive_check_response(source_address: int) -> bytes:
    return encode_frame(ALIVE_CHECK_RESPONSE, struct.pack("!H", source_address))


def generic_nack(code: int, version: int = PROTOCOL_VERSION) -> bytes:
    return encode_frame(GENERIC_NACK, bytes((code,)), version)
