// Administration (admins only; the API refuses engineers anyway): register a vehicle,
// list, create, disable and re-enable users, read the audit log. Connecting,
// disconnecting and the simulator profile are on each vehicle's page.

import { get, patch, postJson } from "./api.js";
import { descriptionsPanel } from "./descriptions.js";
import { badge, clear, field, h, select, table, vehicleName, when } from "./dom.js";
import { pagedTable } from "./paged.js";
import { explain, explainForm } from "./words.js";

const PROFILES = ["healthy", "flaky", "timeout", "unreachable", "malformed"];
const AUDIT_ACTIONS = [
  "auth.login",
  "auth.login_failed",
  "auth.login_throttled",
  "auth.logout",
  "auth.refresh",
  "auth.refresh_reused",
  "auth.password_change",
  "command.submit",
  "command.start",
  "command.finish",
  "command.cancel",
  "user.create",
  "user.update",
  "user.delete",
  "user.password_reset",
  "vehicle.create",
  "vehicle.update",
];
const AUDIT_PAGE = 20;

function outcomeLine() {
  return h("p", { class: "outcome-line", role: "status", "aria-live": "polite" });
}

function registerVehicle() {
  const vin = h("input", { name: "vin", maxlength: 17, required: true, autocomplete: "off" });
  const make = h("input", { name: "make", maxlength: 64, required: true });
  const model = h("input", { name: "model", maxlength: 64, required: true });
  const year = h("input", { name: "year", type: "number", min: 1950, max: 2100, required: true });
  const profile = select(
    PROFILES.map((p) => [p, p]),
    "healthy",
  );
  const result = outcomeLine();
  return h(
    "form",
    {
      class: "card",
      novalidate: true,
      "aria-labelledby": "register-title",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const vehicle = await postJson("/api/v1/vehicles", {
            vin: vin.value.trim().toUpperCase(),
            make: make.value.trim(),
            model: model.value.trim(),
            year: Number(year.value),
            simulator_profile: profile.value,
          });
          event.target.reset();
          clear(
            result,
            "Registered ",
            h("a", { href: `#/vehicle/${vehicle.vin}` }, vehicle.vin),
            ".",
          );
        } catch (error) {
          const said = explainForm(
            error,
            { vin: "VIN", make: "Make", model: "Model", year: "Year", simulator_profile: "Profile" },
            { vin: "17 characters, no I, O or Q" },
          );
          clear(result, h("span", { class: "error" }, said));
        }
      },
    },
    h("h3", { id: "register-title" }, "Register a vehicle"),
    field("VIN", vin, "17 characters, no I, O or Q"),
    field("Make", make),
    field("Model", model),
    field("Year", year),
    field("Profile", profile),
    h("button", { type: "submit" }, "Register"),
    result,
  );
}

function usersPanel(me) {
  const list = table("Users", ["Username", "Role", "State", "Action"], []);
  const result = outcomeLine();

  async function load() {
    const users = (await get("/api/v1/users")).items;
    list.fill(
      users.map((u) => [
        u.username,
        u.role,
        u.disabled ? badge("disabled", "disabled") : badge("enabled", "enabled"),
        u.user_id === me.user_id
          ? "you"
          : h(
              "button",
              {
                type: "button",
                "aria-label": `${u.disabled ? "Enable" : "Disable"} ${u.username}`,
                onclick: async () => {
                  try {
                    await patch(`/api/v1/users/${u.user_id}`, { disabled: !u.disabled });
                    clear(result, `${u.username} ${u.disabled ? "enabled" : "disabled"}.`);
                    await load();
                  } catch (error) {
                    clear(result, h("span", { class: "error" }, explain(error)));
                  }
                },
              },
              u.disabled ? "Enable" : "Disable",
            ),
      ]),
    );
  }

  const username = h("input", { name: "username", maxlength: 64, autocomplete: "off" });
  const password = h("input", {
    name: "password",
    type: "password",
    maxlength: 256,
    autocomplete: "new-password",
  });
  const role = select(
    [
      ["engineer", "engineer"],
      ["admin", "admin"],
    ],
    "engineer",
  );
  const create = h(
    "form",
    {
      class: "filters",
      novalidate: true,
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          const user = await postJson("/api/v1/users", {
            username: username.value.trim(),
            password: password.value,
            role: role.value,
          });
          event.target.reset();
          clear(result, `Created ${user.username}.`);
          await load();
        } catch (error) {
          const labels = { username: "New username", password: "New password", role: "Role" };
          clear(result, h("span", { class: "error" }, explainForm(error, labels)));
        }
      },
    },
    field("New username", username, "3 to 64 letters, digits, dots, dashes or underscores"),
    field("New password", password, "at least 8 characters"),
    field("Role", role),
    h("button", { type: "submit" }, "Create user"),
  );
  const node = h(
    "section",
    { class: "card", "aria-labelledby": "users-title" },
    h("h3", { id: "users-title" }, "Users"),
    list.node,
    create,
    result,
  );
  return { node, load };
}

function auditPanel() {
  const state = { action: "", offset: 0 };
  let vehicles = new Map(); // vehicle_id -> vehicle: entries name vehicles by name and VIN
  const entity = (entry) => {
    if (!entry.entity_type) return "";
    const vehicle = entry.entity_type === "vehicle" && vehicles.get(entry.entity_id);
    return vehicle
      ? `vehicle ${vehicleName(vehicle)}`
      : `${entry.entity_type} ${entry.entity_id || ""}`;
  };
  const action = select([["", "any action"], ...AUDIT_ACTIONS.map((a) => [a, a])], "");
  const list = pagedTable(state, {
    path: "/api/v1/audit",
    filters: () => ({ action: state.action }),
    caption: "Audit log",
    heads: ["When", "Who", "Action", "Entity", "Client"],
    empty: "Nothing yet.",
    label: "Audit pages",
    size: AUDIT_PAGE,
    prepare: async () => {
      if (!vehicles.size) {
        const fleet = await get("/api/v1/vehicles", { limit: 200 });
        vehicles = new Map(fleet.items.map((v) => [v.vehicle_id, v]));
      }
    },
    row: (entry) => [
      when(entry.at),
      entry.username || "—",
      entry.action,
      entity(entry),
      entry.client_address || "",
    ],
  });
  action.addEventListener("change", () => {
    state.action = action.value;
    list.restart();
  });
  const node = h(
    "section",
    { class: "card", "aria-labelledby": "audit-title" },
    h("h3", { id: "audit-title" }, "Audit log"),
    field("Action", action),
    ...list.nodes,
  );
  return { node, load: list.load };
}

export async function showAdmin(section, { user }) {
  const users = usersPanel(user);
  const audit = auditPanel();
  const descriptions = descriptionsPanel();
  clear(
    section,
    h("h2", { id: "admin-title" }, "Admin"),
    h("p", { class: "hint" }, "Connect, disconnect and profiles: open the vehicle from the fleet."),
    h("div", { class: "grid" }, registerVehicle(), users.node),
    descriptions.node,
    audit.node,
  );
  await Promise.all([users.load(), audit.load(), descriptions.load()]);
}
