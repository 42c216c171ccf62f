"""Slow and piled-up connections against the real ``python -m app`` over raw sockets:
whole-request deadlines, connection caps with cheap refusals, a bounded log, and a service
that still answers under a small open-file limit."""

from __future__ import annotations

import json
import resource
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import httpx
import pytest

from tests.support.harness import ENGINEER_PASSWORD
from tests.support.process import Process, server_env

pytestmark = pytest.mark.socket

# What asyncio logs, with a traceback, for each failed accept() when out of descriptors.
ACCEPT_OUT_OF_RESOURCES = "socket.accept() out of system resource"
LOGIN_HEAD = (
    b"POST /api/v1/auth/login HTTP/1.1\r\nHost: sovd\r\n"
    b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
)


def _port(proc: Process) -> int:
    return int(proc.base_url.rsplit(":", 1)[1])


def _connect(port: int, source: str = "127.0.0.1") -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _read_until_closed(sock: socket.socket, timeout_s: float) -> tuple[bytes, float | None]:
    """What the server sends, and after how long it closed (None: still open)."""
    started = time.monotonic()
    data = b""
    sock.settimeout(0.05)
    while time.monotonic() - started < timeout_s:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return data, time.monotonic() - started
        if not chunk:
            return data, time.monotonic() - started
        data += chunk
    return data, None


def _trickle(
    sock: socket.socket, every_s: float, until: Callable[[], bool]
) -> tuple[float | None, bytes]:
    """Send one byte every ``every_s`` until the server closes: after how long it did
    (None: it did not), and what it sent."""
    started = time.monotonic()
    received = b""
    sock.settimeout(every_s)
    while not until():
        try:
            sock.send(b"a")
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset or broken pipe: closed by the server
            return time.monotonic() - started, received
        if not chunk:
            return time.monotonic() - started, received
        received += chunk
    return None, received


