"""A response stream needs nothing from its client (issue #19, item 1): a message from the
client larger than a few KiB, counted after inflating, closes the socket with 1009, and the
server's memory does not grow with what the client sent.

Against the real ``python -m app`` over raw sockets with hand-built WebSocket frames (a
client library would not send a pre-compressed bomb), measuring the server process's
resident memory in /proc; and in process, the bounded inflate itself on wsproto, so that
an upgrade of wsproto or Hypercorn that breaks it fails here first.
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from hypercorn.protocol import ws_stream
from hypercorn.protocol.h11 import H11Protocol
from wsproto.connection import SERVER, Connection
from wsproto.events import BytesMessage, Message

from app import hypercorn_patches, server
from app.config import Config
from tests.support.harness import DEADLINE_S, auth
from tests.support.process import Process, server_env

pytestmark = pytest.mark.socket

MIB = 1024 * 1024
OP_TEXT, OP_BINARY, OP_CLOSE = 0x1, 0x2, 0x8
# Four clients of each kind, as in the report ("four clients made it inflate 3.3 GB").
CLIENTS = 4


def _bomb(inflated: int) -> bytes:
    """A permessage-deflate payload (RFC 7692: raw deflate, the 00 00 ff ff tail cut)
    that inflates to ``inflated`` zero bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(MIB)
    body = b"".join(deflate.compress(zeros) for _ in range(inflated // MIB))
    body += deflate.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def _frame(opcode: int, payload: bytes, *, compressed: bool = False, fin: bool = True) -> bytes:
    """One masked client frame (RFC 6455 5.2)."""
    first = (0x80 if fin else 0) | (0x40 if compressed else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    mask = os.urandom(4)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
    return head + mask + masked


class RawWebSocket:
    """A WebSocket client at the byte level: the handshake, frames as given, and the
    server's frames read back until its close frame."""

    def __init__(self, port: int, path: str, *, deflate: bool) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        key = base64.b64encode(os.urandom(16)).decode()
        offer = (
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover;"
            " server_no_context_takeover\r\n"
            if deflate
            else ""
        )
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
            ).encode()
        )
        self._data = b""
        while b"\r\n\r\n" not in self._data:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed during the handshake"
            self._data += chunk
        head, _, self._data = self._data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101"), head
        assert (b"permessage-deflate" in head.lower()) == deflate, head

    def send(self, frame: bytes) -> None:
        """Send the frame, as much of it as the server takes (it may close midway)."""
        with suppress(OSError):
            self.sock.sendall(frame)

    def _read(self, n: int, deadline: float) -> bytes:
        while len(self._data) < n:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed without a close frame")
            self._data += chunk
        out, self._data = self._data[:n], self._data[n:]
        return out

    def close_code(self) -> int:
        """Read the server's frames until its close frame; its code."""
        deadline = time.monotonic() + DEADLINE_S
        while True:
            first, second = self._read(2, deadline)
            n = second & 0x7F
            if n == 126:
                (n,) = struct.unpack("!H", self._read(2, deadline))
            elif n == 127:
                (n,) = struct.unpack("!Q", self._read(8, deadline))
            payload = self._read(n, deadline)
            if first & 0x0F == OP_CLOSE:
                (code,) = struct.unpack("!H", payload[:2])
                return int(code)

    def close(self) -> None:
        """Answer the close and hang up."""
        self.send(_frame(OP_CLOSE, struct.pack("!H", 1000)))
        self.sock.close()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name == field:
            return int(value.split()[0])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def _reset_peak(pid: int) -> None:
    """Start VmHWM (the peak resident size) afresh from the current size."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


@contextmanager
def _service(tmp_path: Path, **env: str) -> Iterator[tuple[Process, str]]:
    """The service with a command that stays running (a vehicle that never answers, a
    long deadline), and the path of its response stream."""
    proc = Process(server_env(tmp_path, SOVD_COMMAND_TIMEOUT_S="120", **env))
    try:
        token = proc.token()
        headers = auth(token)
        vehicles = proc.http.get("/api/v1/vehicles", headers=headers).json()["items"]
        (vehicle,) = [
            v
            for v in vehicles
            if v["simulator_profile"] == "timeout" and v["connection_status"] == "connected"
        ]
        r = proc.http.post(
            "/api/v1/commands",
            headers=headers,
            json={
                "vehicle_id": vehicle["vehicle_id"],
                "command_name": "ReadDTC",
                "command_params": {"ecuAddress": "0x10"},
            },
        )
        assert r.status_code == 201, r.text
        yield proc, f"/ws/responses/{r.json()['command_id']}?token={token}"
    finally:
        proc.stop()


def _port(proc: Process) -> int:
    return int(proc.base_url.rsplit(":", 1)[1])


def _attack(proc: Process, path: str, frame: bytes, *, deflate: bool) -> list[int]:
    """CLIENTS streams each send ``frame``; the close code each gets."""
    sockets = [RawWebSocket(_port(proc), path, deflate=deflate) for _ in range(CLIENTS)]
    try:
        for ws in sockets:
            ws.send(frame)
        return [ws.close_code() for ws in sockets]
    finally:
        for ws in sockets:
            ws.close()


@pytest.mark.parametrize("mode", ["deflate", "full"])
def test_big_or_inflating_client_frames_close_1009_and_cost_no_memory(
    tmp_path: Path, mode: str
) -> None:
    with _service(tmp_path, SOVD_WS_COMPRESSION=mode) as (proc, path):
        pid = proc.proc.pid
        # Warm up: a stream opened and left the ordinary way, so its code is loaded.
        warm = RawWebSocket(_port(proc), path, deflate=True)
        warm.send(_frame(OP_TEXT, b"hello"))
        warm.close()
        assert proc.http.get("/health/live").status_code == 200
        before = _status_kib(pid, "VmRSS")
        _reset_peak(pid)

        # 1 MiB in one uncompressed frame, then a 100 KiB frame that inflates to 100 MiB.
        big = _frame(OP_BINARY, os.urandom(MIB))
        bomb = _bomb(100 * MIB)
        assert len(bomb) < 200 * 1024
        assert _attack(proc, path, big, deflate=False) == [1009] * CLIENTS
        assert (
            _attack(proc, path, _frame(OP_BINARY, bomb, compressed=True), deflate=True)
            == [1009] * CLIENTS
        )

        started = time.monotonic()
        assert proc.http.get("/health/live").status_code == 200
        assert time.monotonic() - started < 1.0
        peak = _status_kib(pid, "VmHWM")
        after = _status_kib(pid, "VmRSS")
        # Nothing the clients sent was ever held or inflated past the cap: the peak stays
        # within 20% of the size before, and so does the size afterwards.
        assert peak <= before * 1.2, (before, peak)
        assert abs(after - before) <= before * 0.2, (before, after)


# -- in process: the bounded inflate on wsproto, as Hypercorn drives it -----------------


@pytest.fixture(autouse=True)
def _hypercorns_own_classes_afterwards(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests below install the service's classes into Hypercorn's module, as the
    service does at start; other tests in this process get Hypercorn's own back."""
    for name in ("PerMessageDeflate", "WebsocketBuffer"):
        monkeypatch.setattr(ws_stream, name, vars(ws_stream)[name])
    monkeypatch.setattr(H11Protocol, "_check_protocol", vars(H11Protocol)["_check_protocol"])


def _server_connection() -> Connection:
    """A wsproto server connection with the service's permessage-deflate accepted, as
    Hypercorn builds it for a client offering it."""
    hypercorn_patches.apply("deflate", server.WS_MAX_MESSAGE_BYTES)
    extension = vars(ws_stream)["PerMessageDeflate"]()
    assert extension.accept("permessage-deflate; client_no_context_takeover")
    return Connection(SERVER, [extension])


def _received(connection: Connection, data: bytes) -> tuple[int, list[object]]:
    """Feed ``data``; the bytes of message data it gave and the other events."""
    connection.receive_data(data)
    size = 0
    other: list[object] = []
    for event in connection.events():
        if isinstance(event, Message):
            size += len(event.data)
        else:
            other.append(event)
    return size, other


def test_the_inflate_stops_past_the_cap_whatever_the_ratio() -> None:
    """wsproto 1.3.2 inflates a whole received chunk at once; the service's extension
    (app.hypercorn_patches, which overrides two of its methods) gives at most the cap plus one byte
    of a message, so Hypercorn's size check closes with 1009 before more exists."""
    cap = server.WS_MAX_MESSAGE_BYTES
    bomb = _frame(OP_BINARY, _bomb(100 * MIB), compressed=True)
    tracemalloc.start()
    try:
        size, other = _received(_server_connection(), bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == cap + 1
    assert other == []  # no protocol error: Hypercorn's buffer is what closes, with 1009
    assert peak < len(bomb) * 4 + MIB, peak


def test_messages_within_the_cap_still_inflate_whole_one_after_another() -> None:
    cap = server.WS_MAX_MESSAGE_BYTES
    connection = _server_connection()
    text = os.urandom(cap // 2).hex().encode()  # exactly the cap, as text
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = (deflate.compress(text) + deflate.flush(zlib.Z_SYNC_FLUSH))[:-4]
    for _ in range(3):  # the count starts again with each message
        connection.receive_data(_frame(OP_TEXT, payload, compressed=True))
        (event,) = connection.events()
        assert isinstance(event, Message) and event.message_finished
        assert event.data == text.decode()
    connection.receive_data(_frame(OP_BINARY, b"plain"))
    assert [e.data for e in connection.events() if isinstance(e, BytesMessage)] == [b"plain"]


def test_hypercorns_buffer_drops_what_it_held_once_past_the_cap() -> None:
    server.hypercorn_config(Config())
    buffer = ws_stream.WebsocketBuffer(server.WS_MAX_MESSAGE_BYTES)
    buffer.extend(BytesMessage(data=b"x" * 100, message_finished=False))
    for _ in range(3):  # a client that goes on sending after the close holds nothing
        with pytest.raises(ws_stream.FrameTooLargeError):
            buffer.extend(BytesMessage(data=bytes(MIB), message_finished=False))
        assert buffer.value is None
