"""The vehicle page as the ECU's page (issue #21), in a real browser: Debian's Chromium
driven by Playwright against the real service on a real socket, with the demo fleet, the
seeded simulator and the demo ECU emulator behind the fleet's DoIP vehicle.

A routine's progress as one bar that moves and ends; a negative response in words inside
its card; the connection badge following a DoIP link that idled and came back; every page
at 390 px without anything wider than the screen and with every column's label shown;
an admin uploading a PDX, binding it and reading a data item of the ECU it describes;
form errors named by the form's labels and vehicles by name and VIN. The screenshots of
the vehicle page in docs/ are made here.

One browser and one service for the module (the tabs and their checks come from
tests/test_console_browser.py: any console error or CSP violation fails a test).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from app.services.vehicles import DEMO_DOIP_VIN
from app.vehicles import uds
from app.vehicles.pdx import (
    DTC_SETTING_ON_OFF,
    PdxDid,
    PdxDtc,
    PdxEcu,
    PdxRoutine,
    PdxSpec,
)
from app.vehicles.pdx.demo import DEMO_PDX_NAME
from app.vehicles.pdx.scenario import demo_ecu
from app.vocabulary import CommandName
from tests import test_console_browser as browser_tests
from tests.support.harness import (
    ADMIN_PASSWORD,
    ENGINEER_PASSWORD,
    Server,
    auth,
    make_config,
    running,
    wait_until,
)
from tests.support.pdx_files import pdx_of
from tests.test_console_browser import BMW, GOLF, PHONE, Console, _open

pytestmark = pytest.mark.socket

playwright = browser_tests.playwright
browser = browser_tests.browser
shots = browser_tests.shots
console = browser_tests.console  # a tab at 1280x800 on this module's ``service``

DOCS = Path(__file__).parent.parent / "docs"
# "Read all" of the demo engine: every data item its description declares, one row each.
READ_ALL_ENGINE = f"Read {len(demo_ecu('ENGINE').dids)} items."
# The SOVD data id of the engine's vehicle speed: its DID's name in the demo description.
ENGINE_SPEED_ID = next(d.name for d in demo_ecu("ENGINE").dids if d.did == uds.VEHICLE_SPEED)
IDLE_CLOSE_S = 1.0  # the DoIP link closes after this long without a request
POLL_S = 5  # the page's GET poll (app/console/static/js/vehicle.js POLL_MS)
# One ECU the demo tables know nothing of, at 0x0050, with a scaled value.
FLUX = PdxSpec(
    (
        PdxEcu(
            "FLUX",
            long_name="Flux ECU",
            logical_address=0x50,
            dids=(PdxDid(0x2A01, "OilTemperature", "Oil temperature", 1, 0.5, -40, "degC"),),
            dtcs=(PdxDtc("P0300", "Random misfire", 2),),
            routines=(PdxRoutine(0x0301, "Purge", "Canister purge"),),
            dtc_settings=DTC_SETTING_ON_OFF,
        ),
    ),
    name="FLUX_PDX",
)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = make_config(
        tmp_path_factory.mktemp("console-vehicle"),
        command_timeout_s=5.0,
        sim_self_test_s=1.5,
        demo_emulator=True,
        doip_idle_close_s=IDLE_CLOSE_S,
    )
    with running(config) as server:
        yield server


# A vehicle whose engine is bound to the demo ODX description (its tree is described).
DESCRIBED = "WVWZZZ1KZAW000777"


@pytest.fixture(scope="module")
def described(service: Server) -> str:
    # The demo description is in the library already (seeded with the demo fleet).
    admin = auth(service.admin_token())

    def demo_ready() -> bool:
        items = service.http.get("/api/v1/descriptions", headers=admin).json()["items"]
        return any(d["name"] == DEMO_PDX_NAME and d["state"] == "ready" for d in items)

    wait_until(demo_ready, "the demo description to be read")
    body = {"vin": DESCRIBED, "make": "Bench", "model": "Described", "year": 2024}
    body["ecus"] = [{"description": "ENGINE"}]
    r = service.http.post("/api/v1/vehicles", headers=admin, json=body)
    assert r.status_code == 201, r.text
    return DESCRIBED


@pytest.fixture
def phone(browser: Browser, service: Server, shots: Path) -> Iterator[Console]:
    tab = _open(browser, service, shots, PHONE)
    yield tab
    tab.page.context.close()
    assert tab.errors == [], "the page logged errors (console or CSP)"


def _card(page: Page, ecu: str) -> Locator:
    return page.get_by_role("region", name=ecu, exact=True)


def _part(page: Page, ecu: str, part: str) -> Locator:
    return _card(page, ecu).get_by_role("region", name=part, exact=True)


def _polled_to(shown: Locator, text: str) -> None:
    """The page's poll brings `text` into `shown`, without a reload. Rather than wait the
    poll's 5 s in real time, the page's clock (installed before the page loaded, so its
    timers are Playwright's; time still flows on its own meanwhile) jumps one poll
    period ahead, which fires the poll's pending timer. A tick already under way at the
    jump (it has no timer pending then) may have read the state from before the change:
    then one more period's jump fires the tick after it."""
    page = shown.page
    page.clock.fast_forward(POLL_S * 1000)
    try:
        expect(shown).to_have_text(text, timeout=2_000)
    except AssertionError:
        page.clock.fast_forward(POLL_S * 1000)
        expect(shown).to_have_text(text, timeout=(POLL_S + 3) * 1000)


# -- item 1 and 2: the ECU's page, answers in words --------------------------------------


def test_data_is_read_per_item_and_all_with_units(console: Console) -> None:
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    data = _part(page, "engine", "Data")
    table = data.get_by_role("table", name="Data of engine")
    speed = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Engine speed"))
    data.get_by_role("button", name="Read Engine speed of engine").click()
    expect(speed).to_contain_text(" rpm")  # a number and its unit
    data.get_by_role("button", name="Read all data of engine").click()
    expect(data.get_by_role("status")).to_have_text(READ_ALL_ENGINE)
    vin = table.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="Vehicle identification number")
    )
    expect(vin).to_contain_text(GOLF)
    # Nothing raw: no JSON braces in the table.
    assert "{" not in (table.text_content() or "")


