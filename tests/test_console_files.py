"""The console's files as the service serves them (in process): the page at /, its files
under /console/, each with the console's own strict Content-Security-Policy while the
API keeps its own; no inline script or style anywhere; every file the page loads exists
and ships in the wheel."""

from __future__ import annotations

import re
import tomllib
from dataclasses import replace
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path

import pytest

from app.console import CONSOLE_CSP, STATIC
from app.main import create_app
from tests.support.harness import Server, in_process, make_config

pytestmark = pytest.mark.fast

API_CSP = "default-src 'none'; frame-ancestors 'none'"
ROOT = Path(__file__).parent.parent
# import ... from "./x.js" and import "./x.js" in the console's modules
_IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?from\s+["'](\.[^"']+)["']""", re.M)


def _csp(response: object) -> list[str]:
    headers = response.headers  # type: ignore[attr-defined]
    values: list[str] = headers.get_list("content-security-policy")
    return values


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/", "text/html"),
        ("/console/console.css", "text/css"),
        ("/console/js/main.js", "javascript"),
        ("/console/settings.json", "application/json"),
    ],
)
def test_console_files_carry_the_consoles_policy_only(server: Server, path: str, kind: str) -> None:
    r = server.http.get(path)
    assert r.status_code == 200, r.text
    assert kind in r.headers["content-type"]
    assert _csp(r) == [CONSOLE_CSP]  # one policy: the console's, not both
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.headers["x-frame-options"] == "DENY"


def test_the_api_keeps_its_own_strict_policy(server: Server) -> None:
    for path in ("/health/live", "/openapi.json", "/api/v1/vehicles", "/no/such/path"):
        assert _csp(server.http.get(path)) == [API_CSP], path


def test_the_consoles_policy_is_strict() -> None:
    directives = dict(part.strip().split(" ", 1) for part in CONSOLE_CSP.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name  # no 'unsafe-inline', no other origin
    assert directives["frame-ancestors"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert "unsafe" not in CONSOLE_CSP


def test_a_missing_console_file_and_a_write_get_the_contracts_errors(server: Server) -> None:
    missing = server.http.get("/console/js/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error_code"] == "not-found"
    post = server.http.post("/", content=b"")
    assert post.status_code == 405
    assert post.json()["error_code"] == "method-not-allowed"
    assert post.headers["allow"] == "GET, HEAD"


def test_the_page_is_revalidated_and_head_works(server: Server) -> None:
    r = server.http.head("/")
    assert r.status_code == 200
    assert r.content == b""
    assert r.headers["cache-control"] == "no-cache"


def test_console_requests_are_labelled_by_template_in_metrics(server: Server) -> None:
    server.http.get("/")
    server.http.get("/console/js/api.js")
    text = server.http.get("/metrics").text
    assert 'http_route="/"' in text
    assert 'http_route="/console/{path}"' in text
    assert 'http_route="/console/js/api.js"' not in text


def test_settings_tell_the_page_about_metrics_and_prometheus(tmp_path: Path) -> None:
    config = replace(
        make_config(tmp_path), prometheus_url="http://prom.lab:9090", metrics_token="t" * 32
    )
    with in_process(config) as server:
        settings = server.http.get("/console/settings.json").json()
    assert settings == {
        "metrics_enabled": True,
        "metrics_need_token": True,
        "prometheus_url": "http://prom.lab:9090",
    }


def test_the_console_is_not_part_of_the_api_document(tmp_path: Path) -> None:
    app = create_app(make_config(tmp_path))
    document = app.state.openapi.body.decode()
    assert '"/console' not in document
    assert '"/":' not in document


class _Page(HTMLParser):
    """What the page loads, and anything inline the CSP would block."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        for name, _ in attrs:
            if name.startswith("on") or name == "style":
                self.inline.append(f"<{tag} {name}>")
        if tag == "style":
            self.inline.append("<style>")
        if tag == "script":
            self._in_script = True
            assert named.get("src"), "a script without src is inline"
            self.loads.append(str(named["src"]))
        if tag == "link" and named.get("rel") == "stylesheet":
            self.loads.append(str(named["href"]))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline.append("<script> with content")


def test_the_page_has_nothing_inline_and_everything_it_loads_exists() -> None:
    page = _Page()
    page.feed((STATIC / "index.html").read_text())
    assert page.inline == []
    assert page.loads
    for url in page.loads:
        assert url.startswith("/console/"), url  # this origin, no CDN
        assert (STATIC / url.removeprefix("/console/")).is_file(), url


def test_every_module_import_resolves_and_nothing_builds_markup_from_strings() -> None:
    modules = sorted((STATIC / "js").glob("*.js"))
    assert modules
    for module in modules:
        text = module.read_text()
        for target in _IMPORT.findall(text):
            assert (module.parent / target).resolve().is_file(), (module.name, target)
        # Text only: nothing a vehicle or a user typed can become markup or code.
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function"):
            assert risky not in text, (module.name, risky)
        assert "http://" not in text and "https://" not in text, module.name  # no CDN


def test_every_console_file_ships_in_the_wheel() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = pyproject["tool"]["setuptools"]["package-data"]["app.console"]
    package = STATIC.parent
    files = [p.relative_to(package).as_posix() for p in STATIC.rglob("*") if p.is_file()]
    assert files
    unshipped = [f for f in files if not any(fnmatch(f, g) for g in globs)]
    assert unshipped == []
