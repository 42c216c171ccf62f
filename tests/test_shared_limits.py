"""The limits a cluster shares (issue #23 item 4): ``app.store.pg_limits`` under the
services that use it (``app.services.shared_limits``).

The same rules run against the in-memory throttle a single node uses and against the
shared one on a real PostgreSQL (``limits`` is parametrised over both): the shared one
must decide exactly as the in-memory one. Then what only the shared one has to show:
checks made at once through two connections (two nodes) are counted one after the
other, and emptied windows are swept.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, Protocol

import pytest

from app.clock import Clock
from app.services.login_throttle import (
    ADDRESS_LIMIT,
    USERNAME_LIMIT,
    LoginRefused,
    LoginSlot,
    LoginThrottle,
)
from app.services.shared_limits import (
    COMMAND_RATE,
    LOGIN_ADDRESS,
    SharedLoginThrottle,
    SharedWindow,
)
from app.services.throttle import SlidingWindow
from app.store.pg_limits import PgLimits
from app.store.postgres import PostgresDatabase
from tests.support.harness import DEADLINE_S
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.socket

LIMIT = 5
WINDOW_S = 60.0


class FrozenClock(Clock):
    """Wall and monotonic time both stand still until the test moves them."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def wall(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    def monotonic(self) -> float:
        return self.now


class Rate(Protocol):
    limit: int

    async def acquire(self, key: str) -> int | None: ...


class Login(Protocol):
    async def reserve(self, address: str, username: str) -> LoginSlot | LoginRefused: ...

    def give_back(self, slot: LoginSlot) -> None: ...

    def succeeded(self, slot: LoginSlot) -> None: ...

    async def settle(self) -> None: ...


class MemoryRate:
    """The single node's command rate (``SlidingWindow``) as the shared one is called."""

    def __init__(self, clock: FrozenClock) -> None:
        self.limit = LIMIT
        self._window = SlidingWindow(LIMIT, WINDOW_S, clock.monotonic)

    async def acquire(self, key: str) -> int | None:
        if self._window.acquire(key) is not None:
            return None
        return self._window.retry_after(key) or 1


class MemoryLogin:
    """The single node's ``LoginThrottle`` as the shared one is called."""

    def __init__(self, clock: FrozenClock) -> None:
        self._throttle = LoginThrottle(LIMIT, WINDOW_S, clock.monotonic)

    async def reserve(self, address: str, username: str) -> LoginSlot | LoginRefused:
        return self._throttle.reserve(address, username)

    def give_back(self, slot: LoginSlot) -> None:
        self._throttle.give_back(slot)

    def succeeded(self, slot: LoginSlot) -> None:
        self._throttle.succeeded(slot)

    async def settle(self) -> None:
        pass


class Limits:
    """A backend under test: how to make its rate and its login throttle."""

    def __init__(self, kind: str, url: str | None) -> None:
        self.kind = kind
        self.clock = FrozenClock()
        self._url = url
        self.stores: list[PgLimits] = []

    def _store(self) -> PgLimits:
        assert self._url is not None
        store = PgLimits(self._url)
        self.stores.append(store)
        return store

    def rate(self) -> Rate:
        if self.kind == "memory":
            return MemoryRate(self.clock)
        return SharedWindow(self._store(), COMMAND_RATE, LIMIT, WINDOW_S, self.clock)

    def login(self) -> Login:
        if self.kind == "memory":
            return MemoryLogin(self.clock)
        return SharedLoginThrottle(self._store(), LIMIT, WINDOW_S, self.clock)

    async def close(self) -> None:
        while self.stores:
            await self.stores.pop().close()


def _migrated(url: str) -> str:
    async def migrate() -> None:
        db = PostgresDatabase(url, shared=True)
        await db.open()
        await db.close()

    asyncio.run(migrate())
    return url


@pytest.fixture(params=["memory", "postgres"])
def limits(request: pytest.FixtureRequest) -> Iterator[Limits]:
    url = None
    if request.param == "postgres":
        url = _migrated(request.getfixturevalue("postgres_url"))
    backend = Limits(request.param, url)
    yield backend
    asyncio.run(backend.close())


def test_the_rate_allows_the_limit_then_says_when(limits: Limits) -> None:
    async def run() -> None:
        rate = limits.rate()
        assert [await rate.acquire("u1") for _ in range(LIMIT)] == [None] * LIMIT
        assert await rate.acquire("u1") == 60
        assert await rate.acquire("u2") is None  # another key has its own window
        limits.clock.now += 25
        assert await rate.acquire("u1") == 35  # the oldest leaves 60 s after it came
        limits.clock.now += 35
        assert await rate.acquire("u1") is None
        assert await rate.acquire("u1") is None  # all five left together
        await limits.close()

    asyncio.run(run())