@pytest.mark.parametrize("kind", ["simulated", "described"])
def test_a_routines_progress_bar_moves_and_ends(
    console: Console, kind: str, request: pytest.FixtureRequest
) -> None:
    # The demo fleet's Golf (seeded, its ECUs bound to the demo description) and a vehicle
    # registered with its engine bound to it: each is asked for its results (the
    # description's Progress and RoutineState) until the routine ends.
    vin = GOLF if kind == "simulated" else request.getfixturevalue("described")
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(vin)
    operations = _part(page, "engine", "Operations")
    operations.get_by_role("button", name="Start Self-test of engine").click()
    bar = operations.get_by_role("progressbar", name="Progress of Self-test")
    # One bar, updated in place: seen part-way, then full, and the end in words.
    page.wait_for_function(
        "(bar) => bar.value > 0 && bar.value < 100", arg=bar.element_handle(), timeout=5000
    )
    state = operations.get_by_role("status")
    expect(state).to_contain_text("Routine running")
    expect(state).to_have_text("Routine completed")
    assert bar.evaluate("(bar) => bar.value") == 100
    expect(operations.get_by_role("progressbar")).to_have_count(1)
    expect(operations.get_by_role("button", name="Stop Self-test of engine")).to_be_hidden()
    expect(operations.get_by_role("button", name="Start Self-test of engine")).to_be_enabled()


def test_a_running_routine_is_stopped_in_words(console: Console) -> None:
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    operations = _part(page, "transmission", "Operations")
    operations.get_by_role("button", name="Start Self-test of transmission").click()
    expect(operations.get_by_role("status")).to_contain_text("Routine running")
    operations.get_by_role("button", name="Stop Self-test of transmission").click()
    # The stop is a 0x31 0x02 through the vehicle's lane and back: on a loaded two-core
    # machine that has taken more than the default 5 s (the routine still ran at 78 %).
    expect(operations.get_by_role("status")).to_have_text("Routine stopped", timeout=15_000)


