"""What the running service imports (issue #22): the demo's DoIP ECU emulator (the DoIP
entity of ``app.vehicles.emulator.server``) only when the demo asks for it
(``SOVD_DEMO_EMULATOR``). The simulated vehicles' ECU models (``emulator.ecus``,
``emulator.described``) are the simulator's own and load with it. Each case runs in a
fresh interpreter, whose ``sys.modules`` is the evidence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.socket  # a subprocess

ROOT = Path(__file__).resolve().parent.parent
DOIP_ENTITY = "app.vehicles.emulator.server"

# The real app in process (tests.support.harness) in a fresh data directory, a command
# run on a simulated demo vehicle; the service's emulator modules printed.
SCRIPT = """
import json, sys, tempfile
from pathlib import Path
from tests.support.harness import in_process, make_config

config = make_config(Path(tempfile.mkdtemp()), demo_emulator=EMULATOR)
with in_process(config) as srv:
    token = srv.token()
    done = srv.wait_status(token, srv.submit(token, srv.vehicle(token)["vehicle_id"])["command_id"])
    assert done["status"] == "completed", done
    print(json.dumps(sorted(m for m in sys.modules if m.startswith("app.vehicles.emulator"))))
"""


def _emulator_modules(emulator: bool) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT.replace("EMULATOR", repr(emulator))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return loaded


def test_the_doip_emulator_is_imported_only_when_the_demo_asks_for_it() -> None:
    without = _emulator_modules(emulator=False)
    assert "app.vehicles.emulator.ecus" in without  # the simulator's ECUs answered
    assert DOIP_ENTITY not in without
    assert DOIP_ENTITY in _emulator_modules(emulator=True)
