"""Issue #22 item 1: what the service changes of Hypercorn and wsproto is applied when the
server is built, never by importing a module, and only on the versions it was checked
against. Each change's behaviour is tested on the real server elsewhere (named in
``app.hypercorn_patches``); these fail first, and loudly, on an upgrade."""

from __future__ import annotations

import importlib.metadata
import inspect
import json
import subprocess
import sys

import pytest
from hypercorn.asyncio.run import worker_serve

from app import hypercorn_patches

pytestmark = pytest.mark.fast

# Run in a fresh interpreter: which classes Hypercorn's modules hold after importing the
# whole service, then after building the server's configuration (twice).
_PROBE = """
import json
from hypercorn.protocol import ws_stream
from hypercorn.protocol.h11 import H11Protocol
from wsproto.extensions import PerMessageDeflate

def seen():
    check = H11Protocol._check_protocol
    return {
        "check_protocol": f"{check.__module__}.{check.__qualname__}",
        "buffer": f"{ws_stream.WebsocketBuffer.__module__}.{ws_stream.WebsocketBuffer.__name__}",
        "deflate": ws_stream.PerMessageDeflate is PerMessageDeflate,
    }

import app.__main__, app.main, app.server, app.serving
from app.config import Config
imported = seen()
app.server.hypercorn_config(Config())
built = seen()
wrapped = H11Protocol._check_protocol
app.server.hypercorn_config(Config())
print(json.dumps({
    "imported": imported,
    "built": built,
    "deflate_class": ws_stream.PerMessageDeflate.__name__,
    "applied_once": H11Protocol._check_protocol is wrapped,
}))
"""


@pytest.mark.socket
def test_importing_the_service_changes_nothing_of_hypercorn_and_building_it_does() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["imported"] == {
        "check_protocol": "hypercorn.protocol.h11.H11Protocol._check_protocol",
        "buffer": "hypercorn.protocol.ws_stream.WebsocketBuffer",
        "deflate": True,
    }
    assert seen["built"] == {
        "check_protocol": (
            "app.hypercorn_patches.refuse_h2c_unless_configured.<locals>.check_protocol"
        ),
        "buffer": "app.hypercorn_patches._BoundedBuffer",
        "deflate": False,
    }
    assert seen["deflate_class"] == "_NoContextTakeover"  # SOVD_WS_COMPRESSION's default
    assert seen["applied_once"]  # a second server in the process wraps nothing twice


@pytest.mark.parametrize(
    ("package", "checked"),
    [
        ("hypercorn", hypercorn_patches.HYPERCORN_CHECKED),
        ("wsproto", hypercorn_patches.WSPROTO_CHECKED),
    ],
)
def test_the_installed_versions_are_the_ones_checked(package: str, checked: str) -> None:
    installed = importlib.metadata.version(package)
    assert installed == checked, (
        f"{package} {installed} is installed; app/hypercorn_patches.py was checked against"
        f" {checked}: run tests/test_http_surface.py, tests/test_ws_client_frames.py and"
        " tests/test_ws_compression.py, check each change still applies, then update it"
    )


def test_worker_serve_still_takes_the_sockets_the_service_guards() -> None:
    """``app.server.serve`` hands Hypercorn's ``worker_serve`` sockets of its own (the
    connection limits; tests/test_slow_clients.py refuses past them on the real server)."""
    parameters = inspect.signature(worker_serve).parameters
    assert list(parameters)[:2] == ["app", "config"]
    assert {"sockets", "shutdown_trigger"} <= set(parameters)