def test_a_negative_response_reads_as_words_inside_its_card(console: Console) -> None:
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    # The body ECU refuses ClearDTC in the default session: 0x7F.
    console.advanced()
    page.get_by_label("Command", exact=True).select_option("ClearDTC")
    page.get_by_label("ECU", exact=True).select_option("0x0040")
    page.get_by_role("button", name="Send").click()
    card = page.locator(".live")
    item = card.get_by_role("list", name="Answer").get_by_role("listitem")
    expect(item).to_have_count(1)
    expect(item).to_have_text(
        "ECU refused: service not supported in active session (0x7F) to service 0x14"
    )
    expect(card.get_by_role("status").filter(has_text="Failed")).to_contain_text(
        "the ECU refused the request"
    )
    inner, outer = item.bounding_box(), card.bounding_box()
    assert inner is not None and outer is not None
    assert outer["x"] <= inner["x"] and inner["x"] + inner["width"] <= outer["x"] + outer["width"]


def test_an_operation_needing_another_session_is_refused_in_words(console: Console) -> None:
    # The demo description's ABS routine that needs a session other than the default one.
    routine = next(r for r in demo_ecu("ABS").routines if r.sessions)
    needed = " or ".join(s.lower() for s in routine.sessions)
    path = f"/sovd/vehicles/{GOLF}/v1/components/abs/operations/{routine.name}/executions"
    console.expected_failures.add(path)
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    operations = _part(page, "abs", "Operations")
    operations.get_by_role("button", name=f"Start {routine.long_name} of abs").click()
    refusal = operations.get_by_role("alert")
    expect(refusal).to_contain_text(f"needs the {needed} session (now: default)")
    expect(refusal).to_contain_text("switch it first")
    expect(refusal).to_contain_text("Set the session under Modes")  # where, on this page
    expect(refusal).not_to_contain_text("PUT modes/session")  # the API's call, not a page's


def test_an_unknown_answer_is_pretty_json_inside_its_card(console: Console) -> None:
    page = console.page
    page.goto("/")
    # The renderer itself: something without a rendering of its own.
    text = page.evaluate(
        """async () => {
          const { chunk } = await import("/console/js/words.js");
          const node = chunk({ vendorThing: { nested: [1, 2] } });
          return [node.querySelector("pre.json").textContent, node.textContent];
        }"""
    )
    assert text[0] == '{\n  "vendorThing": {\n    "nested": [\n      1,\n      2\n    ]\n  }\n}'
    # A described service's answer: its parameters by name, with their units.
    shown = page.evaluate(
        """async () => {
          const { chunk } = await import("/console/js/words.js");
          return chunk({
            service: "SelfTest_Start",
            request: "31010201",
            parameters: { RoutineState: "running", Progress: 30 },
            units: { Progress: "%" },
          }).textContent;
        }"""
    )
    assert shown == "SelfTest_StartRoutineState runningProgress 30 %"


def test_operation_parameters_become_typed_fields(console: Console) -> None:
    # The fields made from the services list (GET /api/v1/vehicles/{id}/services), shown
    # until the operation's schema is in (then ``schemaFields``: the actuator test below),
    # checked on their own with types the demo does not have.
    console.page.goto("/")
    shown = console.page.evaluate(
        """async () => {
          const { parameterFields } = await import("/console/js/operations.js");
          const made = parameterFields({ name: "Purge" }, "flux", [
            { name: "Level", type: "A_UINT32", required: true, unit: "%", values: [] },
            { name: "Speed", type: "A_FLOAT64", required: false, values: [] },
            { name: "Mode", type: "A_UNICODE2STRING", required: true, values: ["fast", "slow"] },
          ]);
          const controls = [...made.node.querySelectorAll("input, select")];
          const kinds = controls.map((c) => c.type + " " + c.getAttribute("aria-label"));
          let missing = "";
          try { made.read(); } catch (e) { missing = e.message; }
          controls[0].value = "42";
          controls[2].value = "slow";
          return [kinds, missing, made.read()];
        }"""
    )
    assert shown == [
        [
            "number Level (%) for Purge of flux",
            "number Speed (optional) for Purge of flux",
            "select-one Mode for Purge of flux",
        ],
        "Level: required",
        {"Level": 42, "Mode": "slow"},
    ]