async def _fail(login: Login, address: str, username: str) -> LoginSlot | LoginRefused:
    """An attempt whose password turned out wrong (it stays counted)."""
    return await login.reserve(address, username)


def test_an_address_gets_the_limit_then_waits(limits: Limits) -> None:
    async def run() -> None:
        login = limits.login()
        for _ in range(LIMIT):
            assert isinstance(await _fail(login, "10.0.0.1", "admin"), LoginSlot)
        refused = await login.reserve("10.0.0.1", "other")
        assert refused == LoginRefused(60, (ADDRESS_LIMIT,))
        limits.clock.now += 59
        assert await login.reserve("10.0.0.1", "other") == LoginRefused(1, (ADDRESS_LIMIT,))
        limits.clock.now += 1
        assert isinstance(await login.reserve("10.0.0.1", "other"), LoginSlot)
        await limits.close()

    asyncio.run(run())


def test_a_username_gets_the_limit_then_the_clean_allowance(limits: Limits) -> None:
    async def run() -> None:
        login = limits.login()
        for n in range(LIMIT):  # N addresses fail once each on admin: its window is full
            assert isinstance(await _fail(login, f"10.0.1.{n}", "admin"), LoginSlot)
        # An address that failed already may not try admin again.
        assert await login.reserve("10.0.1.0", "admin") == LoginRefused(60, (USERNAME_LIMIT,))
        # Fresh addresses: the clean allowance, N more.
        slots = [await login.reserve(f"10.0.2.{n}", "admin") for n in range(LIMIT)]
        assert all(isinstance(s, LoginSlot) and s.clean_allowance for s in slots)
        assert await login.reserve("10.0.3.1", "admin") == LoginRefused(60, (USERNAME_LIMIT,))
        await limits.close()

    asyncio.run(run())


def test_given_back_and_known_addresses(limits: Limits) -> None:
    async def run() -> None:
        login = limits.login()
        right = await login.reserve("10.0.4.1", "admin")
        assert isinstance(right, LoginSlot)
        login.succeeded(right)  # the right password: given back, the address known
        await login.settle()
        for n in range(LIMIT):
            assert isinstance(await _fail(login, f"10.0.5.{n}", "admin"), LoginSlot)
        for n in range(LIMIT):
            assert isinstance(await _fail(login, f"10.0.6.{n}", "admin"), LoginSlot)
        assert await login.reserve("10.0.7.1", "admin") == LoginRefused(60, (USERNAME_LIMIT,))
        # The admin's own desk still gets in: its address is known and its window empty.
        again = await login.reserve("10.0.4.1", "admin")
        assert isinstance(again, LoginSlot) and again.username_at is None
        login.give_back(again)  # no password was checked: not counted
        await login.settle()
        for _ in range(LIMIT):
            assert isinstance(await login.reserve("10.0.4.1", "admin"), LoginSlot)
        assert await login.reserve("10.0.4.1", "admin") == LoginRefused(60, (ADDRESS_LIMIT,))
        await limits.close()

    asyncio.run(run())


@pytest.fixture
def url(postgres_url: str) -> str:
    return _migrated(postgres_url)


def test_checks_at_once_on_two_nodes_count_one_after_the_other(url: str) -> None:
    async def run() -> None:
        clock = FrozenClock()
        nodes = [PgLimits(url), PgLimits(url)]
        try:
            rates = [SharedWindow(n, COMMAND_RATE, LIMIT, WINDOW_S, clock) for n in nodes]
            waits = await asyncio.gather(*(rates[i % 2].acquire("u") for i in range(40)))
            assert waits.count(None) == LIMIT
            assert set(waits) == {None, 60}
            logins = [SharedLoginThrottle(n, LIMIT, WINDOW_S, clock) for n in nodes]
            # 40 fresh addresses on one username, at once, half through each node:
            # N on its window and N more in its clean allowance, no more.
            outcomes = await asyncio.gather(
                *(logins[i % 2].reserve(f"10.1.0.{i}", "admin") for i in range(40))
            )
            assert sum(isinstance(o, LoginSlot) for o in outcomes) == 2 * LIMIT
            # 40 at once from one address on as many usernames: N.
            outcomes = await asyncio.gather(
                *(logins[i % 2].reserve("10.2.0.1", f"user{i}") for i in range(40))
            )
            assert sum(isinstance(o, LoginSlot) for o in outcomes) == LIMIT
        finally:
            for node in nodes:
                await node.close()

    asyncio.run(run())


