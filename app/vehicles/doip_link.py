"""The link to one vehicle's DoIP entity: connection, threads, lifecycle, observation.

doipclient and udsoncan are blocking libraries, so every socket operation of a vehicle
runs in that vehicle's own single-thread executor (``Wire``, parsed with doipclient's
parser and messages), which exists only while the vehicle is connected or being
connected: never more threads than connected vehicles, never a blocked event loop. The
executor serialises the vehicle's work, like the pipeline's per-vehicle lane above it.
A worker job never raises for the vehicle's faults: it returns an outcome, and all
bookkeeping (link state, sessions, observer calls) happens on the event loop from it
(``Link``), whether or not anyone still awaits the job.

Lifecycle per vehicle: connect on first use (TCP, then routing activation), keep the
link while idle for ``idle_close_s``, then close it and its thread. A link the vehicle
closed while idle is re-opened transparently; after a failed connection attempt the
next one waits ``backoff_first_s``, doubling up to ``backoff_max_s``, and a command in
that window fails at once. A request whose caller went away (cancelled, timed out)
before the worker reached it is dropped unsent; one already sent finishes in the worker:
its answer is read and dropped, so the link stays in step. The wait for an answer is
bounded by P2, by P2* after each 0x78 "response pending", and always by the command's
deadline, so an ECU that answers 0x78 forever cannot hold the link past it. An answer
that never comes in time resets the link, so a late answer cannot pass for the next
request's. A non-default diagnostic session is kept alive with TesterPresent (0x3E 0x80)
until it ends or the link closes.

The worker reports as it goes (the link up, every message the vehicle sends) to the
event loop, so a long exchange shows the vehicle connected and seen while it talks;
what a job returns (its exchanges) is applied when it is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import threading
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import KW_ONLY, dataclass
from functools import partial
from typing import Any, Final, Literal, Protocol, cast

from doipclient import messages as doip_messages

from app.clock import monotonic, utc_now
from app.sovd import InvalidResponse
from app.vehicles import doip, uds
from app.vehicles.addresses import format_address
from app.vehicles.connector import VehicleUnreachable

log = logging.getLogger(__name__)

READ_SIZE: Final = 4096
# The most one DoIP message may hold: a header announcing more is refused as garbage
# before its payload is read, so a peer cannot stream memory into the process until the
# answer's deadline. UDS answers are far smaller.
MAX_MESSAGE_BYTES: Final = 1 << 20
# Errors doipclient's message classes raise for a payload that does not fit its type.
_DOIP_DECODE_ERRORS: Final = (struct.error, ValueError, IndexError, KeyError)


# -- what the service wires ------------------------------------------------------------


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


LinkDownReason = Literal["idle", "lost", "no-answer", "closed"]
# What became of one UDS request (``LinkObserver.uds_exchange``); a metric label.
UDS_OUTCOMES: Final = ("positive", "negative", "invalid", "nack", "no-answer", "lost")


class LinkObserver(Protocol):
    """What the connector tells about its links, on the event loop thread. Timestamps
    are in ``app.clock`` format. The service (``app.services.vehicle_links``) maps these
    to ``connection_status`` / ``last_seen_at`` (and so the ``vehicle_connections_active``
    gauge), a connection-loss counter (``link_down`` with reason ``lost``) and a latency
    histogram per UDS service."""

    def link_up(self, vehicle_id: str, at: str) -> None: ...

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None: ...

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None: ...

    def vehicle_seen(self, vehicle_id: str, at: str) -> None: ...

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        """One UDS request: ``service`` as ISO 14229-1 names it, ``outcome`` one of
        positive, negative, invalid, nack, no-answer, lost."""
        ...


class NoLinkObserver:
    def link_up(self, vehicle_id: str, at: str) -> None:
        pass

    def link_down(self, vehicle_id: str, reason: LinkDownReason, at: str) -> None:
        pass

    def connect_failed(self, vehicle_id: str, reason: str, at: str) -> None:
        pass

    def vehicle_seen(self, vehicle_id: str, at: str) -> None:
        pass

    def uds_exchange(self, vehicle_id: str, service: str, duration_s: float, outcome: str) -> None:
        pass


@dataclass(frozen=True, slots=True)
class LinkState:
    connected: bool
    last_seen: str | None
    sessions: Mapping[str, str]  # ECU address -> session name, non-default ones only


# -- the wire: runs only in the vehicle's worker thread ---------------------------------


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


@dataclass(frozen=True, slots=True)
class _Event:
    kind: Literal["up", "down", "refused", "seen"]
    reason: str
    at: str


# The worker's way to tell the event loop what happened, as it happens (thread-safe).
_Report = Callable[[_Event], None]


class _Ticket:
    """One request's claim on the wire: when its command gives up on it (``abandon``,
    from the event loop) before the worker reaches it, the worker drops it unsent;
    ``until`` (monotonic) bounds every wait for its answer."""

    __slots__ = ("_abandoned", "until")

    def __init__(self, until: float | None) -> None:
        self.until = until
        self._abandoned = threading.Event()

    def abandon(self) -> None:
        self._abandoned.set()

    @property
    def void(self) -> bool:
        return self._abandoned.is_set() or (self.until is not None and monotonic() >= self.until)

    def bound(self, deadline: float) -> float:
        return deadline if self.until is None else min(deadline, self.until)


@dataclass(frozen=True, slots=True)
class Exchange:
    """One UDS request's fate on the wire."""

    answer: bytes | None = None  # the final answer (after any 0x78)
    nack: int | None = None  # DoIP diagnostic negative acknowledgement code
    no_answer: bool = False  # P2/P2* passed without the final answer
    failure: Literal["lost", "invalid"] | None = None  # the link broke / sent garbage
    duration_s: float = 0.0
    sent: bool = True  # False: dropped unsent (its command had given up on it)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What a worker job returns to the event loop when it is over (its events were
    reported as they happened); it never raises for the vehicle's faults."""

    exchanges: tuple[Exchange, ...] = ()
    unreachable: str | None = None
    invalid: str | None = None


