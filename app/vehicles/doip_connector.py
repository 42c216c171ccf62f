"""Reach real ECUs: UDS (ISO 14229-1) over DoIP (ISO 13400-2) behind the Connector interface.

Each command becomes one or a few UDS requests (built and interpreted with udsoncan) to
the ECU named by ``ecuAddress``, sent through the vehicle's DoIP entity (its gateway) on
the vehicle's link (``app.vehicles.doip_link``: threads, lifecycle, timing). The answer
comes back as the JSON chunks the simulator yields, so the pipeline, the store and the
clients see no difference:

- ``ReadDTC``: 0x19 0x02 0xFF (report DTCs by status mask, all bits); one chunk per DTC
  (SAE code, status byte decoded), then a summary chunk.
- ``ClearDTC``: 0x14 with all groups (0xFFFFFF) or the one DTC; the DTCs are read before
  and after, so the chunk says which were cleared and how many remain.
- ``ReadDataByID``: 0x22 with the DID codecs of ``app.vehicles.uds``.
- ``DiagnosticSessionControl`` (0x10) and ``RoutineControl`` (0x31 start / stop /
  results): in the catalogue for DoIP vehicles only (``DOIP_COMMANDS``).

Links: opened on first use, or kept up for always-on vehicles (``keep_up``); a watch
(``start``) notices idle links the vehicle closed and reconnects the always-on ones
within the backoff; ``disconnect`` drops a link whose target changed.

A negative response becomes ``{"negativeResponse": {"nrc": "0x31", "name": ...}}``
(0x78 response pending is honoured by the link); a DoIP negative acknowledgement the
same with ``"layer": "doip"``. An ECU that does not answer in time leaves the verdict
to the pipeline's deadline: the generator waits until it is cancelled. A refused
connection, a denied routing activation or a link lost mid-answer raise
``VehicleUnreachable``; bytes that do not decode raise ``app.sovd.InvalidResponse``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from collections.abc import AsyncGenerator, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Final, NoReturn

from udsoncan.common.DidCodec import DidCodec as UdsoncanDidCodec
from udsoncan.exceptions import ConfigError, InvalidResponseException, UnexpectedResponseException
from udsoncan.Request import Request
from udsoncan.Response import Response
from udsoncan.services.ClearDiagnosticInformation import ClearDiagnosticInformation
from udsoncan.services.DiagnosticSessionControl import DiagnosticSessionControl
from udsoncan.services.ReadDataByIdentifier import ReadDataByIdentifier
from udsoncan.services.ReadDTCInformation import ReadDTCInformation
from udsoncan.services.RoutineControl import RoutineControl

from app import sovd
from app.vehicles import doip, uds
from app.vehicles.connector import Connector, DiagnosticRequest, RawChunk, VehicleUnreachable
from app.vehicles.doip_link import (
    DoipSettings,
    DoipTarget,
    Link,
    LinkDownReason,
    LinkObserver,
    LinkState,
    NoLinkObserver,
    Resolver,
)
from app.vehicles.simulator import DTC_DESCRIPTIONS as SIMULATED_DTC_DESCRIPTIONS

log = logging.getLogger(__name__)

__all__ = [
    "DOIP_COMMANDS",
    "DoipConnector",
    "DoipSettings",
    "DoipTarget",
    "LinkDownReason",
    "LinkObserver",
    "LinkState",
    "NoLinkObserver",
    "Resolver",
]

DTC_DESCRIPTIONS: Final[dict[str, str]] = {
    **SIMULATED_DTC_DESCRIPTIONS,
    "P0700": "Transmission control system malfunction",
    "C0035": "Left front wheel speed sensor circuit",
    "B1000": "Body control module internal fault",
}
# Errors udsoncan's interpreters raise for an answer that does not match its request.
_UDS_DECODE_ERRORS: Final = (
    InvalidResponseException,
    UnexpectedResponseException,
    ConfigError,
    ValueError,
    IndexError,
    struct.error,
)

# Commands only the DoIP transport can run (in ``app.sovd.CATALOGUE``, refused for
# simulated vehicles).
DOIP_COMMANDS: Final = tuple(sovd.CATALOGUE[name] for name in sorted(sovd.DOIP_ONLY))


# -- the connector ----------------------------------------------------------------------


class _Refusal(Exception):
    """The vehicle said no: the chunk to send instead of an answer."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload)
        self.payload = payload


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


def _chunk(payload: dict[str, Any], is_final: bool) -> RawChunk:
    return RawChunk(json.dumps(payload, separators=(",", ":")).encode(), is_final)


def _hex(value: int, digits: int) -> str:
    return f"0x{value:0{digits}X}"


async def _never() -> NoReturn:
    # No answer within P2/P2*: the command's fate is the pipeline's deadline, which
    # cancels this wait; nothing here stands in for it.
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


