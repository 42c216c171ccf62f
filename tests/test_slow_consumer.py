"""A WebSocket client that never reads cannot make the server buffer without bound.

Each socket's events wait in a bounded queue; when a client falls that far behind it is
closed and its buffers freed, while the pipeline and the other clients go on. (With an
unbounded queue this test fails: the stalled socket is never closed.)
"""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.harness import DEADLINE_S, ScriptedConnector, make_config, running, wait_until
from tests.support.scrape import scrape, value

pytestmark = pytest.mark.socket

CHUNKS = 3000
PAYLOAD = "x" * 8000  # 3000 chunks of 8 KB: 24 MB a never-reading client would pile up


def _stalled_client(ws_url: str) -> socket.socket:
    """Open a WebSocket by hand, read the handshake answer, then never read again."""
    url = urlparse(ws_url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((url.hostname, url.port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        "Upgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(1)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_a_stalled_client_is_dropped_and_nobody_else_notices(tmp_path: Path) -> None:
    fake = ScriptedConnector()
    config = make_config(tmp_path, command_timeout_s=120, ws_queue_size=32)
    with running(config, connector=fake) as srv:
        token = srv.token()
        cid = srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"]
        wait_until(lambda: cid in fake.started, "the command to start")
        url = f"{srv.ws_url}/ws/responses/{cid}?token={token}"
        stalled = _stalled_client(url)
        received: list[int] = []
        closed_with: list[int | None] = []

        def good_client() -> None:
            with connect(url, open_timeout=DEADLINE_S, max_size=None) as ws:
                try:
                    while True:
                        event = json.loads(ws.recv(timeout=DEADLINE_S * 3))
                        if event["event"] == "response":
                            received.append(event["sequence_number"])
                except ConnectionClosed:
                    pass
                closed_with.append(ws.close_code)

        reader = threading.Thread(target=good_client)
        reader.start()
        wait_until(
            lambda: value(scrape(srv.http), "websocket_connections_active") == 2,
            "both sockets to be open",
        )
        for n in range(1, CHUNKS + 1):
            fake.feed(cid, {"n": n, "data": PAYLOAD}, final=n == CHUNKS)
        assert srv.wait_status(token, cid)["status"] == "completed"
        reader.join(DEADLINE_S * 3)
        # While the stalled client has still read nothing, the server has already let go
        # of it: no subscription holds its events, no socket is counted open.
        wait_until(
            lambda: value(scrape(srv.http), "websocket_connections_active") == 0,
            "the stalled socket to be closed",
        )
        assert srv.services.bus.subscriber_count(cid) == 0
        # The server closed the stalled connection: once its buffered bytes are read,
        # the socket reports the end (or a reset).
        stalled.settimeout(DEADLINE_S)
        try:
            while stalled.recv(65536):
                pass
        except ConnectionResetError:
            pass
        stalled.close()
        assert received == list(range(1, CHUNKS + 1))  # the reading client got everything
        assert closed_with == [1000]
        stored: list[int] = []
        after: int | None = 0
        while after is not None:  # the stored answer, a page at a time
            page = srv.http.get(
                f"/api/v1/commands/{cid}/responses",
                headers={"Authorization": f"Bearer {token}"},
                params={"after": after, "limit": 1000},
            ).json()
            stored += [c["sequence_number"] for c in page["items"]]
            after = page["next_after"]
        assert stored == list(range(1, CHUNKS + 1))
