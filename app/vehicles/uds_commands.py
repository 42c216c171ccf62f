"""Each catalogue command's UDS conversation with one ECU, declared once for every transport.

A command becomes one or a few UDS requests (built and interpreted with udsoncan) to the
ECU named by ``ecuAddress``, sent over a ``Channel``: the DoIP connector's link
(``app.vehicles.doip_link.Link``) or the simulator's in-process emulated ECUs. The
answer comes back as typed chunks (``app.vehicles.connector.Chunk``: a payload of JSON
values, the ECU's message it was read from), the same for every transport:

- ``ReadDTC``: 0x19 0x02 0xFF (report DTCs by status mask, all bits); one chunk per DTC
  (SAE code, status byte decoded, failure type, fault name), then a summary chunk.
- ``ClearDTC``: 0x14 with all groups (0xFFFFFF) or the one DTC; the DTCs are read before
  and after, so the chunk says which were cleared and how many remain.
- ``ReadDataByID``: 0x22 with the DID codecs of ``app.vehicles.uds`` (0xF186: the
  session's name).
- ``DiagnosticSessionControl``: 0x10; the channel is told of the new session (the DoIP
  link keeps a non-default one alive with TesterPresent).
- ``DiagService``: the request the ECU's description encoded at submission
  (``DiagnosticRequest.described``), sent as it is; its answer decoded by the
  description: one final chunk ``{"ecuAddress", "service", "parameters", "units"?,
  "request", "response"}`` (the bytes in hex beside the decoded values).
- ``RoutineControl``: 0x31 ``start`` / ``stop`` / ``results``, one chunk each, or ``run``
  followed to its end (``app.vehicles.uds_routines``).

How a request is sent, and what a negative response, a DoIP refusal or silence becomes, is
the conversation's: ``app.vehicles.uds_conversation`` (``Talk``, with ``Channel`` and
``ConversationSettings``). Parameters that do not fit raise ``app.catalogue.InvalidParams``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncGenerator, Mapping
from functools import partial
from typing import Any, Final

from udsoncan.common.DidCodec import DidCodec as UdsoncanDidCodec
from udsoncan.exceptions import InvalidResponseException
from udsoncan.Response import Response
from udsoncan.services.ClearDiagnosticInformation import ClearDiagnosticInformation
from udsoncan.services.DiagnosticSessionControl import DiagnosticSessionControl
from udsoncan.services.ReadDataByIdentifier import ReadDataByIdentifier

from app import catalogue
from app.vehicles import trouble_codes, uds
from app.vehicles.addresses import InvalidAddress, parse_address
from app.vehicles.connector import Chunk, DescribedRequest, DtcRecord, Negative
from app.vehicles.pdx.demo import dtc_text
from app.vehicles.uds_conversation import (
    Channel,
    Conversation,
    ConversationSettings,
    Perform,
    Talk,
    converse,
    hex_code,
    hex_param,
    param,
    raw,
)
from app.vehicles.uds_routines import routine_control
from app.vocabulary import CommandName


def conversation(
    command_name: str,
    params: Mapping[str, str],
    settings: ConversationSettings | None = None,
    described: DescribedRequest | None = None,
) -> Conversation:
    """The conversation of one command, to run over a channel; InvalidParams if its ECU
    address is missing or wrong (or a DiagService comes without its ``described``
    request). An unknown command answers serviceNotSupported."""
    if command_name == CommandName.DIAG_SERVICE:
        if described is None:
            raise catalogue.InvalidParams("DiagService needs the request its description encoded")
        perform: Perform | None = partial(_diag_service, described)
    else:
        perform = _COMMANDS.get(command_name)
    if perform is None:
        return _unknown_command
    try:
        ecu = parse_address(param(params, "ecuAddress", command_name), "command_params.ecuAddress")
    except InvalidAddress as exc:
        raise catalogue.InvalidParams(str(exc)) from None
    return partial(converse, perform, ecu, params, settings or ConversationSettings())


# -- codecs ---------------------------------------------------------------------------------


class _RawDid(UdsoncanDidCodec):
    """A DID without a codec here: its bytes as hex."""

    def decode(self, did_payload: bytes) -> Any:
        return did_payload.hex().upper()

    def __len__(self) -> int:
        raise UdsoncanDidCodec.ReadAllRemainingData


class _Did(UdsoncanDidCodec):
    """One of ``uds.DID_CODECS`` in udsoncan's codec interface."""

    def __init__(self, codec: uds.DidCodec) -> None:
        super().__init__()
        self._codec = codec

    def encode(self, *did_value: Any) -> bytes:
        return self._codec.encode(did_value[0])

    def decode(self, did_payload: bytes) -> Any:
        return self._codec.decode(did_payload)

    def __len__(self) -> int:
        if self._codec.size is None:
            raise UdsoncanDidCodec.ReadAllRemainingData
        return self._codec.size


