// A component's faults through the SOVD tree: read on demand (UDS 0x19) with their
// status bits, cleared after a confirm step (UDS 0x14) and read again. Each read or clear
// is a command to the vehicle, kept in the history: nothing is read until asked. An ECU
// that clears only in another session says so (words.js explain: set it under its Modes).

import { exchange } from "./api.js";
import { clear, h, table } from "./dom.js";
import { commandLink, faultCount, faultStatus, showError } from "./words.js";

/** A fault the ECU holds now. A described ECU lists every DTC its description defines,
 * the ones not stored with status mask 00: those are cleared, not faults to show. */
export function isStored(fault) {
  const mask = fault && fault.status && fault.status.mask;
  return mask === undefined || mask === null || parseInt(mask, 16) !== 0;
}

function faultsTable(name, items) {
  if (!items.length) return null;
  const rows = items.map((fault) => [
    { header: fault.display_code || fault.code },
    fault.fault_name || "—",
    String(fault.severity ?? "—"),
    faultStatus(fault.status),
  ]);
  const shown = table(
    `Faults of ${name}`,
    ["Code", "Name", "Severity (1 = most severe)", "Status"],
    rows,
  );
  shown.node.querySelector("tbody").classList.add("dtc-rows");
  return shown.node;
}

/** The faults of component `name` at SOVD base `base`. */
export function faultsSection(base, name, hooks) {
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
    node.setAttribute("aria-busy", "true");
    try {
      await work();
    } catch (error) {
      showError(problem, error);
    } finally {
      for (const b of buttons) b.disabled = false;
      node.removeAttribute("aria-busy");
      hooks.afterCall();
    }
  }

  // Nothing stale while it reads: the last table goes (a refused clear leaves it shown).
  async function read(before = "") {
    clear(said, before);
    clear(found);
    const { body, headers } = await exchange("GET", `${base}/faults`);
    const items = (body.items || []).filter(isStored);
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

  const node = h(
    "div",
    { class: "faults" },
    h(
      "div",
      { class: "row" },
      button("Read faults", `Read faults of ${name}`, () => act(() => read())),
      askClear,
      confirmation,
    ),
    problem,
    said,
    found,
  );
  return node;
}
