"""One store write in one thread hop against the same write through aiosqlite's public
API (issue #22 item 1): ``python -m bench store_hops``.

``app.store.database.run_in_thread`` runs a whole store operation in the connection's
thread through aiosqlite's private ``Connection._execute``; aiosqlite's public methods
(``execute``, ``execute_insert``, ``executemany``, ``commit``) each cost one hop to that
thread and back, and aiosqlite offers no public call that runs a function there. This
measures what the public path would cost on the pipeline's typical write, accepting a
command: BEGIN, the command row, three event rows, the status update, COMMIT (WAL,
``synchronous=NORMAL``, as the service runs), from ``concurrency`` callers sharing one
connection (an asyncio lock keeps their transactions apart, as the committer does).
Alternating rounds; the figure is public / one-hop in writes per second.
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite

from app.store.database import run_in_thread

SCHEMA = (
    "CREATE TABLE commands (id INTEGER PRIMARY KEY, vehicle TEXT, name TEXT, status TEXT)",
    "CREATE TABLE events (command INTEGER, seq INTEGER, body TEXT)",
)
EVENT_BODY = '{"dtc": "P0171", "status": "0x2F", "severity": 2}'


def _write_in_thread(conn: sqlite3.Connection, n: int) -> None:
    conn.execute("BEGIN")
    cur = conn.execute(
        "INSERT INTO commands (vehicle, name, status) VALUES (?, ?, ?)", (f"v{n}", "ReadDTC", "q")
    )
    command = cur.lastrowid
    conn.executemany(
        "INSERT INTO events (command, seq, body) VALUES (?, ?, ?)",
        [(command, seq, EVENT_BODY) for seq in (1, 2, 3)],
    )
    conn.execute("UPDATE commands SET status = ? WHERE id = ?", ("completed", command))
    conn.execute("COMMIT")


async def _one_hop(conn: aiosqlite.Connection, n: int) -> None:
    await run_in_thread(conn, lambda c: _write_in_thread(c, n))


async def _public(conn: aiosqlite.Connection, n: int) -> None:
    await conn.execute("BEGIN")
    row = await conn.execute_insert(
        "INSERT INTO commands (vehicle, name, status) VALUES (?, ?, ?)", (f"v{n}", "ReadDTC", "q")
    )
    command = row[0] if row else None
    await conn.executemany(
        "INSERT INTO events (command, seq, body) VALUES (?, ?, ?)",
        [(command, seq, EVENT_BODY) for seq in (1, 2, 3)],
    )
    await conn.execute("UPDATE commands SET status = ? WHERE id = ?", ("completed", command))
    await conn.execute("COMMIT")


Write = Callable[[aiosqlite.Connection, int], Awaitable[None]]


async def _rate(path: Path, write: Write, seconds: float, concurrency: int) -> float:
    conn = await aiosqlite.connect(str(path), isolation_level=None)
    try:
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute("PRAGMA synchronous=NORMAL")
        lock = asyncio.Lock()
        done = 0
        deadline = time.perf_counter() + seconds

        async def caller(k: int) -> None:
            nonlocal done
            n = k
            while time.perf_counter() < deadline:
                async with lock:
                    await write(conn, n)
                done += 1
                n += concurrency

        started = time.perf_counter()
        await asyncio.gather(*(caller(k) for k in range(concurrency)))
        return done / (time.perf_counter() - started)
    finally:
        await conn.close()


def measure(rounds: int, seconds: float, concurrency: int = 50) -> dict[str, Any]:
    rates: dict[str, list[float]] = {"one_hop": [], "public": []}
    writes: dict[str, Write] = {"one_hop": _one_hop, "public": _public}
    with tempfile.TemporaryDirectory() as tmp:
        for name in writes:
            with sqlite3.connect(Path(tmp) / f"{name}.db") as db:
                for statement in SCHEMA:
                    db.execute(statement)
        for r in range(rounds):
            order = ("one_hop", "public") if r % 2 == 0 else ("public", "one_hop")
            for name in order:
                rate = asyncio.run(
                    _rate(Path(tmp) / f"{name}.db", writes[name], seconds, concurrency)
                )
                rates[name].append(rate)
    one_hop, public = statistics.median(rates["one_hop"]), statistics.median(rates["public"])
    return {
        "ratio": round(public / one_hop, 3) if one_hop else 0.0,
        "public_writes_per_s": round(public),
        "one_hop_writes_per_s": round(one_hop),
        "hops_per_write_public": 6,
        "hops_per_write_one_hop": 1,
        "concurrency": concurrency,
    }