class _Wire:
    """The TCP connection to one vehicle's DoIP entity. Blocking; only ever used by the
    vehicle's worker thread (``abort`` excepted)."""

    def __init__(self, target: DoipTarget, settings: DoipSettings, report: _Report) -> None:
        self.target = target
        self._settings = settings
        self._report = report
        self._sock: socket.socket | None = None
        self._frames = self._new_frames()
        self._received: list[doip.Frame] = []  # cut from the stream, not yet read
        self._aborted = False  # the connector is closing: a broken read is no loss

    def _event(self, kind: Literal["up", "down", "refused", "seen"], reason: str = "") -> None:
        self._report(_Event(kind, reason, utc_now()))

    def _down(self) -> None:
        self._event("down", "closed" if self._aborted else "lost")

    # -- jobs: run in the worker, report as they go -------------------------------------

    def job_exchange(self, ecu: int, request: bytes, ticket: _Ticket) -> _Outcome:
        if ticket.void:
            # Its command ended while it waited for the worker: never sent late.
            return _Outcome((Exchange(no_answer=True, sent=False),))
        try:
            self._open()
        except _Unreachable as exc:
            self._event("refused", str(exc))
            return _Outcome(unreachable=str(exc))
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
                return _Outcome((broken,), unreachable=str(exc))
            return _Outcome((broken,), invalid=str(exc))
        if exchange.no_answer:
            self.close()  # so that a late answer cannot pass for the next request's
            self._event("down", "no-answer")
        return _Outcome((exchange,))

    def job_connect(self) -> _Outcome:
        """Open the link without a request (a vehicle kept always on)."""
        try:
            self._open()
        except _Unreachable as exc:
            self._event("refused", str(exc))
            return _Outcome(unreachable=str(exc))
        return _Outcome()

    def job_probe(self) -> _Outcome:
        """Notice a link the vehicle closed while idle (never opens one)."""
        if self._sock is None or self._still_open():
            return _Outcome()
        self.close()
        self._down()
        return _Outcome()

    def job_tester_present(self, ecus: tuple[int, ...]) -> _Outcome:
        """Keep the ECUs' non-default sessions alive; never opens a link (the sessions
        die with the one they were opened on)."""
        if self._sock is None:
            return _Outcome()
        exchanges: list[Exchange] = []
        try:
            for ecu in ecus:
                # 0x3E 0x80: TesterPresent, positive answer suppressed; only the DoIP
                # acknowledgement comes back.
                exchanges.append(self._exchange(ecu, b"\x3e\x80", expect_answer=False))
        except (_Lost, _Garbage) as exc:
            self.close()
            self._down()
            return _Outcome(tuple(exchanges), unreachable=str(exc))
        return _Outcome(tuple(exchanges))

    def job_close(self, reason: LinkDownReason) -> _Outcome:
        if self._sock is not None:
            self.close()
            self._event("down", reason)
        return _Outcome()

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
        self, ecu: int, request: bytes, *, expect_answer: bool, ticket: _Ticket | None = None
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