def test_an_actuator_test_runs_with_typed_parameters_and_a_wrong_value_is_refused(
    console: Console, service: Server
) -> None:
    """The demo engine's ActuatorTest: its Start's parameters as fields made from the
    operation's schema (a number with its unit and limits, a select of the actuators); a
    duration beyond the limits is sent and the ECU's refusal read in words; one within
    them runs for that long and ends in words."""
    actuator = next(r for r in demo_ecu("ENGINE").routines if r.parameters)
    name = actuator.long_name
    path = f"/sovd/vehicles/{GOLF}/v1/components/engine/operations/{actuator.name}/executions"
    console.expected_failures.add(path)
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    operations = _part(page, "engine", "Operations")
    duration = operations.get_by_label(f"Duration (s) for {name} of engine", exact=True)
    expect(duration).to_have_attribute("min", "0.5")  # the schema is in: its limits
    expect(duration).to_have_attribute("max", "30")
    assert duration.get_attribute("type") == "number"
    target = operations.get_by_label(f"Target for {name} of engine", exact=True)
    options = target.locator("option").all_text_contents()
    assert options == ["IdleValve", "FuelPump", "CoolingFan"]
    expect(operations.get_by_text("0.5 to 30 s")).to_be_visible()
    start = operations.get_by_role("button", name=f"Start {name} of engine")

    duration.fill("45")
    target.select_option("CoolingFan")
    start.click()
    refusal = operations.get_by_role("alert").filter(has_text="ECU refused")
    expect(refusal).to_contain_text("ECU refused: request out of range (0x31)")
    expect(start).to_be_enabled()
    expect(operations.get_by_role("progressbar", name=f"Progress of {name}")).to_be_hidden()
    row = operations.locator(".operation").filter(has_text=name)
    row.screenshot(path=str(console.shots / "actuator-test-refused.png"))

    duration.fill("1")
    target.select_option("FuelPump")
    start.click()
    state = operations.get_by_role("status").filter(has_text="Routine")
    expect(state).to_have_text("Routine completed", timeout=10_000)
    bar = operations.get_by_role("progressbar", name=f"Progress of {name}")
    assert bar.evaluate("(bar) => bar.value") == 100
    expect(operations.get_by_role("alert").filter(has_text="ECU refused")).to_have_count(0)
    # What reached the ECU: the starts' UDS requests in the history (45 s = raw 90 with
    # CoolingFan 3, refused; 1 s = raw 2 with FuelPump 2).
    admin = auth(service.admin_token())
    vehicle = service.http.get("/api/v1/vehicles", params={"search": GOLF}, headers=admin)
    commands = service.http.get(
        "/api/v1/commands",
        params={"vehicle_id": vehicle.json()["items"][0]["vehicle_id"], "limit": 200},
        headers=admin,
    ).json()["items"]
    sent = []
    for command in commands:
        answers = service.http.get(
            f"/api/v1/commands/{command['command_id']}/responses", headers=admin
        ).json()["items"]
        requests = [a["response_payload"].get("request") for a in answers]
        sent += [r for r in requests if r and r.startswith("31010203")]
    assert sorted(sent) == ["310102030202", "310102035A03"]


# -- item 3: live state ------------------------------------------------------------------


def test_the_doip_badge_turns_green_after_a_command_once_its_link_idled(
    console: Console, service: Server
) -> None:
    page = console.page
    admin = service.admin_token()

    def status() -> str:
        r = service.http.get(f"/api/v1/vehicles/{DEMO_DOIP_VIN}", headers=auth(admin))
        return str(r.json()["connection_status"])

    page.clock.install()  # before the page sets its timers: its poll is moved, not awaited
    console.sign_in("admin", ADMIN_PASSWORD)
    console.open_vehicle(DEMO_DOIP_VIN)
    state = page.get_by_role("definition").filter(has=page.locator(".badge"))
    details = page.locator("dl.details")
    # Its transport and, to an admin, its DoIP target; never a simulator profile.
    expect(details).to_contain_text("DoIP")
    expect(details).to_contain_text("DoIP target")
    expect(details).not_to_contain_text("Simulator profile")
    data = _part(page, "engine", "Data")
    data.get_by_role("button", name="Read Vehicle identification number of engine").click()
    expect(data.get_by_role("table")).to_contain_text(DEMO_DOIP_VIN)
    # The link idles and closes; the page follows without a reload (its poll).
    wait_until(lambda: status() == "disconnected", "the idle link to close", timeout_s=10)
    _polled_to(state, "disconnected")
    data.get_by_role("button", name="Read Vehicle speed of engine").click()
    expect(state).to_have_text("connected")  # right after the answer, not a poll later
    expect(page.locator(".badge-connected")).to_have_css("color", "rgb(23, 113, 58)")


