// A component's operations (UDS 0x31 routines) from its SOVD tree: Start, and while an
// asynchronous one runs, one progress bar updated in place (the execution is a command:
// its answer streams over /ws/responses/{id}), Stop and Results where the operation has
// them, and its end in words.

import { accessToken, exchange } from "./api.js";
import { clear, h } from "./dom.js";
import { commandLink, dataText, outcome, routineState, showError } from "./words.js";

/** Follows command `id`'s answer until it ends: onChunk(payload) per answer chunk,
 * onEnd(status, errorCode, errorMessage) once. Answers a function that stops following. */
function follow(id, onChunk, onEnd) {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const params = new URLSearchParams({ token: accessToken() || "", since: 0 });
  const socket = new WebSocket(`${scheme}://${location.host}/ws/responses/${id}?${params}`);
  let ended = false;
  const end = (...args) => {
    if (ended) return;
    ended = true;
    onEnd(...args);
    socket.close(1000);
  };
  socket.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (event.event === "response") onChunk(event.response_payload);
    else if (event.event === "status" && event.status === "completed") end("completed");
    else if (event.event === "error") end(event.status, event.error_code, event.error_message);
  });
  socket.addEventListener("close", () => end("lost"));
  return () => {
    ended = true;
    socket.close(1000);
  };
}

const NUMBER = /^A_(U?INT\d+|FLOAT\d+)$/;
// A described routine runs on in the ECU after its start: while it runs, its results are
// asked this often (each a command, in the history) to move its bar.
const RESULTS_EVERY_MS = 500;

/** A routine's state and progress in an answer: a simulated ECU's chunk says them as
 * `status` and `progress`; a described one's parameters as its description names them
 * (such as RoutineState and Progress): the first text parameter named *state or
 * *status, the first number named *progress. */
export function routineOf(parameters) {
  const found = { status: undefined, progress: undefined };
  for (const [key, value] of Object.entries(parameters || {})) {
    if (found.progress === undefined && /progress$/i.test(key) && typeof value === "number") {
      found.progress = value;
    } else if (found.status === undefined && /(state|status)$/i.test(key)) {
      if (typeof value === "string") found.status = value.toLowerCase();
    }
  }
  return found;
}

/** One typed field per request parameter of the operation's start service (from its
 * description): a select where a text table lists the values, a number for a number,
 * else text. Answers {node, read}: read() gives the parameters or throws a sentence. */
export function parameterFields(op, ecu, params) {
  const fields = params.map((p) => {
    const label = `${p.name}${p.unit ? ` (${p.unit})` : ""}${p.required ? "" : " (optional)"}`;
    const numeric = NUMBER.test(p.type);
    const control = p.values.length
      ? h(
          "select",
          { "aria-label": `${label} for ${op.name} of ${ecu}` },
          p.required ? null : h("option", { value: "" }, "—"),
          p.values.map((v) => h("option", { value: v }, v)),
        )
      : h("input", {
          "aria-label": `${label} for ${op.name} of ${ecu}`,
          type: numeric ? "number" : "text",
          step: /FLOAT/.test(p.type) ? "any" : undefined,
          autocomplete: "off",
        });
    const read = () => {
      const raw = control.value.trim();
      if (!raw) {
        if (p.required) throw new Error(`${p.name}: required`);
        return undefined;
      }
      if (!numeric) return raw;
      const value = Number(raw);
      if (!Number.isFinite(value)) throw new Error(`${p.name}: a number`);
      return value;
    };
    return { name: p.name, read, node: h("label", { class: "param" }, label, control) };
  });
  return {
    node: fields.length ? h("div", { class: "row params" }, fields.map((f) => f.node)) : null,
    read: () => {
      const values = {};
      for (const f of fields) {
        const value = f.read();
        if (value !== undefined) values[f.name] = value;
      }
      return values;
    },
  };
}

/** One typed field per property of the operation's ExecutionParameters schema (GET
 * .../operations/{id}?include-schema=true: its $defs): a select of an enum's values, a
 * number input with the unit in its label and the description's limits as min/max (the
 * ECU is the judge of the limits: a value beyond them is sent, and its refusal shown),
 * else text. Answers {node, read} as parameterFields does. */