def _within(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() > deadline


@contextmanager
def _service(
    tmp_path: Path, preexec: Callable[[], object] | None = None, **env: str
) -> Iterator[Process]:
    proc = Process(server_env(tmp_path, **env), preexec_fn=preexec)
    try:
        yield proc
    finally:
        proc.stop()


# -- deadlines ---------------------------------------------------------------------------


def test_a_body_trickled_a_byte_at_a_time_gets_408_and_loses_its_connection(
    tmp_path: Path,
) -> None:
    with _service(tmp_path, SOVD_REQUEST_TIMEOUT_S="1") as proc:
        sock = _connect(_port(proc))
        sock.sendall(LOGIN_HEAD)
        # A byte every 0.2 s would pass any per-read timeout; the whole body has 1 s.
        closed_after, answer = _trickle(sock, 0.2, _within(4))
        sock.close()
        assert closed_after is not None and closed_after < 1 + 1.5
        assert answer.startswith(b"HTTP/1.1 408"), answer
        assert b'"request-timeout"' in answer
        assert proc.http.get("/health/live").status_code == 200


def test_a_request_head_or_websocket_upgrade_never_finished_loses_its_connection(
    tmp_path: Path,
) -> None:
    with _service(tmp_path, SOVD_REQUEST_TIMEOUT_S="1") as proc:
        sock = _connect(_port(proc))
        sock.sendall(
            f"GET /ws/responses/{uuid.uuid4()}?token=x HTTP/1.1\r\nHost: sovd\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "X-Padding: ".encode()
        )
        closed_after, _ = _trickle(sock, 0.2, _within(4))  # the head never ends
        sock.close()
        assert closed_after is not None and closed_after < 1 + 1.0


def test_a_slow_body_within_the_deadline_is_served(tmp_path: Path) -> None:
    with _service(tmp_path, SOVD_REQUEST_TIMEOUT_S="2") as proc:
        body = json.dumps({"username": "engineer", "password": ENGINEER_PASSWORD}).encode()
        sock = _connect(_port(proc))
        sock.sendall(LOGIN_HEAD.replace(b"1000", str(len(body)).encode()))
        sock.sendall(body[:10])
        time.sleep(0.5)  # slow, but well inside the deadline
        sock.sendall(body[10:])
        answer, _ = _read_until_closed(sock, 1.0)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer


# -- connection caps ---------------------------------------------------------------------


def test_connections_past_the_cap_are_refused_at_once_with_one_log_line(tmp_path: Path) -> None:
    with _service(
        tmp_path,
        SOVD_MAX_CONNECTIONS="8",
        SOVD_MAX_CONNECTIONS_PER_CLIENT="0",
        SOVD_REQUEST_TIMEOUT_S="2",
    ) as proc:
        port = _port(proc)
        held = [_connect(port) for _ in range(8)]
        extra = [_connect(port) for _ in range(6)]
        # Most clients send their request at once: it is waiting unread when the refusal
        # is written, and must not turn the 503 into a reset (found in review).
        for sock in extra[::2]:
            sock.sendall(b"GET /health/live HTTP/1.1\r\nhost: x\r\n\r\n")
        for sock in extra:
            answer, closed_after = _read_until_closed(sock, 1.0)
            assert closed_after is not None, "a connection past the cap was kept open"
            assert answer.startswith(b"HTTP/1.1 503"), answer
            assert b"retry-after: 1" in answer and b'"overloaded"' in answer
            sock.close()
        for sock in held:  # the first eight are still open, waiting for a request
            sock.settimeout(0)
            with suppress(BlockingIOError):
                assert sock.recv(1) != b""
            sock.close()
        # Their places are given back once the server has closed them too (Hypercorn
        # does when its keep-alive timer, here 2 s, ends).
        deadline = time.monotonic() + 2 + 3
        while proc.http.get("/health/live").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        refused = [r for r in proc.log_records() if r.get("event") == "connection_refused"]
        assert len(refused) == 1, refused  # one line per interval, not one per refusal
        assert "SOVD_MAX_CONNECTIONS" in refused[0]["message"]


def _lower_open_files(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return apply


def test_under_a_slow_connection_flood_with_few_files_the_service_still_answers(
    tmp_path: Path,
) -> None:
    fd_limit = 160
    attackers = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    per_attacker = 60  # 180 connections in all: more than the process may open files
    with _service(
        tmp_path,
        preexec=_lower_open_files(fd_limit),
        SOVD_REQUEST_TIMEOUT_S="2",
        SOVD_MAX_CONNECTIONS_PER_CLIENT="30",
    ) as proc:
        port = _port(proc)
        lines_before = len(proc.lines)
        flood: list[socket.socket] = []
        stop = threading.Event()
        try:
            for source in attackers:
                for _ in range(per_attacker):
                    sock = _connect(port, source)
                    with suppress(OSError):  # refused already
                        sock.sendall(LOGIN_HEAD)
                    flood.append(sock)

            def trickle() -> None:  # a byte every 0.3 s on every connection still open
                while not stop.wait(0.3):
                    for sock in flood:
                        with suppress(OSError):
                            sock.send(b"a")

            threading.Thread(target=trickle, daemon=True).start()
            # The service answers its own clients during the flood.
            with httpx.Client(base_url=proc.base_url, timeout=5) as client:
                assert client.get("/health/live").status_code == 200
                login = client.post(
                    "/api/v1/auth/login",
                    json={"username": "engineer", "password": ENGINEER_PASSWORD},
                )
                assert login.status_code == 200, login.text
            # And every flooding connection is closed: refused at once or cut at the
            # deadline, not held while it trickles.
            still_open = list(flood)
            deadline = time.monotonic() + 2 + 3
            while still_open and time.monotonic() < deadline:
                for sock in list(still_open):
                    sock.settimeout(0)
                    try:
                        if sock.recv(65536) == b"":
                            still_open.remove(sock)
                    except BlockingIOError:
                        pass
                    except OSError:
                        still_open.remove(sock)
                time.sleep(0.05)
            assert not still_open, f"{len(still_open)} flooding connections still open"
        finally:
            stop.set()
            for sock in flood:
                sock.close()
        new_lines = proc.lines[lines_before:]
        # A few lines, not one per refusal or a traceback per failed accept().
        assert len(new_lines) < 200, len(new_lines)
        assert not [line for line in new_lines if ACCEPT_OUT_OF_RESOURCES in line]
        assert not [line for line in new_lines if "Traceback" in line]
        refused = [line for line in new_lines if '"connection_refused"' in line]
        assert 1 <= len(refused) <= 2
        # The total was lowered to fit the open-file limit, and the start said so.
        limit = next(r for r in proc.log_records() if r.get("event") == "connection_limit")
        assert f"to {fd_limit - 64}" in limit["message"]
