"""Issue #25 item 5: what README.md quotes from the service is what the service says.

- The console's "Live numbers" links named in the README are the links the console's code
  makes (``app/console/static/js/numbers.js``), and each answers.
- Every error message the README quotes (found by its shape: a backticked or double-quoted
  span saying "must", "is not a", "is already", "cannot", ...) is produced here against
  the real app and must match its start (or, marked so, a part of it), ``...``/``…``/
  ``<holder>`` standing for any text; a quote
  nobody produces fails the test, so a new example cannot go in unchecked. The one
  historical quote (a refusal reported before it was fixed) must no longer be sent.
"""

from __future__ import annotations

import io
import re
import socket
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import cli
from app.vehicles.pdx import PdxDid, PdxEcu, PdxSpec
from tests.support.harness import Server, auth, in_process, make_config
from tests.support.pdx_files import pdx_of
from tests.support.process import run_app, server_env
from tests.test_descriptions import BROKEN_ODX, INDEX, zip_of

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent
# The README and the docs pages it links (the quotes moved there with their sections);
# not cda-mapping.md, which quotes Eclipse OpenSOVD's documentation, not this service.
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TEXTS = [p.read_text() for p in PAGES if p.name != "cda-mapping.md"]
README = "\n".join(TEXTS)
NUMBERS_JS = ROOT / "app" / "console" / "static" / "js" / "numbers.js"
ZIP = {"content-type": "application/zip"}
JSON = {"content-type": "application/json"}


def _prose(text: str) -> str:
    """The README without its code blocks (commands and outputs, not claims)."""
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _normal(text: str) -> str:
    return " ".join(text.split())


# -- the console's links ------------------------------------------------------------------


def test_the_live_numbers_links_the_readme_names_are_the_consoles() -> None:
    sentence = re.search(
        r'"Live\s+numbers"\s+reads.*?links\s+to\s+(.*?)\s+and\s+Prometheus', README, re.S
    )
    assert sentence, "the README describes the Live numbers panel's links"
    named = re.findall(r"`([^`]+)`", sentence.group(1))
    code = NUMBERS_JS.read_text()
    made = re.findall(r'h\("a",\s*\{\s*href:\s*"([^"]+)"', code)
    assert named and sorted(named) == sorted(made)
    assert "settings.prometheus_url" in code  # the Prometheus link, when configured


def test_the_pages_the_console_links_answer(server: Server) -> None:
    for href in re.findall(r'h\("a",\s*\{\s*href:\s*"(/[^"]*)"', NUMBERS_JS.read_text()):
        assert server.http.get(href).status_code == 200, href


# -- quoted error messages ----------------------------------------------------------------

# The shape of a quoted error message in the README's prose.
ERROR_SHAPE = re.compile(
    r" must | is not a | is already | cannot |no ECU description|duplicate key"
    r"|looks like a VIN|was locked by|stop the service"
)


def quoted_errors() -> set[str]:
    return {quote for text in TEXTS for quote in _quoted_errors(text)}


def _quoted_errors(page: str) -> set[str]:
    """One page's quotes (per page: a quote never spans two pages)."""
    prose = _prose(page)
    spans = re.findall(r"`([^`]+)`", prose)
    unquoted = re.sub(r"`[^`]*`", "", prose)
    spans += re.findall(r'"([^"\n]{12,}(?:\n[^"\n]+)*)"', unquoted)
    return {_normal(s) for s in spans if ERROR_SHAPE.search(_normal(s))}


def _pattern(quote: str) -> re.Pattern[str]:
    """The quote as a pattern: ``...``, ``…`` and ``<word>`` stand for any text, ``H:P``
    for a host and port."""
    parts = re.split(r"(\.\.\.|…|<[a-z ]+>|H:P)", quote)
    wild = {"...": ".+?", "…": ".+?", "H:P": r"\S+"}
    return re.compile(
        "".join(wild.get(p, ".+?" if p.startswith("<") else re.escape(p)) for p in parts if p),
        re.S,
    )


