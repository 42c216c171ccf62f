"""The HTTPS benchmark scenario (``bench/tls.py``, issue #26) at smoke size: it runs the
two real servers and reports sane figures (no speed is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent


def test_the_tls_scenario_runs_at_smoke_size(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "tls", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "tls round 1/1: https" in done.stderr and "tls round 1/1: http " in done.stderr
    tls = json.loads(out.read_text())["results"]["tls"]
    for kind in ("http", "https"):
        assert tls[kind]["requests_per_s"] > 0 and tls[kind]["errors"] == 0
    expected = tls["https"]["requests_per_s"] / tls["http"]["requests_per_s"]
    assert abs(tls["https_ratio"] - expected) < 0.002