def test_an_engineer_sees_the_transport_but_not_the_doip_target(console: Console) -> None:
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(DEMO_DOIP_VIN)
    details = console.page.locator("dl.details")
    expect(details).to_contain_text("DoIP")
    expect(details).not_to_contain_text("DoIP target")
    expect(details).not_to_contain_text("Simulator profile")
    fleet_row = None
    console.nav("Fleet")
    fleet_row = console.page.get_by_role("row").filter(
        has=console.page.get_by_role("link", name=DEMO_DOIP_VIN)
    )
    expect(fleet_row).to_contain_text("DoIP")
    expect(fleet_row).not_to_contain_text("healthy")


def test_a_message_that_no_longer_holds_is_cleared(console: Console) -> None:
    data_path = f"/sovd/vehicles/{GOLF}/v1/components/engine/data/{ENGINE_SPEED_ID}"
    console.expected_failures.add(data_path)
    page = console.page
    console.sign_in("admin", ADMIN_PASSWORD)
    console.open_vehicle(GOLF)
    page.get_by_role("button", name="Disconnect").click()
    data = _part(page, "engine", "Data")
    data.get_by_role("button", name="Read Vehicle speed of engine").click()
    expect(data.get_by_role("alert")).to_have_text("The vehicle is disconnected.")
    page.get_by_role("button", name="Connect", exact=True).click()
    expect(page.locator("dl.details .badge")).to_have_text("connected")
    expect(data.get_by_role("alert")).to_have_count(0)  # no longer true: gone
    # The audit names the vehicle by name and VIN, not by its id.
    console.nav("Admin")
    page.get_by_label("Action").select_option("vehicle.update")
    audit = page.get_by_role("table", name="Audit log")
    expect(audit.get_by_role("row").nth(1)).to_contain_text(f"vehicle Volkswagen Golf · {GOLF}")


def test_the_fleet_follows_a_change_without_a_reload(console: Console, service: Server) -> None:
    page = console.page
    page.clock.install()  # before the page sets its timers: its poll is moved, not awaited
    console.sign_in("engineer", ENGINEER_PASSWORD)
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=BMW))
    expect(row).to_contain_text("connected")
    admin = service.admin_token()
    for status in ("disconnected", "connected"):
        r = service.http.patch(
            f"/api/v1/vehicles/{BMW}", headers=auth(admin), json={"connection_status": status}
        )
        assert r.status_code == 200, r.text
        _polled_to(row.locator(".badge").first, status)


# -- item 4: words for people ------------------------------------------------------------


def test_form_errors_name_the_forms_labels(console: Console) -> None:
    console.expected_failures.update({"/api/v1/users", "/api/v1/vehicles"})
    page = console.page
    console.sign_in("admin", ADMIN_PASSWORD)
    console.nav("Admin")
    page.get_by_label("New username").fill("dora")
    page.get_by_label("New password").fill("short")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_text("New password: at least 8 characters")).to_be_visible()
    page.get_by_label("VIN").fill("123")
    page.get_by_label("Make").fill("Honda")
    page.get_by_label("Model").fill("Accord")
    page.get_by_label("Year").fill("2003")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("VIN: should be 17 characters, no I, O or Q")).to_be_visible()
    page.get_by_label("VIN").fill("1HGCM82633A004352")
    page.get_by_label("Year").fill("1800")
    page.get_by_role("button", name="Register").click()
    expect(page.get_by_text("Year: at least 1950")).to_be_visible()


def test_a_pasted_vin_opens_its_vehicle_and_vehicles_are_named(console: Console) -> None:
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    page.get_by_label("Search").fill(f"  {GOLF.lower()} ")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("heading", name="Volkswagen Golf")).to_be_visible()
    assert page.url.endswith(f"#/vehicle/{GOLF}")
    page.goto(f"/#/vehicle/{GOLF.lower()}")  # an address typed by hand, any case
    expect(page.get_by_role("heading", name="Volkswagen Golf")).to_be_visible()
    data = _part(page, "abs", "Data")
    data.get_by_role("button", name="Read Vehicle speed of abs").click()
    expect(data.get_by_role("status")).to_contain_text("read")
    console.nav("History")
    # A bound ECU's read runs as its description's service.
    read = page.get_by_role("row").filter(has_text=CommandName.DIAG_SERVICE).first
    expect(read).to_contain_text(f"Volkswagen Golf · {GOLF}")
    read.get_by_role("link").click()
    expect(page.get_by_role("link", name=f"Volkswagen Golf · {GOLF}")).to_be_visible()


