"""The tiers' own checks (``tests/conftest.py``): a module without its tier fails the
collection, and a fast-tier test that opens a network socket or starts a subprocess fails.
Run on probe modules by a pytest of their own (in this process: the conftest's copy adds
an audit hook of its own, idle outside that run), with this suite's conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.socket  # a pytest whose probes open sockets and subprocesses

ROOT = Path(__file__).resolve().parent.parent

PROBES = """
import os, socket, subprocess, sys
import pytest

pytestmark = pytest.mark.fast

def test_connects():
    with socket.create_server(("127.0.0.1", 0)) as server:
        socket.create_connection(server.getsockname()).close()

def test_sends():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", ("127.0.0.1", 9))

def test_sends_a_message():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendmsg([b"x"], [], 0, ("127.0.0.1", 9))

def test_connects_in_a_fixture(listener):
    pass

def test_starts_a_subprocess():
    subprocess.run([sys.executable, "-c", "pass"], check=True)

def test_runs_a_shell_command():
    assert os.system("true") == 0

def test_stays_in_process():
    a, b = socket.socketpair()  # no address: the event loop's own kind
    a.close()
    b.close()
    with socket.socket(socket.AF_INET6) as probe:  # as urllib3 probes for IPv6
        probe.bind(("::1", 0))

@pytest.mark.socket
def test_marked_socket():
    with socket.create_server(("127.0.0.1", 0)) as server:
        socket.create_connection(server.getsockname()).close()

@pytest.fixture
def listener():
    with socket.create_server(("127.0.0.1", 0)) as server:
        with socket.create_connection(server.getsockname()):
            yield
"""


@pytest.fixture
def probe_suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest((ROOT / "tests" / "conftest.py").read_text())
    return pytester


def _run(suite: pytest.Pytester, module: str) -> pytest.RunResult:
    # The suite's configuration (markers, strictness), the probe's directory as the root.
    return suite.runpytest_inprocess(
        "-c",
        str(ROOT / "pyproject.toml"),
        "--rootdir",
        str(suite.path),
        "-p",
        "no:cacheprovider",
        "-n",
        "0",
        "-rA",
        module,
    )


def test_a_fast_test_that_leaves_the_process_fails_naming_what_it_did(
    probe_suite: pytest.Pytester,
) -> None:
    probe_suite.makepyfile(test_probes=PROBES)
    result = _run(probe_suite, "test_probes.py")
    result.assert_outcomes(passed=8, errors=6)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_connects *",
            "a test of the fast tier socket.connect to ('127.0.0.1', *): mark it*mark.socket",
            "*ERROR at teardown of test_sends *",
            "a test of the fast tier socket.sendto to ('127.0.0.1', 9)*",
            "*ERROR at teardown of test_sends_a_message *",
            "a test of the fast tier socket.sendmsg to ('127.0.0.1', 9)*",
            "*ERROR at teardown of test_connects_in_a_fixture*",
            "a test of the fast tier socket.connect to ('127.0.0.1', *)*",
            "*ERROR at teardown of test_starts_a_subprocess*",
            "a test of the fast tier started *python* (subprocess.Popen)*",
            "*ERROR at teardown of test_runs_a_shell_command *",
            "a test of the fast tier started 'true' (os.system)*",
        ]
    )
    for fine in ("test_stays_in_process", "test_marked_socket"):
        result.stdout.no_fnmatch_line(f"ERROR test_probes.py::{fine}*")


def test_a_module_without_its_tier_fails_the_collection(probe_suite: pytest.Pytester) -> None:
    probe_suite.makepyfile(test_untiered="def test_nothing():\n    pass\n")
    result = _run(probe_suite, "test_untiered.py")
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*test modules without exactly one tier*test_untiered.py*"])
