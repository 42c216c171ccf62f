"""GET /docs: Swagger UI from the package's own files, under its own CSP, no CDN."""

from __future__ import annotations

import gzip
import re
import tomllib
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from app.api.docs import DOCS_CSP
from tests.support.harness import Server, make_config, running, unavailable

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "app" / "api" / "static"


class _Page(HTMLParser):
    """The page's script and stylesheet references, and any inline script."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.icons: list[str] = []
        self.inline_script = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "link" and "icon" in str(values.get("rel", "")).split():
            self.icons.append(str(values.get("href")))
        for name in ("src", "href"):
            if values.get(name):
                self.refs.append(str(values[name]))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_script += data.strip()


def _csp(r: httpx.Response) -> str:
    policies = r.headers.get_list("content-security-policy")
    assert len(policies) == 1, policies  # a browser enforces every one it gets
    return policies[0]


def test_the_page_and_every_file_it_names_are_served_locally(server: Server) -> None:
    r = server.http.get("/docs")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = _Page()
    page.feed(r.text)
    assert page.inline_script == ""  # the initializer is a file: no 'unsafe-inline' needed
    assert not re.search(r"(?i)(https?:)?//", r.text), "the page names another origin"
    # An icon is named, and inline (no request): else a browser asks for /favicon.ico.
    assert page.icons == ["data:,"]
    fetched = [ref for ref in page.refs if not ref.startswith("data:")]
    assert sorted(fetched) == [
        "/docs/swagger-initializer.js",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-ui.css",
    ]
    kinds = {".js": "text/javascript", ".css": "text/css"}
    for ref in fetched:
        asset = server.http.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].startswith(kinds[Path(ref).suffix]), ref
        assert _csp(asset) == DOCS_CSP
    init = server.http.get("/docs/swagger-initializer.js").text
    assert 'url: "/openapi.json"' in init and "validatorUrl: null" in init


def test_the_docs_csp_allows_this_origin_only_and_the_api_keeps_its_own(server: Server) -> None:
    policy = _csp(server.http.get("/docs"))
    assert policy == DOCS_CSP
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    for name in ("script-src", "style-src", "connect-src"):
        assert directives[name] == "'self'", name
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in policy and "http" not in policy
    # Everything else keeps the strict policy, near-miss paths included.
    for path in ("/openapi.json", "/api/v1/catalogue", "/docsx", "/health/live"):
        assert _csp(server.http.get(path)) == "default-src 'none'; frame-ancestors 'none'", path


def test_the_bundle_is_sent_gzipped_to_who_accepts_it(server: Server) -> None:
    original = (STATIC / "swagger-ui" / "swagger-ui-bundle.js").read_bytes()
    with server.http.stream(
        "GET", "/docs/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"}
    ) as r:
        wire = b"".join(r.iter_raw())
    assert r.headers["content-encoding"] == "gzip"
    assert len(wire) < len(original) / 2
    assert gzip.decompress(wire) == original
    with server.http.stream(
        "GET", "/docs/swagger-ui-bundle.js", headers={"accept-encoding": "gzip;q=0"}
    ) as r:
        plain = b"".join(r.iter_raw())
    assert "content-encoding" not in r.headers
    assert plain == original


def test_the_vendored_files_and_their_licence_ship_in_the_package() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    globs = config["tool"]["setuptools"]["package-data"]["app.api"]
    shipped = {p for g in globs for p in (ROOT / "app" / "api").glob(g) if p.is_file()}
    on_disk = {p for p in STATIC.rglob("*") if p.is_file()}
    assert on_disk and shipped == on_disk
    licence = (STATIC / "swagger-ui" / "LICENSE").read_text()
    assert "Apache License" in licence
    assert "5.35.0" in (STATIC / "swagger-ui" / "VENDORED.md").read_text()


# -- in a real browser (issue #25) ------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")


@pytest.mark.socket
def test_in_a_browser_every_request_of_the_page_answers_200(tmp_path: Path) -> None:
    """Debian's Chromium opens /docs on the real service: every request the page makes
    (its files, /openapi.json, and no /favicon.ico) answers 200, Swagger UI renders the
    document, and nothing is logged as an error (no CSP violation, no failed load)."""
    if not CHROMIUM.exists():
        unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    with running(make_config(tmp_path)) as srv, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            page = browser.new_page(base_url=srv.base_url)
            answered: list[tuple[str, int]] = []
            errors: list[str] = []
            page.on("response", lambda r: answered.append((urlparse(r.url).path, r.status)))
            page.on("requestfailed", lambda r: errors.append(f"failed: {r.url}"))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto("/docs")
            expect(page.locator(".swagger-ui .info .title")).to_be_visible()
            page.wait_for_load_state("networkidle")
        finally:
            browser.close()
    paths = {path for path, _ in answered}
    assert {
        "/docs",
        "/docs/swagger-ui.css",
        "/docs/swagger-ui-bundle.js",
        "/docs/swagger-initializer.js",
        "/openapi.json",
    } <= paths
    assert "/favicon.ico" not in paths
    assert [(path, status) for path, status in answered if status != 200] == []
    assert errors == []
