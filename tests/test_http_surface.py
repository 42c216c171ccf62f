"""What the real server shows on the wire: no software banner, and HTTP/1.1 only unless
cleartext HTTP/2 is configured (neither the h2c upgrade nor the prior-knowledge preface
switches protocols)."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import Process, server_env

pytestmark = pytest.mark.socket

H2C_UPGRADE = (
    b"GET /health/live HTTP/1.1\r\nHost: sovd\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)
# The HTTP/2 connection preface, then an empty SETTINGS frame.
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
SETTINGS_FRAME_TYPE = b"\x04"


def _exchange(proc: Process, data: bytes, wait_s: float = 1.0) -> bytes:
    port = int(proc.base_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(data)
        sock.settimeout(0.05)
        received = b""
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if received.endswith(b"}"):  # a whole JSON answer is in
                    break
                continue
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        return received


@pytest.fixture(scope="module")
def proc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Process]:
    process = Process(server_env(tmp_path_factory.mktemp("surface")))
    try:
        yield process
    finally:
        process.stop()


def test_responses_do_not_name_the_server_software(proc: Process) -> None:
    for response in (
        proc.http.get("/health/live"),
        proc.http.get("/api/v1/vehicles"),  # 401
        proc.http.get("/nowhere"),  # 404
    ):
        assert "server" not in response.headers
    assert b"hypercorn" not in _exchange(proc, b"BAD\r\n\r\n").lower()  # Hypercorn's own 400


def test_an_h2c_upgrade_is_answered_in_http_1_1(proc: Process) -> None:
    answer = _exchange(proc, H2C_UPGRADE)
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b"101" not in answer.split(b"\r\n", 1)[0]
    assert b"upgrade: h2c" not in answer.lower()
    assert answer.endswith(b'{"status":"ok"}')


def test_the_http2_preface_gets_no_http2_answer(proc: Process) -> None:
    answer = _exchange(proc, H2_PREFACE)
    # An HTTP/1.1 error for the odd "PRI *" request, never an HTTP/2 SETTINGS frame.
    assert answer.startswith(b"HTTP/1.1 4"), answer
    assert not answer.startswith(b"\x00\x00")
    assert answer.lower().count(b"http/1.1 ") >= 1


def test_cleartext_http2_can_be_turned_on(tmp_path: Path) -> None:
    process = Process(server_env(tmp_path, SOVD_HTTP2_CLEARTEXT="true"))
    try:
        answer = _exchange(process, H2C_UPGRADE)
        assert answer.startswith(b"HTTP/1.1 101"), answer
        preface_answer = _exchange(process, H2_PREFACE)
        assert preface_answer[3:4] == SETTINGS_FRAME_TYPE, preface_answer  # an HTTP/2 frame
    finally:
        process.stop()
