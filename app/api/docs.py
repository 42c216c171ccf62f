"""GET /docs: the interactive API page (Swagger UI) on /openapi.json, from local files.

Swagger UI's files are vendored under ``app/api/static/swagger-ui`` (npm
``swagger-ui-dist``, Apache-2.0, see VENDORED.md there) and ship in the wheel: nothing is
fetched from a CDN, so the page works on a box without internet access and shows what this
service's own document says. The page and its files carry their own Content-Security-Policy
(``DOCS_CSP``, set on each response; the request middleware keeps it instead of the API's
``default-src 'none'``), as the console's do: scripts, styles and fetches from this origin
only, images also as ``data:`` URIs (the icons inside Swagger UI's stylesheet); no inline
script (the initializer is a file), no framing, no form posts.

The files are read once, on first use, off the event loop, and kept with a gzip copy (the
bundle is 1.7 MB, 0.5 MB compressed).
"""

from __future__ import annotations

import asyncio
import gzip
from dataclasses import dataclass
from importlib import resources
from typing import Final

from starlette.responses import Response

from app.api.contract import Call, MediaType

DOCS_PATH: Final = "/docs"
SWAGGER_UI_VERSION: Final = "5.35.0"
DOCS_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

HTML: Final = MediaType("text/html")
CSS: Final = MediaType("text/css")
JAVASCRIPT: Final = MediaType("text/javascript")

# The page may change with any release; the files only with Swagger UI's version.
_PAGE_CACHE = "no-cache"
_ASSET_CACHE = "public, max-age=86400"


@dataclass(frozen=True, slots=True)
class _File:
    raw: bytes
    gzipped: bytes


_loaded: dict[str, _File] = {}


def _read(name: str) -> _File:
    raw = resources.files("app.api").joinpath("static", *name.split("/")).read_bytes()
    return _File(raw, gzip.compress(raw, compresslevel=6, mtime=0))


def _accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip (``gzip`` or ``*``, not with q=0)."""
    for part in header.lower().split(","):
        coding, *params = (p.strip() for p in part.split(";"))
        if coding in ("gzip", "*"):
            for param in params:
                name, _, value = param.partition("=")
                if name.strip() == "q":
                    try:
                        return float(value) > 0
                    except ValueError:
                        return False
            return True
    return False


async def _serve(call: Call[None, None], name: str, kind: MediaType, cache: str) -> Response:
    file = _loaded.get(name)
    if file is None:
        file = _loaded[name] = await asyncio.to_thread(_read, name)
    # The middleware keeps a policy the response sets: this one replaces the API's.
    headers = {
        "cache-control": cache,
        "vary": "accept-encoding",
        "content-security-policy": DOCS_CSP,
    }
    body = file.raw
    if _accepts_gzip(call.request.headers.get("accept-encoding", "")):
        body = file.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, media_type=kind.media_type, headers=headers)


async def docs_page(call: Call[None, None]) -> Response:
    return await _serve(call, "docs.html", HTML, _PAGE_CACHE)


async def docs_stylesheet(call: Call[None, None]) -> Response:
    return await _serve(call, "swagger-ui/swagger-ui.css", CSS, _ASSET_CACHE)


async def docs_bundle(call: Call[None, None]) -> Response:
    return await _serve(call, "swagger-ui/swagger-ui-bundle.js", JAVASCRIPT, _ASSET_CACHE)


async def docs_initializer(call: Call[None, None]) -> Response:
    return await _serve(call, "swagger-initializer.js", JAVASCRIPT, _ASSET_CACHE)
