"""HTTP load: wrk when installed, else a small asyncio load generator over keep-alive."""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass

import httpx


@dataclass(frozen=True)
class LoadResult:
    tool: str
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    assert match, text
    return float(match.group(1)) * _UNITS[match.group(2)]


def wrk(
    url: str,
    headers: dict[str, str],
    seconds: float,
    connections: int,
    threads: int = 1,
    cpus: set[int] | None = None,
) -> LoadResult:
    cmd = ["taskset", "-c", ",".join(map(str, sorted(cpus)))] if cpus else []
    cmd += ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    cmd.append("--latency")
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    out = subprocess.run(
        [*cmd, url], capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if socket_errors:
        errors += sum(int(g) for g in socket_errors.groups())
    pct = {p: _ms(v) for p, v in re.findall(r"^\s+(\d+)%\s+(\S+)$", out, re.MULTILINE)}
    return LoadResult(
        "wrk",
        requests,
        errors,
        requests / rps if rps else seconds,
        pct.get("50", 0.0),
        pct.get("90", 0.0),
        pct.get("99", 0.0),
    )


async def _python_load(
    url: str, headers: dict[str, str], seconds: float, connections: int
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                r = await client.get(url)
                latencies.append((time.perf_counter() - started) * 1000)
                if r.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    q = statistics.quantiles(latencies, n=100)
    return LoadResult("python", len(latencies), errors, elapsed, q[49], q[94], q[98])


def http_load(
    url: str,
    headers: dict[str, str],
    seconds: float = 10,
    connections: int = 32,
    cpus: set[int] | None = None,
) -> LoadResult:
    """Drive GET ``url`` for ``seconds``; wrk's p95 column is its 90th percentile."""
    if shutil.which("wrk"):
        return wrk(url, headers, seconds, connections, cpus=cpus)
    return asyncio.run(_python_load(url, headers, seconds, connections))
