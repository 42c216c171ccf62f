"""What Hypercorn (and wsproto under it) has no setting for, changed by the service.

Nothing here changes anything on import: ``apply``, called when the server is built
(``app.server.hypercorn_config``), applies each change, and applying again (a second
server in one process, the tests) changes nothing more. Each names the versions it was
checked against (``HYPERCORN_CHECKED``, ``WSPROTO_CHECKED``: tests/test_hypercorn_patches.py
fails on any other version, so an upgrade is checked again) and has a test of its
behaviour on the real server that fails if an upgrade breaks it:

- no cleartext HTTP/2 unless configured: tests/test_http_surface.py;
- Hypercorn's WebSocket message buffer compares the size before appending, and
- wsproto's permessage-deflate inflates at most the cap plus one byte of a message:
  tests/test_ws_client_frames.py;
- how a permessage-deflate offer is answered (SOVD_WS_COMPRESSION):
  tests/test_ws_compression.py.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, Final

import h11
from hypercorn.protocol import ws_stream
from hypercorn.protocol.h11 import H11Protocol
from wsproto.events import Message
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol

HYPERCORN_CHECKED: Final = "0.18.0"
WSPROTO_CHECKED: Final = "1.3.2"


def apply(ws_compression: str, max_message_bytes: int) -> None:
    """Apply every change: no h2c unless the config says so, client WebSocket messages
    bounded at ``max_message_bytes`` (after inflating), compression as ``ws_compression``."""
    refuse_h2c_unless_configured()
    bound_websocket_messages(max_message_bytes)
    use_websocket_compression(ws_compression)


# -- cleartext HTTP/2 (checked against Hypercorn 0.18.0) ----------------------------------
# Hypercorn switches an HTTP/1.1 connection to HTTP/2 on "Upgrade: h2c" or on the HTTP/2
# preface ("PRI * HTTP/2.0"), and has no setting to stop it. Both start in one method,
# H11Protocol._check_protocol; with a config whose ``h2c`` is False (app.server's
# ServerConfig) it is skipped, so such a request is answered as the HTTP/1.1 request it is
# (a server may ignore Upgrade, RFC 9110 7.8; the preface's "PRI *" gets a 404 and its
# remainder a 400). Any other Hypercorn configuration keeps Hypercorn's behaviour.

CheckProtocol = Callable[[H11Protocol, h11.Request], Awaitable[None]]
_H2C_SWITCH = "sovd_h2c_switch"  # marks our wrapper, so it is applied once


def refuse_h2c_unless_configured() -> None:
    """Wrap ``H11Protocol._check_protocol`` (once) to skip it when ``config.h2c`` is False."""
    original: CheckProtocol | None = getattr(H11Protocol, "_check_protocol", None)
    if original is None:  # an upgrade renamed it: say so loudly
        raise RuntimeError(
            "hypercorn.protocol.h11.H11Protocol._check_protocol is gone: app/hypercorn_patches.py"
            f" was checked against Hypercorn {HYPERCORN_CHECKED}"
        )
    if getattr(original, _H2C_SWITCH, False):
        return

    async def check_protocol(self: H11Protocol, event: h11.Request) -> None:
        if getattr(self.config, "h2c", True):
            await original(self, event)

    setattr(check_protocol, _H2C_SWITCH, True)
    setattr(H11Protocol, "_check_protocol", check_protocol)  # noqa: B010


# -- WebSocket messages from the client ---------------------------------------------------
# A response stream needs nothing from its client, so what a client sends is capped at
# app.server.WS_MAX_MESSAGE_BYTES (``websocket_max_message_size``; over it Hypercorn closes
# with 1009).
# Two gaps in that check are closed here, both checked against Hypercorn 0.18.0 and
# wsproto 1.3.2 (tests/test_ws_client_frames.py fails if an upgrade reopens either):
# - Hypercorn's WebsocketBuffer appends each piece of a message before comparing the size,
#   and keeps what it holds after the 1009 (the next piece is appended too): a client
#   that goes on sending one endless frame after the close would be buffered whole.
#   ``_BoundedBuffer`` compares first and drops what it held.
# - wsproto's PerMessageDeflate inflates each received piece whole, with no limit: 100 KiB
#   on the wire becomes 100 MiB before Hypercorn sees any of it. ``_BoundedInflate``
#   inflates at most the cap plus one byte of a message (zlib's max_length) and nothing
#   more of that message, so Hypercorn's check then closes with 1009.


class _BoundedBuffer(ws_stream.WebsocketBuffer):
    def extend(self, event: Message[Any]) -> None:
        if self.length + len(event.data) > self.max_length:
            self.value = None  # nothing more is held for this message
            self.length = self.max_length + 1
            raise ws_stream.FrameTooLargeError
        super().extend(event)


def bound_websocket_messages(max_message_bytes: int) -> None:
    """Hypercorn's per-message buffer, with the size compared before appending (its cap is
    Hypercorn's ``websocket_max_message_size``), and inflating bounded at
    ``max_message_bytes``."""
    if not hasattr(ws_stream, "WebsocketBuffer"):  # an upgrade moved it: say so loudly
        raise RuntimeError(
            "hypercorn.protocol.ws_stream.WebsocketBuffer is gone: app/hypercorn_patches.py"
            f" was checked against Hypercorn {HYPERCORN_CHECKED}"
        )
    setattr(ws_stream, "WebsocketBuffer", _BoundedBuffer)  # noqa: B010
    _BoundedInflate.max_message_bytes = max_message_bytes


# What _BoundedInflate reads of wsproto's PerMessageDeflate beyond its public methods.
_WSPROTO_STATE = ("_decompressor", "_inbound_compressed", "_inbound_is_compressible")


class _BoundedInflate(PerMessageDeflate):
    """permessage-deflate that inflates at most ``max_message_bytes`` + 1 bytes of one
    message. Overrides wsproto's ``frame_inbound_payload_data`` (the same steps, with
    zlib's max_length) and ``frame_inbound_complete`` (a message cut short is not
    finished inflating); the rest, compressing included, is wsproto's."""

    max_message_bytes: ClassVar[int] = 4096  # set by bound_websocket_messages

    def __init__(self, **parameters: Any) -> None:
        super().__init__(**parameters)
        self._inflated = 0  # bytes of the current message inflated so far
        self._cut = False  # the message went past the cap: nothing more of it inflated

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data  # not compressed: Hypercorn's buffer counts it as it comes
        if self._cut:
            return b""
        assert self._decompressor is not None
        room = self.max_message_bytes - self._inflated + 1  # >= 1: zlib's 0 is "no limit"
        try:
            inflated = self._decompressor.decompress(data, room)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(inflated)
        self._cut = self._inflated > self.max_message_bytes
        return inflated

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if not self._cut:
            # Not cut, so every byte given was inflated: the end of the message (four
            # bytes of an empty block) adds nothing past the cap.
            rest = super().frame_inbound_complete(proto, fin)
            if fin:
                self._inflated = 0
            return rest
        if fin:  # the end of a message cut short: forget it, and its zlib state
            self._decompressor = None
            self._inbound_compressed = None
            self._inflated = 0
            self._cut = False
        return None


