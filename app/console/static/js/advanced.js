// The raw catalogue commands (GET /api/v1/catalogue), for who knows UDS: the ECU chosen
// from the vehicle's ECUs, enumerated parameters as selects, the rest as fields checked
// against their pattern before sending. Shown under the vehicle page's "Advanced".

import { postJson } from "./api.js";
import { clear, field, h, select } from "./dom.js";
import { explain } from "./words.js";

const ECU_PARAM = "ecuAddress";

/** The choices a pattern such as ^(start|stop|results|run)$ allows, else null. */
export function choices(pattern) {
  const listed = /^\^\(([\w|]+)\)\$$/.exec(pattern || "");
  return listed ? listed[1].split("|") : null;
}

function ecuField(vehicle) {
  const ecus = vehicle.ecus || [];
  const control = select(
    ecus.map((e) => [e.address, `${e.name} (${e.address})`]),
    ecus.length ? ecus[0].address : "",
    { name: ECU_PARAM },
  );
  return { wrapper: field("ECU", control), input: control, check: () => control.value };
}

function choiceField(name, schema, values) {
  const control = select(
    values.map((v) => [v, v]),
    values[0],
    { name },
  );
  return {
    wrapper: field(name, control, schema.description),
    input: control,
    check: () => control.value,
  };
}

function textField(name, schema, required) {
  const input = h("input", { name, required, autocomplete: "off", spellcheck: "false" });
  const error = h("small", { class: "error", "aria-live": "polite" });
  const wrapper = field(required ? name : `${name} (optional)`, input, schema.description);
  wrapper.append(error);
  const check = () => {
    const value = input.value.trim();
    let problem = "";
    if (!value && required) problem = `${name}: required.`;
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

export function commandForm(vehicle, entries, onSent) {
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
    fields = Object.entries(schema.properties || {}).map(([name, property]) => {
      const values = choices(property.pattern);
      let made;
      if (name === ECU_PARAM && (vehicle.ecus || []).length) made = ecuField(vehicle);
      else if (values && required.has(name)) made = choiceField(name, property, values);
      else made = textField(name, property, required.has(name));
      return { name, ...made };
    });
    clear(
      params,
      fields.map((f) => f.wrapper),
    );
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
