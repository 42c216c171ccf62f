// A vehicle's faults per ECU, through the SOVD tree (/sovd/vehicles/{vin}/v1): the ECUs
// are its components; each one's faults are read on demand (UDS 0x19), cleared after a
// confirm step (UDS 0x14) and read again, and its diagnostic session can be switched
// (UDS 0x10), since an ECU may clear only in the extended session. Each of these calls is
// a command to the vehicle, kept in the history: nothing is read until asked.

import { exchange, get } from "./api.js";
import { clear, field, h, select, uid } from "./dom.js";
import { explain, faultCount, faultStatus } from "./words.js";

const COMMAND_ID = "x-command-id";
const SESSIONS = ["default", "extended"];

function faultsTable(name, items) {
  if (!items.length) return null;
  return h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, `Faults of ${name}`),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Code", "Name", "Severity (1 = most severe)", "Status"].map((t) =>
            h("th", { scope: "col" }, t),
          ),
        ),
      ),
      h(
        "tbody",
        {},
        items.map((fault) =>
          h(
            "tr",
            {},
            h("th", { scope: "row", class: "dtc" }, fault.display_code || fault.code),
            h("td", {}, fault.fault_name || "—"),
            h("td", {}, String(fault.severity ?? "—")),
            h("td", {}, faultStatus(fault.status)),
          ),
        ),
      ),
    ),
  );
}

/** A link to the command a call ran as (its answer is in the history too). */
function commandLink(headers) {
  const id = headers && headers.get(COMMAND_ID);
  if (!id) return [];
  return [" ", h("a", { href: `#/command/${encodeURIComponent(id)}` }, "Open in history")];
}

/** After a refusal that names the session, where to switch it on this page. */
function sessionHint(error) {
  const needsSession = error && error.code === "precondition-not-fulfilled";
  return needsSession && /session/i.test(error.message)
    ? " Choose the new session here and press Switch session, then try again."
    : "";
}

function ecuCard(root, component) {
  const name = component.name || component.id;
  const base = `${root}/components/${encodeURIComponent(component.id)}`;
  const titleId = uid("ecu");
  const said = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  const problem = h("p", { class: "error", role: "alert" });
  const found = h("div");
  const buttons = [];
  const button = (text, label, onclick, kind) => {
    const node = h("button", { type: "button", class: kind, "aria-label": label, onclick }, text);
    buttons.push(node);
    return node;
  };

  // One call at a time per ECU: its buttons wait until the answer is shown.
  async function act(work) {
    clear(problem);
    for (const b of buttons) b.disabled = true;
    card.setAttribute("aria-busy", "true");
    try {
      await work();
    } catch (error) {
      clear(problem, explain(error), sessionHint(error));
    } finally {
      for (const b of buttons) b.disabled = false;
      card.removeAttribute("aria-busy");
    }
  }

  // Nothing stale while it reads: the last table goes (a refused clear leaves it shown).
  async function read(before = "") {
    clear(said, before);
    clear(found);
    const { body, headers } = await exchange("GET", `${base}/faults`);
    const items = body.items || [];
    clear(found, faultsTable(name, items));
    clear(said, before, faultCount(items.length), commandLink(headers));
  }

  const askClear = button("Clear faults", `Clear faults of ${name}`, () => ask(true), "danger");
  const yes = button(
    "Yes, clear",
    `Yes, clear the faults of ${name}`,
    () => {
      ask(false);
      act(async () => {
        await exchange("DELETE", `${base}/faults`);
        await read("Cleared. ");
      }).then(() => askClear.focus());
    },
    "danger",
  );
  const keep = button(
    "Keep",
    `Keep the faults of ${name}`,
    () => {
      ask(false);
      askClear.focus();
    },
    "secondary",
  );
  const confirmation = h(
    "div",
    { class: "confirm row", role: "group", "aria-label": `Clearing ${name}`, hidden: true },
    h("span", {}, `Clear every fault stored in ${name}? This cannot be undone.`),
    yes,
    keep,
  );
  // The confirm step replaces the Clear button; the focus lands on the safe choice.
  function ask(open) {
    confirmation.hidden = !open;
    askClear.hidden = open;
    if (open) keep.focus();
  }

  const session = select(
    SESSIONS.map((s) => [s, s]),
    "extended",
  );
  const switchSession = button("Switch session", `Switch the session of ${name}`, () =>
    act(async () => {
      clear(said);
      const { body, headers } = await exchange("PUT", `${base}/modes/session`, {
        body: { value: session.value },
      });
      clear(said, `${name} is in the ${body.value} session.`, commandLink(headers));
    }),
  );

  const card = h(
    "section",
    { class: "ecu", "aria-labelledby": titleId },
    h("h4", { id: titleId }, name),
    h(
      "div",
      { class: "row" },
      button("Read faults", `Read faults of ${name}`, () => act(() => read())),
      askClear,
      confirmation,
      // "New session" to the eye; "New session for body" to a screen reader, among four.
      field(["New session", h("span", { class: "visually-hidden" }, ` for ${name}`)], session),
      switchSession,
    ),
    problem,
    said,
    found,
  );
  return card;
}

/** The "Faults" panel of the vehicle `vin`: its ECUs, listed from the SOVD tree. */
export function faultsPanel(vin) {
  const root = `/sovd/vehicles/${encodeURIComponent(vin)}/v1`;
  const ecus = h("div", { class: "ecus" });
  const problem = h("p", { class: "error", role: "alert" });
  const node = h(
    "section",
    { class: "card", "aria-labelledby": "faults-title" },
    h("h3", { id: "faults-title" }, "Faults"),
    h(
      "p",
      { class: "hint" },
      "Per ECU, through the SOVD API. Each read, clear or session switch is a command to " +
        "the vehicle, kept in the history.",
    ),
    problem,
    ecus,
  );
  async function load() {
    try {
      const components = (await get(`${root}/components`)).items || [];
      clear(
        ecus,
        components.map((c) => ecuCard(root, c)),
      );
      if (!components.length) clear(problem, "This vehicle has no ECUs listed.");
    } catch (error) {
      clear(problem, explain(error));
    }
  }
  return { node, load };
}
