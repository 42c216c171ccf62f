"""The connector interface between the command pipeline and a vehicle transport.

A connector sends one diagnostic request and yields the vehicle's answer as typed
chunks (``Chunk``): each decoded already (its payload, as stored and shown), a negative
response typed (``Negative``: the pipeline fails the command by it, never by sniffing
the payload), the ECU's bytes beside it. Garbage raises ``app.catalogue.InvalidResponse``, no
answer in time ``VehicleNotResponding``, no vehicle ``VehicleUnreachable``. A connector
does not enforce deadlines or store anything: the pipeline does, so a real transport
(DoIP, a gateway, ...) can replace the simulator without touching it.

Stopping: when a command is cancelled, times out or the service shuts down, the pipeline
closes the answer generator before its final chunk: ``CancelledError`` is raised where
the generator awaits, or ``GeneratorExit`` where it yields. Either way its ``finally``
runs, and that is where a transport tells the vehicle to abort the request.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from app.vocabulary import Transport

if TYPE_CHECKING:
    from odxtools.diaglayers.diaglayer import DiagLayer


class VehicleUnreachable(Exception):
    """The transport could not reach the vehicle at all."""


class VehicleNotResponding(Exception):
    """The vehicle was reached but sent no final answer in time (P2, P2* after a
    "response pending"): the command ends ``timeout`` now, not at its deadline."""


class DescribedAnswer(Protocol):
    """An ECU's answer read by its description: a positive one's values (and units), or a
    negative one's NRC and the description's text for it."""

    @property
    def parameters(self) -> Mapping[str, Any]: ...

    @property
    def units(self) -> Mapping[str, str]: ...

    @property
    def nrc(self) -> int | None: ...

    @property
    def nrc_text(self) -> str | None: ...


class DescribedRequest(Protocol):
    """A request encoded from an ECU's description (``app.descriptions.codec.Encoded``),
    for the ``DiagService`` command: its bytes, and how its answer is read (``decode``
    raises ValueError for an answer the description cannot read)."""

    @property
    def service_name(self) -> str: ...

    @property
    def payload(self) -> bytes: ...

    def decode(self, answer: bytes) -> DescribedAnswer: ...


@dataclass(frozen=True, slots=True)
class DiagnosticRequest:
    command_id: str
    vehicle_id: str
    vin: str
    simulator_profile: str
    command_name: str
    command_params: Mapping[str, str]
    transport: Transport = Transport.SIMULATOR
    # The vehicle's ECUs (name, logical address); empty: the default four
    # (``app.vehicles.description.DEFAULT_ECUS``).
    ecus: tuple[tuple[str, int], ...] = ()
    # When the command's deadline passes, on the event loop's clock (``time.monotonic``):
    # a transport sends nothing after it and waits for no answer beyond it. None: no
    # deadline (the caller bounds the wait itself).
    deadline: float | None = None
    # The most chunks its answer may have (SOVD_MAX_CHUNKS_PER_COMMAND): a transport
    # refuses a larger answer before decoding it (``app.catalogue.InvalidResponse``).
    max_chunks: int = 4096
    # DiagService: the request as the ECU's description encodes it (checked and encoded
    # when the command was submitted), and how its answer is decoded.
    described: DescribedRequest | None = None
    # A simulated vehicle's ECUs bound to a description (``ecus[].description``): by
    # logical address, the base variant of the bound container (an odxtools diag layer,
    # resolved from the library by the services layer when the command was submitted).
    # The simulator emulates such an ECU from it (``app.vehicles.simulator``); other
    # transports ignore it. Empty: no bound ECU, or none whose description is loaded.
    described_ecus: Mapping[int, DiagLayer] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Negative:
    """The vehicle said no: a UDS negative response (``layer`` "uds", ``nrc`` its code),
    or a DoIP diagnostic negative acknowledgement (``layer`` "doip", ``nrc`` the NACK
    code). ``service``: the SID of the request refused (None: no request was sent, a
    command the conversation does not know). ``text``: the ECU description's text for
    the NRC, where a description read the answer."""

    nrc: int
    name: str
    service: int | None
    layer: Literal["uds", "doip"] = "uds"
    text: str | None = None


@dataclass(frozen=True, slots=True)
class DtcRecord:
    """One DTC of a ReadDTC report, as the ECU sent it: ``number`` its three bytes (the
    display code's two and the failure type), ``status`` its status byte."""

    number: int
    status: int


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk of the vehicle's answer, decoded: ``payload`` is what is stored, streamed
    and shown (a JSON object's values); ``is_final`` marks the last one. ``negative``: the
    chunk is a refusal (always final; the command fails). ``raw``: the ECU's message the
    chunk was read from, where the conversation has one (empty otherwise). ``dtc``: the
    DTC a ReadDTC chunk reports, typed."""

    payload: Mapping[str, Any]
    is_final: bool
    negative: Negative | None = None
    raw: bytes = b""
    dtc: DtcRecord | None = None

    def __post_init__(self) -> None:
        if self.negative is not None and not self.is_final:
            raise ValueError("a negative response is the answer's final chunk")


class Connector(Protocol):
    def execute(self, request: DiagnosticRequest) -> AsyncGenerator[Chunk, None]:
        """The vehicle's answer; closed early (see above) when the command is stopped."""
        ...


class TransportRouter:
    """The pipeline's one connector: each request goes to its vehicle's transport."""

    def __init__(self, simulator: Connector, doip: Connector) -> None:
        self._by_transport: dict[Transport, Connector] = {
            Transport.SIMULATOR: simulator,
            Transport.DOIP: doip,
        }

    def execute(self, request: DiagnosticRequest) -> AsyncGenerator[Chunk, None]:
        return self._by_transport[request.transport].execute(request)
