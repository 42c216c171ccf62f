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

function operationRow(base, ecu, op, bound, hooks) {
  const path = `${base}/operations/${encodeURIComponent(op.id)}/executions`;
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
    clear(results);
    clear(state, "Starting…");
    state.className = "state";
    bar.value = 0;
    bar.hidden = false;
    try {
      const { body, headers } = await exchange("POST", path, { body: {} });
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
          if (payload.progress !== undefined) bar.value = payload.progress;
          if (payload.status) {
            last = payload;
            clear(state, routineState(payload));
          }
        },
        (status, code, message) => ended(status, code, message, last),
      );
    } catch (error) {
      clear(state);
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

  async function askResults() {
    clear(problem);
    try {
      const { body, headers } = await exchange("GET", `${path}/${encodeURIComponent(running)}`);
      clear(state, `Routine ${body.status}.`, commandLink(headers));
      clear(results, dataText(body.parameters));
      if (body.status !== "running") runningNow(null);
    } catch (error) {
      showError(problem, error);
    } finally {
      hooks.afterCall();
    }
  }

  bar.hidden = true;
  return h(
    "div",
    { class: "operation" },
    h("div", { class: "row" }, h("strong", {}, op.name), start, stop, ask),
    bar,
    state,
    results,
    problem,
  );
}

/** The operations of component `ecu` (its SOVD base `base`); `bound`: its tree comes
 * from an ODX description. */
export function operationsSection(base, ecu, operations, bound, hooks) {
  return h(
    "div",
    { class: "operations" },
    operations.map((op) => operationRow(base, ecu, op, bound, hooks)),
  );
}
