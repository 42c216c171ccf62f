"""What every scenario shares: the progress line, the CPU pinning (server on one core,
client on the other), a started service, and the figures' arithmetic."""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
def servers(smoke: bool, *starts: Callable[[], BenchServer]) -> Iterator[list[BenchServer]]:
    """The servers ``starts`` make, in their order, closed in reverse at the end. A smoke
    run starts them side by side (a start mostly waits on imports and the database); a
    measured run one after the other, so no start slows another's first requests."""
    started: list[BenchServer] = []
    try:
        if smoke:
            pin()  # this thread is the client: pinned here, not in the threads that start
            with ThreadPoolExecutor(len(starts)) as pool:
                futures = [pool.submit(start) for start in starts]
            started = [f.result() for f in futures if f.exception() is None]
            failures = [f.exception() for f in futures if f.exception() is not None]
            if failures:
                raise failures[0]  # type: ignore[misc]
        else:
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
