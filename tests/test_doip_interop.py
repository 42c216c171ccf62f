"""The DoIP connector against a DoIP implementation nobody here wrote: the ``doip-server``
package from PyPI, serving canned UDS answers from its YAML configuration.

doip-server pins ``websockets<15`` and pulls FastAPI, so it never enters the project's
environment: it runs as a subprocess from its own virtualenv, built once under
``.cache/doip-server-venv`` (git-ignored) from ``tests/support/doip_server_constraints.txt`` and
reused while those pins are unchanged. This test is never skipped: without that
environment it fails and says why.

doip-server serves one TCP connection at a time, one DoIP message per read, and answers
each request with at most one UDS message (no 0x78): the tests close their connector
before the next one connects, and response pending is covered against the emulator.
"""

from __future__ import annotations

import asyncio
import fcntl
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.vehicles.connector import DiagnosticRequest, VehicleNotResponding, VehicleUnreachable
from app.vehicles.doip_connector import DoipConnector, DoipSettings, DoipTarget
from tests.support.doip_helpers import DEADLINE_S, Recorder, doip_threads, eventually
from tests.support.harness import free_port

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent
DOIP_SERVER = "doip-server==2026.6.14.post116"
CONSTRAINTS = Path(__file__).parent / "support" / "doip_server_constraints.txt"
VENV = ROOT / ".cache" / "doip-server-venv"
STAMP = ".sovd-stamp"
READY = "DoIP server is ready to accept connections"
VIN = "WVWZZZ1KZAW000001"
SETTINGS = DoipSettings(
    p2_s=0.5, p2_star_s=0.5, idle_close_s=5.0, tester_present_s=0.1, backoff_first_s=0.05
)

GATEWAY = """\
gateway:
  name: "SovdInteropGateway"
  logical_address: 0x0001
  network:
    host: "127.0.0.1"
    port: {port}
    max_connections: 5
    timeout: 30
  protocol:
    version: 0x02
    inverse_version: 0xFD
  ecus:
    - "ecu_engine.yaml"
    - "ecu_transmission.yaml"
"""
ECU = """\
ecu:
  name: "{name}"
  target_address: {address}
  tester_addresses: [0x0E00]
  uds_services:
    service_files: ["services_{name}.yaml"]
"""
# Requests are matched in order: the catch-all for other DIDs comes last.
ENGINE_SERVICES = f"""\
specific_services:
  read_dtc:
    request: "0x1902FF"
    responses: ["0x5902FF0171002F04200027"]
  read_vin:
    request: "0x22F190"
    responses: ["0x62F190{VIN.encode().hex().upper()}"]
  read_rpm:
    request: "0x22010C"
    responses: ["0x62010C0CD0"]
  read_coolant_silently:
    request: "0x220105"
    no_response: true
  extended_session:
    request: "0x1003"
    responses: ["0x5003003201F4"]
  tester_present_suppressed:
    request: "0x3E80"
    no_response: true
  self_test_start:
    request: "0x31010201"
    responses: ["0x710102010100"]
  self_test_results:
    request: "0x31030201"
    responses: ["0x710302010132", "0x710302010264"]
  other_dids:
    request: "regex:^22"
    responses: ["0x7F2231"]
"""
# Its DTC report cycles: P0700 (failure type 0x13) before a clear, nothing after it. It
# clears that DTC only by its full three bytes (0x070013), as a real ECU does. It answers
# 0x10 as an ISO 14229-1:2006 ECU may, without the P2/P2* timing record.
TRANSMISSION_SERVICES = f"""\
specific_services:
  read_dtc:
    request: "0x1902FF"
    responses: ["0x5902FF0700132F", "0x5902FF"]
  clear_all:
    request: "0x14FFFFFF"
    responses: ["0x54"]
  clear_p0700:
    request: "0x14070013"
    responses: ["0x54"]
  clear_anything_else:
    request: "regex:^14"
    responses: ["0x7F1431"]
  extended_session_2006:
    request: "0x1003"
    responses: ["0x5003"]
  read_vin:
    request: "0x22F190"
    responses: ["0x62F190{VIN.encode().hex().upper()}"]
"""


# -- doip-server's own environment and process -----------------------------------------


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not {what}: {exc}", pytrace=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        pytest.fail(
            f"could not {what} (exit {result.returncode}); the doip-server interop tests need"
            f" PyPI access once to build {VENV}:\n{output}",
            pytrace=False,
        )