def _interpret_session(response: Response) -> object:
    """ISO 14229-1:2013 and later answer 0x10 with the P2/P2* timing record; ECUs of the
    2006 edition may send their own record or none: then the timing is left out."""
    try:
        return DiagnosticSessionControl.interpret_response(response)
    except InvalidResponseException:
        return DiagnosticSessionControl.interpret_response(response, standard_version=2006)


async def _unknown_command(channel: Channel) -> AsyncGenerator[Chunk, None]:
    name = uds.nrc_name(0x11)
    yield Chunk(
        {"negativeResponse": {"nrc": "0x11", "name": name}}, True, Negative(0x11, name, None)
    )


# -- the commands -------------------------------------------------------------------------


async def _read_dtc(talk: Talk, params: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    dtcs, report = await talk.read_dtcs()
    for number, status in dtcs:
        code = trouble_codes.dtc_code(number)
        yield Chunk(
            {
                "ecuAddress": talk.address,
                "dtcCode": code,
                "status": trouble_codes.status_summary(status),
                "statusByte": hex_code(status, 2),
                "statusBits": list(trouble_codes.status_bits(status)),
                "failureType": hex_code(trouble_codes.failure_type(number), 2),
                "description": dtc_text(code),
            },
            False,
            raw=report,
            dtc=DtcRecord(number, status),
        )
    summary = {"ecuAddress": talk.address, "status": "complete", "totalDtcs": len(dtcs)}
    yield Chunk(summary, True, raw=report)


async def _clear_dtc(talk: Talk, params: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    wanted = params.get("dtcCode")
    # Three bytes in hex name exactly one DTC; a display code, each failure type of it.
    exact = wanted is not None and re.fullmatch(r"[0-9A-Fa-f]{6}", wanted) is not None
    try:
        if wanted is None:
            group = trouble_codes.ALL_DTC_GROUPS
        else:
            group = int(wanted, 16) if exact else trouble_codes.dtc_number(wanted)
    except ValueError as exc:
        raise catalogue.InvalidParams(f"command_params.dtcCode: {exc}") from None
    # Read before and after: UDS 0x54 says only "done", the chunk says what changed.
    # A read the ECU refuses leaves that part out rather than stopping the clear.
    before = await talk.read_dtcs_or_none()
    # A DTC is three bytes: the display code's two and a failure type. Clear the ones
    # the ECU reported under that code, with their own failure types; only when it
    # reported none (or refused the read) send the code with failure type 0, and let
    # the ECU answer (requestOutOfRange for a DTC it does not know).
    targets = [group]
    if wanted is not None and not exact and before is not None:
        code = wanted.upper()
        targets = [n for n, _ in before if trouble_codes.dtc_code(n) == code] or targets
    cleared = b""
    for number in targets:
        response = await talk.request(
            ClearDiagnosticInformation.make_request(number),
            ClearDiagnosticInformation.interpret_response,
            {"dtcCode": wanted} if wanted else {},
        )
        cleared = raw(response)
    after = await talk.read_dtcs_or_none()
    answer: dict[str, Any] = {"ecuAddress": talk.address, "status": "cleared"}
    if before is not None and after is not None:
        remaining = {trouble_codes.dtc_code(n) for n, _ in after}
        answer["clearedDtcs"] = [
            c for c in (trouble_codes.dtc_code(n) for n, _ in before) if c not in remaining
        ]
    if after is not None:
        answer["remainingDtcs"] = len(after)
    yield Chunk(answer, True, raw=cleared)


async def _read_data(talk: Talk, params: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    did = hex_param(param(params, "dataId", CommandName.READ_DATA_BY_ID), "dataId", 0xFFFF)
    data_id = uds.format_did(did)
    codec = uds.DID_CODECS.get(did)
    config: dict[int | str, str | UdsoncanDidCodec | type[UdsoncanDidCodec]] = {
        did: _Did(codec) if codec is not None else _RawDid()
    }
    response = await talk.request(
        ReadDataByIdentifier.make_request(did, config),
        partial(
            ReadDataByIdentifier.interpret_response,
            didlist=did,
            didconfig=config,
            tolerate_zero_padding=False,
        ),
        {"dataId": data_id},
    )
    data = response.service_data
    assert isinstance(data, ReadDataByIdentifier.ResponseData)
    if did not in data.values:
        raise catalogue.InvalidResponse(f"ECU {talk.address} answered without {data_id}")
    answer: dict[str, Any] = {"ecuAddress": talk.address, "dataId": data_id}
    if codec is None:
        answer["raw"] = data.values[did]
    else:
        answer["name"] = codec.name
        answer["value"] = data.values[did]
        if codec.unit is not None:
            answer["unit"] = codec.unit
    yield Chunk(answer, True, raw=raw(response))


async def _session(talk: Talk, params: Mapping[str, str]) -> AsyncGenerator[Chunk, None]:
    wanted = param(params, "session", CommandName.DIAGNOSTIC_SESSION_CONTROL)
    session = uds.SESSIONS.get(wanted)
    if session is None:
        raise catalogue.InvalidParams(f"command_params.session {wanted!r} is not a session")
    request = DiagnosticSessionControl.make_request(session)
    response = await talk.request(request, _interpret_session, {"session": wanted})
    data = response.service_data
    assert isinstance(data, DiagnosticSessionControl.ResponseData)
    if data.session_echo != session:
        raise catalogue.InvalidResponse(
            f"ECU {talk.address} switched to session {hex_code(data.session_echo, 2)}"
            f" instead of {wanted}"
        )
    talk.channel.session_changed(talk.ecu, session)
    answer: dict[str, Any] = {"ecuAddress": talk.address, "session": wanted}
    if data.p2_server_max is not None and data.p2_star_server_max is not None:
        answer["p2ServerMaxMs"] = round(data.p2_server_max * 1000)
        answer["p2StarServerMaxMs"] = round(data.p2_star_server_max * 1000)
    yield Chunk(answer, True, raw=raw(response))


async def _diag_service(
    described: DescribedRequest, talk: Talk, params: Mapping[str, str]
) -> AsyncGenerator[Chunk, None]:
    """Send the request the description encoded; one chunk: the answer decoded by the
    description (a negative one as today's negative chunks, with the description's
    text), the bytes of both in hex beside it."""
    payload = described.payload
    context = {"service": described.service_name, "request": payload.hex().upper()}
    answer = await talk.send(payload, context)
    where = f"ECU {talk.address} answered {described.service_name}"
    try:
        decoded = described.decode(answer)
    except ValueError as exc:
        raise catalogue.InvalidResponse(f"{where}: {exc}") from None
    chunk: dict[str, Any] = {"ecuAddress": talk.address, **context}
    if decoded.nrc is not None:
        chunk["response"] = answer.hex().upper()
        chunk["negativeResponse"] = {
            "nrc": uds.format_nrc(decoded.nrc),
            "name": uds.nrc_name(decoded.nrc),
            "text": decoded.nrc_text,
            "service": hex_code(payload[0], 2),
        }
        negative = Negative(
            decoded.nrc, uds.nrc_name(decoded.nrc), payload[0], text=decoded.nrc_text
        )
        yield Chunk(chunk, True, negative, answer)
        return
    if payload[0] == uds.DIAGNOSTIC_SESSION_CONTROL and len(payload) > 1:
        # As the catalogue's session command does: the link keeps a non-default session
        # alive (TesterPresent), or the ECU falls back after S3 unnoticed.
        talk.channel.session_changed(talk.ecu, payload[1] & 0x7F)
    chunk["parameters"] = dict(decoded.parameters)
    if decoded.units:
        chunk["units"] = dict(decoded.units)
    chunk["response"] = answer.hex().upper()
    yield Chunk(chunk, True, raw=answer)


_COMMANDS: Final[dict[str, Perform]] = {
    CommandName.READ_DTC: _read_dtc,
    CommandName.CLEAR_DTC: _clear_dtc,
    CommandName.READ_DATA_BY_ID: _read_data,
    CommandName.DIAGNOSTIC_SESSION_CONTROL: _session,
    CommandName.ROUTINE_CONTROL: routine_control,
}
