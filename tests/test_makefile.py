"""The quick start's two commands install what they need and no more (issue #22 item 5):
`make run` sets up the runtime an edge box needs, `make test` adds the dev extras.

Read from make's own dry run (`make -n`) in a folder with no venv yet, so the commands
checked are the ones a fresh machine would run."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent


def _dry_run(target: str, tmp_path: Path) -> str:
    if shutil.which("make") is None:
        pytest.fail("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for name in ("pyproject.toml", "constraints.txt"):
        (tmp_path / name).write_text("")
    done = subprocess.run(
        ["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    return done.stdout


def test_make_run_installs_the_runtime_only(tmp_path: Path) -> None:
    commands = _dry_run("run", tmp_path)
    assert "pip install -q -c constraints.txt -e ." in commands
    assert "[dev]" not in commands
    assert "-m app" in commands


def test_make_test_adds_the_dev_extras(tmp_path: Path) -> None:
    commands = _dry_run("test", tmp_path)
    runtime = commands.index("-e .\n")
    dev = commands.index("-e '.[dev]'")
    assert runtime < dev < commands.index("-m pytest")
