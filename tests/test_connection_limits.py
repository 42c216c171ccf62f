"""The parts behind the connection limits: the gate's counting and the log flood filter."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import pytest

from app.logs import ACCEPT_OUT_OF_RESOURCES, FloodFilter
from app.server import ConnectionGate, ConnectionLimits

pytestmark = pytest.mark.fast


def test_the_gate_counts_per_client_and_exempts_trusted_proxies() -> None:
    gate = ConnectionGate(
        ConnectionLimits(total=5, per_client=2, exempt=(ipaddress.ip_network("10.0.0.0/8"),))
    )
    assert gate.admit("192.0.2.1") is None and gate.admit("192.0.2.1") is None
    assert "PER_CLIENT" in (gate.admit("192.0.2.1") or "")
    assert gate.admit("10.1.2.3") is None and gate.admit("10.1.2.3") is None
    assert gate.admit("10.1.2.3") is None  # a proxy: many clients behind one address
    assert "SOVD_MAX_CONNECTIONS" in (gate.admit("192.0.2.9") or "")  # 5 open: full
    gate.release("192.0.2.1")
    assert gate.admit("192.0.2.9") is None


def test_the_accept_flood_is_logged_once_per_interval_without_tracebacks() -> None:
    now = [0.0]
    flood_filter = FloodFilter(ACCEPT_OUT_OF_RESOURCES, 10.0, clock=lambda: now[0])
    emfile = OSError(24, "Too many open files")

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, message, (), (OSError, emfile, None)
        )

    flood = [record(ACCEPT_OUT_OF_RESOURCES + "\nsocket: x") for _ in range(500)]
    kept = [r for r in flood if flood_filter.filter(r)]
    assert len(kept) == 1 and kept[0].exc_info is None
    now[0] = 10.5
    later = record(ACCEPT_OUT_OF_RESOURCES)
    assert flood_filter.filter(later)
    assert "499 more" in later.getMessage() and "Too many open files" in later.getMessage()
    other = record("something else")
    assert flood_filter.filter(other) and other.exc_info is not None


def test_the_filter_catches_what_asyncio_really_logs(caplog: pytest.LogCaptureFixture) -> None:
    flood_filter = FloodFilter(ACCEPT_OUT_OF_RESOURCES, 10.0)
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addFilter(flood_filter)
    try:
        loop = asyncio.new_event_loop()
        try:
            with caplog.at_level(logging.ERROR, logger="asyncio"):
                for _ in range(300):  # as asyncio's accept loop does, for each failed accept()
                    loop.call_exception_handler(
                        {
                            "message": ACCEPT_OUT_OF_RESOURCES,
                            "exception": OSError(24, "Too many open files"),
                        }
                    )
        finally:
            loop.close()
    finally:
        asyncio_log.removeFilter(flood_filter)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    assert records[0].exc_info is None and "Too many open files" in records[0].getMessage()
