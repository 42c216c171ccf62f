"""A smoke-sized run of ``python -m bench.http_overhead`` (its own module, so the test
runner can put it beside the other benchmark smoke): metrics on and off against the real
service (tracing's settings are the ``tracing`` scenario's, in tests/test_bench.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.harness import unavailable

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent


def _bench(module: str, *args: str) -> str:
    """Runs ``python -m <module> <args>`` from the repository; its output, or a failure
    showing it. Its services hash passwords cheaply, as ``python -m bench --smoke``'s do:
    the demo users' hashing at each start is a large part of a smoke run, measuring nothing."""
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=os.environ | {"SOVD_PASSWORD_HASH_PROFILE": "fast"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_http_overhead_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "overhead.json"
    stdout = _bench("bench.http_overhead", "--seconds", "1", "--rounds", "1", "--json", str(out))
    assert "ratio on/off" in stdout
    figures = json.loads(out.read_text())
    assert figures["rps"]["on"][0] > 0 and figures["rps"]["off"][0] > 0
    assert figures["ratio"] == figures["rps"]["on"][0] / figures["rps"]["off"][0]


def test_tracing_split_runs() -> None:
    """``python -m bench.tracing_split`` at smoke size: five settings, and the traced one's
    spans all reached the receiver (the script fails otherwise)."""
    stdout = _bench("bench.tracing_split", "--requests", "20", "--warm-up", "5")
    rows = [line.split()[0] for line in stdout.splitlines() if "us CPU per request" in line]
    assert rows == ["off", "on", "unsampled", "ratio_10", "traced"]


def test_tracing_instructions_runs() -> None:
    """``python -m bench.tracing_instructions`` at smoke size: valgrind counts the
    instructions of each stretch of requests, and the figure is their slope per request."""
    if shutil.which("valgrind") is None:
        unavailable("valgrind is not installed (apt-get install valgrind)")
    # One setting (one process: the service's start under valgrind, then both stretches),
    # and a short warm-up: the default 300 requests before counting are slow under valgrind.
    stdout = _bench(
        "bench.tracing_instructions", "--modes", "ratio_10", "--requests", "2,6", "--warm-up", "20"
    )
    rows = {
        line.split()[0]: int(line.split()[1].replace(",", ""))
        for line in stdout.splitlines()
        if "instructions per request" in line
    }
    assert rows.keys() == {"ratio_10"}
    assert all(count > 10_000 for count in rows.values())  # a request is no less
