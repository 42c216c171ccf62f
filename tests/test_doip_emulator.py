"""The ECU emulator's DoIP entity over real TCP on loopback, driven by doipclient (a DoIP
client nobody here wrote), and the ``python -m app.vehicles.emulator`` command. The ECUs'
logic alone is in test_emulated_ecus.py."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from doipclient import DoIPClient

from app.vehicles import doip
from app.vehicles.emulator import DEFAULT_ECUS, EmulatorSettings, running_emulator
from app.vehicles.emulator.__main__ import parse_args

pytestmark = pytest.mark.socket

ROOT = Path(__file__).resolve().parent.parent
VIN = "WVWZZZ1KZAW000001"


# -- the DoIP entity over TCP, with doipclient as the tester ----------------------------


def _with_emulator(
    settings: EmulatorSettings, body: Callable[[int], Any], check: Callable[..., None]
) -> None:
    """Serve the emulator on the test's loop while ``body(port)`` runs in a thread (doipclient
    blocks); then ``check(result, emulator)``."""

    async def scenario() -> None:
        async with running_emulator(settings) as emulator:
            result = await asyncio.to_thread(body, emulator.port)
            check(result, emulator)

    asyncio.run(scenario())


def test_doipclient_activates_routing_and_talks_to_each_ecu() -> None:
    def body(port: int) -> dict[str, Any]:
        with DoIPClient("127.0.0.1", 0x0010, tcp_port=port) as client:
            client.send_diagnostic(b"\x19\x02\xff")
            dtcs = bytes(client.receive_diagnostic(timeout=2))
            client.send_diagnostic_to_address(0x0028, b"\x22\xf1\x90")
            alive = client.request_alive_check()
            try:
                client.send_diagnostic_to_address(0x0099, b"\x22\xf1\x90")
                nack = ""
            except OSError as exc:
                nack = str(exc)
            return {"dtcs": dtcs, "alive": alive.source_address, "nack": nack}

    def check(result: dict[str, Any], emulator: Any) -> None:
        assert result["dtcs"] == bytes.fromhex("5902FF0171002F04200027")
        assert result["alive"] == 0x0001
        assert "negative acknowledge code" in result["nack"]
        assert emulator.requests[0x22] == 1
        assert emulator.connections_accepted == 1

    _with_emulator(EmulatorSettings(), body, check)


@pytest.mark.parametrize(
    ("profile", "tester", "code"),
    [("unreachable", 0x0E00, 0x01), ("healthy", 0x0100, 0x00)],
)
def test_routing_activation_is_refused(profile: str, tester: int, code: int) -> None:
    def body(port: int) -> tuple[int, bytes]:
        # activation_type None: doipclient's constructor leaks its sockets when the
        # activation it makes itself is denied, so this test asks for it explicitly.
        with DoIPClient(
            "127.0.0.1", 0x0010, tcp_port=port, client_logical_address=tester, activation_type=None
        ) as client:
            response = client.request_activation(0, disable_retry=True)
            return int(response.response_code), client._tcp_sock.recv(64)

    def check(result: tuple[int, bytes], emulator: Any) -> None:
        assert result == (code, b"")  # denied, then the entity closes the connection
        assert emulator.activations_refused == 1

    _with_emulator(EmulatorSettings(profile=profile), body, check)


def test_a_bad_header_gets_a_generic_nack_and_the_connection_closes() -> None:
    def body(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(b"\x02\xfc\x00\x05\x00\x00\x00\x07" + bytes(7))  # inverse is wrong
            received = b""
            while chunk := sock.recv(64):
                received += chunk
            return received

    def check(result: bytes, emulator: Any) -> None:
        assert result == doip.generic_nack(doip.NACK_INCORRECT_PATTERN)

    _with_emulator(EmulatorSettings(), body, check)


def test_slow_answers_come_after_response_pending() -> None:
    settings = EmulatorSettings(profile="slow", slow_s=0.2, pending_interval_s=0.05)

    def body(port: int) -> tuple[list[bytes], float]:
        with DoIPClient("127.0.0.1", 0x0010, tcp_port=port) as client:
            started = time.monotonic()
            client.send_diagnostic(b"\x22\xf1\x90")
            answers = [bytes(client.receive_diagnostic(timeout=2))]
            while answers[-1] == b"\x7f\x22\x78":
                answers.append(bytes(client.receive_diagnostic(timeout=2)))
            return answers, time.monotonic() - started

    def check(result: tuple[list[bytes], float], emulator: Any) -> None:
        answers, elapsed = result
        assert len(answers) >= 3  # 0x78 every 50 ms for 200 ms, then the answer
        assert set(answers[:-1]) == {b"\x7f\x22\x78"}
        assert answers[-1] == b"\x62\xf1\x90" + VIN.encode()
        assert elapsed >= 0.2

    _with_emulator(settings, body, check)


def test_the_flaky_profile_draws_an_outcome_per_request() -> None:
    settings = EmulatorSettings(
        profile="flaky", seed=3, p_timeout=0.0, p_unreachable=0.0, p_malformed=1.0
    )

    def body(port: int) -> bytes:
        with DoIPClient("127.0.0.1", 0x0010, tcp_port=port) as client:
            client.send_diagnostic(b"\x22\xf1\x90")
            return bytes(client.receive_diagnostic(timeout=2))

    def check(result: bytes, emulator: Any) -> None:
        assert result == b"\xff\xfe\x00 not uds"
        emulator.profile = "healthy"
        with pytest.raises(ValueError, match="not one of"):
            emulator.profile = "sleepy"

    _with_emulator(settings, body, check)


# -- python -m app.vehicles.emulator -------------------------------------------------------


def _read_line(process: subprocess.Popen[str], deadline: float) -> str:
    assert process.stdout is not None
    os.set_blocking(process.stdout.fileno(), False)
    buffered = ""
    while time.monotonic() < deadline:
        chunk = process.stdout.readline()
        buffered += chunk or ""
        if buffered.endswith("\n"):
            return buffered
        if process.poll() is not None:
            break
        time.sleep(0.01)
    raise AssertionError(f"the emulator printed no line (exit {process.poll()}): {buffered!r}")


def test_the_emulator_runs_on_its_own_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "app.vehicles.emulator", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        listening = json.loads(_read_line(process, time.monotonic() + 15))
        assert listening["event"] == "emulator_listening"
        assert listening["ecus"] == ["0x0010", "0x0018", "0x0028", "0x0040"]
        with DoIPClient("127.0.0.1", 0x0040, tcp_port=listening["port"]) as client:
            client.send_diagnostic(b"\x19\x02\xff")
            assert bytes(client.receive_diagnostic(timeout=2)) == bytes.fromhex("5902FF90000028")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_the_emulator_refuses_bad_arguments() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.vehicles.emulator", "--vin", "SHORT"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "--vin must be 17 ASCII characters" in result.stderr


def test_the_emulators_ecus_are_given_by_two_byte_address() -> None:
    args = parse_args(["--ecus", "0x10, 0x1001,0x1028", "--logical-address", "0x1000"])
    assert [(spec.name, spec.address) for spec in args.ecus] == [
        ("engine", 0x0010),
        ("ecu-0x1001", 0x1001),
        ("ecu-0x1028", 0x1028),
    ]
    assert args.logical_address == 0x1000
    assert parse_args([]).ecus == DEFAULT_ECUS
    for bad in (["--ecus", "0x10,0x0000"], ["--ecus", "0x10000"], ["--logical-address", "0x0"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
