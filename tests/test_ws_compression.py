"""What ``python -m app`` answers a WebSocket client offering permessage-deflate
(browsers always do): by default deflate without context takeover either way, so an idle
socket keeps no zlib state; ``off`` declines it; ``full`` is Hypercorn's own answer."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect

from tests.support.process import Process, server_env

pytestmark = pytest.mark.socket

NO_TAKEOVER = {"permessage-deflate", "client_no_context_takeover", "server_no_context_takeover"}
# The parameters of the answer, window sizes aside (they echo the client's offer).
EXPECTED: dict[str | None, set[str]] = {
    None: NO_TAKEOVER,  # the default is "deflate"
    "off": set(),
    "full": {"permessage-deflate"},
}


def _parameters(header: str | None) -> set[str]:
    parts = (part.strip() for part in (header or "").split(";"))
    return {part for part in parts if part and "window_bits" not in part}


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_the_handshake_answers_the_deflate_offer_as_configured(
    tmp_path: Path, mode: str | None
) -> None:
    extra = {} if mode is None else {"SOVD_WS_COMPRESSION": mode}
    proc = Process(server_env(tmp_path, **extra))
    try:
        token = proc.token()
        url = f"{proc.base_url.replace('http', 'ws')}/ws/responses/{uuid.uuid4()}?token={token}"
        with connect(url, compression="deflate") as ws:
            answered = ws.response.headers.get("Sec-WebSocket-Extensions")
            # The stream itself still works (an unknown command closes with 4404).
            with pytest.raises(ConnectionClosedError):
                ws.recv()
            assert ws.close_code == 4404
        assert _parameters(answered) == EXPECTED[mode]
    finally:
        proc.stop()
