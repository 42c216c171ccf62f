// Administration of the ECU descriptions (PDX files, /api/v1/descriptions): upload one,
// see what it holds (its ECUs, their addresses, services and DTCs), bind one of its ECUs
// to a vehicle (the vehicle's ecus[].description), remove it. Errors in words.

import { get, patch, remove, upload } from "./api.js";
import { badge, clear, field, h, select, table, vehicleName } from "./dom.js";
import { explain, explainForm } from "./words.js";

const ZIP = "application/zip";
const LOADING_POLL_MS = 500; // while a file is being read (seconds at most)
const NEW_ECU = "";

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function holds(description) {
  if (description.state === "failed") return description.error || "could not be read";
  if (description.state !== "ready") return "reading…";
  const lines = description.containers.flatMap((c) =>
    c.base_variants.map((b) => {
      const variants = c.ecu_variants.filter((v) => v.base_variant === b.name).length;
      const at = b.logical_address ? ` at ${b.logical_address}` : "";
      const more = variants ? `, ${variants} variant${variants === 1 ? "" : "s"}` : "";
      const counted = `${plural(b.services, "service")}, ${plural(b.dtcs, "DTC")}`;
      return h("div", {}, h("strong", {}, b.name), `${at}: ${counted}${more}`);
    }),
  );
  return lines.length ? lines : "no ECU";
}

/** The vehicle's ECUs as PATCH takes them, with `container` bound in place of `replaced`
 * (an address; NEW_ECU: added, at the address its description gives). */
export function boundEcus(vehicle, container, replaced) {
  const keep = (e) =>
    e.description ? { description: e.description, address: e.address } : { ...e };
  const others = vehicle.ecus.filter((e) => e.address !== replaced).map(keep);
  const bound = replaced === NEW_ECU ? { description: container } : { description: container, address: replaced };
  return [...others, bound];
}

export function descriptionsPanel() {
  const result = h("p", { class: "outcome-line", role: "status", "aria-live": "polite" });
  const problem = h("p", { class: "error", role: "alert" });
  const list = table("ECU descriptions", ["File", "State", "Holds", "Action"], [], "None yet.");
  const file = h("input", { type: "file", accept: ".pdx,application/zip", name: "pdx" });
  const container = select([], "");
  const vehicle = select([], "");
  const replaced = select([], NEW_ECU);
  let vehicles = [];

  function ecuChoices() {
    const chosen = vehicles.find((v) => v.vehicle_id === vehicle.value);
    const options = [[NEW_ECU, "as a new ECU"]].concat(
      (chosen ? chosen.ecus : []).map((e) => [e.address, `in place of ${e.name} (${e.address})`]),
    );
    clear(
      replaced,
      options.map(([value, text]) => h("option", { value }, text)),
    );
  }
  vehicle.addEventListener("change", ecuChoices);

  async function load() {
    const [files, fleet] = await Promise.all([
      get("/api/v1/descriptions"),
      get("/api/v1/vehicles", { limit: 200 }),
    ]);
    vehicles = fleet.items;
    list.fill(
      files.items.map((d) => [
        { header: d.name },
        badge(d.state === "ready" ? "enabled" : d.state === "failed" ? "failed" : "pending", d.state),
        holds(d),
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Remove ${d.name}`,
            onclick: () => act(async () => {
              await remove(`/api/v1/descriptions/${encodeURIComponent(d.name)}`);
              clear(result, `Removed ${d.name}.`);
            }),
          },
          "Remove",
        ),
      ]),
    );
    const names = files.items
      .filter((d) => d.state === "ready")
      .flatMap((d) => d.containers.map((c) => [c.name, `${c.name} (${d.name})`]));
    const keptContainer = container.value;
    clear(
      container,
      names.map(([value, text]) => h("option", { value, selected: value === keptContainer }, text)),
    );
    const keptVehicle = vehicle.value;
    clear(
      vehicle,
      vehicles.map((v) =>
        h("option", { value: v.vehicle_id, selected: v.vehicle_id === keptVehicle }, vehicleName(v)),
      ),
    );
    ecuChoices();
    if (files.items.some((d) => d.state === "loading")) {
      setTimeout(() => load().catch((e) => clear(problem, explain(e))), LOADING_POLL_MS);
    }
  }

  async function act(work) {
    clear(problem);
    clear(result);
    try {
      await work();
      await load();
    } catch (error) {
      clear(problem, explainForm(error, { name: "PDX file", ecus: "ECU", description: "ECU description" }));
    }
  }

  const uploadForm = h(
    "form",
    {
      class: "filters",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const chosen = file.files[0];
        if (!chosen) {
          clear(problem, "PDX file: choose a .pdx file first.");
          return;
        }
        act(async () => {
          const added = await upload("/api/v1/descriptions", { name: chosen.name }, chosen, ZIP);
          event.target.reset();
          clear(result, `Uploaded ${added.name}.`);
        });
      },
    },
    field("PDX file", file),
    h("button", { type: "submit" }, "Upload"),
  );

  const bindForm = h(
    "form",
    {
      class: "filters",
      novalidate: true,
      onsubmit: (event) => {
        event.preventDefault();
        const target = vehicles.find((v) => v.vehicle_id === vehicle.value);
        if (!container.value || !target) {
          clear(problem, "Upload a description and choose a vehicle first.");
          return;
        }
        act(async () => {
          const changed = await patch(`/api/v1/vehicles/${target.vehicle_id}`, {
            ecus: boundEcus(target, container.value, replaced.value),
          });
          const ecu = changed.ecus.find((e) => e.description === container.value);
          clear(
            result,
            `Bound ${container.value} to `,
            h("a", { href: `#/vehicle/${changed.vin}` }, vehicleName(changed)),
            ecu ? ` as its ECU ${ecu.name} (${ecu.address}).` : ".",
          );
        });
      },
    },
    field("ECU description", container),
    field("Vehicle", vehicle),
    field("Bind", replaced),
    h("button", { type: "submit" }, "Bind"),
  );

  const node = h(
    "section",
    { class: "card", "aria-labelledby": "descriptions-title" },
    h("h3", { id: "descriptions-title" }, "ECU descriptions"),
    h(
      "p",
      { class: "hint" },
      "PDX files: an ECU bound to one shows the data, operations, faults and modes its " +
        "description holds.",
    ),
    uploadForm,
    list.node,
    bindForm,
    problem,
    result,
  );
  return { node, load };
}
