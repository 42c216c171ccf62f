"""Helpers for the login, session and audit-volume tests.

``CountingHasher`` wraps the running service's real argon2 hasher and counts the password
verifications that actually run (in the hashing threads), optionally holding them until
the test lets them go: concurrency is then real and observable. ``fire`` sends many
requests at once over real sockets (one connection each) and returns every response.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import httpx

from tests.support.fake_clock import FakeClock
from tests.support.harness import DEADLINE_S, TLS, Server

LOGIN = "/api/v1/auth/login"

Clock = FakeClock  # the service's one clock, moved by the test


class CountingHasher:
    """The service's own PasswordHasher, counting the verifications that really run."""

    def __init__(self, inner: Any, hold: bool = False) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.started = 0
        self.running = 0
        self.max_running = 0
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def verify(self, password_hash: str, password: str) -> Any:
        with self._lock:
            self.started += 1
            self.running += 1
            self.max_running = max(self.max_running, self.running)
        try:
            assert self.release.wait(DEADLINE_S), "the test never released the verifications"
            return self.inner.verify(password_hash, password)
        finally:
            with self._lock:
                self.running -= 1

    def hash(self, password: str) -> str:
        return str(self.inner.hash(password))


def count_verifications(srv: Server, *, hold: bool = False) -> CountingHasher:
    """Wrap the running service's password hasher (``PasswordChecks.hasher``)."""
    auth = srv.services.auth
    counter = CountingHasher(auth.passwords.hasher, hold)
    auth.passwords.hasher = counter
    return counter


def login_body(username: str, password: str) -> dict[str, str]:
    return {"username": username, "password": password}


def from_address(address: str | None) -> dict[str, str]:
    """Headers that make a trusted proxy (127.0.0.1) forward for ``address``."""
    return {"X-Forwarded-For": address} if address else {}


async def _send_all(
    base_url: str, requests: list[tuple[str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=len(requests), max_keepalive_connections=0)
    async with httpx.AsyncClient(
        base_url=base_url, timeout=DEADLINE_S, limits=limits, verify=TLS
    ) as http:
        return list(
            await asyncio.gather(
                *(http.post(path, json=body, headers=headers) for path, body, headers in requests)
            )
        )


def fire(
    srv: Server, requests: list[tuple[str, dict[str, Any], dict[str, str]]]
) -> list[httpx.Response]:
    """Send every request at once, each on its own connection; the responses in order."""
    return asyncio.run(_send_all(srv.base_url, requests))


def logins(srv: Server, attempts: list[tuple[str, str, str | None]]) -> list[httpx.Response]:
    """Concurrent logins: (username, password, forwarded-for address or None)."""
    return fire(srv, [(LOGIN, login_body(u, p), from_address(a)) for u, p, a in attempts])


def statuses(responses: list[httpx.Response]) -> dict[int, int]:
    counts: dict[int, int] = {}
    for r in responses:
        counts[r.status_code] = counts.get(r.status_code, 0) + 1
    return counts
