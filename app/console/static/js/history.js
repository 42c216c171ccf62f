// History: the user's commands (every user's for admins) with status, vehicle, user and
// time filters and paging; one command's answers, live while it runs.

import { get } from "./api.js";
import { clear, field, h, select, vehicleName, when } from "./dom.js";
import { pagedTable } from "./paged.js";
import { LiveCommand } from "./stream.js";
import { statusBadge } from "./words.js";

const STATUSES = ["pending", "in_progress", "completed", "failed", "timeout", "cancelled"];
const state = { status: "", vehicle_id: "", user_id: "", since: "", until: "", offset: 0 };

/** A datetime-local value as the ISO instant (with zone) the API wants. */
function instant(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

export async function showHistory(section, { isAdmin }) {
  const [fleet, users] = await Promise.all([
    get("/api/v1/vehicles", { limit: 200 }),
    isAdmin ? get("/api/v1/users") : Promise.resolve({ items: [] }),
  ]);
  const vehicles = new Map(fleet.items.map((v) => [v.vehicle_id, v]));
  const names = new Map(users.items.map((u) => [u.user_id, u.username]));

  const status = select(
    [["", "any status"], ...STATUSES.map((s) => [s, s.replace("_", " ")])],
    state.status,
  );
  const vehicle = select(
    [["", "any vehicle"], ...fleet.items.map((v) => [v.vehicle_id, vehicleName(v)])],
    state.vehicle_id,
  );
  const user = select(
    [["", "any user"], ...users.items.map((u) => [u.user_id, u.username])],
    state.user_id,
  );
  const since = h("input", { type: "datetime-local", value: state.since });
  const until = h("input", { type: "datetime-local", value: state.until });
  const heads = ["Submitted", "Command", "Vehicle", isAdmin ? "User" : null, "Status"].filter(
    Boolean,
  );
  const list = pagedTable(state, {
    path: "/api/v1/commands",
    filters: () => ({
      status: state.status,
      vehicle_id: state.vehicle_id,
      user_id: state.user_id,
      since: instant(state.since),
      until: instant(state.until),
    }),
    caption: "Commands",
    heads,
    empty: "No command matches.",
    label: "History pages",
    row: (c) => {
      const v = vehicles.get(c.vehicle_id);
      return [
        when(c.submitted_at),
        h(
          "a",
          {
            href: `#/command/${c.command_id}`,
            "aria-label": `Open ${c.command_name} of ${when(c.submitted_at)}`,
          },
          c.command_name,
        ),
        v ? vehicleName(v) : c.vehicle_id,
        isAdmin ? names.get(c.user_id) || c.user_id : null,
        statusBadge(c.status),
      ].filter((cell) => cell !== null);
    },
  });

  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (event) => {
        event.preventDefault();
        Object.assign(state, {
          status: status.value,
          vehicle_id: vehicle.value,
          user_id: isAdmin ? user.value : "",
          since: since.value,
          until: until.value,
        });
        list.restart();
      },
    },
    field("Status", status),
    field("Vehicle", vehicle),
    isAdmin ? field("User", user) : null,
    field("From", since),
    field("Until", until),
    h("button", { type: "submit" }, "Filter"),
  );
  clear(
    section,
    h("h2", { id: "history-title" }, isAdmin ? "History (all users)" : "Your history"),
    form,
    ...list.nodes,
  );
  await list.load();
}

export async function showCommand(section, { arg }) {
  const id = encodeURIComponent(arg);
  const command = await get(`/api/v1/commands/${id}`);
  const live = new LiveCommand(command);
  const vehicle = await get(`/api/v1/vehicles/${command.vehicle_id}`).catch(() => null);
  const params = Object.entries(command.command_params)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");
  clear(
    section,
    h("p", {}, h("a", { href: "#/history" }, "← History")),
    h("h2", { id: "command-title" }, `${command.command_name} ${params}`),
    h(
      "p",
      {},
      `Submitted ${when(command.submitted_at)}`,
      command.completed_at ? `, ended ${when(command.completed_at)}` : "",
      " · ",
      h(
        "a",
        { href: `#/vehicle/${vehicle ? vehicle.vin : command.vehicle_id}` },
        vehicle ? vehicleName(vehicle) : "Vehicle",
      ),
    ),
    live.node,
  );
  if (live.cancelButton.hidden) {
    live.showStored(await storedAnswer(id));
  } else {
    live.start(); // replays what is stored, then follows it live
  }
  return () => live.stop();
}

// A command's stored answer, read a page at a time (a page holds at most 1000 chunks; the
// service caps an answer at SOVD_MAX_CHUNKS_PER_COMMAND chunks, 4096 by default).
async function storedAnswer(id) {
  const items = [];
  let after = 0;
  for (;;) {
    const page = await get(`/api/v1/commands/${id}/responses`, { limit: 1000, after });
    items.push(...page.items);
    if (page.next_after === null || page.next_after === undefined) return items;
    after = page.next_after;
  }
}
