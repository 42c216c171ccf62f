"""Test harness: the real app, one SQLite file per test, in two tiers.

``in_process(config)`` (the default tier, and the ``server`` fixture) runs the real app in
a background thread with its own event loop, runs its ASGI lifespan there, and drives it
with a synchronous httpx client over the ASGI transport: no socket, same middleware,
handlers, database and pipeline. ``running(config)`` (the ``socket`` tier, and the
``server`` fixture in a test marked ``socket``) serves the same app with Hypercorn on a
real socket the test opened (no free-port race), for real HTTP and real WebSocket frames.
Both offer the same helpers (``.http``, ``.token()``, ``.submit()`` ...), so moving a test
between tiers is swapping ``running`` for ``in_process`` or adding the marker.
``ScriptedConnector`` is a fake vehicle whose answer the test releases chunk by chunk,
for tests that need a command caught mid-stream.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import secrets
import socket
import sqlite3
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest
from hypercorn.asyncio import serve as hypercorn_serve
from hypercorn.config import Config as HypercornConfig
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from app.builders import simulator_for
from app.clock import Clock
from app.config import Config
from app.main import create_app
from app.models import Principal
from app.services.registry import Services
from app.vehicles.connector import Chunk, DiagnosticRequest, DtcRecord, Negative
from app.vehicles.pdx.demo import DEMO_PDX_NAME
from app.vehicles.simulator import SimulatedConnector

ADMIN_PASSWORD = "admin-password-1"
ENGINEER_PASSWORD = "engineer-password-1"
DEADLINE_S = 10.0
# Every test client's TLS context, made once: httpx makes one per client otherwise, loading
# the CA bundle each time (about 15 ms; a few seconds of the suite), for tests that speak
# plain HTTP to 127.0.0.1.
TLS = ssl.create_default_context()


def make_config(tmp_path: Path, **overrides: Any) -> Config:
    base = Config(
        host="127.0.0.1",
        port=0,
        db_path=tmp_path / "data" / "sovd.db",
        jwt_secret=secrets.token_urlsafe(48),
        admin_password=ADMIN_PASSWORD,
        engineer_password=ENGINEER_PASSWORD,
        demo_data=True,
        command_timeout_s=0.3,
        sim_seed=1234,
        sim_latency_ms=0,
        # Cheap argon2 parameters: tests log in hundreds of times. The production
        # parameters are checked once, in tests/test_password_hashing.py.
        password_hash_profile="fast",
        # A test that ends with a command still running (a stuck vehicle) waits this
        # long at shutdown, not the production grace of 10 s.
        shutdown_grace_s=1.0,
    )
    return replace(base, **overrides)


def quick_simulator(config: Config) -> SimulatedConnector:
    """The simulator as the app builds it, with the ABS bleed check working 50 ms instead
    of a second before it answers (its answer is what these tests look at)."""
    return SimulatedConnector(replace(simulator_for(config).settings, bleed_check_s=0.05))


def insert_users(conn: sqlite3.Connection, *users: Principal) -> None:
    """Users straight into a test database (no password anyone could use), for tests
    that build the services without the app."""
    at = Clock().timestamp()
    for who in users:
        conn.execute(
            "INSERT INTO users (user_id, username, password_hash, role, created_at)"
            " VALUES (?, ?, 'x', ?, ?)",
            (who.user_id, who.username, who.role, at),
        )


def unavailable(reason: str) -> NoReturn:
    """A tool a test needs is missing (a binary, the git checkout). Locally the test
    skips, saying what to install; in CI (``CI`` set, as ``.ci/run`` does) it fails: CI
    installs everything, so no test may be skipped there."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must provide it (.ci/run)")
    pytest.skip(reason)


def free_port() -> int:
    """A loopback port free now, for a server that cannot take port 0 (another process may
    take it before the server binds: rare, and its start then fails loudly)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Callable[[], Any], what: str, timeout_s: float = DEADLINE_S) -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class ScriptedConnector:
    """A fake vehicle: each command's answer is whatever the test feeds it."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self._queues: dict[str, asyncio.Queue[Chunk | BaseException]] = {}
        self.started: list[str] = []

    def _queue(self, command_id: str) -> asyncio.Queue[Chunk | BaseException]:
        return self._queues.setdefault(command_id, asyncio.Queue())

    async def execute(self, request: DiagnosticRequest):  # type: ignore[no-untyped-def]
        self.loop = asyncio.get_running_loop()
        self.started.append(request.command_id)
        queue = self._queue(request.command_id)
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if item.is_final:
                return

    def feed(
        self,
        command_id: str,
        payload: dict[str, Any],
        *,
        final: bool = False,
        negative: Negative | None = None,
        raw: bytes = b"",
        dtc: DtcRecord | None = None,
    ) -> None:
        """Send the next chunk of the command's answer (a ``negative`` one is final), with
        the typed reading a real connector gives beside the payload (``raw``, ``dtc``)."""
        chunk = Chunk(copy.deepcopy(payload), final or negative is not None, negative, raw, dtc)
        assert self.loop is not None, "the command has not started"
        self.loop.call_soon_threadsafe(lambda: self._queue(command_id).put_nowait(chunk))


