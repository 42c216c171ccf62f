"""One command's conversation with one ECU over a transport: what a transport provides
(``Channel``, ``Exchanged``), the conversation's settings, and ``Talk``, which sends a UDS
request and turns what comes back into an answer or a refusal; the readers of a command's
parameters. The commands themselves (which requests, which chunks) are
``app.vehicles.uds_commands`` and ``uds_routines``.

A negative response becomes the final chunk ``{..., "negativeResponse": {"nrc": "0x31",
"name": "requestOutOfRange", "service": "0x19"}}`` typed by its ``Negative`` (NRC, name,
SID); a DoIP negative acknowledgement the same with ``"layer": "doip"``. An ECU that
does not answer in time raises ``VehicleNotResponding`` (the command ends ``timeout``
then, not at its deadline). Bytes that do not decode, and a DTC report longer than the
command's chunk cap (counted from its length before anything is decoded), raise
``app.catalogue.InvalidResponse``.
"""

from __future__ import annotations

import struct
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, Protocol

from udsoncan.exceptions import ConfigError, InvalidResponseException, UnexpectedResponseException
from udsoncan.Request import Request
from udsoncan.Response import Response
from udsoncan.services.ReadDTCInformation import ReadDTCInformation

from app import catalogue
from app.vehicles import doip, trouble_codes, uds
from app.vehicles.addresses import format_address
from app.vehicles.connector import Chunk, Negative, VehicleNotResponding

# Errors udsoncan's interpreters raise for an answer that does not match its request.
_UDS_DECODE_ERRORS: Final = (
    InvalidResponseException,
    UnexpectedResponseException,
    ConfigError,
    ValueError,
    IndexError,
    struct.error,
)
# One DTC in a 0x59 0x02 report: three bytes of DTC, one of status.
DTC_RECORD_BYTES: Final = 4


# -- what a transport provides ------------------------------------------------------------


class Exchanged(Protocol):
    """What became of one request: the ECU's final ``answer``, or a transport's refusal
    (``nack``, a DoIP diagnostic negative acknowledgement code), or neither (no answer in
    time)."""

    @property
    def answer(self) -> bytes | None: ...

    @property
    def nack(self) -> int | None: ...


class Channel(Protocol):
    """How a conversation reaches the vehicle's ECUs. ``exchange`` may raise
    ``VehicleUnreachable`` or ``InvalidResponse`` for the transport's own failures."""

    async def exchange(self, ecu: int, request: bytes) -> Exchanged: ...

    def session_changed(self, ecu: int, session: int) -> None:
        """The ECU switched to ``session`` on this channel's request."""
        ...


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    """How long a conversation waits, and how much it may answer (the service's config)."""

    poll_s: float = 0.1  # RoutineControl run: how often ``results`` is asked
    stop_wait_s: float = 1.0  # RoutineControl run closed early: the longest wait for stop
    max_chunks: int = 4096  # the command's chunk cap (``DiagnosticRequest.max_chunks``)

    def __post_init__(self) -> None:
        for name in ("poll_s", "stop_wait_s"):
            value = getattr(self, name)
            if not 0 < value <= 3600:
                raise ValueError(f"{name} must be a positive number of seconds, got {value}")
        if self.max_chunks < 1:
            raise ValueError(f"max_chunks must be at least 1, got {self.max_chunks}")


# A conversation as a transport runs it: the chunks of one command over its channel.
Conversation = Callable[[Channel], AsyncGenerator[Chunk, None]]


# -- plumbing ---------------------------------------------------------------------------


class Refusal(Exception):
    """The vehicle said no: the final chunk to send instead of an answer."""

    def __init__(self, payload: dict[str, Any], negative: Negative, raw: bytes = b"") -> None:
        super().__init__(payload)
        self.chunk = Chunk(payload, True, negative, raw)


def raw(response: Response) -> bytes:
    """The ECU's message a response was read from."""
    return response.original_payload or b""


def hex_code(value: int, digits: int) -> str:
    return f"0x{value:0{digits}X}"


def param(params: Mapping[str, str], name: str, command: str) -> str:
    """The command's parameter ``name``; InvalidParams naming it when it is missing."""
    value = params.get(name)
    if not isinstance(value, str):
        raise catalogue.InvalidParams(f"command_params.{name} is required for {command}")
    return value


def hex_param(text: str, name: str, limit: int) -> int:
    """A parameter in hex such as 0x10, up to ``limit``; InvalidParams naming it otherwise."""
    try:
        value = int(text, 16) if text.lower().startswith("0x") else -1
    except ValueError:
        value = -1
    if not 0 <= value <= limit:
        raise catalogue.InvalidParams(
            f"command_params.{name} {text!r} is not a hex number such as 0x10"
        )
    return value


