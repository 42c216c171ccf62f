"""Start-up with ECU descriptions (issue #20): ``python -m bench descriptions``.

Six PDX files of 200+ services each (made with ``app.vehicles.pdx``) lie in
the data directory of a fresh service; the same service starts without them too,
alternately. Figures, medians of the rounds:

- ``ready``: from process start to ``/health/ready`` answering 200 (descriptions load in
  the background, so this is what clients wait for), with and without the files;
- ``loaded``: from process start until ``/health/ready`` lists none still loading, on a
  first start (each file parsed) and on a restart with the files unchanged (summaries
  from the cache, nothing parsed);
- the server's resident memory once loaded, against the same service without them.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec, build_pdx
from bench.server import BenchServer

FILES = 6
DIDS_PER_ECU = 200  # with the fault memory and session services: 200+ services a file
LOAD_DEADLINE_S = 600.0


def pdx_files(files: int, dids: int) -> dict[str, bytes]:
    """``files`` PDX files, one ECU each (distinct base variants), ``dids`` 0x22 services."""
    out: dict[str, bytes] = {}
    for n in range(files):
        ecu = PdxEcu(
            f"BENCH{n}",
            logical_address=0x0100 + n,
            dids=tuple(
                PdxDid(0x1000 + i, f"Value{i}", size=2, scale=0.5, unit="km") for i in range(dids)
            ),
        )
        out[f"bench{n}.pdx"] = build_pdx(PdxSpec((ecu,), name=f"BENCH{n}"))
    return out


def _until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + LOAD_DEADLINE_S
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _start(data_dir: Path, cpus: set[int] | None) -> tuple[BenchServer, float, float, int]:
    """Start the service on ``data_dir``: the server, seconds to ready, seconds until no
    description is loading, its RSS (KiB) then."""
    started = time.perf_counter()
    server = BenchServer(cpus=cpus, data_dir=data_dir)
    ready_s = time.perf_counter() - started

    def loaded() -> bool:
        body = server.http.get("/health/ready").json()
        return not body.get("descriptions_loading")

    _until(loaded, "the descriptions to load")
    return server, ready_s, time.perf_counter() - started, server.rss_kib()


def measure(rounds: int, files: int, dids: int, cpus: set[int] | None) -> dict[str, Any]:
    made = pdx_files(files, dids)
    ready: dict[str, list[float]] = {"none": [], "first": [], "restart": []}
    loaded: dict[str, list[float]] = {"first": [], "restart": []}
    rss: dict[str, list[int]] = {"none": [], "loaded": []}
    for n in range(rounds):
        order = ("none", "with") if n % 2 == 0 else ("with", "none")
        for kind in order:
            with tempfile.TemporaryDirectory(prefix="sovd-bench-desc-") as tmp:
                data_dir = Path(tmp)
                if kind == "none":
                    server, ready_s, _, kib = _start(data_dir, cpus)
                    server.close()
                    ready["none"].append(ready_s)
                    rss["none"].append(kib)
                    continue
                folder = data_dir / "descriptions"
                folder.mkdir(mode=0o700)
                for name, content in made.items():
                    (folder / name).write_bytes(content)
                for start in ("first", "restart"):  # the restart finds the cache
                    server, ready_s, loaded_s, kib = _start(data_dir, cpus)
                    server.close()
                    ready[start].append(ready_s)
                    loaded[start].append(loaded_s)
                    if start == "first":
                        rss["loaded"].append(kib)
                shutil.rmtree(folder)

    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    none = med(ready["none"])
    return {
        "files": files,
        "services_per_file": dids + 4,  # the DIDs, 0x19 02, 0x14, two 0x10
        "ready_s_without": none,
        "ready_s_first_start": med(ready["first"]),
        "ready_ratio_first_start": round(med(ready["first"]) / none, 2),
        "ready_s_restart": med(ready["restart"]),
        "ready_ratio_restart": round(med(ready["restart"]) / none, 2),
        "loaded_s_first_start": med(loaded["first"]),
        "loaded_s_restart": med(loaded["restart"]),
        "loaded_ratio_restart": round(med(loaded["restart"]) / none, 2),
        "rss_mib_without": round(statistics.median(rss["none"]) / 1024, 1),
        "rss_mib_loaded": round(statistics.median(rss["loaded"]) / 1024, 1),
    }