# -- item 5: 390 px ----------------------------------------------------------------------

# Elements wider than the viewport, or reaching past its right edge (a visually hidden
# element is 1 px; the skip link waits off-screen to the left until focused).
_TOO_WIDE = """() => [...document.querySelectorAll("body *")]
  .filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.width > innerWidth || r.right > innerWidth + 0.5);
  })
  .map((e) => {
    const width = Math.round(e.getBoundingClientRect().width);
    return `${e.tagName.toLowerCase()}.${e.className} ${width}px`;
  })"""

# Per table: its column labels, and per body cell whether that label is shown beside it
# (the stacked layout's ::before) and the cell itself is on screen.
_UNLABELLED = """() => {
  const missing = [];
  for (const table of document.querySelectorAll("table")) {
    if (!table.getBoundingClientRect().width) continue;
    const labels = [...table.querySelectorAll("thead th")].map((th) => th.textContent);
    for (const row of table.querySelectorAll("tbody tr")) {
      const cells = [...row.children];
      if (cells.length === 1 && cells[0].colSpan > 1) continue;  // "No vehicle matches."
      cells.forEach((cell, i) => {
        const shown = getComputedStyle(cell, "::before").content;
        const r = cell.getBoundingClientRect();
        const visible = r.width > 0 && r.right <= innerWidth + 0.5;
        if (shown !== JSON.stringify(labels[i]) || !visible) {
          const name = table.caption ? table.caption.textContent : "?";
          missing.push(`${name}: ${labels[i]} (${shown})`);
        }
      });
    }
  }
  return missing;
}"""


def _fits(tab: Console, where: str, tables: bool = True) -> None:
    """Nothing wider than the phone, and every cell labelled; `tables`: the page has
    rows to check (so the label check cannot pass for want of a table)."""
    page = tab.page
    assert page.evaluate(_TOO_WIDE) == [], where
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], where
    assert page.evaluate(_UNLABELLED) == [], where
    if tables:
        assert page.evaluate("document.querySelectorAll('tbody tr').length") > 0, where


def test_every_page_fits_390_px_with_every_column_labelled(phone: Console) -> None:
    page = phone.page
    phone.sign_in("admin", ADMIN_PASSWORD)
    expect(page.get_by_role("link", name=GOLF)).to_be_visible()
    _fits(phone, "fleet")
    phone.open_vehicle(GOLF)
    engine = _card(page, "engine")
    _part(page, "engine", "Data").get_by_role("button", name="Read all data of engine").click()
    expect(_part(page, "engine", "Data").get_by_role("status")).to_have_text(READ_ALL_ENGINE)
    faults = _part(page, "engine", "Faults")
    faults.get_by_role("button", name="Read faults of engine").click()
    expect(faults.get_by_role("status")).to_contain_text("2 faults stored.")
    expect(engine.get_by_role("button", name="Start Self-test of engine")).to_be_visible()
    _fits(phone, "vehicle")
    phone.send("ReadDTC")
    expect(page.get_by_role("status").filter(has_text="Completed")).to_be_visible()
    _fits(phone, "vehicle with an answer")
    # The picture in docs/: the page's top (its state, the first ECU), 390x844.
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(DOCS / "console-390.png"))
    phone.nav("History")
    expect(page.get_by_role("row").filter(has_text="ReadDTC").first).to_be_visible()
    _fits(phone, "history")
    page.get_by_role("row").filter(has_text="ReadDTC").first.get_by_role("link").click()
    expect(page.get_by_role("status").filter(has_text="Completed")).to_be_visible()
    _fits(phone, "command", tables=False)
    phone.nav("Admin")
    expect(page.get_by_role("row").filter(has_text="engineer").first).to_be_visible()
    _fits(phone, "admin")
    # Every action reachable: the users' buttons are on screen, not past its edge.
    disable = page.get_by_role("button", name="Disable engineer")
    disable.scroll_into_view_if_needed()
    box = disable.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    phone.nav("Live numbers")
    expect(page.get_by_role("heading", name="Live numbers")).to_be_visible()
    _fits(phone, "numbers", tables=False)