@dataclass
class Server:
    """The app on its own event loop in ``_thread``, and helpers to drive it; this base
    class serves it with Hypercorn on a real socket (real HTTP and WebSocket frames)."""

    config: Config
    app: Starlette
    base_url: str
    loop: asyncio.AbstractEventLoop
    _stop: asyncio.Event
    _thread: threading.Thread
    http: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url, timeout=DEADLINE_S, verify=TLS)

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")

    @property
    def services(self) -> Services:
        found: Services = self.app.state.services
        return found

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's event loop and return its result."""

        async def run() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(DEADLINE_S)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE_S)

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.config.db_path)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with self.db() as conn:
            return conn.execute(sql, args).fetchall()

    # -- API helpers -------------------------------------------------------------------

    def login(self, username: str, password: str) -> dict[str, Any]:
        r = self.http.post("/api/v1/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        tokens: dict[str, Any] = r.json()
        return tokens

    def token(self, username: str = "engineer", password: str = ENGINEER_PASSWORD) -> str:
        return str(self.login(username, password)["access_token"])

    def admin_token(self) -> str:
        return self.token("admin", ADMIN_PASSWORD)

    def create_engineer(self, username: str) -> str:
        """Create another engineer and return their access token."""
        r = self.http.post(
            "/api/v1/users",
            headers=auth(self.admin_token()),
            json={"username": username, "password": "other-password-1", "role": "engineer"},
        )
        assert r.status_code == 201, r.text
        return self.token(username, "other-password-1")

    def vehicle(
        self, token: str, profile: str = "healthy", status: str = "connected"
    ) -> dict[str, Any]:
        r = self.http.get("/api/v1/vehicles", headers=auth(token), params={"limit": 200})
        assert r.status_code == 200, r.text
        for item in r.json()["items"]:
            if item["simulator_profile"] == profile and item["connection_status"] == status:
                return dict(item)
        raise AssertionError(f"no {status} {profile} vehicle")

    def submit(
        self,
        token: str,
        vehicle_id: str,
        name: str = "ReadDTC",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        r = self.http.post(
            "/api/v1/commands",
            headers=auth(token),
            json={
                "vehicle_id": vehicle_id,
                "command_name": name,
                "command_params": params if params is not None else {"ecuAddress": "0x10"},
            },
        )
        assert r.status_code == 201, r.text
        return dict(r.json())

    def command(self, token: str, command_id: str) -> dict[str, Any]:
        r = self.http.get(f"/api/v1/commands/{command_id}", headers=auth(token))
        assert r.status_code == 200, r.text
        return dict(r.json())

    def wait_status(self, token: str, command_id: str, *statuses: str) -> dict[str, Any]:
        wanted = statuses or ("completed", "failed", "timeout")
        return dict(
            wait_until(
                lambda: (c := self.command(token, command_id))["status"] in wanted and c,
                f"command {command_id} to reach {wanted}",
            )
        )

    def stream(
        self,
        command_id: str,
        token: str | None,
        query: str = "",
        headers: dict[str, str] | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Read a response stream to its end: the events and the close code."""
        url = f"{self.ws_url}/ws/responses/{command_id}"
        params = [f"token={token}"] if token else []
        if query:
            params.append(query)
        if params:
            url += "?" + "&".join(params)
        events: list[dict[str, Any]] = []
        with connect(url, additional_headers=headers, open_timeout=DEADLINE_S) as ws:
            try:
                while True:
                    events.append(json.loads(ws.recv(timeout=DEADLINE_S)))
            except ConnectionClosed:
                pass
            return events, ws.close_code

    def stop(self) -> None:
        self.http.close()
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(DEADLINE_S * 2)
            assert not self._thread.is_alive(), "server did not stop"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def start_server(config: Config, **app_kwargs: Any) -> Server:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    app = create_app(config, **app_kwargs)
    hc = HypercornConfig()
    hc.bind = [f"fd://{sock.detach()}"]  # Hypercorn owns and closes the socket from here
    hc.accesslog = None
    hc.graceful_timeout = 2.0
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def shutdown_trigger() -> None:
        await stop.wait()
        await app.state.lifecycle.drain(config.shutdown_grace_s)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(
                hypercorn_serve(app, hc, shutdown_trigger=shutdown_trigger)  # type: ignore[arg-type]
            )
        except BaseException as exc:  # reported by the waiting test
            failure.append(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    thread = threading.Thread(target=run, name="sovd-test-server", daemon=True)
    thread.start()
    server = Server(config, app, f"http://127.0.0.1:{port}", loop, stop, thread)

    def ready() -> bool:
        if failure:
            raise failure[0]
        try:
            return server.http.get("/health/ready").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, "the server to become ready")
    wait_for_the_demo_description(server)
    return server


def wait_for_the_demo_description(server: Server) -> None:
    """The service builds the demo description in the background as it seeds the demo
    fleet (the demo vehicles' ECUs are bound to it): wait until it is in, unless other
    descriptions are still loading too (a test of loading itself; the demo's comes after
    them)."""

    def in_or_others() -> bool:
        # What /health/ready lists as loading, read on the app's loop: an HTTP request a
        # poll would cost as much CPU as the build it waits for (the same process).
        loading = server.call(server.services.descriptions.loading)
        return DEMO_PDX_NAME not in loading or len(loading) > 1

    wait_until(in_or_others, "the demo description to be in the library")


@contextmanager
def running(config: Config, **app_kwargs: Any) -> Iterator[Server]:
    server = start_server(config, **app_kwargs)
    try:
        yield server
    finally:
        server.stop()


# -- the in-process tier ---------------------------------------------------------------

# The peer address the app sees in process: what a local client on a real socket has.
IN_PROCESS_PEER = ("127.0.0.1", 50000)
# A host that never resolves: code that opens its own socket to it fails at once.
IN_PROCESS_URL = "http://in-process.invalid"
ASGI_LIFESPAN = {"version": "3.0", "spec_version": "2.0"}


class LoopTransport(httpx.BaseTransport):
    """A synchronous httpx transport that runs each request through the ASGI transport
    on the app's own event loop, so the app's background tasks share that loop."""

    def __init__(self, app: Starlette, loop: asyncio.AbstractEventLoop) -> None:
        # raise_app_exceptions=False: an exception is a 500, as a real server answers.
        self._asgi = httpx.ASGITransport(
            app=app, raise_app_exceptions=False, client=IN_PROCESS_PEER
        )
        self._loop = loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body as bytes: a stream both sync and async clients can send

        async def send() -> httpx.Response:
            response = await self._asgi.handle_async_request(request)
            body = b"".join([part async for part in response.aiter_raw()])  # still encoded
            return httpx.Response(
                response.status_code, headers=response.headers, stream=httpx.ByteStream(body)
            )

        future = asyncio.run_coroutine_threadsafe(send(), self._loop)
        try:
            return future.result(DEADLINE_S)
        except TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout(f"no answer in {DEADLINE_S} s", request=request) from None


@asynccontextmanager
async def asgi_lifespan(app: Starlette) -> AsyncIterator[None]:
    """Run the app's ASGI lifespan as a server does: startup, then shutdown on exit."""
    to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def send(message: dict[str, Any]) -> None:
        await from_app.put(message)

    scope = {"type": "lifespan", "asgi": ASGI_LIFESPAN, "state": {}}
    task = asyncio.create_task(app(scope, to_app.get, send))  # type: ignore[arg-type]
    await to_app.put({"type": "lifespan.startup"})
    answer = asyncio.create_task(from_app.get())
    await asyncio.wait({task, answer}, return_when=asyncio.FIRST_COMPLETED)
    if not answer.done():
        answer.cancel()
        await task  # the app's startup raised: let the test see why
        raise AssertionError("the app's lifespan ended before its startup completed")
    if answer.result()["type"] != "lifespan.startup.complete":
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError(f"the app's startup failed: {answer.result()}")
    try:
        yield
    finally:
        await to_app.put({"type": "lifespan.shutdown"})
        await task


@dataclass
class InProcessServer(Server):
    """The same app and helpers, reached over the ASGI transport: no socket."""

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=self.base_url, transport=LoopTransport(self.app, self.loop)
        )

    @property
    def ws_url(self) -> str:
        raise AssertionError(
            "WebSockets need a real socket: mark the test `socket` or use running()"
        )


def start_in_process(config: Config, **app_kwargs: Any) -> InProcessServer:
    app = create_app(config, **app_kwargs)
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    async def serve() -> None:
        async with asgi_lifespan(app):
            started.set()
            await stop.wait()
            # As the real server's shutdown: drain the pipeline, then the lifespan ends.
            await app.state.lifecycle.drain(config.shutdown_grace_s)

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:  # reported by the waiting test
            failure.append(exc)
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            started.set()

    thread = threading.Thread(target=run, name="sovd-test-app", daemon=True)
    thread.start()
    assert started.wait(DEADLINE_S), "the app did not start"
    if failure:
        raise failure[0]
    server = InProcessServer(config, app, IN_PROCESS_URL, loop, stop, thread)
    wait_for_the_demo_description(server)
    return server


@contextmanager
def in_process(config: Config, **app_kwargs: Any) -> Iterator[Server]:
    """The real app, its lifespan, SQLite file and pipeline, without a socket."""
    server = start_in_process(config, **app_kwargs)
    try:
        yield server
    finally:
        server.stop()
