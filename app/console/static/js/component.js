// One component (an ECU) of a vehicle, as its SOVD tree describes it: its data (a Read
// per item and Read all), operations (operations.js), faults (faults.js), modes (the
// session and whatever else it has, set from a select of the values known) and
// configurations. Nothing here knows an ECU: every list comes from the tree, so an ECU
// bound to a description shows what its description holds. Lists are read when the page
// opens (the service answers them without asking the vehicle); values only when asked.

import { exchange, get } from "./api.js";
import { clear, h, table, uid } from "./dom.js";
import { faultsSection } from "./faults.js";
import { operationsSection } from "./operations.js";
import { commandLink, dataText, showError } from "./words.js";

function section(title, ...children) {
  const id = uid("sec");
  return h(
    "section",
    { class: "part", "aria-labelledby": id },
    h("h4", { id }, title),
    ...children,
  );
}

/** Data or configurations: a table of items, each read on demand. */
function valuesSection(title, base, kind, ecu, items, hooks) {
  const problem = h("p", { class: "error", role: "alert" });
  const said = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  const cells = new Map();
  const readers = [];
  async function read(item) {
    const cell = cells.get(item.id);
    clear(cell, "reading…");
    try {
      const { body, headers } = await exchange(
        "GET",
        `${base}/${kind}/${encodeURIComponent(item.id)}`,
      );
      clear(cell, dataText(body.data, item.unit));
      clear(said, `${item.name}: read.`, commandLink(headers));
    } catch (error) {
      clear(cell, "—");
      showError(problem, error);
    } finally {
      hooks.afterCall();
    }
  }
  const rows = items.map((item) => {
    const cell = h("span", { class: "value" }, "—");
    cells.set(item.id, cell);
    const button = h(
      "button",
      {
        type: "button",
        class: "secondary",
        "aria-label": `Read ${item.name} of ${ecu}`,
        onclick: async () => {
          clear(problem);
          button.disabled = true;
          await read(item);
          button.disabled = false;
        },
      },
      "Read",
    );
    readers.push(button);
    return [{ header: item.name }, cell, button];
  });
  const readAll = h(
    "button",
    {
      type: "button",
      "aria-label": `Read all ${title.toLowerCase()} of ${ecu}`,
      onclick: async () => {
        clear(problem);
        readAll.disabled = true;
        for (const b of readers) b.disabled = true;
        for (const item of items) await read(item); // one call at a time to the ECU
        for (const b of readers) b.disabled = false;
        readAll.disabled = false;
        clear(said, `Read ${items.length} item${items.length === 1 ? "" : "s"}.`);
      },
    },
    "Read all",
  );
  const shown = table(`${title} of ${ecu}`, ["Name", "Value", "Action"], rows);
  return section(title, items.length ? readAll : null, shown.node, problem, said);
}

// A described ECU's modes take the values its services name (as the service maps them:
// app/descriptions/sovd_map/modes.py): a session per 0x10 service ("Extended_Start":
// extended), a DTC setting per 0x85 service ("DTC_Setting_Mode_Off": off).
const MODE_SERVICES = {
  session: ["0x10", (name) => name.replace(/_start$/i, "")],
  dtcsetting: ["0x85", (name) => name.replace(/^dtc_setting_mode_/i, "")],
};

/** The values a mode may take, as far as the page knows them: for a described ECU, from
 * its description's services; else the catalogue parameter of the same name (its
 * pattern lists them); else none (a text field then). */
function modeValues(mode, catalogue, services) {
  const described = MODE_SERVICES[mode.id];
  if (services && described) {
    const [sid, value] = described;
    const values = services.filter((s) => s.sid === sid).map((s) => value(s.name).toLowerCase());
    if (values.length) return [...new Set(values)];
  }
  for (const entry of catalogue) {
    const property = (entry.params_schema.properties || {})[mode.id];
    const listed = property && /^\^\(([\w|]+)\)\$$/.exec(property.pattern || "");
    if (listed) return listed[1].split("|");
  }
  return [];
}