export function schemaFields(op, ecu, schema) {
  const required = new Set(schema.required || []);
  const fields = Object.entries(schema.properties || {}).map(([name, p]) => {
    const needed = required.has(name);
    const unit = p["x-unit"];
    const label = `${name}${unit ? ` (${unit})` : ""}${needed ? "" : " (optional)"}`;
    const numeric = p.type === "integer" || p.type === "number";
    const ariaLabel = `${label} for ${op.name} of ${ecu}`;
    const control = Array.isArray(p.enum)
      ? h(
          "select",
          { "aria-label": ariaLabel },
          needed ? null : h("option", { value: "" }, "—"),
          p.enum.map((v) => h("option", { value: v }, v)),
        )
      : h("input", {
          "aria-label": ariaLabel,
          type: numeric ? "number" : "text",
          min: numeric && p.minimum !== undefined ? String(p.minimum) : undefined,
          max: numeric && p.maximum !== undefined ? String(p.maximum) : undefined,
          step: numeric ? (p.type === "integer" ? "1" : "any") : undefined,
          autocomplete: "off",
        });
    const limits =
      numeric && (p.minimum !== undefined || p.maximum !== undefined)
        ? h(
            "span",
            { class: "hint" },
            `${p.minimum ?? "…"} to ${p.maximum ?? "…"}${unit ? ` ${unit}` : ""}`,
          )
        : null;
    const read = () => {
      const raw = control.value.trim();
      if (!raw) {
        if (needed) throw new Error(`${name}: required`);
        return undefined;
      }
      if (!numeric) return raw;
      const value = Number(raw);
      if (!Number.isFinite(value)) throw new Error(`${name}: a number`);
      if (p.type === "integer" && !Number.isInteger(value)) throw new Error(`${name}: a whole number`);
      return value;
    };
    return { name, read, node: h("label", { class: "param" }, label, control, limits) };
  });
  return {
    node: fields.length ? h("div", { class: "row params" }, fields.map((f) => f.node)) : null,
    read: () => {
      const values = {};
      for (const f of fields) {
        const value = f.read();
        if (value !== undefined) values[f.name] = value;
      }
      return values;
    },
  };
}

/** The start service of a described operation: its id and "_Start" (any case, as the
 * service groups them: app/descriptions/sovd_map/operations.py). */
function startService(op, services) {
  const name = `${op.id}_start`.toLowerCase();
  return (services || []).find((s) => s.sid === "0x31" && s.name.toLowerCase().startsWith(name));
}

