"""Fixtures and collection hooks; the harness itself (the real app in process or on a
socket, ``ScriptedConnector``, ``wait_until`` ...) is ``tests/support/harness.py``.

Every test module declares its tier with ``pytestmark``: ``pytest.mark.fast`` (in process,
over the ASGI transport) or ``pytest.mark.socket`` (real sockets, WebSocket frames,
subprocesses, a real Prometheus, chromium, schemathesis, the benchmark smoke); a single
test of a fast module may add ``@pytest.mark.socket``. ``pytest -m "not socket"`` is the
fast inner loop. A module without its tier fails the collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.harness import Server, in_process, make_config, running

# Real servers for the cluster backends (issue #23): PostgreSQL for the store tests
# (postgres_server, postgres_url, open_engine), NATS for the bus tests (nats_server).
pytest_plugins = ["tests.support.postgres", "tests.support.nats"]

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


@pytest.fixture
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The app for one test: in process, or on a real socket in a test marked ``socket``."""
    serve = running if request.node.get_closest_marker("socket") else in_process
    with serve(make_config(tmp_path)) as srv:
        yield srv
