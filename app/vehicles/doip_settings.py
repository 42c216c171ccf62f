"""Where a vehicle's DoIP entity listens (``DoipTarget``) and the timings its link keeps
(``DoipSettings``): what the service configures, read by the wire and the link alike."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import KW_ONLY, dataclass

from app.vehicles import doip


@dataclass(frozen=True, slots=True)
class DoipTarget:
    """Where a vehicle's DoIP entity listens, and the addresses to use with it."""

    host: str
    _: KW_ONLY
    logical_address: int  # the DoIP entity's (gateway's) logical address
    port: int = doip.TCP_PORT
    tester_address: int = 0x0E00
    # The ECUs the vehicle is known to have (informational: the gateway decides routing).
    ecu_addresses: tuple[int, ...] = ()
    activation_type: int = 0x00
    protocol_version: int = doip.PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("a DoIP target needs a host")
        if not 1 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is not a TCP port")
        for name, value in (
            ("logical_address", self.logical_address),
            ("tester_address", self.tester_address),
            *(("ecu_addresses", a) for a in self.ecu_addresses),
        ):
            if not 0 <= value <= 0xFFFF:
                raise ValueError(f"{name} 0x{value:X} is not a 2-byte logical address")
        if self.protocol_version not in doip.KNOWN_VERSIONS:
            raise ValueError(f"DoIP protocol version 0x{self.protocol_version:02X} is unknown")


# The service backs this with the store: the vehicle's target, or None if it has none.
Resolver = Callable[[str], Awaitable[DoipTarget | None]]


@dataclass(frozen=True, slots=True)
class DoipSettings:
    p2_s: float = 2.0  # for the first answer (and the DoIP acknowledgement before it)
    p2_star_s: float = 5.0  # after each 0x78 response pending
    connect_timeout_s: float = 2.0
    activation_timeout_s: float = 2.0  # A_DoIP_Ctrl of ISO 13400-2
    idle_close_s: float = 60.0
    tester_present_s: float = 2.0  # below the ECUs' S3 (5 s) with room for a busy link
    backoff_first_s: float = 0.5
    backoff_max_s: float = 30.0
    routine_poll_s: float = 0.1  # RoutineControl run: how often ``results`` is asked

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not 0 < value <= 86400:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