@dataclass
class World:
    """The app with the demo descriptions (ENGINE, TRANSMISSION, ABS, BODY) uploaded and
    the Golf's engine and abs bound to them."""

    srv: Server
    tmp: Path
    golf: dict[str, Any]

    @property
    def admin(self) -> dict[str, str]:
        return auth(self.srv.admin_token())

    def message(self, r: Any, status: int) -> str:
        assert r.status_code == status, r.text
        return str(r.json()["message"])


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("readme")
    with in_process(make_config(tmp, command_timeout_s=3.0)) as srv:
        admin = auth(srv.admin_token())
        # The demo description is in the library: the service stored it with the demo fleet.
        listed = srv.http.get("/api/v1/descriptions", headers=admin).json()["items"]
        assert [d["name"] for d in listed] == ["demo.pdx"]
        golf = srv.http.get(
            "/api/v1/vehicles", params={"search": "Golf"}, headers=auth(srv.token())
        ).json()["items"][0]
        bound = [
            {"description": "engine"},
            {"name": "transmission", "address": "0x18"},
            {"description": "ABS", "address": "0x0028"},
            {"name": "body", "address": "0x40"},
        ]
        r = srv.http.patch(
            f"/api/v1/vehicles/{golf['vehicle_id']}", headers=admin, json={"ecus": bound}
        )
        assert r.status_code == 200, r.text
        yield World(srv, tmp, dict(r.json()))


_vins = iter(f"WAUZZZ8V0KDP{n:05d}" for n in range(100, 200))


def _doip_vehicle(w: World, addresses: list[str]) -> Any:
    return w.srv.http.post(
        "/api/v1/vehicles",
        headers=w.admin,
        json={
            "vin": next(_vins),
            "make": "Bench",
            "model": "ECU rig",
            "year": 2024,
            "transport": "doip",
            "doip": {
                "host": "192.168.10.20",
                "logical_address": "0x0001",
                "ecu_addresses": addresses,
            },
        },
    )


def _diag(w: World, **params: Any) -> str:
    r = w.srv.http.post(
        "/api/v1/commands",
        headers=auth(w.srv.token()),
        json={
            "vehicle_id": w.golf["vehicle_id"],
            "command_name": "DiagService",
            "command_params": params,
        },
    )
    return w.message(r, 400)


def _duplicate_ecu_address(w: World) -> str:
    ecus = [{"name": "engine", "address": "0x10"}, {"name": "gearbox", "address": "0x0010"}]
    r = w.srv.http.post(
        "/api/v1/vehicles",
        headers=w.admin,
        json={"vin": next(_vins), "make": "Bench", "model": "Rig", "year": 2024, "ecus": ecus},
    )
    return w.message(r, 400)


def _unknown_container(w: World) -> str:
    r = w.srv.http.patch(
        f"/api/v1/vehicles/{w.golf['vehicle_id']}",
        headers=w.admin,
        json={"ecus": [{"description": "FLXC1000"}]},
    )
    return w.message(r, 400)


def _odxtools_refusal(w: World) -> str:
    r = w.srv.http.post(
        "/api/v1/descriptions",
        params={"name": "broken.pdx"},
        content=zip_of({"index.xml": INDEX, "broken.odx-d": BROKEN_ODX}),
        headers={**w.admin, **ZIP},
    )
    return w.message(r, 400)


def _self_test_parameter(w: World) -> str:
    r = w.srv.http.post(
        f"/sovd/vehicles/{w.golf['vin']}/v1/components/engine/operations/selftest/executions",
        headers=auth(w.srv.token()),
        json={"parameters": {"Speed": 3}},
    )
    return w.message(r, 400)


def _write_parameter(w: World) -> str:
    """PUT data on an ECU whose description has a write service (a PDX of its own, on a
    server of its own: the container list of the main one stays the demo's)."""
    spec = PdxSpec(
        (
            PdxEcu(
                "FLX",
                logical_address=0x50,
                dids=(PdxDid(0x1234, "Counter", long_name="Counter", size=2, writable=True),),
            ),
        ),
        name="FLX_PDX",
    )
    with in_process(make_config(w.tmp / "flx")) as srv:
        admin = auth(srv.admin_token())
        r = srv.http.post(
            "/api/v1/descriptions",
            params={"name": "flx.pdx"},
            content=pdx_of(spec),
            headers={**admin, **ZIP},
        )
        assert r.status_code == 201, r.text
        vehicle = srv.vehicle(srv.token(), "healthy")
        r = srv.http.patch(
            f"/api/v1/vehicles/{vehicle['vehicle_id']}",
            headers=admin,
            json={"ecus": [{"description": "FLX"}]},
        )
        assert r.status_code == 200, r.text
        r = srv.http.put(
            f"/sovd/vehicles/{vehicle['vin']}/v1/components/flx/data/Counter",
            headers=auth(srv.token()),
            json={"data": {"Speed": 1}},
        )
        assert r.status_code == 400, r.text
        return str(r.json()["message"])