def test_emptied_windows_are_swept(postgres_server: PostgresServer, url: str) -> None:
    database = url.rsplit("/", 1)[1]

    async def run() -> None:
        clock = FrozenClock()
        first, second = PgLimits(url), PgLimits(url)
        try:
            rate = SharedWindow(first, COMMAND_RATE, LIMIT, WINDOW_S, clock)
            assert await rate.acquire("gone") is None
            clock.now += WINDOW_S + 1
            # Another node's first check sweeps: the window of "gone" has emptied.
            other = SharedWindow(second, COMMAND_RATE, LIMIT, WINDOW_S, clock)
            assert await other.acquire("kept") is None
            rows = postgres_server.psql("SELECT key FROM limit_windows ORDER BY key", database)
            assert rows.split() == ["kept"]
            slot = await SharedLoginThrottle(second, LIMIT, WINDOW_S, clock).reserve("a", "u")
            assert isinstance(slot, LoginSlot)
            await second.give_back((LOGIN_ADDRESS, "a"), slot.address_at)
            events = postgres_server.psql(
                "SELECT cardinality(events) FROM limit_windows"
                f" WHERE kind = '{LOGIN_ADDRESS}' AND key = 'a'",
                database,
            )
            assert events == "0"
        finally:
            await first.close()
            await second.close()

    asyncio.run(run())


class _HeldDecision:
    """Node B's limits, whose next login decision holds its transaction open until the
    give-back under test has either finished or is seen waiting on PostgreSQL."""

    def __init__(self, inner: PgLimits, server: PostgresServer, database: str) -> None:
        self._inner = inner
        self._server = server
        self._database = database
        self.deciding = threading.Event()
        self.given_back = threading.Event()

    async def acquire(
        self, window: tuple[str, str], limit: int, window_s: float, now: float
    ) -> tuple[float, ...] | None:
        return await self._inner.acquire(window, limit, window_s, now)

    async def give_back(self, window: tuple[str, str], at: float) -> None:
        await self._inner.give_back(window, at)

    async def close(self) -> None:
        await self._inner.close()

    async def update(self, locks: Any, windows: Any, decide: Any, now: float) -> Any:
        def held(read: Any) -> Any:
            self.deciding.set()
            waiting = (
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            deadline = time.monotonic() + DEADLINE_S
            while not self.given_back.is_set() and time.monotonic() < deadline:
                if self._server.psql(waiting, self._database) != "0":
                    break  # the give-back waits for this transaction
                self.given_back.wait(0.02)
            return decide(read)

        return await self._inner.update(locks, windows, held, now)


def test_a_give_back_during_another_nodes_decision_is_not_overwritten(
    postgres_server: PostgresServer, url: str
) -> None:
    """A right password through A while B decides a login from the same address: A's
    attempt is given back, and B's write of the window it read before must not bring it
    back (the window holds B's attempt only)."""
    database = url.rsplit("/", 1)[1]

    async def run() -> None:
        clock = FrozenClock()
        first, second = PgLimits(url), PgLimits(url)
        held = _HeldDecision(second, postgres_server, database)
        try:
            node_a = SharedLoginThrottle(first, LIMIT, WINDOW_S, clock)
            node_b = SharedLoginThrottle(held, LIMIT, WINDOW_S, clock)  # type: ignore[arg-type]
            slot = await node_a.reserve("10.3.0.1", "alice")
            assert isinstance(slot, LoginSlot)
            clock.now += 1  # B's attempt is another event than A's
            deciding = asyncio.create_task(node_b.reserve("10.3.0.1", "bob"))
            assert await asyncio.to_thread(held.deciding.wait, DEADLINE_S)
            node_a.succeeded(slot)
            settled = asyncio.create_task(node_a.settle())
            settled.add_done_callback(lambda _: held.given_back.set())
            assert isinstance(await deciding, LoginSlot)
            await settled
            events = postgres_server.psql(
                "SELECT cardinality(events) FROM limit_windows"
                f" WHERE kind = '{LOGIN_ADDRESS}' AND key = '10.3.0.1'",
                database,
            )
            assert events == "1"  # B's attempt; A's given back
        finally:
            await first.close()
            await second.close()

    asyncio.run(run())
