"""The wire to one vehicle's DoIP entity: the TCP connection, routing activation, one UDS
exchange at a time with its P2/P2* waits, TesterPresent, and the events the event loop
hears of. Blocking: it runs only in the vehicle's own worker thread (``doip_link.Link``
owns that thread and applies what a job returns), parsed with doipclient's parser and
messages. A job never raises for the vehicle's faults: it returns an ``Outcome``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Final, Literal, Protocol, cast

from doipclient import messages as doip_messages

from app.clock import monotonic, utc_now
from app.vehicles import doip, uds
from app.vehicles.doip_jobs import Exchange, Outcome, Report, Ticket, WireEvent
from app.vehicles.doip_observer import LinkDownReason
from app.vehicles.doip_settings import DoipSettings, DoipTarget

log = logging.getLogger(__name__)

READ_SIZE: Final = 4096
# The most one DoIP message may hold: a header announcing more is refused as garbage
# before its payload is read, so a peer cannot stream memory into the process until the
# answer's deadline. UDS answers are far smaller.
MAX_MESSAGE_BYTES: Final = 1 << 20
# Errors doipclient's message classes raise for a payload that does not fit its type.
_DOIP_DECODE_ERRORS: Final = (struct.error, ValueError, IndexError, KeyError)


class _DoipMessage(Protocol):
    payload_type: int

    def pack(self) -> bytes: ...


class _Unpack(Protocol):
    def unpack(self, payload: bytes, length: int) -> object: ...


# doipclient has no type hints; these typed names are the surface this module uses.
_messages_by_type = cast(Mapping[int, _Unpack], doip_messages.payload_type_to_message)
_diagnostic_message: Callable[[int, int, bytes], _DoipMessage] = doip_messages.DiagnosticMessage
_activation_request: Callable[[int, int], _DoipMessage] = doip_messages.RoutingActivationRequest
_alive_check_response: Callable[[int], _DoipMessage] = doip_messages.AliveCheckResponse


class _Unreachable(Exception):
    """No link could be made: refused, no route, routing activation denied."""


class _Lost(Exception):
    """The link broke: closed or reset by the vehicle, or refused by its DoIP entity."""


class _Garbage(Exception):
    """A DoIP frame that does not decode: the stream cannot be trusted any more."""


class Wire:
    """The TCP connection to one vehicle's DoIP entity. Blocking; only ever used by the
    vehicle's worker thread (``abort`` excepted)."""

    def __init__(self, target: DoipTarget, settings: DoipSettings, report: Report) -> None:
        self.target = target
        self._settings = settings
        self._report = report
        self._sock: socket.socket | None = None
        self._frames = self._new_frames()
        self._received: list[doip.Frame] = []  # cut from the stream, not yet read
        self._aborted = False  # the connector is closing: a broken read is no loss

    def _event(self, kind: Literal["up", "down", "refused", "seen"], reason: str = "") -> None:
        self._report(WireEvent(kind, reason, utc_now()))

    def _down(self) -> None:
        self._event("down", "closed" if self._aborted else "lost")

    # -- jobs: run in the worker, report as they go -------------------------------------

    def job_exchange(self, ecu: int, request: bytes, ticket: Ticket) -> Outcome:
        if ticket.void:
            # Its command ended while it waited for the worker: never sent late.
            return Outcome((Exchange(no_answer=True, sent=False),))
        try:
            self._open()
        except _Unreachable as exc:
            self._event("refused", str(exc))
            return Outcome(unreachable=str(exc))
        started = monotonic()
        try:
            exchange = self._exchange(ecu, request, expect_answer=True, ticket=ticket)
        except (_Lost, _Garbage) as exc:
            self.close()
            self._down()
            lost = isinstance(exc, _Lost)
            broken = Exchange(
                failure="lost" if lost else "invalid", duration_s=monotonic() - started
            )
            if lost:
                return Outcome((broken,), unreachable=str(exc))
            return Outcome((broken,), invalid=str(exc))
        if exchange.no_answer:
            self.close()  # so that a late answer cannot pass for the next request's
            self._event("down", "no-answer")
        return Outcome((exchange,))

    def job_connect(self) -> Outcome:
        """Open the link without a request (a vehicle kept always on)."""
        try:
            self._open()
        except _Unreachable as exc:
            self._event("refused", str(exc))
            return Outcome(unreachable=str(exc))
        return Outcome()

    def job_probe(self) -> Outcome:
        """Notice a link the vehicle closed while idle (never opens one)."""
        if self._sock is None or self._still_open():
            return Outcome()
        self.close()
        self._down()
        return Outcome()

    def job_tester_present(self, ecus: tuple[int, ...]) -> Outcome:
        """Keep the ECUs' non-default sessions alive; never opens a link (the sessions
        die with the one they were opened on)."""
        if self._sock is None:
            return Outcome()
        exchanges: list[Exchange] = []
        try:
            for ecu in ecus:
                # 0x3E 0x80: TesterPresent, positive answer suppressed; only the DoIP
                # acknowledgement comes back.
                exchanges.append(self._exchange(ecu, b"\x3e\x80", expect_answer=False))
        except (_Lost, _Garbage) as exc:
            self.close()
            self._down()
            return Outcome(tuple(exchanges), unreachable=str(exc))
        return Outcome(tuple(exchanges))

    def job_close(self, reason: LinkDownReason) -> Outcome:
        if self._sock is not None:
            self.close()
            self._event("down", reason)
        return Outcome()

    # -- connection ----------------------------------------------------------------------

    def _open(self) -> None:
        if self._sock is not None:
            if self._still_open():
                return
            # The vehicle closed the link while it was idle (its inactivity timer): not
            # this command's problem, so connect again.
            self.close()
            self._event("down", "lost")
        target, settings = self.target, self._settings
        where = f"{target.host}:{target.port}"
        try:
            sock = socket.create_connection(
                (target.host, target.port), timeout=settings.connect_timeout_s
            )
        except OSError as exc:
            raise _Unreachable(f"cannot connect to {where}: {exc.strerror or exc}") from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock, self._frames, self._received = sock, self._new_frames(), []
        try:
            self._activate(where)
        except (_Lost, _Garbage) as exc:
            self.close()
            raise _Unreachable(f"routing activation at {where} failed: {exc}") from None
        except _Unreachable:
            self.close()
            raise
        self._event("up")

    def _activate(self, where: str) -> None:
        target = self.target
        self._send(_activation_request(target.tester_address, target.activation_type))
        deadline = monotonic() + self._settings.activation_timeout_s
        while True:
            message = self._read(deadline)
            if message is None:
                raise _Unreachable(f"no routing activation response from {where}")
            if isinstance(message, doip_messages.RoutingActivationResponse):
                if int(message.client_logical_address) != target.tester_address:
                    continue  # meant for another tester on this entity
                # From the packed payload: doipclient's enum property refuses reserved codes.
                code = cast(_DoipMessage, message).pack()[4]
                if code != doip.ACTIVATION_SUCCESS:
                    name = doip.code_name(doip.ACTIVATION_CODE_NAMES, code)
                    raise _Unreachable(f"routing activation denied by {where}: 0x{code:02X} {name}")
                return
            self._housekeeping(message)

    def _still_open(self) -> bool:
        """Whether the vehicle has not closed the idle link (a peek, never blocks)."""
        assert self._sock is not None
        try:
            self._sock.settimeout(0)
            data = self._sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return True  # nothing to read: still open
        except OSError:
            return False
        return bool(data)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def abort(self) -> None:
        """From any thread: make a blocked read return at once (the service stops)."""
        self._aborted = True
        sock = self._sock
        if sock is not None:
            # Already closed or never connected: then nothing blocks on it.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    # -- frames --------------------------------------------------------------------------

    def _send(self, message: _DoipMessage) -> None:
        assert self._sock is not None
        frame = doip.encode_frame(
            message.payload_type, message.pack(), self.target.protocol_version
        )
        try:
            self._sock.settimeout(self._settings.p2_s)
            self._sock.sendall(frame)
        except OSError as exc:
            raise _Lost(f"the link broke while sending: {exc.strerror or exc}") from None

    @staticmethod
    def _new_frames() -> doip.FrameDecoder:
        return doip.FrameDecoder(max_payload=MAX_MESSAGE_BYTES)

    def _read(self, deadline: float) -> object | None:
        """The next DoIP message, or None once ``deadline`` (monotonic) has passed.

        Frames are cut strictly (``doip.FrameDecoder``: a bad header pattern or an
        oversized length is garbage at once, not bytes skipped until a deadline); each
        frame's payload is decoded by doipclient's message classes."""
        assert self._sock is not None
        while not self._received:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return None
            self._sock.settimeout(remaining)
            try:
                data = self._sock.recv(READ_SIZE)
            except TimeoutError:
                return None
            except OSError as exc:
                raise _Lost(f"the link broke: {exc.strerror or exc}") from None
            if not data:
                raise _Lost("the vehicle closed the connection")
            self._event("seen")
            try:
                self._received = self._frames.feed(data)
            except doip.FrameError as exc:
                if exc.nack_code == doip.NACK_MESSAGE_TOO_LARGE:
                    raise _Garbage(
                        f"a DoIP message was larger than {MAX_MESSAGE_BYTES} bytes"
                    ) from None
                raise _Garbage(f"bytes that are not DoIP arrived ({exc})") from None
        frame = self._received.pop(0)
        message_type = _messages_by_type.get(frame.payload_type)
        if message_type is None:
            return frame  # a payload type this tester does not use: not an answer
        try:
            return message_type.unpack(frame.payload, len(frame.payload))
        except _DOIP_DECODE_ERRORS as exc:
            raise _Garbage(f"a DoIP frame did not decode ({exc.__class__.__name__})") from None

    def _housekeeping(self, message: object) -> None:
        """Messages that may come at any time: answer an alive check, fail on a NACK."""
        if isinstance(message, doip_messages.AliveCheckRequest):
            self._send(_alive_check_response(self.target.tester_address))
        elif isinstance(message, doip_messages.GenericDoIPNegativeAcknowledge):
            code = int(message.nack_code)
            name = doip.code_name(doip.GENERIC_NACK_NAMES, code)
            raise _Lost(f"the DoIP entity refused a message: generic NACK 0x{code:02X} ({name})")

    def _exchange(
        self, ecu: int, request: bytes, *, expect_answer: bool, ticket: Ticket | None = None
    ) -> Exchange:
        """Send one UDS request and wait for its final answer (or, when none is expected,
        the DoIP acknowledgement), never past the ticket's ``until``."""
        tester = self.target.tester_address
        sid = request[0]
        bound: Callable[[float], float] = ticket.bound if ticket is not None else _unbounded
        started = monotonic()
        self._send(_diagnostic_message(tester, ecu, request))
        deadline = bound(started + self._settings.p2_s)
        while True:
            message = self._read(deadline)
            now = monotonic()
            if message is None:
                return Exchange(no_answer=expect_answer, duration_s=now - started)
            if isinstance(message, doip_messages.DiagnosticMessageNegativeAcknowledgement):
                if int(message.source_address) == ecu:
                    # From the packed payload: doipclient's enum refuses reserved codes.
                    code = cast(_DoipMessage, message).pack()[4]
                    return Exchange(nack=code, duration_s=now - started)
            elif isinstance(message, doip_messages.DiagnosticMessagePositiveAcknowledgement):
                if int(message.source_address) == ecu and not expect_answer:
                    return Exchange(duration_s=now - started)
            elif isinstance(message, doip_messages.DiagnosticMessage):
                source, target = int(message.source_address), int(message.target_address)
                if source != ecu or target != tester:
                    continue  # another ECU's late answer: not ours
                data = bytes(message.user_data)
                if uds.is_response_pending(data, sid):
                    # P2* from now, but never past the command's deadline: an ECU that
                    # answers 0x78 forever does not hold the link forever.
                    deadline = bound(now + self._settings.p2_star_s)
                    continue
                negative = uds.parse_negative(data)
                if negative is not None and negative.sid != sid:
                    # A negative answer to an earlier request whose positive answer was
                    # suppressed (TesterPresent 0x3E 0x80): negatives never are. It is
                    # not this request's answer.
                    log.info(
                        "ECU 0x%04X refused an earlier %s with 0x%02X",
                        ecu,
                        uds.service_name(negative.sid),
                        negative.nrc,
                        extra={"event": "doip_late_negative_response"},
                    )
                    continue
                if data[:1] == bytes([uds.TESTER_PRESENT + 0x40]) and sid != uds.TESTER_PRESENT:
                    # A TesterPresent answer from an ECU that ignores "suppress positive
                    # response" (0x3E 0x80): it belongs to our keepalive, not this request.
                    continue
                if not expect_answer:
                    continue
                return Exchange(answer=data, duration_s=now - started)
            else:
                self._housekeeping(message)


def _unbounded(deadline: float) -> float:
    return deadline