def _duplicate_key(w: World) -> str:
    body = (
        b'{"username": "dup-user", "password": "dup-password-1",'
        b' "role": "engineer", "role": "admin"}'
    )
    r = w.srv.http.post("/api/v1/users", headers={**w.admin, **JSON}, content=body)
    return w.message(r, 400)


def _vin_as_vehicle_id(w: World) -> str:
    r = w.srv.http.post(
        "/api/v1/commands",
        headers=auth(w.srv.token()),
        json={"vehicle_id": w.golf["vin"], "command_name": "ReadDTC", "command_params": {}},
    )
    assert r.status_code in (400, 404), r.text
    return str(r.json()["message"])


def _locked_out(w: World) -> str:
    """An engineer's clear waits behind a command that hangs (the timeout profile); another
    user locks the ECU: the clear is withdrawn with this message."""
    srv = w.srv
    token = srv.token()
    vehicle = srv.vehicle(token, "timeout")
    hung = srv.submit(token, vehicle["vehicle_id"])["command_id"]
    srv.wait_status(token, hung, "in_progress")
    clear = srv.submit(token, vehicle["vehicle_id"], "ClearDTC")["command_id"]
    other = srv.create_engineer("alice")
    r = srv.http.post(
        f"/sovd/vehicles/{vehicle['vin']}/v1/components/engine/locks",
        headers=auth(other),
        json={"lock_expiration": 60},
    )
    assert r.status_code == 201, r.text
    ended = srv.wait_status(token, clear, "cancelled")
    assert ended["error_code"] == "locked-out"
    # The hung command is cancelled, not left for the app's stop to wait out its grace.
    r = srv.http.post(f"/api/v1/commands/{hung}/cancel", headers=auth(token))
    assert r.status_code in (200, 202), r.text
    return str(ended["error_message"])


def _writer_while_running(w: World) -> str:
    """``users disable`` while the service (this in-process app) holds the data directory:
    the CLI's own refusal, as ``python -m app users disable`` prints it."""
    env = {
        "SOVD_DB_PATH": str(w.srv.config.db_path),
        "SOVD_PASSWORD_HASH_PROFILE": "fast",
    }
    err = io.StringIO()
    with redirect_stderr(err):
        code = cli.main(["users", "disable", "engineer"], env, lambda config: 0)
    assert code == cli.EXIT_FAILED, err.getvalue()
    return err.getvalue().strip()


# Each quote as the README writes it (whitespace as one space), and what produces it.
# fragment: the quote is part of the message (the README quotes the part that matters).
@dataclass(frozen=True)
class Quote:
    text: str
    produce: Callable[[World], str]
    fragment: bool = False