function modesSection(base, ecu, modes, catalogue, services, hooks) {
  const problem = h("p", { class: "error", role: "alert" });
  const said = h("p", { class: "hint", role: "status", "aria-live": "polite" });
  const rows = modes.map((mode) => {
    const value = h("span", { class: "value" }, "—");
    const values = modeValues(mode, catalogue, services);
    const label = `New ${mode.id} for ${ecu}`;
    const choice = values.length
      ? h(
          "select",
          { "aria-label": label },
          values.map((v) => h("option", { value: v }, v)),
        )
      : h("input", { "aria-label": label, maxlength: 32, autocomplete: "off" });
    const call = async (work) => {
      clear(problem);
      try {
        await work();
      } catch (error) {
        showError(problem, error);
      } finally {
        hooks.afterCall();
      }
    };
    const read = h(
      "button",
      {
        type: "button",
        class: "secondary",
        "aria-label": `Read the ${mode.id} of ${ecu}`,
        onclick: () =>
          call(async () => {
            const { body, headers } = await exchange(
              "GET",
              `${base}/modes/${encodeURIComponent(mode.id)}`,
            );
            clear(value, body.value);
            clear(said, `${mode.name}: ${body.value}.`, commandLink(headers));
          }),
      },
      "Read",
    );
    const set = h(
      "button",
      {
        type: "button",
        "aria-label": `Set the ${mode.id} of ${ecu}`,
        onclick: () =>
          call(async () => {
            const { body, headers } = await exchange(
              "PUT",
              `${base}/modes/${encodeURIComponent(mode.id)}`,
              { body: { value: choice.value.trim() } },
            );
            clear(value, body.value);
            clear(said, `${ecu}: ${mode.id} is ${body.value}.`, commandLink(headers));
            hooks.modeChanged();
          }),
      },
      "Set",
    );
    return [
      { header: mode.name },
      h("span", { class: "row tight" }, value, read),
      h("span", { class: "row tight" }, choice, set),
    ];
  });
  const shown = table(`Modes of ${ecu}`, ["Mode", "Value", "Change"], rows);
  return section("Modes", shown.node, problem, said);
}

async function listed(link) {
  if (!link) return null;
  try {
    return (await get(link)).items || [];
  } catch {
    return null; // a collection it does not offer: left out
  }
}

/** The card of one component: `root` the vehicle's SOVD base, `ref` its entry in
 * GET components, `catalogue` the service's commands (for mode values), `services` a
 * described ECU's services with their typed parameters (GET /api/v1/vehicles/{id}/
 * services; null for an ECU bound to no description), `hooks` the page's (afterCall: a
 * call reached the vehicle, so its state may have changed). */
export async function componentCard(root, ref, catalogue, services, hooks) {
  const base = `${root}/components/${encodeURIComponent(ref.id)}`;
  const component = await get(base);
  const ecu = component.name || component.id;
  const titleId = uid("ecu");
  // The collections it links to (SOVD names them; the links are absolute URLs).
  const has = (name) => (component[name] ? `${base}/${name}` : null);
  const [data, operations, modes, configurations] = await Promise.all([
    listed(has("data")),
    listed(has("operations")),
    listed(has("modes")),
    listed(has("configurations")),
  ]);
  const variant = component.variant;
  const about = [
    `ECU ${component["x-ecu-address"]}`,
    variant ? ` · described by ${variant.name} (${variant.state})` : "",
  ];
  const bound = Boolean(variant);
  // A refusal for want of a session or setting stops holding once a mode is changed.
  const local = {
    ...hooks,
    modeChanged: () => {
      for (const node of card.querySelectorAll('[data-code="precondition-not-fulfilled"]')) {
        node.replaceChildren();
        delete node.dataset.code;
      }
    },
  };
  hooks = local;
  const card = h(
    "section",
    { class: "card ecu", "aria-labelledby": titleId },
    h("h3", { id: titleId }, ecu),
    h("p", { class: "hint" }, about),
    data && data.length ? valuesSection("Data", base, "data", ecu, data, hooks) : null,
    operations && operations.length
      ? section("Operations", operationsSection(base, ecu, operations, bound ? services || [] : null, hooks))
      : null,
    component.faults ? section("Faults", faultsSection(base, ecu, hooks)) : null,
    modes && modes.length ? modesSection(base, ecu, modes, catalogue, bound ? services : null, hooks) : null,
    configurations && configurations.length
      ? valuesSection("Configurations", base, "configurations", ecu, configurations, hooks)
      : null,
  );
  return card;
}