# -- the link: event-loop side ------------------------------------------------------------


class Link:
    """One vehicle's link, as the event loop sees it. Only the worker touches the wire."""

    def __init__(self, vehicle_id: str, settings: DoipSettings, observer: LinkObserver) -> None:
        self.vehicle_id = vehicle_id
        self._settings = settings
        self._observer = observer
        self.up = False
        self.last_seen: str | None = None
        self.sessions: dict[int, int] = {}  # ECU -> non-default session
        self.busy = 0  # commands running on this link
        self.last_used = monotonic()
        self._failures = 0
        self._retry_at = 0.0
        self._pending = 0  # jobs submitted and not yet settled
        self._wire: _Wire | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._idle: asyncio.Task[None] | None = None
        self._keepalive: asyncio.Task[None] | None = None
        self._keepalive_queued = False
        self.always_on = False  # never closed for idleness (the connector reconnects it)
        self._closed = False  # closed for good: its target changed, or the service stops

    @property
    def has_thread(self) -> bool:
        return self._executor is not None

    @property
    def jobs(self) -> int:
        """Jobs submitted to the worker and not yet settled (running or waiting)."""
        return self._pending

    def state(self) -> LinkState:
        return LinkState(
            self.up,
            self.last_seen,
            {format_address(ecu): uds.session_name(s) for ecu, s in self.sessions.items()},
        )

    def set_target(self, target: DoipTarget) -> None:
        """Use ``target`` for the next connection (the link is down). On the event loop."""
        if self._wire is None or self._wire.target != target:
            loop = asyncio.get_running_loop()

            def report(event: _Event) -> None:  # from the worker thread
                loop.call_soon_threadsafe(self._apply, event)

            self._wire = _Wire(target, self._settings, report)

    def check_backoff(self) -> None:
        wait = self._retry_at - monotonic()
        if not self.up and wait > 0:
            raise VehicleUnreachable(
                f"vehicle {self.vehicle_id} did not answer the last {self._failures} connection"
                f" attempt(s); the next one is allowed in {wait:.1f} s"
            )

    # -- jobs ------------------------------------------------------------------------

    def _submit(self, sid: int | None, job: Callable[[], _Outcome]) -> asyncio.Future[_Outcome]:
        if self._executor is None:
            # A vehicle's thread exists while it is connected or being connected.
            self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"doip-{self.vehicle_id}")
        # The executor's queue is bounded by its callers: the pipeline's lane runs one
        # command per vehicle at a time, the keepalive queues at most one TesterPresent
        # and the idle timer one close, so a handful of jobs wait here at most.
        self._pending += 1
        future = asyncio.wrap_future(self._executor.submit(job))
        future.add_done_callback(partial(self._settle, sid))
        return future

    def _settle(self, sid: int | None, future: asyncio.Future[_Outcome]) -> None:
        """Apply a job's outcome, whether or not anyone still awaits it."""
        self._pending -= 1
        try:
            if future.cancelled():
                return
            error = future.exception()
            if error is not None:
                log.error(
                    "DoIP worker of vehicle %s failed",
                    self.vehicle_id,
                    exc_info=error,
                    extra={"event": "doip_worker_error", "vehicle_id": self.vehicle_id},
                )
                if self._wire is not None:
                    self._wire.close()  # its state is unknown: start afresh
                self._apply(_Event("down", "lost", utc_now()))
                return
            # The job's events were reported (and scheduled on the loop) before it
            # returned, so they are applied by now.
            for exchange in future.result().exchanges:
                self._exchanged(sid, exchange)
        finally:
            if self._pending == 0 and not self.up:
                self._release_thread()

    def _exchanged(self, sid: int | None, exchange: Exchange) -> None:
        if sid is None or not exchange.sent:
            return
        outcome: str
        if exchange.failure is not None:
            outcome = exchange.failure
        elif exchange.nack is not None:
            outcome = "nack"
        elif exchange.no_answer:
            outcome = "no-answer"
        elif exchange.answer is None:
            outcome = "positive"  # suppressed positive answer, acknowledged
        elif exchange.answer[:1] == bytes((uds.NEGATIVE_RESPONSE,)):
            outcome = "negative"
        elif exchange.answer[:1] == uds.positive(sid):
            outcome = "positive"
        else:
            outcome = "invalid"
        self._notify(
            self._observer.uds_exchange,
            self.vehicle_id,
            uds.service_name(sid),
            exchange.duration_s,
            outcome,
        )

    def _apply(self, event: _Event) -> None:
        if event.kind == "seen":
            self.last_seen = event.at
            self._notify(self._observer.vehicle_seen, self.vehicle_id, event.at)
        elif event.kind == "up":
            self.up = True
            self._failures, self._retry_at = 0, 0.0
            self._notify(self._observer.link_up, self.vehicle_id, event.at)
            self._arm_idle()
        elif event.kind == "down":
            was_up, self.up = self.up, False
            # The sessions lived on the link; the ECUs fall back to default by S3.
            self.sessions.clear()
            self._stop_keepalive()
            self._cancel(self._idle)
            self._idle = None
            if was_up:
                self._notify(self._observer.link_down, self.vehicle_id, event.reason, event.at)
        else:
            self._failures += 1
            backoff = self._settings.backoff_first_s * 2 ** (self._failures - 1)
            self._retry_at = monotonic() + min(backoff, self._settings.backoff_max_s)
            self._notify(self._observer.connect_failed, self.vehicle_id, event.reason, event.at)

    def _notify(self, method: Callable[..., None], *args: Any) -> None:
        try:
            method(*args)
        except Exception:
            # The observer is telemetry and bookkeeping: its bug must not break the link.
            log.exception("DoIP link observer failed", extra={"event": "doip_observer_error"})

    def _release_thread(self) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False)  # nothing is queued: the thread ends now

    # -- what commands use ---------------------------------------------------------------

    async def exchange(self, ecu: int, request: bytes, until: float | None = None) -> Exchange:
        """One UDS request on the worker, waiting for its answer no later than ``until``
        (monotonic; None: P2/P2* alone bound it). Cancelling the caller drops the request
        if the worker has not sent it yet; once sent, the worker reads its answer and
        drops it, keeping the link in step."""
        wire = self._wire
        assert wire is not None
        self._refuse_if_closed()
        ticket = _Ticket(until)
        future = self._submit(request[0], partial(wire.job_exchange, ecu, request, ticket))
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            ticket.abandon()
            raise
        if outcome.invalid is not None:
            raise InvalidResponse(f"vehicle {self.vehicle_id}: {outcome.invalid}")
        if outcome.unreachable is not None:
            raise VehicleUnreachable(f"vehicle {self.vehicle_id}: {outcome.unreachable}")
        return outcome.exchanges[0]

    async def connect(self) -> bool:
        """Open the link now; False if the vehicle could not be reached (the backoff
        applies as after a failed command)."""
        wire = self._wire
        assert wire is not None
        self._refuse_if_closed()
        outcome = await asyncio.shield(self._submit(None, wire.job_connect))
        return outcome.unreachable is None

    async def probe(self) -> None:
        """If the vehicle closed the idle link, mark it down now rather than at the
        next command."""
        wire = self._wire
        if self.up and wire is not None and self.busy == 0:
            await asyncio.shield(self._submit(None, wire.job_probe))

    def session_changed(self, ecu: int, session: int) -> None:
        if session == uds.DEFAULT_SESSION:
            self.sessions.pop(ecu, None)
        else:
            self.sessions[ecu] = session
        if self.sessions and self.up:
            if self._keepalive is None:
                self._keepalive = asyncio.create_task(
                    self._keep_sessions(), name=f"doip-keepalive-{self.vehicle_id}"
                )
        elif not self.sessions:
            self._stop_keepalive()

    def touch(self) -> None:
        self.last_used = monotonic()

    # -- background tasks ----------------------------------------------------------------

    async def _keep_sessions(self) -> None:
        try:
            while self.sessions and self.up:
                await asyncio.sleep(self._settings.tester_present_s)
                wire = self._wire
                if not self.sessions or not self.up or wire is None:
                    break
                if self._keepalive_queued:
                    continue  # the last one still waits behind a long request: no pile-up
                self._keepalive_queued = True
                try:
                    job = partial(wire.job_tester_present, tuple(self.sessions))
                    await asyncio.shield(self._submit(uds.TESTER_PRESENT, job))
                finally:
                    self._keepalive_queued = False
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "TesterPresent of vehicle %s failed",
                self.vehicle_id,
                extra={"event": "doip_keepalive_error"},
            )
        finally:
            if self._keepalive is asyncio.current_task():
                self._keepalive = None

    def _stop_keepalive(self) -> None:
        self._cancel(self._keepalive)
        self._keepalive = None

    def _arm_idle(self) -> None:
        if self._idle is None:
            self._idle = asyncio.create_task(
                self._close_when_idle(), name=f"doip-idle-{self.vehicle_id}"
            )

    async def _close_when_idle(self) -> None:
        try:
            while True:
                wait = self.last_used + self._settings.idle_close_s - monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                elif self.busy or self.always_on:
                    # A command is running (its end sets last_used again), or the link
                    # is to stay up.
                    await asyncio.sleep(self._settings.idle_close_s)
                else:
                    break
            wire = self._wire
            if self.up and wire is not None:
                await asyncio.shield(self._submit(None, partial(wire.job_close, "idle")))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "closing the idle link of vehicle %s failed",
                self.vehicle_id,
                extra={"event": "doip_idle_error"},
            )
        finally:
            if self._idle is asyncio.current_task():
                self._idle = None

    @staticmethod
    def _cancel(task: asyncio.Task[None] | None) -> None:
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _refuse_if_closed(self) -> None:
        # A command that still holds a link closed under it (an admin changed the target
        # mid-command, say) must not reopen it: nothing would ever close it again.
        if self._closed:
            raise VehicleUnreachable(
                f"vehicle {self.vehicle_id}: its link was closed (target changed or stopping)"
            )

    async def close(self) -> None:
        """Close the link for good and let its thread end (the target changed, or the
        service stops)."""
        self._closed = True
        self._stop_keepalive()
        self._cancel(self._idle)
        self._idle = None
        wire = self._wire
        if wire is not None and self._executor is not None:
            wire.abort()  # a request still waiting for its answer stops waiting
            await asyncio.wait({self._submit(None, partial(wire.job_close, "closed"))})