ADDRESS_RULE = "must be a logical address, two bytes in hex from 0x0001 to 0xFFFF such as 0x0010"
QUOTES = (
    Quote("ecus[1].address: 0x0010 is already the address of ecus[0]", _duplicate_ecu_address),
    Quote(
        f"doip.ecu_addresses[0] {ADDRESS_RULE} (0x10 is 0x0010), got '0x10000'",
        lambda w: w.message(_doip_vehicle(w, ["0x10000"]), 400),
    ),
    Quote(
        f"doip.ecu_addresses[1] {ADDRESS_RULE} ...",
        lambda w: w.message(_doip_vehicle(w, ["0x1001", "0x10000"]), 400),
    ),
    Quote(
        "cancelled before it ran: ECU 0x0010 of vehicle … was locked by <holder> until …",
        _locked_out,
    ),
    Quote("odxtools cannot load it: ...", _odxtools_refusal),
    Quote(
        "ecus[0].description: no ECU description has a diag layer container named 'FLXC1000'"
        " (known: ABS, BODY, ENGINE, TRANSMISSION; ...)",
        _unknown_container,
    ),
    Quote(
        "command_params.service: service 'NoSuch_Read' is not a service of ENGINE",
        lambda w: _diag(w, ecu="engine", service="NoSuch_Read"),
    ),
    Quote(
        "command_params.params.Group is not a parameter of FaultMem_ClearDTCs (it takes:"
        " GroupOfDTC)",
        lambda w: _diag(w, ecu="engine", service="FaultMem_ClearDTCs", params={"Group": 1}),
    ),
    Quote(
        "... must be an integer (A_UINT32), got 'all'",
        lambda w: _diag(
            w, ecu="engine", service="FaultMem_ClearDTCs", params={"GroupOfDTC": "all"}
        ),
    ),
    Quote(
        "body.data.Speed is not a parameter of Counter_Write (it takes: Counter)",
        _write_parameter,
    ),
    Quote(
        "body.parameters.Speed is not a parameter of SelfTest_Start (it takes: none)",
        _self_test_parameter,
    ),
    Quote("request body: duplicate key 'role'", _duplicate_key),
    Quote(
        "looks like a VIN; use the vehicle_id from /api/v1/vehicles?search=...",
        _vin_as_vehicle_id,
        fragment=True,
    ),
    Quote("stop the service or use the API", _writer_while_running, fragment=True),
)
# Produced by a real process (a busy port): test_the_start_refusal_the_readme_quotes.
START_REFUSAL = "cannot listen on H:P (SOVD_HOST:SOVD_PORT): the port is already in use ..."
# Likewise (a PostgreSQL server that is not there): test_the_database_refusal_...
DATABASE_REFUSAL = "the PostgreSQL database <database> (SOVD_DATABASE_URL) cannot be used: <error>"
# Quoted as what was reported before a fix (the attack table): must not come back.
HISTORICAL = {
    "doip.ecu_addresses[0] must be a logical address in hex such as 0x0E00, got '0x1001'": [
        "0x1001"
    ],
}


def test_every_quoted_error_is_checked_here() -> None:
    checked = {q.text for q in QUOTES} | {START_REFUSAL, DATABASE_REFUSAL} | set(HISTORICAL)
    found = quoted_errors()
    assert len(found) >= 10, "the README's quotes are found"
    assert sorted(found - checked) == [], "quoted in the README, produced by no test here"
    assert sorted(checked - found) == [], "checked here, no longer quoted in the README"


@pytest.mark.parametrize("quote", QUOTES, ids=lambda q: q.text[:40])
def test_the_app_says_what_the_readme_quotes(world: World, quote: Quote) -> None:
    said = quote.produce(world)
    pattern = _pattern(quote.text)
    # A quote is how the message starts (the README may leave out the rest), or a
    # part of it (fragment).
    matched = pattern.search(said) if quote.fragment else pattern.match(said)
    assert matched, f"README: {quote.text!r}\napp:    {said!r}"


def test_the_historical_refusal_is_gone(world: World) -> None:
    for addresses in HISTORICAL.values():
        r = _doip_vehicle(world, addresses)
        assert r.status_code == 201, r.text  # the bench ECU at 0x1001 is registered


@pytest.mark.socket
def test_the_start_refusal_the_readme_quotes(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        env = server_env(tmp_path, SOVD_PORT=str(taken.getsockname()[1]))
        result = run_app(env)
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert _pattern(START_REFUSAL).search(said), said


def test_the_quote_patterns_can_fail() -> None:
    """A quote is a pattern only where it says so: the rest must match exactly."""
    assert _pattern("a ... b").match("a x y b")
    assert not _pattern("a ... b").match("a x y c")
    assert not _pattern("got '0x10000'").match("got '0x1000'")
    assert not _pattern("ECU 0x0010 of").match("ECU 0x10 of")
    assert _pattern("by <holder> until").match("by alice until")


@pytest.mark.socket
def test_the_database_refusal_the_operations_page_quotes(tmp_path: Path) -> None:
    with socket.socket() as closed:  # a loopback port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql://sovd:Pw9-not-shown@127.0.0.1:{port}/sovd"
    result = run_app(server_env(tmp_path, SOVD_DATABASE_URL=url))
    assert result.returncode == 1
    said = result.stdout + result.stderr
    assert _pattern(DATABASE_REFUSAL).search(said), said
    assert f"127.0.0.1:{port}/sovd" in said and "Pw9-not-shown" not in said
