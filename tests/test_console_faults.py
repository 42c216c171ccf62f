"""The faults of each ECU on the vehicle page, in a real browser: a vehicle's ECUs listed
from the SOVD tree, each one's faults read with their status bits, cleared after a
confirm step (one ECU's clear leaves the others'), the body ECU's refusal in the default
session told in the service's words, and its session set under its Modes so it clears.

The browser, the tab and its checks come from tests/test_console_browser.py: every test
fails on any console error or Content-Security-Policy violation. Each test gets its own
service (clearing faults changes the simulated vehicle for good); the browser is shared.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import Browser, Locator, Request, expect

from tests import test_console_browser as browser_tests
from tests.support.harness import ENGINEER_PASSWORD, Server, make_config, running
from tests.test_console_browser import GOLF, MEGANE, PHONE, Console, _open

pytestmark = pytest.mark.socket

# The browser module's fixtures, shared rather than copied: one browser for this module.
playwright = browser_tests.playwright
browser = browser_tests.browser
shots = browser_tests.shots
console = browser_tests.console  # a tab on this module's own ``service``


def _faults_path(vin: str, component: str) -> str:
    return f"/sovd/vehicles/{vin}/v1/components/{component}/faults"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Server]:
    with running(make_config(tmp_path)) as server:
        yield server


def _open_faults(console: Console, vin: str = GOLF) -> Locator:
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(vin)
    panel = console.page.get_by_role("region", name="ECUs", exact=True)
    # The ECUs come from GET .../components: the default set, in address order.
    expect(panel.locator(".ecu > h3")).to_have_text(["engine", "transmission", "abs", "body"])
    return panel


def _card(panel: Locator, name: str) -> Locator:
    return panel.get_by_role("region", name=name, exact=True)


def _ecu(panel: Locator, name: str) -> Locator:
    """The Faults part of the ECU's card."""
    return _card(panel, name).get_by_role("region", name="Faults", exact=True)


def _read(ecu: Locator, name: str) -> None:
    ecu.get_by_role("button", name=f"Read faults of {name}").click()
    expect(ecu.get_by_role("status")).to_contain_text("stored")


def _clear(ecu: Locator, name: str) -> None:
    ecu.get_by_role("button", name=f"Clear faults of {name}").click()
    ecu.get_by_role("button", name=f"Yes, clear the faults of {name}").click()


def _row(ecu: Locator, code: str) -> Locator:
    # `has` is relative to each row: built from the page, not from `ecu`.
    return ecu.get_by_role("row").filter(has=ecu.page.get_by_role("rowheader", name=code))


def test_an_ecus_faults_are_shown_with_their_status_bits(console: Console) -> None:
    panel = _open_faults(console)
    engine = _ecu(panel, "engine")
    _read(engine, "engine")
    expect(engine.get_by_role("status")).to_contain_text("2 faults stored.")
    table = engine.get_by_role("table", name="Faults of engine")
    expect(table.get_by_role("columnheader")).to_have_text(
        ["Code", "Name", "Severity (1 = most severe)", "Status"]
    )
    confirmed = _row(engine, "P0171")
    expect(confirmed).to_contain_text("System too lean")
    for shown in ("confirmed", "pending", "test failed", "mask 0x2F"):
        expect(confirmed).to_contain_text(shown)
    expect(confirmed).not_to_contain_text("warning lamp")
    pending = _row(engine, "P0420")
    for shown in ("pending", "test failed", "mask 0x27"):
        expect(pending).to_contain_text(shown)
    expect(pending).not_to_contain_text("confirmed")
    # The warning lamp's bit on the ABS fault (mask AF).
    abs_ecu = _ecu(panel, "abs")
    _read(abs_ecu, "abs")
    expect(_row(abs_ecu, "C0035")).to_contain_text("warning lamp")
    expect(_row(abs_ecu, "C0035")).to_contain_text("mask 0xAF")
    console.shot("vehicle-faults")
    # The read was a command like any other: its link opens it in the history.
    engine.get_by_role("link", name="Open in history").click()
    expect(console.page.get_by_role("status").filter(has_text="Completed")).to_be_visible()
    expect(console.page.get_by_role("list", name="Answer")).to_contain_text("P0171")


