// One vehicle: its details, the command form made from GET /api/v1/catalogue (one field
// per parameter, checked against its pattern before sending), the live answer of what was
// sent, its faults per ECU (faults.js), and for admins connect/disconnect and the
// simulator profile.

import { get, patch, postJson } from "./api.js";
import { badge, clear, field, h, select } from "./dom.js";
import { faultsPanel } from "./faults.js";
import { LiveCommand } from "./stream.js";
import { explain } from "./words.js";

const PROFILES = ["healthy", "flaky", "timeout", "unreachable", "malformed"];
let catalogue = null; // fixed for the service's life: read once

async function loadCatalogue() {
  catalogue ||= (await get("/api/v1/catalogue")).items;
  return catalogue;
}

function details(vehicle) {
  const rows = [
    ["VIN", vehicle.vin],
    ["Vehicle", `${vehicle.make} ${vehicle.model} (${vehicle.year})`],
    ["Connection", badge(vehicle.connection_status, vehicle.connection_status)],
    ["Transport", vehicle.transport],
    ["Simulator profile", vehicle.simulator_profile],
    ["Last seen", vehicle.last_seen_at || "—"],
  ];
  return h(
    "dl",
    { class: "details" },
    rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

function adminControls(vehicle, reload) {
  if (vehicle.transport === "doip") {
    // A DoIP vehicle's status follows its link and it has no simulator: nothing to set.
    return h(
      "section",
      { class: "card", "aria-labelledby": "vehicle-admin-title" },
      h("h3", { id: "vehicle-admin-title" }, "Administration"),
      h("p", {}, "Reached over DoIP: its connection status follows the link."),
    );
  }
  const message = h("p", { class: "error", role: "alert" });
  const connected = vehicle.connection_status === "connected";
  const change = async (body) => {
    try {
      await patch(`/api/v1/vehicles/${vehicle.vehicle_id}`, body);
      await reload();
    } catch (error) {
      clear(message, explain(error));
    }
  };
  const profile = select(
    PROFILES.map((p) => [p, p]),
    vehicle.simulator_profile,
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "vehicle-admin-title" },
    h("h3", { id: "vehicle-admin-title" }, "Administration"),
    h(
      "div",
      { class: "row" },
      h(
        "button",
        {
          type: "button",
          onclick: () => change({ connection_status: connected ? "disconnected" : "connected" }),
        },
        connected ? "Disconnect" : "Connect",
      ),
      field("Simulator profile", profile),
      h(
        "button",
        { type: "button", onclick: () => change({ simulator_profile: profile.value }) },
        "Set profile",
      ),
    ),
    message,
  );
}

function paramField(name, schema, required) {
  const input = h("input", {
    name,
    required,
    autocomplete: "off",
    spellcheck: "false",
    "data-pattern": schema.pattern,
  });
  const error = h("small", { class: "error", "aria-live": "polite" });
  const wrapper = field(
    required ? name : `${name} (optional)`,
    input,
    `${schema.description} — pattern ${schema.pattern}`,
  );
  wrapper.append(error);
  const check = () => {
    const value = input.value.trim();
    let problem = "";
    if (!value && required) problem = `${name} is required.`;
    else if (value && !new RegExp(schema.pattern).test(value)) {
      problem = `${name} must look like: ${schema.description}.`;
    }
    input.setAttribute("aria-invalid", problem ? "true" : "false");
    error.textContent = problem;
    return problem ? null : value;
  };
  // Checked on Send; once wrong, re-checked as it is typed, so the message goes as soon
  // as the value is right. (Not on blur: a message appearing as the focus leaves for the
  // Send button would move the button under the pointer and lose the click.)
  input.addEventListener("input", () => {
    if (input.getAttribute("aria-invalid") === "true") check();
  });
  return { wrapper, input, check };
}

function commandForm(vehicle, entries, onSent) {
  const chooser = select(
    entries.map((e) => [e.command_name, e.command_name]),
    entries[0].command_name,
  );
  const description = h("p", { class: "hint", "aria-live": "polite" });
  const params = h("div", { class: "params" });
  const message = h("p", { class: "error", role: "alert" });
  let fields = [];

  function build() {
    const entry = entries.find((e) => e.command_name === chooser.value);
    description.textContent = entry.description;
    const schema = entry.params_schema;
    const required = new Set(schema.required || []);
    fields = Object.entries(schema.properties || {}).map(([name, property]) => ({
      name,
      ...paramField(name, property, required.has(name)),
    }));
    clear(
      params,
      fields.map((f) => f.wrapper),
    );
    const first = fields.find((f) => f.name === "ecuAddress");
    // The vehicle's first ECU (a logical address: two bytes, shown as 0x0010).
    const ecu = (vehicle.ecus || [])[0];
    if (first) first.input.value = ecu ? ecu.address : "0x0010";
  }
  chooser.addEventListener("change", build);
  build();

  async function send(event) {
    event.preventDefault();
    clear(message);
    const values = {};
    let valid = true;
    for (const f of fields) {
      const value = f.check();
      if (value === null) {
        if (valid) f.input.focus();
        valid = false;
      } else if (value) {
        values[f.name] = value;
      }
    }
    if (!valid) return;
    try {
      const command = await postJson("/api/v1/commands", {
        vehicle_id: vehicle.vehicle_id,
        command_name: chooser.value,
        command_params: values,
      });
      onSent(command);
    } catch (error) {
      clear(message, explain(error));
    }
  }

  return h(
    "form",
    { class: "card", novalidate: true, onsubmit: send, "aria-labelledby": "send-title" },
    h("h3", { id: "send-title" }, "Send a command"),
    field("Command", chooser),
    description,
    params,
    h("button", { type: "submit" }, "Send"),
    message,
  );
}

export async function showVehicle(section, { arg, isAdmin }) {
  let live = null;
  const liveArea = h("div", { class: "live-area" });
  const entries = await loadCatalogue();
  const top = h("div");

  async function reload() {
    const vehicle = await get(`/api/v1/vehicles/${encodeURIComponent(arg)}`);
    clear(
      top,
      h("h2", { id: "vehicle-title" }, `${vehicle.make} ${vehicle.model}`),
      details(vehicle),
      isAdmin ? adminControls(vehicle, reload) : null,
    );
    return vehicle;
  }

  const vehicle = await reload();
  const onSent = (command) => {
    if (live) live.stop();
    live = new LiveCommand(command);
    clear(
      liveArea,
      live.node,
      h("p", {}, h("a", { href: `#/command/${command.command_id}` }, "Open in history")),
    );
    live.start();
  };
  const faults = faultsPanel(vehicle.vin);
  clear(
    section,
    h("p", {}, h("a", { href: "#/fleet" }, "← Fleet")),
    top,
    h("div", { class: "split" }, commandForm(vehicle, entries, onSent), liveArea),
    faults.node,
  );
  faults.load(); // its own errors are shown in the panel: the view does not wait
  return () => live && live.stop();
}
