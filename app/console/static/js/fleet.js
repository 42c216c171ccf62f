// The fleet: vehicles with search, a status filter and paging; a VIN opens the vehicle.

import { get } from "./api.js";
import { badge, clear, field, h, pager, select } from "./dom.js";
import { explain } from "./words.js";

const PAGE_SIZE = 20;
const state = { search: "", status: "", offset: 0 };

export function vehicleRow(vehicle) {
  return h(
    "tr",
    {},
    h(
      "td",
      {},
      h(
        "a",
        {
          href: `#/vehicle/${vehicle.vehicle_id}`,
          "aria-label": `Open ${vehicle.make} ${vehicle.model} ${vehicle.vin}`,
        },
        vehicle.vin,
      ),
    ),
    h("td", {}, `${vehicle.make} ${vehicle.model} (${vehicle.year})`),
    h("td", {}, badge(vehicle.connection_status, vehicle.connection_status)),
    h(
      "td",
      {},
      vehicle.transport === "doip"
        ? badge("doip", "DoIP")
        : badge(`profile-${vehicle.simulator_profile}`, vehicle.simulator_profile),
    ),
  );
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
  const body = h("tbody");
  const paging = h("div");
  const error = h("p", { class: "error", role: "alert" });
  const table = h(
    "div",
    { class: "scroll" },
    h(
      "table",
      {},
      h("caption", { class: "visually-hidden" }, "Vehicles"),
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["VIN", "Vehicle", "Connection", "Profile"].map((t) => h("th", { scope: "col" }, t)),
        ),
      ),
      body,
    ),
  );

  async function load() {
    try {
      const page = await get("/api/v1/vehicles", {
        search: state.search,
        status: state.status,
        limit: PAGE_SIZE,
        offset: state.offset,
      });
      clear(error);
      clear(
        body,
        page.items.length
          ? page.items.map(vehicleRow)
          : h("tr", {}, h("td", { colspan: 4 }, "No vehicle matches.")),
      );
      clear(
        paging,
        pager(page, "Fleet pages", (offset) => {
          state.offset = offset;
          load();
        }),
      );
    } catch (failure) {
      clear(error, explain(failure));
    }
  }

  const form = h(
    "form",
    {
      class: "filters",
      role: "search",
      onsubmit: (event) => {
        event.preventDefault();
        state.search = search.value.trim();
        state.status = status.value;
        state.offset = 0;
        load();
      },
    },
    field("Search", search, "VIN, make or model"),
    field("Status", status),
    h("button", { type: "submit" }, "Filter"),
  );
  status.addEventListener("change", () => form.requestSubmit());

  clear(section, h("h2", { id: "fleet-title" }, "Fleet"), form, error, table, paging);
  await load();
}
