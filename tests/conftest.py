"""Fixtures and collection hooks; the harness itself (the real app in process or on a
socket, ``ScriptedConnector``, ``wait_until`` ...) is ``tests/support/harness.py``.

Every test module declares its tier with ``pytestmark``: ``pytest.mark.fast`` (in process,
over the ASGI transport) or ``pytest.mark.socket`` (real sockets, WebSocket frames,
subprocesses, a real Prometheus, chromium, schemathesis, the benchmark smoke); a single
test of a fast module may add ``@pytest.mark.socket``. ``pytest -m "not socket"`` is the
fast inner loop. A module without its tier fails the collection, and a test of the fast
tier that connects to a network address or starts a program fails (``_tier_guard``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

# pytest caches each test module's assertion-rewritten bytecode in __pycache__ (ignored by
# git) unless bytecode writing is off, as PYTHONDONTWRITEBYTECODE turns it off on some
# machines: then every run, and each xdist worker, rewrites and compiles all 26k lines of
# tests again (about 5 s of a worker's start on two cores). The tests always cache it.
sys.dont_write_bytecode = False

from tests.support.harness import Server, in_process, make_config, running  # noqa: E402

# Real servers for the cluster backends (issue #23): PostgreSQL for the store tests
# (postgres_server, postgres_url, open_engine), NATS for the bus tests (nats_server);
# pytester for the test of this file's own checks (tests/test_tiers.py).
pytest_plugins = ["tests.support.postgres", "tests.support.nats", "pytester"]

TIERS = ("fast", "socket")


def _module_tiers(module: object) -> list[str]:
    marks = getattr(module, "pytestmark", [])
    marks = marks if isinstance(marks, list) else [marks]
    return [m.name for m in marks if getattr(m, "name", None) in TIERS]


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    undeclared = sorted(
        {item.path.name for item in items if len(_module_tiers(getattr(item, "module", None))) != 1}
    )
    assert not undeclared, (
        f"test modules without exactly one tier (pytestmark = pytest.mark.fast or "
        f"pytest.mark.socket): {undeclared}"
    )


# The fast tier's promise, checked with Python's audit events: a test not marked socket
# opens no connection and sends no datagram to a network address (itself, the app or a
# fixture) and starts no program. What the events show: a new connection, not traffic on
# one opened before (a module's real server is caught by the test that connects first);
# events of any thread count for the test running, whoever started the thread. Binding
# alone is not watched: urllib3 binds ::1 once when it is first imported, to learn whether
# the machine has IPv6, in whichever test imports it. (The description loader's process,
# a fork of its fork server, raises no event: the app's own, the same in every tier.)
_STARTS = frozenset({"subprocess.Popen", "os.system", "os.posix_spawn", "os.exec", "os.spawn"})
_SENDS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_running: list[str | None] = [None]  # the node id of the fast-tier test running, if one is
_outside: dict[str, str] = {}  # by node id: the first thing it did outside the tier


def _tier_guard(event: str, args: tuple[Any, ...]) -> None:
    if event in _STARTS:
        program = args[1] if event == "os.spawn" else args[0]
        if isinstance(program, bytes):
            program = os.fsdecode(program)
        what = f"started {program!r} ({event})"
    elif event in _SENDS and isinstance(args[1], tuple):  # an IP address, not a path
        what = f"{event} to {args[1][:2]}"
    else:
        return
    test = _running[0]  # one read: the test may end in another thread meanwhile
    if test is not None:
        _outside.setdefault(test, what)


sys.addaudithook(_tier_guard)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    if item.get_closest_marker("socket") is None:
        _running[0] = item.nodeid
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        _running[0] = None
        what = _outside.pop(item.nodeid, None)
        if what is not None:
            pytest.fail(
                f"a test of the fast tier {what}: mark it (or its module) pytest.mark.socket",
                pytrace=False,
            )


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The app for one test: in process, or on a real socket in a test marked ``socket``."""
    serve = running if request.node.get_closest_marker("socket") else in_process
    with serve(make_config(tmp_path)) as srv:
        yield srv


@pytest.fixture(scope="module")
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One app for the tests of a module that use it: for requests that are refused and
    store nothing (each such test checks that it stored nothing), where a start per case
    would cost more than the case. In process, or on a socket in a ``socket`` module."""
    serve = running if request.node.get_closest_marker("socket") else in_process
    with serve(make_config(tmp_path_factory.mktemp("shared"))) as srv:
        yield srv