def test_the_vehicle_page_at_1280_for_the_docs(console: Console) -> None:
    page = console.page
    console.sign_in("engineer", ENGINEER_PASSWORD)
    console.open_vehicle(GOLF)
    data = _part(page, "engine", "Data")
    data.get_by_role("button", name="Read all data of engine").click()
    expect(data.get_by_role("status")).to_have_text(READ_ALL_ENGINE)
    faults = _part(page, "engine", "Faults")
    faults.get_by_role("button", name="Read faults of engine").click()
    expect(faults.get_by_role("status")).to_contain_text("faults stored.")
    assert page.evaluate(_TOO_WIDE) == []
    page.evaluate("window.scrollTo(0, 0)")
    shutil.copyfile(console.shot("vehicle"), DOCS / "console.png")  # the README's, 1280x800


# -- item 6: descriptions ----------------------------------------------------------------


def test_an_admin_uploads_a_pdx_binds_it_and_reads_its_data(
    console: Console, tmp_path: Path
) -> None:
    page = console.page
    console.sign_in("admin", ADMIN_PASSWORD)
    console.nav("Admin")
    panel = page.get_by_role("region", name="ECU descriptions")
    pdx = tmp_path / "flux.pdx"
    pdx.write_bytes(pdx_of(FLUX))
    panel.get_by_label("PDX file").set_input_files(pdx)
    panel.get_by_role("button", name="Upload").click()
    row = panel.get_by_role("row").filter(has=page.get_by_role("rowheader", name="flux.pdx"))
    expect(row).to_contain_text("ready")
    expect(row).to_contain_text("FLUX at 0x0050: ")
    expect(row).to_contain_text("10 services, 1 DTC")
    panel.get_by_label("ECU description").select_option("FLUX")
    panel.get_by_label("Vehicle", exact=True).select_option(label=f"Volkswagen Golf · {GOLF}")
    panel.get_by_label("Bind").select_option(label="as a new ECU")
    panel.get_by_role("button", name="Bind").click()
    expect(panel.get_by_role("status")).to_contain_text("as its ECU flux (0x0050).")
    panel.get_by_role("link", name=f"Volkswagen Golf · {GOLF}").click()
    data = _part(page, "flux", "Data")
    expect(_card(page, "flux")).to_contain_text("described by")
    data.get_by_role("button", name="Read Oil temperature of flux").click()
    expect(
        data.get_by_role("row").filter(has=page.get_by_role("rowheader", name="Oil temperature"))
    ).to_contain_text("degC")
    # Its modes take the values its description's services name, as selects.
    modes = _part(page, "flux", "Modes")
    # (in the order the description lists its services)
    expect(modes.get_by_label("New dtcsetting for flux").locator("option")).to_have_text(
        ["off", "on"]
    )
    expect(modes.get_by_label("New session for flux").locator("option")).to_have_text(
        ["default", "extended"]
    )
    modes.get_by_label("New dtcsetting for flux").select_option("off")
    modes.get_by_role("button", name="Set the dtcsetting of flux").click()
    expect(modes.get_by_role("status")).to_contain_text("flux: dtcsetting is off.")
    # Its routine: started, then followed by asking its results (the description's
    # progress and state) until it ends, in words.
    operations = _part(page, "flux", "Operations")
    operations.get_by_role("button", name="Start Canister purge of flux").click()
    expect(operations.get_by_role("status")).to_have_text("Routine completed")
    bar = operations.get_by_role("progressbar", name="Progress of Canister purge")
    assert bar.evaluate("(bar) => bar.value") == 100
    expect(operations.get_by_role("button", name="Stop Canister purge of flux")).to_be_hidden()
    # A file that is no PDX: refused in words, nothing stored.
    console.expected_failures.add("/api/v1/descriptions")
    console.nav("Admin")
    bad = tmp_path / "notes.pdx"
    bad.write_bytes(b"not a zip file")
    panel.get_by_label("PDX file").set_input_files(bad)
    panel.get_by_role("button", name="Upload").click()
    refusal = panel.get_by_role("alert")
    expect(refusal).not_to_be_empty()
    assert "{" not in (refusal.text_content() or "")
    expect(panel.get_by_role("rowheader", name="notes.pdx")).to_have_count(0)
    # Removed: gone from the list.
    panel.get_by_role("button", name="Remove flux.pdx").click()
    expect(panel.get_by_role("status")).to_have_text("Removed flux.pdx.")
    expect(row).to_have_count(0)
