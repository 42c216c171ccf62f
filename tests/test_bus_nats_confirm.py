"""``app.bus.nats_confirm.confirmed`` against a NATS server written here, which answers
each line in the order it reads them and notes, at each answer, the subjects it had been
asked to subscribe to by then: so "did the answer come after the server read the SUB?"
is a plain assertion, not a race to catch under load (the race it stands for lost a node
its notices one CI run in ten on a busy machine; tests/test_bus_nats.py exercises the real
``nats-server``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import nats
import pytest
from nats.aio.client import Client

from app.bus.nats_confirm import confirmed

pytestmark = pytest.mark.socket

INFO = {"server_id": "written-here", "version": "2.9.10", "proto": 1, "headers": True}
NO_RESPONDERS = b"NATS/1.0 503\r\n\r\n"


class LineServer:
    """Enough of the NATS protocol for one client: INFO, CONNECT, PING/PONG, SUB, and a
    PUB with a reply subject answered "no responders" (nobody here serves anything)."""

    def __init__(self) -> None:
        self.port = 0
        self.subscribed: dict[str, str] = {}  # subject -> sid
        self.subscribed_at_answers: list[set[str]] = []

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"INFO " + json.dumps(INFO).encode() + b"\r\n")
        while line := await reader.readline():
            op, *args = line.decode().split()
            if op == "PING":
                self._answer(writer, b"PONG\r\n")
            elif op == "SUB":
                self.subscribed[args[0]] = args[-1]
            elif op == "PUB":
                payload = await reader.readexactly(int(args[-1]) + 2)
                assert payload.endswith(b"\r\n")
                if len(args) == 3:  # subject, reply, size: a request
                    self._answer(writer, self._no_responders(args[1]))
            await writer.drain()
        writer.close()

    def _answer(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        self.subscribed_at_answers.append(set(self.subscribed))
        writer.write(data)

    def _no_responders(self, reply: str) -> bytes:
        sid = next(
            sid
            for subject, sid in self.subscribed.items()
            if subject == reply or (subject.endswith(".*") and reply.startswith(subject[:-1]))
        )
        size = len(NO_RESPONDERS)
        return f"HMSG {reply} {sid} {size} {size}\r\n".encode() + NO_RESPONDERS + b"\r\n"


@asynccontextmanager
async def client_of_a_line_server() -> AsyncIterator[tuple[LineServer, Client]]:
    server = LineServer()
    listening = await asyncio.start_server(server.serve, "127.0.0.1", 0)
    server.port = listening.sockets[0].getsockname()[1]
    nc = await nats.connect(server.url, allow_reconnect=False)
    try:
        yield server, nc
    finally:
        await nc.close()
        listening.close()


def test_confirmed_returns_only_after_the_server_read_the_subscription() -> None:
    async def scenario() -> None:
        async with client_of_a_line_server() as (server, nc):
            await nc.subscribe("sovd.notice")
            await confirmed(nc, 2.0)
            assert "sovd.notice" in server.subscribed_at_answers[-1]

    asyncio.run(scenario())


def test_nats_py_flush_answers_before_the_server_read_the_subscription() -> None:
    """Why ``confirmed`` exists: nats-py 2.16's ``flush()`` writes its PING ahead of the
    SUB still in its buffer, so its PONG proves nothing about it. When a nats-py release
    fails this test, ``confirmed`` can go back to being ``flush()``."""

    async def scenario() -> None:
        async with client_of_a_line_server() as (server, nc):
            await nc.subscribe("sovd.notice")
            await nc.flush(timeout=2)
            assert "sovd.notice" not in server.subscribed_at_answers[-1]

    asyncio.run(scenario())
