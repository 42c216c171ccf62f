// The service's codes in plain words, and answers rendered readably.

import { badge, h } from "./dom.js";

export const TERMINAL = new Set(["completed", "failed", "timeout", "cancelled"]);

const FAILURES = {
  "not-responding": "the vehicle did not answer before the command's deadline.",
  "vehicle-unreachable": "the vehicle could not be reached.",
  "invalid-response-content": "the vehicle's answer could not be decoded, so it was not kept.",
  "request-out-of-range":
    "the ECU refused the request (a negative response): it does not support this identifier or value.",
  interrupted: "the service stopped before the command finished; it was not sent again.",
  "storage-unavailable":
    "the database refused a write, so the command was not sent or its answer not kept.",
  cancelled: "it was cancelled before it finished.",
  "sovd-server-failure": "the service failed while running it.",
};

const OUTCOMES = {
  completed: "Completed",
  failed: "Failed",
  timeout: "Timed out",
  cancelled: "Cancelled",
};

/** "Timed out: the vehicle did not answer before the command's deadline." */
export function outcome(status, errorCode, errorMessage) {
  const head = OUTCOMES[status] || status;
  if (status === "completed") return head;
  const why = FAILURES[errorCode] || errorMessage || "";
  return why ? `${head}: ${why}` : head;
}

const REQUEST_ERRORS = {
  unauthorized: "You are not signed in, or your session has ended.",
  "insufficient-access-rights": "Only administrators may do this.",
  "not-found": "Not found (or not yours).",
  conflict: "Conflict:",
  "vehicle-disconnected": "The vehicle is disconnected.",
  "rate-limited": "Too many requests:",
  overloaded: "The service is busy:",
  "storage-unavailable": "The database cannot write right now:",
};

/** An ApiError (or a network failure) as one sentence for the page. */
export function explain(error) {
  if (!error || error.status === undefined) {
    return "The service did not answer. Is it running?";
  }
  const head = REQUEST_ERRORS[error.code];
  let text = head && head.endsWith(":") ? `${head} ${error.message}` : head || error.message;
  if (error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
  return text;
}

export function statusBadge(status) {
  return badge(status, status.replace("_", " "));
}

function dtc(payload) {
  return h(
    "div",
    { class: "chunk chunk-dtc" },
    h("strong", { class: "dtc" }, payload.dtcCode),
    " ",
    badge("dtc", payload.status || "?"),
    payload.description ? ` ${payload.description}` : "",
    payload.ecuAddress ? h("small", {}, ` (ECU ${payload.ecuAddress})`) : "",
  );
}

function value(payload) {
  const name = payload.name || payload.dataId;
  return h(
    "div",
    { class: "chunk chunk-value" },
    h("strong", {}, name),
    ` = ${payload.value}`,
    payload.unit ? ` ${payload.unit}` : "",
    payload.dataId ? h("small", {}, ` (${payload.dataId})`) : "",
  );
}

function generic(payload) {
  const parts = Object.entries(payload).map(([key, item]) =>
    h(
      "span",
      { class: "pair" },
      h("span", { class: "key" }, key),
      " ",
      typeof item === "object" ? JSON.stringify(item) : String(item),
    ),
  );
  return h("div", { class: "chunk" }, parts);
}

/** One answer chunk, readable: a DTC with its status, a value with its unit, or pairs. */
export function chunk(payload) {
  if (payload && payload.dtcCode) return dtc(payload);
  if (payload && payload.value !== undefined) return value(payload);
  if (payload && payload.totalDtcs !== undefined) {
    return h("div", { class: "chunk" }, `${payload.totalDtcs} DTC(s) stored`);
  }
  if (payload && Array.isArray(payload.clearedDtcs)) {
    const cleared = payload.clearedDtcs.join(", ") || "none";
    return h(
      "div",
      { class: "chunk" },
      `Cleared: ${cleared}; ${payload.remainingDtcs ?? "?"} remaining`,
    );
  }
  return generic(payload || {});
}

// A fault's ISO 14229-1 status bits (the SOVD tree's `status`, keys as CDA spells them):
// the ones people look for first, then the rest; each set bit becomes a badge (titled
// with its ISO name), and the status byte is shown too.
const FAULT_BITS = [
  ["confirmed_dtc", "confirmedDTC", "confirmed", "confirmed"],
  ["pending_dtc", "pendingDTC", "pending", "pending"],
  ["test_failed", "testFailed", "test failed", "failed"],
  ["warning_indicator_requested", "warningIndicatorRequested", "warning lamp", "lamp"],
  ["test_failed_this_operation_cycle", "testFailedThisOperationCycle", "failed this cycle", "bit"],
  ["test_failed_since_last_clear", "testFailedSinceLastClear", "failed since clear", "bit"],
  [
    "test_not_completed_this_operation_cycle",
    "testNotCompletedThisOperationCycle",
    "not completed this cycle",
    "bit",
  ],
  [
    "test_not_completed_since_last_clear",
    "testNotCompletedSinceLastClear",
    "not completed since clear",
    "bit",
  ],
];

/** The set status bits as badges (each titled with its ISO name) and the mask. */
export function faultStatus(status) {
  const bits = FAULT_BITS.filter(([key]) => status && status[key]).map(([, iso, text, kind]) => {
    const node = badge(kind, text);
    node.title = iso;
    return node;
  });
  const mask = status && status.mask ? `0x${status.mask}` : "?";
  return h("span", { class: "bits" }, bits, h("code", { class: "mask" }, `mask ${mask}`));
}

export function faultCount(count) {
  if (count === 0) return "No faults stored.";
  return count === 1 ? "1 fault stored." : `${count} faults stored.`;
}