@dataclass(frozen=True, slots=True)
class Talk:
    """One command's conversation with one ECU over a channel."""

    channel: Channel
    ecu: int
    settings: ConversationSettings

    @property
    def address(self) -> str:
        return format_address(self.ecu)

    async def request(
        self,
        request: Request,
        interpret: Callable[[Response], object],
        context: Mapping[str, Any],
        check: Callable[[Response], None] | None = None,
    ) -> Response:
        """Send ``request`` to the ECU: its positive answer, interpreted, or Refusal with
        the negative-response chunk. ``check`` sees a positive answer before it is
        interpreted (and may refuse it, ``app.catalogue.InvalidResponse``)."""
        payload = request.get_payload()
        sid = payload[0]
        answer = await self.send(payload, context)
        response = Response.from_payload(answer)
        where = f"ECU {self.address} answered {uds.service_name(sid)}"
        if not response.valid or response.service is None:
            raise catalogue.InvalidResponse(f"{where} with an undecodable message")
        if response.service.request_id() != sid:
            raise catalogue.InvalidResponse(f"{where} for another service")
        if not response.positive:
            code = int(response.code or 0)
            negative = Negative(code, uds.nrc_name(code), sid)
            raise Refusal(
                {
                    "ecuAddress": self.address,
                    **context,
                    "negativeResponse": {
                        "nrc": uds.format_nrc(code),
                        "name": negative.name,
                        "service": hex_code(sid, 2),
                    },
                },
                negative,
                answer,
            )
        if check is not None:
            check(response)
        try:
            interpret(response)
        except _UDS_DECODE_ERRORS as exc:
            raise catalogue.InvalidResponse(f"{where} with a malformed message: {exc}") from None
        return response

    async def send(self, payload: bytes, context: Mapping[str, Any]) -> bytes:
        """Send ``payload`` to the ECU: its final answer's bytes, or Refusal with the
        chunk for a DoIP negative acknowledgement; VehicleNotResponding without one."""
        sid = payload[0]
        base = {"ecuAddress": self.address, **context}
        exchange = await self.channel.exchange(self.ecu, payload)
        if exchange.nack is not None:
            name = doip.code_name(doip.DIAGNOSTIC_NACK_NAMES, exchange.nack)
            raise Refusal(
                {
                    **base,
                    "negativeResponse": {
                        "nrc": hex_code(exchange.nack, 2),
                        "name": name,
                        "service": hex_code(sid, 2),
                        "layer": "doip",
                    },
                },
                Negative(exchange.nack, name, sid, "doip"),
            )
        if exchange.answer is None:
            # Nothing within P2 (P2* after a 0x78), or by the command's deadline: the
            # command ends now and the vehicle's lane moves on.
            raise VehicleNotResponding(
                f"ECU {self.address} did not answer {uds.service_name(sid)} in time"
            )
        return exchange.answer

    async def read_dtcs(self) -> tuple[list[tuple[int, int]], bytes]:
        """The ECU's DTCs (number, status byte), and its report they were read from."""
        subfunction = ReadDTCInformation.Subfunction.reportDTCByStatusMask
        request = ReadDTCInformation.make_request(
            subfunction, status_mask=trouble_codes.ALL_DTC_STATUS_BITS
        )
        response = await self.request(
            request,
            partial(
                ReadDTCInformation.interpret_response,
                subfunction=subfunction,
                tolerate_zero_padding=False,
            ),
            {},
            self._check_dtc_count,
        )
        data = response.service_data
        assert isinstance(data, ReadDTCInformation.ResponseData)
        dtcs = [(dtc.id, dtc.status.get_byte_as_int()) for dtc in data.dtcs]
        return dtcs, raw(response)

    def _check_dtc_count(self, response: Response) -> None:
        """Refuse a report of more DTCs than the command may hold chunks (one each, and a
        summary), counted from its length: a hostile ECU's 1 MiB report is never
        decoded into a quarter of a million objects on the event loop."""
        data = response.data or b""
        # The echoed subfunction and the availability mask, then 4 bytes a DTC.
        count = max(len(data) - 2, 0) // DTC_RECORD_BYTES
        if count + 1 > self.settings.max_chunks:
            raise catalogue.InvalidResponse(
                f"ECU {self.address} reported {count} DTCs; a command's answer holds at most"
                f" {self.settings.max_chunks} chunks (SOVD_MAX_CHUNKS_PER_COMMAND)"
            )

    async def read_dtcs_or_none(self) -> list[tuple[int, int]] | None:
        try:
            dtcs, _ = await self.read_dtcs()
            return dtcs
        except Refusal:
            return None


# One command's part of a conversation: its requests and chunks, given the talk and params.
Perform = Callable[[Talk, Mapping[str, str]], AsyncGenerator[Chunk, None]]


async def converse(
    perform: Perform,
    ecu: int,
    params: Mapping[str, str],
    settings: ConversationSettings,
    channel: Channel,
) -> AsyncGenerator[Chunk, None]:
    talk = Talk(channel, ecu, settings)
    try:
        # aclosing: closing this generator early closes the command's at once (its
        # finally may have a routine to stop), not whenever it is collected.
        async with aclosing(perform(talk, params)) as chunks:
            async for chunk in chunks:
                yield chunk
    except Refusal as refusal:
        yield refusal.chunk