def doip_server_python() -> Path:
    """The interpreter of doip-server's virtualenv, built on first use."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    # One builder at a time (parallel pytest runs); the others wait, then reuse its work.
    with (VENV.parent / f"{VENV.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_once()


def _build_once() -> Path:
    wanted = f"{DOIP_SERVER}\n{CONSTRAINTS.read_text()}"
    python = VENV / "bin" / "python"
    stamp = VENV / STAMP
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    # Built aside and renamed into place, so an interrupted build is never taken for one.
    build = VENV.with_name(f"{VENV.name}.build")
    shutil.rmtree(build, ignore_errors=True)
    # Without a pip of its own (ensurepip: 3 s), filled by this environment's pip, and
    # without compiling every installed module up front (the server compiles what it
    # imports): 2.5 s instead of 9.4 s of a fresh checkout's first run (2026-12-08).
    _run(
        [sys.executable, "-m", "venv", "--without-pip", str(build)],
        f"create the virtualenv {build}",
    )
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(build / "bin" / "python"),
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "-c",
            str(CONSTRAINTS),
            DOIP_SERVER,
        ],
        f"install {DOIP_SERVER} into {build}",
    )
    (build / STAMP).write_text(wanted)
    shutil.rmtree(VENV, ignore_errors=True)
    build.rename(VENV)
    return python


@dataclass
class DoipServer:
    port: int
    log: Path


def _start(python: Path, config: Path, log: Path) -> tuple[subprocess.Popen[bytes], int] | None:
    # doip-server binds its own TCP and UDP sockets and refuses port 0: a free one is
    # picked here; the rare race with another process is retried below.
    port = free_port()
    (config / "gateway.yaml").write_text(GATEWAY.format(port=port))
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                str(python),
                "-m",
                "doip_server.main",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--gateway-config",
                str(config / "gateway.yaml"),
            ],
            cwd=config,  # it also looks for fallback service files relative to here
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if READY in log.read_text(errors="replace"):
            return process, port
        if process.poll() is not None:
            return None  # most likely the port was taken meanwhile
        time.sleep(0.02)
    process.kill()
    process.wait()
    pytest.fail(f"doip-server did not become ready:\n{log.read_text()[-3000:]}", pytrace=False)


@pytest.fixture(scope="module")
def doip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DoipServer]:
    python = doip_server_python()
    config = tmp_path_factory.mktemp("doip-server")
    for name, address, services in (
        ("engine", "0x0010", ENGINE_SERVICES),
        ("transmission", "0x0018", TRANSMISSION_SERVICES),
    ):
        (config / f"ecu_{name}.yaml").write_text(ECU.format(name=name, address=address))
        (config / f"services_{name}.yaml").write_text(services)
    log = config / "doip-server.log"
    for _ in range(3):
        started = _start(python, config, log)
        if started is not None:
            break
    else:
        pytest.fail(f"doip-server did not start:\n{log.read_text()[-3000:]}", pytrace=False)
    process, port = started
    try:
        yield DoipServer(port, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# -- the connector against it -----------------------------------------------------------


@asynccontextmanager
async def connector(
    server: DoipServer, tester_address: int = 0x0E00
) -> AsyncIterator[tuple[DoipConnector, Recorder]]:
    target = DoipTarget(
        "127.0.0.1",
        port=server.port,
        logical_address=0x0001,
        tester_address=tester_address,
        ecu_addresses=(0x10, 0x18),
    )

    async def resolve(vehicle_id: str) -> DoipTarget:
        return target

    observer = Recorder()
    doip_connector = DoipConnector(resolve, SETTINGS, observer)
    try:
        yield doip_connector, observer
    finally:
        # doip-server serves one connection at a time: free it for the next test.
        await doip_connector.aclose()
        await eventually(lambda: not doip_threads(), "the worker threads to end")


async def run(
    doip_connector: DoipConnector, name: str, params: dict[str, str]
) -> list[dict[str, Any]]:
    request = DiagnosticRequest("c1", "bench", VIN, "", name, params)
    answer = doip_connector.execute(request)
    try:
        chunks = [(dict(c.payload), c.is_final) async for c in answer]
    finally:
        await answer.aclose()
    assert [final for _, final in chunks] == [False] * (len(chunks) - 1) + [True]
    return [payload for payload, _ in chunks]


def test_reads_dtcs_and_data_and_keeps_negative_responses(doip_server: DoipServer) -> None:
    async def scenario() -> None:
        async with connector(doip_server) as (doip_connector, observer):
            dtcs = await run(doip_connector, "ReadDTC", {"ecuAddress": "0x10"})
            assert [(c.get("dtcCode"), c["status"]) for c in dtcs] == [
                ("P0171", "confirmed"),
                ("P0420", "pending"),
                (None, "complete"),
            ]
            assert dtcs[0]["statusByte"] == "0x2F" and dtcs[-1]["totalDtcs"] == 2
            vin = await run(
                doip_connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}
            )
            assert vin == [
                {"ecuAddress": "0x0010", "dataId": "0xF190", "name": "vin", "value": VIN}
            ]
            rpm = await run(
                doip_connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x010C"}
            )
            assert (rpm[0]["value"], rpm[0]["unit"]) == (820, "rpm")
            other = await run(
                doip_connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x1234"}
            )
            assert other[0]["negativeResponse"] == {
                "nrc": "0x31",
                "name": "requestOutOfRange",
                "service": "0x22",
            }
            assert observer.links() == [("up",)]
            assert [e[4] for e in observer.kinds("uds")] == [
                "positive",
                "positive",
                "positive",
                "negative",
            ]

    asyncio.run(scenario())


def test_clear_dtc_reads_before_and_after(doip_server: DoipServer) -> None:
    async def scenario() -> None:
        async with connector(doip_server) as (doip_connector, _):
            cleared = await run(doip_connector, "ClearDTC", {"ecuAddress": "0x18"})
            assert cleared == [
                {
                    "ecuAddress": "0x0018",
                    "status": "cleared",
                    "clearedDtcs": ["P0700"],
                    "remainingDtcs": 0,
                }
            ]

    asyncio.run(scenario())


def test_clearing_one_dtc_sends_the_ecus_own_three_bytes(doip_server: DoipServer) -> None:
    # Found in review: the display code alone (0x070000) matches no DTC of an ECU that
    # stores P0700 with a failure type; the clear must name the DTC the ECU reported.
    async def scenario() -> None:
        async with connector(doip_server) as (doip_connector, _):
            cleared = await run(
                doip_connector, "ClearDTC", {"ecuAddress": "0x18", "dtcCode": "P0700"}
            )
            assert cleared == [
                {
                    "ecuAddress": "0x0018",
                    "status": "cleared",
                    "clearedDtcs": ["P0700"],
                    "remainingDtcs": 0,
                }
            ]

    asyncio.run(scenario())


def test_session_tester_present_and_routine(doip_server: DoipServer) -> None:
    async def scenario() -> None:
        async with connector(doip_server) as (doip_connector, observer):
            session = await run(
                doip_connector,
                "DiagnosticSessionControl",
                {"ecuAddress": "0x10", "session": "extended"},
            )
            assert session[0]["p2StarServerMaxMs"] == 5000
            older = await run(
                doip_connector,
                "DiagnosticSessionControl",
                {"ecuAddress": "0x18", "session": "extended"},
            )
            assert older == [{"ecuAddress": "0x0018", "session": "extended"}]
            # doip-server acknowledges the suppressed TesterPresent and answers nothing.
            await eventually(
                lambda: len([e for e in observer.kinds("uds") if e[2] == "TesterPresent"]) >= 3,
                "TesterPresent",
            )
            params = {"ecuAddress": "0x10", "routineId": "0x0201"}
            started = await run(doip_connector, "RoutineControl", {**params, "action": "start"})
            assert (started[0]["status"], started[0]["progress"]) == ("running", 0)
            first = await run(doip_connector, "RoutineControl", {**params, "action": "results"})
            second = await run(doip_connector, "RoutineControl", {**params, "action": "results"})
            assert [(r[0]["status"], r[0]["progress"]) for r in (first, second)] == [
                ("running", 50),
                ("completed", 100),
            ]
            # The transmission has no TesterPresent here: doip-server acknowledges it, then
            # answers 0x7F 0x7F 0x7F; that late negative is not taken for the next answer.
            vin = await run(
                doip_connector, "ReadDataByID", {"ecuAddress": "0x18", "dataId": "0xF190"}
            )
            assert vin[0]["value"] == VIN
            presents = [e for e in observer.kinds("uds") if e[2] == "TesterPresent"]
            assert all(e[4] == "positive" for e in presents)
            assert doip_connector.link_state("bench").sessions == {
                "0x0010": "extended",
                "0x0018": "extended",
            }

    asyncio.run(scenario())


def test_a_silent_ecu_ends_the_request_at_p2(doip_server: DoipServer) -> None:
    async def scenario() -> None:
        async with connector(doip_server) as (doip_connector, observer):
            with pytest.raises(VehicleNotResponding, match="did not answer"):
                async with asyncio.timeout(DEADLINE_S):  # P2 ends it long before
                    await run(
                        doip_connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0x0105"}
                    )
            assert observer.links() == [("up",), ("down", "bench", "no-answer")]
            vin = await run(
                doip_connector, "ReadDataByID", {"ecuAddress": "0x10", "dataId": "0xF190"}
            )
            assert vin[0]["value"] == VIN

    asyncio.run(scenario())


def test_an_unknown_tester_is_refused_and_an_unknown_ecu_ends_at_p2(
    doip_server: DoipServer,
) -> None:
    async def scenario() -> None:
        async with connector(doip_server, tester_address=0x0E80) as (doip_connector, observer):
            # doip-server denies with code 0x02, which ISO 13400-2 names a source address
            # mismatch (0x00 is the unknown one): the connector names codes as the standard does.
            with pytest.raises(VehicleUnreachable, match=r"routing activation denied by .*: 0x02 "):
                await run(doip_connector, "ReadDTC", {"ecuAddress": "0x10"})
            assert observer.links() == [("failed",)]
        async with connector(doip_server) as (doip_connector, observer):
            # doip-server answers an unknown target with a frame of payload type 0x8000,
            # which ISO 13400-2 does not define (a diagnostic message NACK is 0x8003): the
            # connector ignores it like any unknown frame, so no answer comes within P2:
            # the link is reset and the request ends then, not at the command's deadline.
            with pytest.raises(VehicleNotResponding, match="did not answer"):
                async with asyncio.timeout(DEADLINE_S):
                    await run(doip_connector, "ReadDTC", {"ecuAddress": "0x99"})
            assert observer.links() == [("up",), ("down", "bench", "no-answer")]

    asyncio.run(scenario())
