"""What every scenario shares: the progress line, the CPU pinning (server on one core,
client on the other), a started service, and the figures' arithmetic."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.server import BenchServer

SERVER_CPUS, CLIENT_CPUS = {0}, {1}
Result = dict[str, Any]
_STARTED = time.perf_counter()


def log_progress(what: str) -> None:
    """What is running and for how long, so a person knows the run is alive."""
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {what}", file=sys.stderr, flush=True)


def pin() -> tuple[set[int] | None, set[int] | None]:
    if len(os.sched_getaffinity(0)) < 2:
        return None, None
    os.sched_setaffinity(0, CLIENT_CPUS)
    return SERVER_CPUS, CLIENT_CPUS


def start_server(**env: str) -> BenchServer:
    return BenchServer(cpus=pin()[0], env=env)


@contextmanager
def servers(*starts: Callable[[], BenchServer]) -> Iterator[list[BenchServer]]:
    """The servers ``starts`` make, one after the other, closed in reverse at the end.
    Never side by side: each picks a free port by binding and closing it, so two starting
    at once can pick the same one, and one may then answer for the other (seen in a smoke
    run: the service's login reached the ceiling app)."""
    started: list[BenchServer] = []
    try:
        for start in starts:
            started.append(start())
        yield started
    finally:
        for server in reversed(started):
            server.close()


def ws_compression(args: argparse.Namespace) -> str | None:
    return None if args.ws_compression == "none" else "deflate"


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio_of(ours: float, ceiling: float) -> float:
    return round(ours / ceiling, 3) if ceiling else 0.0
