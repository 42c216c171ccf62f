"""The SOVD tree's absolute links never come from the client's ``Host`` header (issue #19,
item 9a): ``SOVD_PUBLIC_URL`` when set, else what a proxy in ``SOVD_TRUSTED_PROXIES``
forwarded, else the address the server itself was reached at.

In process over the ASGI transport (the server's address is then the transport's,
``in-process.invalid``), and once over a real socket (``127.0.0.1:<port>``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from app.config import Config, ConfigError
from tests.support.harness import (
    IN_PROCESS_URL,
    Server,
    auth,
    in_process,
    make_config,
    running,
)

pytestmark = pytest.mark.fast

FORGED_HOSTS = ("evil.example:443", "evil.example", "[::1]:1", 'evil.example"><script>', "a b")


@contextmanager
def _sovd(tmp_path: Path, **overrides: Any) -> Iterator[tuple[Server, str, str]]:
    """The app in process, an engineer's token and a VIN."""
    with in_process(make_config(tmp_path, **overrides)) as server:
        token = server.token()
        yield server, token, server.vehicle(token)["vin"]


def _links(server: Server, token: str, vin: str, headers: dict[str, str]) -> list[str]:
    """Every absolute link the tree gives: version-info's base_uri, the root's links, the
    components' hrefs and a new lock's Location."""
    sent = {**auth(token), **headers}
    r = server.http.get(f"/sovd/vehicles/{vin}/version-info", headers=sent)
    assert r.status_code == 200, r.text
    links = [info["base_uri"] for info in r.json()["sovd_info"]]
    root = f"/sovd/vehicles/{vin}/v1"
    r = server.http.get(root, headers=sent)
    assert r.status_code == 200, r.text
    links += [r.json()[k] for k in ("components", "apps", "areas", "functions", "locks")]
    r = server.http.get(f"{root}/components", headers=sent)
    assert r.status_code == 200, r.text
    links += [item["href"] for item in r.json()["items"]]
    r = server.http.post(f"{root}/locks", headers=sent, json={"lock_expiration": 60})
    assert r.status_code == 201, r.text
    links.append(r.headers["location"])
    r = server.http.delete(urlsplit(r.headers["location"]).path, headers=auth(token))
    assert r.status_code == 204, r.text  # released: the next call can lock again
    return links


def _all_under(links: list[str], base: str) -> bool:
    assert len(links) >= 8, links
    return all(link == base or link.startswith(f"{base}/") for link in links)


@pytest.mark.parametrize("forged", FORGED_HOSTS)
def test_a_forged_host_never_reaches_the_links(tmp_path: Path, forged: str) -> None:
    with _sovd(tmp_path) as (server, token, vin):
        links = _links(server, token, vin, {"Host": forged})
        base = f"{IN_PROCESS_URL}/sovd/vehicles/{vin}/v1"
        assert _all_under(links, base), links
        assert not any("evil" in link or "::1" in link for link in links)


def test_the_public_url_wins_over_host_and_forwarded_headers(tmp_path: Path) -> None:
    with _sovd(
        tmp_path,
        public_url="https://lab.example:8443",
        trusted_proxies=(ip_network("127.0.0.0/8"),),
    ) as (server, token, vin):
        headers = {
            "Host": "evil.example:443",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "http",
        }
        links = _links(server, token, vin, headers)
        assert _all_under(links, f"https://lab.example:8443/sovd/vehicles/{vin}/v1"), links


def test_a_trusted_proxy_names_the_host_and_scheme(tmp_path: Path) -> None:
    # The in-process client is 127.0.0.1: a proxy when 127.0.0.0/8 is trusted.
    with _sovd(tmp_path, trusted_proxies=(ip_network("127.0.0.0/8"),)) as (server, token, vin):
        proxied = {
            "Host": "evil.example:443",
            # A client's own X-Forwarded-Host comes first; the proxy's entry is the last.
            "X-Forwarded-Host": "evil.example, sovd.lab.example:8443",
            "X-Forwarded-Proto": "https",
        }
        links = _links(server, token, vin, proxied)
        assert _all_under(links, f"https://sovd.lab.example:8443/sovd/vehicles/{vin}/v1")
        # A forwarded host that is not a host[:port] is not used.
        links = _links(server, token, vin, {"X-Forwarded-Host": 'x"><script>'})
        assert _all_under(links, f"{IN_PROCESS_URL}/sovd/vehicles/{vin}/v1"), links


def test_forwarded_headers_from_anyone_else_are_ignored(tmp_path: Path) -> None:
    with _sovd(tmp_path, trusted_proxies=(ip_network("10.0.0.0/8"),)) as (server, token, vin):
        headers = {
            "Host": "evil.example:443",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
        }
        links = _links(server, token, vin, headers)
        assert _all_under(links, f"{IN_PROCESS_URL}/sovd/vehicles/{vin}/v1"), links


@pytest.mark.socket
def test_over_a_real_socket_the_links_name_the_servers_own_address(tmp_path: Path) -> None:
    with running(make_config(tmp_path)) as server:
        token = server.token()
        vin = server.vehicle(token)["vin"]
        links = _links(server, token, vin, {"Host": "evil.example:443"})
        port = int(server.base_url.rsplit(":", 1)[1])
        assert _all_under(links, f"http://127.0.0.1:{port}/sovd/vehicles/{vin}/v1"), links


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://lab.example:8443", "https://lab.example:8443"),
        ("https://lab.example:8443/", "https://lab.example:8443"),
        ("HTTPS://lab.example/sovd/", "https://lab.example/sovd"),
        ("http://[fd00::1]:8000", "http://[fd00::1]:8000"),
    ],
)
def test_the_public_url_setting_is_read(given: str, kept: str) -> None:
    assert Config.from_env({"SOVD_PUBLIC_URL": given}).public_url == kept
    assert Config.from_env({}).public_url is None


@pytest.mark.parametrize(
    "bad",
    [
        "lab.example:8443",
        "ftp://lab.example",
        "https://",
        "https://user@lab.example",
        "https://lab.example:99999",
        "https://lab.example:port",
        "https://lab.example/?x=1",
        "https://lab.example/#top",
        'https://lab.example/"><script>',
        "https://lab example",
    ],
)
def test_a_bad_public_url_stops_the_start_naming_the_variable(bad: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"SOVD_PUBLIC_URL": bad})
    assert str(caught.value) == (
        f"SOVD_PUBLIC_URL={bad!r} is invalid: expected the address clients reach the service"
        " at, such as https://lab.example:8443 (http or https, a host, an optional port and"
        " path only)"
    )