function operationRow(base, ecu, op, services, hooks) {
  const bound = services !== null;
  const starter = startService(op, services);
  // The fields from the services list at first, then from the operation's own schema
  // (typed, with limits) once it is in.
  let params = parameterFields(op, ecu, starter ? starter.params : []);
  const paramsSlot = h("div", { class: "params-slot" }, params.node);
  const opPath = `${base}/operations/${encodeURIComponent(op.id)}`;
  const path = `${opPath}/executions`;
  if (bound) {
    exchange("GET", `${opPath}?include-schema=true`).then(
      ({ body }) => {
        const schema = body.schema && body.schema.$defs && body.schema.$defs.ExecutionParameters;
        if (!schema) return;
        params = schemaFields(op, ecu, schema);
        paramsSlot.replaceChildren(...(params.node ? [params.node] : []));
        paramsSlot.dataset.schema = "loaded";
      },
      () => {}, // the services' fields stay
    );
  }
  const bar = h("progress", { max: 100, value: 0, "aria-label": `Progress of ${op.name}` });
  const state = h("p", { class: "state", role: "status", "aria-live": "polite" });
  const results = h("div", { class: "results" });
  const problem = h("p", { class: "error", role: "alert" });
  let running = null; // the execution's id while it runs
  let unfollow = null;

  const start = h(
    "button",
    { type: "button", "aria-label": `Start ${op.name} of ${ecu}`, onclick: () => run() },
    "Start",
  );
  const stop = h(
    "button",
    {
      type: "button",
      class: "danger",
      hidden: true,
      "aria-label": `Stop ${op.name} of ${ecu}`,
      onclick: () => halt(),
    },
    "Stop",
  );
  const ask = h(
    "button",
    {
      type: "button",
      class: "secondary",
      hidden: true,
      "aria-label": `Results of ${op.name} of ${ecu}`,
      onclick: () => askResults(),
    },
    "Results",
  );

  function runningNow(id) {
    running = id;
    start.disabled = Boolean(id);
    // An execution the service follows (a simulated ECU's) can always be stopped; a
    // described one where its description has a stop service.
    stop.hidden = !id || (bound && op.has_stop === false);
    ask.hidden = !id || !bound || !op.has_request_results;
  }

  function ended(status, errorCode, errorMessage, last) {
    unfollow = null;
    if (status === "lost") {
      clear(state, "Live updates stopped; press Results to ask the ECU.");
      return;
    }
    if (bound && status === "completed") {
      // Its start was accepted; it runs on in the ECU until asked or stopped.
      clear(state, "Started: running in the ECU.");
      hooks.afterCall();
      if (op.has_request_results) followResults(running);
      return;
    }
    bar.value = bar.max;
    if (status === "completed" && last && last.status) clear(state, routineState(last));
    else if (status === "cancelled") clear(state, "Routine stopped");
    else clear(state, outcome(status, errorCode, errorMessage));
    state.className = `state state-${last && last.status ? last.status : status}`;
    runningNow(null);
    hooks.afterCall();
  }

  async function run() {
    clear(problem);
    let parameters;
    try {
      parameters = params.read();
    } catch (wrong) {
      clear(problem, wrong.message);
      return;
    }
    clear(results);
    clear(state, "Starting…");
    state.className = "state";
    bar.value = 0;
    bar.hidden = false;
    try {
      const sent = Object.keys(parameters).length ? { parameters } : {};
      const { body, headers } = await exchange("POST", path, { body: sent });
      if (!body.id) {
        // Synchronous: it ran; this is its answer.
        clear(state, "Completed.", commandLink(headers));
        if (Object.keys(body.parameters || {}).length) clear(results, dataText(body.parameters));
        bar.value = bar.max;
        hooks.afterCall();
        return;
      }
      runningNow(body.id);
      let last = null;
      unfollow = follow(
        body.id,
        (payload) => {
          const now = routineOf(payload.parameters || payload);
          if (now.progress !== undefined) bar.value = now.progress;
          if (now.status) {
            last = now;
            clear(state, routineState(now));
          }
        },
        (status, code, message) => ended(status, code, message, last),
      );
    } catch (error) {
      clear(state);
      bar.hidden = true; // it never ran: no bar, the refusal says why
      showError(problem, error);
      runningNow(null);
      hooks.afterCall();
    }
  }

  async function halt() {
    clear(problem);
    try {
      await exchange("DELETE", `${path}/${encodeURIComponent(running)}`);
      if (bound) {
        if (unfollow) unfollow();
        clear(state, "Routine stopped");
        runningNow(null);
      }
      // A followed execution ends on its stream ("Routine stopped").
    } catch (error) {
      showError(problem, error);
    } finally {
      hooks.afterCall();
    }
  }

  // A described routine, followed by asking its results until it says it has ended (or
  // says nothing of its state: then once), it is stopped, or the page is left.
  async function followResults(id) {
    while (running === id && row.isConnected) {
      await new Promise((resolve) => setTimeout(resolve, RESULTS_EVERY_MS));
      if (running !== id || !row.isConnected) return;
      let body;
      try {
        ({ body } = await exchange("GET", `${path}/${encodeURIComponent(id)}`));
      } catch (error) {
        showError(problem, error);
        return;
      }
      const now = routineOf(body.parameters);
      if (now.progress !== undefined) bar.value = now.progress;
      if (now.status === "running") {
        clear(state, routineState(now));
        continue;
      }
      if (now.status) {
        bar.value = bar.max;
        clear(state, routineState(now));
        state.className = `state state-${now.status}`;
        runningNow(null);
      } else {
        clear(results, dataText(body.parameters));
      }
      hooks.afterCall();
      return;
    }
  }

  async function askResults() {
    clear(problem);
    try {
      const { body, headers } = await exchange("GET", `${path}/${encodeURIComponent(running)}`);
      const now = routineOf(body.parameters);
      if (now.progress !== undefined) bar.value = now.progress;
      clear(state, now.status ? routineState(now) : `Routine ${body.status}.`, commandLink(headers));
      clear(results, dataText(body.parameters));
      if ((now.status || body.status) !== "running") runningNow(null);
    } catch (error) {
      showError(problem, error);
    } finally {
      hooks.afterCall();
    }
  }

  bar.hidden = true;
  const row = h(
    "div",
    { class: "operation" },
    h("div", { class: "row" }, h("strong", {}, op.name), start, stop, ask),
    paramsSlot,
    bar,
    state,
    results,
    problem,
  );
  return row;
}

/** The operations of component `ecu` (its SOVD base `base`); `services`: a described
 * ECU's services (its tree comes from an ODX description), null for one that is not. */
export function operationsSection(base, ecu, operations, services, hooks) {
  return h(
    "div",
    { class: "operations" },
    operations.map((op) => operationRow(base, ecu, op, services, hooks)),
  );
}
