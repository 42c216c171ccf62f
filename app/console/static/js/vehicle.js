// One vehicle: its details, kept live (GET every 5 s while the tab is shown, and at once
// after each call that reached the vehicle), its ECUs as their SOVD tree describes them
// (component.js), the raw catalogue commands under "Advanced" (advanced.js), and for
// admins connect/disconnect and the simulator profile (a simulated vehicle's only).

import { get, patch } from "./api.js";
import { commandForm } from "./advanced.js";
import { componentCard } from "./component.js";
import { badge, clear, every, field, h, select, when } from "./dom.js";
import { LiveCommand } from "./stream.js";
import { explain } from "./words.js";

const PROFILES = ["healthy", "flaky", "timeout", "unreachable", "malformed"];
export const POLL_MS = 5000;
// Errors that stop holding once the vehicle is connected again.
const LINK_ERRORS = ["vehicle-disconnected", "vehicle-unreachable", "not-responding"];
let catalogue = null; // fixed for the service's life: read once

async function loadCatalogue() {
  catalogue ||= (await get("/api/v1/catalogue")).items;
  return catalogue;
}

export function transportText(vehicle) {
  return vehicle.transport === "doip" ? "DoIP" : "Simulator";
}

function doipTarget(doip) {
  return `${doip.host}:${doip.port}, entity ${doip.logical_address}, tester ${doip.tester_address}`;
}

function details(vehicle, isAdmin) {
  const doip = vehicle.transport === "doip";
  const rows = [
    ["VIN", vehicle.vin],
    ["Vehicle", `${vehicle.make} ${vehicle.model} (${vehicle.year})`],
    ["Connection", badge(vehicle.connection_status, vehicle.connection_status)],
    ["Transport", transportText(vehicle)],
    // A DoIP vehicle has no simulator; its target is a lab address, for admins.
    doip ? null : ["Simulator profile", vehicle.simulator_profile],
    doip && isAdmin && vehicle.doip ? ["DoIP target", doipTarget(vehicle.doip)] : null,
    ["Last seen", when(vehicle.last_seen_at)],
  ].filter(Boolean);
  return h(
    "dl",
    { class: "details", "aria-label": "Vehicle state" },
    rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]),
  );
}

function adminControls(vehicle, change, message) {
  if (vehicle.transport === "doip") {
    return h(
      "section",
      { class: "card", "aria-labelledby": "vehicle-admin-title" },
      h("h3", { id: "vehicle-admin-title" }, "Administration"),
      h("p", {}, "Reached over DoIP: its connection follows the link, opened when needed."),
    );
  }
  const connected = vehicle.connection_status === "connected";
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

/** What of a vehicle the page shows: a change redraws, the same answer does not. */
function shownState(vehicle) {
  return JSON.stringify([
    vehicle.connection_status,
    vehicle.last_seen_at,
    vehicle.simulator_profile,
    vehicle.transport,
    vehicle.doip,
  ]);
}

export async function showVehicle(section, { arg, isAdmin }) {
  let live = null;
  let shown = "";
  const entries = await loadCatalogue();
  const top = h("div");
  const adminMessage = h("p", { class: "error", role: "alert" });
  let vehicle = await get(`/api/v1/vehicles/${encodeURIComponent(arg)}`);

  function draw() {
    shown = shownState(vehicle);
    clear(
      top,
      h("h2", { id: "vehicle-title" }, `${vehicle.make} ${vehicle.model}`),
      details(vehicle, isAdmin),
      isAdmin ? adminControls(vehicle, change, adminMessage) : null,
    );
  }

  // A new state of the vehicle: redrawn if it changed; once connected again, the
  // messages that said otherwise ("disconnected", "did not answer") no longer hold.
  function settle(next) {
    const before = vehicle.connection_status;
    vehicle = next;
    if (shownState(vehicle) !== shown) draw();
    if (vehicle.connection_status === "connected" && before !== "connected") {
      for (const code of LINK_ERRORS) {
        for (const node of section.querySelectorAll(`[data-code="${code}"]`)) {
          node.replaceChildren();
          delete node.dataset.code;
        }
      }
    }
  }

  async function refresh() {
    settle(await get(`/api/v1/vehicles/${encodeURIComponent(vehicle.vehicle_id)}`));
  }
  const hooks = { afterCall: () => refresh().catch(() => {}) };

  async function change(body) {
    clear(adminMessage);
    try {
      settle(await patch(`/api/v1/vehicles/${vehicle.vehicle_id}`, body));
    } catch (error) {
      clear(adminMessage, explain(error));
    }
  }

  draw();
  const root = `/sovd/vehicles/${encodeURIComponent(vehicle.vin)}/v1`;
  const ecus = h("div", { class: "ecus" });
  const ecusProblem = h("p", { class: "error", role: "alert" });
  const liveArea = h("div", { class: "live-area" });
  const onSent = (command) => {
    if (live) live.stop();
    live = new LiveCommand(command);
    live.onEnd = hooks.afterCall;
    clear(
      liveArea,
      live.node,
      h("p", {}, h("a", { href: `#/command/${command.command_id}` }, "Open in history")),
    );
    live.start();
  };
  clear(
    section,
    h("p", {}, h("a", { href: "#/fleet" }, "← Fleet")),
    top,
    h(
      "section",
      { "aria-labelledby": "ecus-title" },
      h("h3", { id: "ecus-title", class: "section-title" }, "ECUs"),
      ecusProblem,
      ecus,
    ),
    h(
      "details",
      { class: "advanced" },
      h("summary", {}, "Advanced: raw UDS commands"),
      h("div", { class: "split" }, commandForm(vehicle, entries, onSent), liveArea),
    ),
  );
  try {
    const components = (await get(`${root}/components`)).items || [];
    // The typed parameters of described ECUs' services (none bound: nothing to ask).
    const bound = (vehicle.ecus || []).some((e) => e.description);
    // Without them (a description not loaded yet), the cards still show; modes then
    // offer a field instead of a select, and operations start without parameters.
    const described = bound
      ? await get(`/api/v1/vehicles/${vehicle.vehicle_id}/services`).then(
          (found) => found.items,
          () => [],
        )
      : [];
    const servicesOf = (id) => {
      const found = described.find((d) => d.ecu === id);
      return found ? found.services : null;
    };
    const cards = await Promise.all(
      components.map((c) => componentCard(root, c, entries, servicesOf(c.id), hooks)),
    );
    clear(ecus, cards);
    if (!components.length) clear(ecusProblem, "This vehicle has no ECUs listed.");
  } catch (error) {
    clear(ecusProblem, explain(error));
  }
  const stopPolling = every(POLL_MS, refresh);
  return () => {
    stopPolling();
    if (live) live.stop();
  };
}
