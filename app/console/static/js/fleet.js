// The fleet: vehicles with search, a status filter and paging, kept live (GET every 5 s
// while the tab is shown); a VIN opens the vehicle, and a whole VIN typed or pasted into
// the search opens it straight away.

import { get } from "./api.js";
import { badge, clear, every, field, h, select } from "./dom.js";
import { pagedTable } from "./paged.js";
import { POLL_MS, transportText } from "./vehicle.js";

const VIN = /^[A-HJ-NPR-Z0-9]{17}$/;
const HEADS = ["VIN", "Vehicle", "Connection", "Transport"];
const state = { search: "", status: "", offset: 0 };

function transport(vehicle) {
  // A DoIP vehicle has no simulator profile: only its transport is shown.
  return vehicle.transport === "doip"
    ? badge("doip", transportText(vehicle))
    : [
        `${transportText(vehicle)} `,
        badge(`profile-${vehicle.simulator_profile}`, vehicle.simulator_profile),
      ];
}

export function vehicleCells(vehicle) {
  return [
    h(
      "a",
      {
        href: `#/vehicle/${vehicle.vin}`,
        "aria-label": `Open ${vehicle.make} ${vehicle.model} ${vehicle.vin}`,
      },
      vehicle.vin,
    ),
    `${vehicle.make} ${vehicle.model} (${vehicle.year})`,
    badge(vehicle.connection_status, vehicle.connection_status),
    transport(vehicle),
  ];
}

export async function showFleet(section) {
  const search = h("input", { type: "search", value: state.search, maxlength: 64 });
  const status = select(
    [
      ["", "any status"],
      ["connected", "connected"],
      ["disconnected", "disconnected"],
    ],
    state.status,
  );
  const list = pagedTable(state, {
    path: "/api/v1/vehicles",
    filters: () => ({ search: state.search, status: state.status }),
    caption: "Vehicles",
    heads: HEADS,
    empty: "No vehicle matches.",
    label: "Fleet pages",
    row: vehicleCells,
  });

  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: async (event) => {
        event.preventDefault();
        const text = search.value.trim();
        if (VIN.test(text.toUpperCase())) {
          // A VIN: that vehicle, if the service has it (else the search says none).
          try {
            const vehicle = await get(`/api/v1/vehicles/${encodeURIComponent(text)}`);
            location.hash = `#/vehicle/${vehicle.vin}`;
            return;
          } catch {
            // not one of ours: searched as text below
          }
        }
        state.search = text;
        state.status = status.value;
        list.restart();
      },
    },
    field("Search", search, "VIN, make or model"),
    field("Status", status),
    h("button", { type: "submit" }, "Filter"),
  );
  status.addEventListener("change", () => form.requestSubmit());

  clear(section, h("h2", { id: "fleet-title" }, "Fleet"), form, ...list.nodes);
  await list.load();
  return every(POLL_MS, list.load);
}