def _check_wsproto() -> None:
    missing = [name for name in _WSPROTO_STATE if not hasattr(_BoundedInflate(), name)]
    if missing:  # an upgrade of wsproto changed what _BoundedInflate relies on
        raise RuntimeError(
            f"wsproto's PerMessageDeflate has no {', '.join(missing)}: app/hypercorn_patches.py's"
            f" bounded inflate was checked against wsproto {WSPROTO_CHECKED}"
        )


# -- WebSocket compression (checked against Hypercorn 0.18.0 and wsproto 1.3.2) ------------
# Hypercorn accepts permessage-deflate whenever a client offers it (browsers always do),
# with context takeover both ways: each socket then keeps a zlib compressor and
# decompressor for its whole life, about 100 KiB even while idle. It has no setting for
# this; it builds the extension from one module-level name when it answers a WebSocket
# handshake, and that name is what ``use_websocket_compression`` sets (each choice
# inflates boundedly, above):
# - "deflate" (the default): accepted without context takeover either way, so zlib state
#   exists only while a message is being compressed or decompressed (RFC 7692 lets a
#   server ask for both);
# - "off": declined, frames go uncompressed;
# - "full": Hypercorn's own behaviour (best compression, most memory).


class _NoContextTakeover(_BoundedInflate):
    def __init__(self) -> None:
        super().__init__(client_no_context_takeover=True, server_no_context_takeover=True)


class _Declined(_BoundedInflate):
    def accept(self, offer: str) -> None:
        return None  # leaves the extension out of the handshake's answer


class _Full(_BoundedInflate):
    def __init__(self) -> None:
        super().__init__()


_DEFLATE_BY_MODE: dict[str, type[PerMessageDeflate]] = {
    "deflate": _NoContextTakeover,
    "off": _Declined,
    "full": _Full,
}


def use_websocket_compression(mode: str) -> None:
    """How this process's Hypercorn answers a client offering permessage-deflate."""
    if not hasattr(ws_stream, "PerMessageDeflate"):  # an upgrade moved it: say so loudly
        raise RuntimeError(
            "hypercorn.protocol.ws_stream.PerMessageDeflate is gone: app/hypercorn_patches.py"
            f" was checked against Hypercorn {HYPERCORN_CHECKED}"
        )
    _check_wsproto()
    setattr(ws_stream, "PerMessageDeflate", _DEFLATE_BY_MODE[mode])  # noqa: B010