def test_clearing_one_ecu_leaves_the_others_and_keep_sends_nothing(console: Console) -> None:
    page = console.page
    deletes: list[str] = []

    def on_request(request: Request) -> None:
        if request.method == "DELETE":
            deletes.append(request.url)

    page.on("request", on_request)
    panel = _open_faults(console)
    engine = _ecu(panel, "engine")
    _read(engine, "engine")
    # The confirm step: the focus lands on the safe choice, and keeping sends nothing.
    engine.get_by_role("button", name="Clear faults of engine").click()
    keep = engine.get_by_role("button", name="Keep the faults of engine")
    expect(keep).to_be_focused()
    keep.click()
    expect(engine.get_by_role("button", name="Clear faults of engine")).to_be_focused()
    assert deletes == []
    expect(_row(engine, "P0171")).to_be_visible()

    _clear(engine, "engine")
    expect(engine.get_by_role("status")).to_have_text("Cleared. No faults stored. Open in history")
    expect(engine.get_by_role("table")).to_have_count(0)
    assert [urlparse(url).path for url in deletes] == [_faults_path(GOLF, "engine")]
    transmission = _ecu(panel, "transmission")
    _read(transmission, "transmission")
    expect(_row(transmission, "P0700")).to_contain_text("confirmed")
    # Read again: the engine stays clear (nothing brings its faults back behind the user).
    _read(engine, "engine")
    expect(engine.get_by_role("status")).to_contain_text("No faults stored.")


def test_the_body_ecu_clears_only_in_the_extended_session(console: Console) -> None:
    console.expected_failures.add(_faults_path(GOLF, "body"))
    panel = _open_faults(console)
    body = _ecu(panel, "body")
    _read(body, "body")
    expect(_row(body, "B1000")).to_contain_text("confirmed")
    _clear(body, "body")
    # The service's GenericError, in its own words: which session, and how to switch.
    refusal = body.get_by_role("alert")
    expect(refusal).to_contain_text("needs the extended session (now: default)")
    expect(refusal).to_contain_text("switch it first")
    expect(refusal).not_to_contain_text("PUT modes/session")  # the API's call, not a page's
    expect(_row(body, "B1000")).to_be_visible()  # nothing was cleared

    expect(refusal).to_contain_text("Set the session under Modes")  # where, on this page
    modes = _card(panel, "body").get_by_role("region", name="Modes", exact=True)
    modes.get_by_label("New session for body", exact=True).select_option("extended")
    modes.get_by_role("button", name="Set the session of body").click()
    expect(modes.get_by_role("status")).to_contain_text("body: session is extended.")
    expect(modes.get_by_role("alert")).to_have_count(0)
    expect(refusal).to_have_count(0)  # no longer holds: gone (an empty alert is not shown)
    _clear(body, "body")
    expect(body.get_by_role("status")).to_contain_text("Cleared. No faults stored.")
    expect(body.get_by_role("table")).to_have_count(0)
    expect(body.get_by_role("alert")).to_have_count(0)


def test_a_vehicle_that_does_not_answer_is_told(console: Console) -> None:
    console.expected_failures.add(_faults_path(MEGANE, "engine"))
    panel = _open_faults(console, MEGANE)
    engine = _ecu(panel, "engine")
    engine.get_by_role("button", name="Read faults of engine").click()
    expect(engine.get_by_role("alert")).to_contain_text("did not answer")
    expect(engine.get_by_role("button", name="Read faults of engine")).to_be_enabled()


def test_the_faults_panel_fits_a_phone(browser: Browser, service: Server, shots: Path) -> None:
    tab = _open(browser, service, shots, PHONE)
    try:
        panel = _open_faults(tab)
        engine = _ecu(panel, "engine")
        _read(engine, "engine")
        expect(_row(engine, "P0171")).to_be_visible()
        # The wide table scrolls in its own box; the page itself never sideways.
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"]
        tab.shot("vehicle-faults-phone")
    finally:
        tab.page.context.close()
    assert tab.errors == []