def _param(params: Mapping[str, str], name: str, command: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise sovd.InvalidParams(f"command_params.{name} is required for {command}")
    return value


def _number(raw: str, name: str, limit: int) -> int:
    try:
        value = int(raw, 16) if raw.lower().startswith("0x") else -1
    except ValueError:
        value = -1
    if not 0 <= value <= limit:
        raise sovd.InvalidParams(f"command_params.{name} {raw!r} is not a hex number such as 0x10")
    return value


class DoipConnector:
    """The ``Connector`` for vehicles reached over DoIP (see the module docstring)."""

    def __init__(
        self,
        resolve: Resolver,
        settings: DoipSettings | None = None,
        observer: LinkObserver | None = None,
    ) -> None:
        self._resolve = resolve
        self._settings = settings or DoipSettings()
        self._observer: LinkObserver = observer or NoLinkObserver()
        self._links: dict[str, Link] = {}
        self._always_on: set[str] = set()
        self._watch: asyncio.Task[None] | None = None

    def link_state(self, vehicle_id: str) -> LinkState:
        link = self._links.get(vehicle_id)
        if link is None:
            return LinkState(False, None, {})
        return link.state()

    @property
    def threads(self) -> int:
        """Worker threads alive or about to end: at most one per connected vehicle."""
        return sum(link.has_thread for link in self._links.values())

    async def aclose(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        self._always_on.clear()
        links, self._links = list(self._links.values()), {}
        await asyncio.gather(*(link.close() for link in links))

    # -- links kept up, links watched ----------------------------------------------------

    def start(self) -> None:
        """Watch the links every ``tester_present_s``: an idle link the vehicle closed is
        marked down then (not at the next command), and the always-on vehicles are
        (re)connected, within the backoff."""
        if self._watch is None:
            self._watch = asyncio.create_task(self._watch_links(), name="doip-watch")

    def keep_up(self, vehicle_id: str, on: bool) -> None:
        """Keep the vehicle connected (connect now, reconnect after a loss, never close it
        for idleness), or stop doing so."""
        if on:
            self._always_on.add(vehicle_id)
        else:
            self._always_on.discard(vehicle_id)
        link = self._links.get(vehicle_id)
        if link is not None:
            link.always_on = on

    async def connect(self, vehicle_id: str) -> bool:
        """Open the vehicle's link now; False if it cannot be reached (or is in backoff)."""
        try:
            link = await self._link(vehicle_id)
        except VehicleUnreachable:
            return False
        return link.up or await link.connect()

    async def check_links(self) -> None:
        """One round of the watch (see ``start``)."""
        for link in list(self._links.values()):
            if link.up:
                await link.probe()
        for vehicle_id in sorted(self._always_on):
            kept = self._links.get(vehicle_id)
            if kept is None or not kept.up:
                await self.connect(vehicle_id)

    async def _watch_links(self) -> None:
        # The first round at once: the always-on vehicles connect at start.
        while True:
            try:
                await self.check_links()
            except asyncio.CancelledError:
                raise
            except Exception:
                # One bad round (a store read failing, ...) must not end the watch.
                log.exception("watching the DoIP links failed", extra={"event": "doip_watch_error"})
            await asyncio.sleep(self._settings.tester_present_s)

    async def disconnect(self, vehicle_id: str) -> None:
        """Close a vehicle's link now (its target changed, or it was removed)."""
        link = self._links.pop(vehicle_id, None)
        if link is not None:
            await link.close()

    async def _link(self, vehicle_id: str) -> Link:
        link = self._links.get(vehicle_id)
        if link is None:
            link = self._links[vehicle_id] = Link(vehicle_id, self._settings, self._observer)
            link.always_on = vehicle_id in self._always_on
        if not link.up:
            link.check_backoff()
            target = await self._resolve(vehicle_id)
            if target is None:
                raise VehicleUnreachable(f"vehicle {vehicle_id} has no DoIP target configured")
            link.set_target(target)
        return link

    async def execute(self, request: DiagnosticRequest) -> AsyncGenerator[RawChunk, None]:
        name, params = request.command_name, request.command_params
        perform = self._COMMANDS.get(name)
        if perform is None:
            yield _chunk({"negativeResponse": {"nrc": "0x11", "name": uds.nrc_name(0x11)}}, True)
            return
        ecu = _number(_param(params, "ecuAddress", name), "ecuAddress", 0xFFFF)
        link = await self._link(request.vehicle_id)
        link.busy += 1
        try:
            try:
                async for chunk in perform(self, link, ecu, params):
                    yield chunk
            except _Refusal as refusal:
                yield _chunk(refusal.payload, True)
        finally:
            link.busy -= 1
            link.touch()

    # -- UDS -----------------------------------------------------------------------------

    async def _uds(
        self,
        link: Link,
        ecu: int,
        request: Request,
        interpret: Callable[[Response], object],
        context: Mapping[str, Any],
    ) -> Response:
        """Send ``request`` to ``ecu``: its positive answer, interpreted, or _Refusal with
        the negative-response chunk."""
        payload = request.get_payload()
        sid = payload[0]
        base = {"ecuAddress": _hex(ecu, 2), **context}
        exchange = await link.exchange(ecu, payload)
        if exchange.nack is not None:
            name = doip.code_name(doip.DIAGNOSTIC_NACK_NAMES, exchange.nack)
            raise _Refusal(
                {
                    **base,
                    "negativeResponse": {
                        "nrc": _hex(exchange.nack, 2),
                        "name": name,
                        "layer": "doip",
                    },
                }
            )
        if exchange.answer is None:
            await _never()
        response = Response.from_payload(exchange.answer)
        where = f"ECU {_hex(ecu, 2)} answered {uds.service_name(sid)}"
        if not response.valid or response.service is None:
            raise sovd.InvalidResponse(f"{where} with an undecodable message")
        if response.service.request_id() != sid:
            raise sovd.InvalidResponse(f"{where} for another service")
        if not response.positive:
            code = int(response.code or 0)
            raise _Refusal(
                {
                    **base,
                    "negativeResponse": {"nrc": uds.format_nrc(code), "name": uds.nrc_name(code)},
                }
            )
        try:
            interpret(response)
        except _UDS_DECODE_ERRORS as exc:
            raise sovd.InvalidResponse(f"{where} with a malformed message: {exc}") from None
        return response

    async def _read_dtcs(self, link: Link, ecu: int) -> list[tuple[int, int]]:
        subfunction = ReadDTCInformation.Subfunction.reportDTCByStatusMask
        request = ReadDTCInformation.make_request(subfunction, status_mask=uds.ALL_DTC_STATUS_BITS)
        response = await self._uds(
            link,
            ecu,
            request,
            partial(
                ReadDTCInformation.interpret_response,
                subfunction=subfunction,
                tolerate_zero_padding=False,
            ),
            {},
        )
        data = response.service_data
        assert isinstance(data, ReadDTCInformation.ResponseData)
        return [(dtc.id, dtc.status.get_byte_as_int()) for dtc in data.dtcs]

    async def _read_dtc(
        self, link: Link, ecu: int, params: Mapping[str, str]
    ) -> AsyncGenerator[RawChunk, None]:
        dtcs = await self._read_dtcs(link, ecu)
        for number, status in dtcs:
            code = uds.dtc_code(number)
            yield _chunk(
                {
                    "ecuAddress": _hex(ecu, 2),
                    "dtcCode": code,
                    "status": uds.status_summary(status),
                    "statusByte": _hex(status, 2),
                    "statusBits": list(uds.status_bits(status)),
                    "failureType": _hex(uds.failure_type(number), 2),
                    "description": DTC_DESCRIPTIONS.get(code, ""),
                },
                False,
            )
        yield _chunk(
            {"ecuAddress": _hex(ecu, 2), "status": "complete", "totalDtcs": len(dtcs)}, True
        )

    async def _clear_dtc(
        self, link: Link, ecu: int, params: Mapping[str, str]
    ) -> AsyncGenerator[RawChunk, None]:
        wanted = params.get("dtcCode")
        try:
            group = uds.ALL_DTC_GROUPS if wanted is None else uds.dtc_number(wanted)
        except ValueError as exc:
            raise sovd.InvalidParams(f"command_params.dtcCode: {exc}") from None
        # Read before and after: UDS 0x54 says only "done", the chunk says what changed.
        # A read the ECU refuses leaves that part out rather than stopping the clear.
        before = await self._read_or_none(link, ecu)
        # A DTC is three bytes: the display code's two and a failure type. Clear the ones
        # the ECU reported under that code, with their own failure types; only when it
        # reported none (or refused the read) send the code with failure type 0, and let
        # the ECU answer (requestOutOfRange for a DTC it does not know).
        targets = [group]
        if wanted is not None and before is not None:
            code = wanted.upper()
            targets = [n for n, _ in before if uds.dtc_code(n) == code] or targets
        for number in targets:
            await self._uds(
                link,
                ecu,
                ClearDiagnosticInformation.make_request(number),
                ClearDiagnosticInformation.interpret_response,
                {"dtcCode": wanted} if wanted else {},
            )
        after = await self._read_or_none(link, ecu)
        answer: dict[str, Any] = {"ecuAddress": _hex(ecu, 2), "status": "cleared"}
        if before is not None and after is not None:
            remaining = {uds.dtc_code(n) for n, _ in after}
            answer["clearedDtcs"] = [
                c for c in (uds.dtc_code(n) for n, _ in before) if c not in remaining
            ]
        if after is not None:
            answer["remainingDtcs"] = len(after)
        yield _chunk(answer, True)

    async def _read_or_none(self, link: Link, ecu: int) -> list[tuple[int, int]] | None:
        try:
            return await self._read_dtcs(link, ecu)
        except _Refusal:
            return None

    async def _read_data(
        self, link: Link, ecu: int, params: Mapping[str, str]
    ) -> AsyncGenerator[RawChunk, None]:
        did = _number(_param(params, "dataId", "ReadDataByID"), "dataId", 0xFFFF)
        data_id = uds.format_did(did)
        codec = uds.DID_CODECS.get(did)
        config: dict[int | str, str | UdsoncanDidCodec | type[UdsoncanDidCodec]] = {
            did: _Did(codec) if codec is not None else _RawDid()
        }
        request = ReadDataByIdentifier.make_request(did, config)
        response = await self._uds(
            link,
            ecu,
            request,
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
            raise sovd.InvalidResponse(f"ECU {_hex(ecu, 2)} answered without {data_id}")
        answer: dict[str, Any] = {"ecuAddress": _hex(ecu, 2), "dataId": data_id}
        if codec is None:
            answer["raw"] = data.values[did]
        else:
            answer["name"] = codec.name
            answer["value"] = data.values[did]
            if codec.unit is not None:
                answer["unit"] = codec.unit
        yield _chunk(answer, True)

    async def _session(
        self, link: Link, ecu: int, params: Mapping[str, str]
    ) -> AsyncGenerator[RawChunk, None]:
        wanted = _param(params, "session", "DiagnosticSessionControl")
        session = uds.SESSIONS.get(wanted)
        if session is None:
            raise sovd.InvalidParams(f"command_params.session {wanted!r} is not a session")
        request = DiagnosticSessionControl.make_request(session)
        response = await self._uds(link, ecu, request, _interpret_session, {"session": wanted})
        data = response.service_data
        assert isinstance(data, DiagnosticSessionControl.ResponseData)
        if data.session_echo != session:
            raise sovd.InvalidResponse(
                f"ECU {_hex(ecu, 2)} switched to session {_hex(data.session_echo, 2)}"
                f" instead of {wanted}"
            )
        link.session_changed(ecu, session)
        answer: dict[str, Any] = {"ecuAddress": _hex(ecu, 2), "session": wanted}
        if data.p2_server_max is not None and data.p2_star_server_max is not None:
            answer["p2ServerMaxMs"] = round(data.p2_server_max * 1000)
            answer["p2StarServerMaxMs"] = round(data.p2_star_server_max * 1000)
        yield _chunk(answer, True)

    async def _routine(
        self, link: Link, ecu: int, params: Mapping[str, str]
    ) -> AsyncGenerator[RawChunk, None]:
        routine_id = _number(_param(params, "routineId", "RoutineControl"), "routineId", 0xFFFF)
        action = _param(params, "action", "RoutineControl")
        control = uds.ROUTINE_ACTIONS.get(action)
        if control is None:
            raise sovd.InvalidParams(f"command_params.action {action!r} is not an action")
        context = {"routineId": _hex(routine_id, 4), "action": action}
        request = RoutineControl.make_request(routine_id, control)
        response = await self._uds(link, ecu, request, RoutineControl.interpret_response, context)
        data = response.service_data
        assert isinstance(data, RoutineControl.ResponseData)
        if data.routine_id_echo != routine_id or data.control_type_echo != control:
            raise sovd.InvalidResponse(
                f"ECU {_hex(ecu, 2)} answered for routine {_hex(data.routine_id_echo, 4)}"
                f" ({uds.routine_action_name(data.control_type_echo)})"
            )
        record = bytes(data.routine_status_record)
        answer: dict[str, Any] = {"ecuAddress": _hex(ecu, 2), **context}
        status = uds.decode_routine_status(record)
        if status is not None:
            answer["status"] = status.state
            answer["progress"] = status.progress
        answer["statusRecord"] = record.hex().upper()
        yield _chunk(answer, True)

    _COMMANDS: Final[
        dict[
            str,
            Callable[[DoipConnector, Link, int, Mapping[str, str]], AsyncGenerator[RawChunk, None]],
        ]
    ] = {
        "ReadDTC": _read_dtc,
        "ClearDTC": _clear_dtc,
        "ReadDataByID": _read_data,
        "DiagnosticSessionControl": _session,
        "RoutineControl": _routine,
    }


if TYPE_CHECKING:

    def _is_a_connector(connector: DoipConnector) -> Connector:
        return connector  # mypy checks DoipConnector against the Connector protocol
