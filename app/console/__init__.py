"""The demo console, a small browser UI the service serves at ``/``: these routes (outside the
route table, with their own Content-Security-Policy) and static/ (one page, ES modules, no build).

Static files only (``static/``: one HTML page, one stylesheet, ES modules; no build step,
nothing fetched from elsewhere), talking to the public API like any other client. These
routes are not API endpoints, so they live outside the route table and the OpenAPI
document: ``/`` (the page), ``/console/...`` (its files) and ``/console/settings.json``
(what the page needs to know about this service's configuration).

Every console response carries its own Content-Security-Policy, strict but enough for the
page: scripts, styles and connections (fetch and the WebSocket) from this origin only,
nothing inline, no framing. The request middleware keeps a policy a response already set,
so the API's responses keep theirs (``default-src 'none'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import BaseRoute, Match, Mount, NoMatchFound
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Config

STATIC: Final = Path(__file__).parent / "static"
PAGE_PATH: Final = "/"
FILES_PREFIX: Final = "/console"
SETTINGS_PATH: Final = "/console/settings.json"
FILES_TEMPLATE: Final = "/console/{path}"
CONSOLE_CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_READ_METHODS: Final = frozenset({"GET", "HEAD"})


def with_console_csp(app: ASGIApp) -> ASGIApp:
    """``app``, its responses carrying the console's policy (the middleware keeps it)."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_csp(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", ()),
                    (b"content-security-policy", CONSOLE_CSP.encode()),
                ]
            await send(message)

        await app(scope, receive, send_with_csp)

    return wrapped


class ExactPath(BaseRoute):
    """One path answered by ``app`` for GET and HEAD; other methods get the contract's
    405. Not a ``Route``: the route table's tests compare Starlette's ``Route``s with
    the table, and this is no API endpoint."""

    def __init__(self, path: str, app: ASGIApp) -> None:
        self.path = path
        self.app = app

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http" or scope["path"] != self.path:
            return Match.NONE, {}
        match = Match.FULL if scope["method"] in _READ_METHODS else Match.PARTIAL
        return match, {"endpoint": self.app}

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        raise NoMatchFound(name, path_params)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] not in _READ_METHODS:
            raise HTTPException(405, headers={"Allow": "GET, HEAD"})
        await self.app(scope, receive, send)


def settings(config: Config) -> dict[str, Any]:
    """What the page needs to know: whether /metrics is served (and needs a token of
    its own), and where Prometheus is, if configured."""
    return {
        "metrics_enabled": config.metrics_enabled,
        "metrics_need_token": config.metrics_token is not None,
        "prometheus_url": config.prometheus_url,
    }


def routes(config: Config) -> list[BaseRoute]:
    known = settings(config)

    async def index(scope: Scope, receive: Receive, send: Send) -> None:
        await FileResponse(STATIC / "index.html", headers=_NO_CACHE)(scope, receive, send)

    async def settings_document(scope: Scope, receive: Receive, send: Send) -> None:
        await JSONResponse(known, headers=_NO_CACHE)(scope, receive, send)

    page = with_console_csp(index)
    document = with_console_csp(settings_document)
    files = with_console_csp(StaticFiles(directory=STATIC))
    return [
        ExactPath(PAGE_PATH, page),
        ExactPath(SETTINGS_PATH, document),
        Mount(FILES_PREFIX, app=files),
    ]


# The page and the settings are small and change with the service: always revalidate.
_NO_CACHE: Final = {"cache-control": "no-cache"}


def route_template(scope: Mapping[str, Any]) -> str | None:
    """The metrics' route label of a console request (never the raw path)."""
    path = str(scope.get("path", ""))
    if path in (PAGE_PATH, SETTINGS_PATH):
        return path
    if path.startswith(FILES_PREFIX + "/"):
        return FILES_TEMPLATE
    return None
