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
  "error-response": "the ECU refused the request (a negative response).",
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

/** "serviceNotSupportedInActiveSession" -> "service not supported in active session". */
export function spaced(name) {
  return String(name)
    .replace(/_/g, " ")
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .replace(/\b([A-Z])([a-z])/g, (m, a, b) => a.toLowerCase() + b)
    .trim();
}

function hex(value) {
  if (typeof value === "number") return `0x${value.toString(16).toUpperCase().padStart(2, "0")}`;
  return String(value);
}

/** An ECU's negative response in words: "ECU refused: conditions not correct (0x22)". */
export function refusal(nrc, name) {
  const why = name ? spaced(name) : "negative response";
  return `ECU refused: ${why} (${hex(nrc)})`;
}

/** A described ECU's precondition refusal in words: its parameters {service, chart,
 * needed, current} say "FaultMem_ClearDTCs needs the extended session (now: default);
 * switch it first. Set the session under Modes of this ECU, then try again." (the
 * message itself ends in the API call to make; the page's way is the card's Modes). */
function unmetState(error) {
  const p = error.parameters || {};
  if (error.code !== "precondition-not-fulfilled" || !p.chart || !Array.isArray(p.needed)) {
    return null;
  }
  const state = spaced(p.chart).toLowerCase();
  const needed = p.needed.map((name) => String(name).toLowerCase()).join(" or ");
  const now = p.current ? ` (now: ${String(p.current).toLowerCase()})` : "";
  return (
    `${p.service || "This"} needs the ${needed} ${state}${now}; switch it first.` +
    ` Set the ${state} under Modes of this ECU, then try again.`
  );
}

/** An ApiError (or a network failure) as one sentence for the page. */
export function explain(error) {
  if (!error || error.status === undefined) {
    return "The service did not answer. Is it running?";
  }
  const unmet = unmetState(error);
  if (unmet) return unmet;
  const head = REQUEST_ERRORS[error.code];
  let text = head && head.endsWith(":") ? `${head} ${error.message}` : head || error.message;
  const nrc = error.parameters && error.parameters.nrc;
  if (nrc !== undefined && nrc !== null && error.code === "error-response") {
    text = `${refusal(nrc, error.parameters.nrc_name)}. ${text}`;
  }
  if (error.retryAfter) text += ` Try again in ${error.retryAfter} s.`;
  return text;
}

// msgspec's words for a value it refused, as a person would say them.
const RULES = [
  [/^Expected `str` of length >= (\d+)$/, (n) => `at least ${n} character${n === "1" ? "" : "s"}`],
  [/^Expected `str` of length <= (\d+)$/, (n) => `at most ${n} characters`],
  [/^Expected `(?:int|float|number)` >= (\S+)$/, (n) => `at least ${n}`],
  [/^Expected `(?:int|float|number)` <= (\S+)$/, (n) => `at most ${n}`],
  [/^Expected `(?:int|float|number)`, got .*$/, () => "a number"],
  [/^Expected `str`, got .*$/, () => "required"],
  [/^Invalid enumeration value .*$/, () => "not one of the choices"],
];

/** A form's error with the API's field named by the form's label: the message
 * "body.password: Expected `str` of length >= 8" becomes "Password: at least 8
 * characters". labels: {field: label}; hints: {field: what a right value looks like},
 * said instead of a pattern. Other errors as explain() says them. */
export function explainForm(error, labels, hints = {}) {
  const message = (error && error.message) || "";
  const missing = /^body: Object missing required field `([^`]+)`/.exec(message);
  if (missing && labels[missing[1]]) return `${labels[missing[1]]}: required`;
  const found = /^body\.([A-Za-z0-9_.[\]]+):? (.*)$/s.exec(message);
  if (!found) return explain(error);
  const path = found[1];
  const name = path.split(".").pop().replace(/\[\d+\]$/, "");
  const label = labels[name] || labels[path];
  if (!label) return explain(error);
  let why = found[2];
  if (/^Expected `str` matching regex/.test(why)) {
    why = hints[name] ? `should be ${hints[name]}` : "not in the expected form";
  } else {
    const rule = RULES.find(([pattern]) => pattern.test(why));
    if (rule) why = rule[1](...why.match(rule[0]).slice(1));
    else why = why.replace(/^must /, "should ");
  }
  return `${label}: ${why}`;
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

/** A value with its unit: "922.25 rpm". */
export function withUnit(value, unit) {
  const shown = typeof value === "number" ? String(Math.round(value * 1000) / 1000) : value;
  return unit ? `${shown} ${unit}` : String(shown);
}

function value(payload) {
  const name = payload.name || payload.dataId;
  return h(
    "div",
    { class: "chunk chunk-value" },
    h("strong", {}, name),
    ` = ${withUnit(payload.value, payload.unit)}`,
    payload.dataId ? h("small", {}, ` (${payload.dataId})`) : "",
  );
}

/** Anything without a rendering of its own: pretty JSON, wrapped, scrolling in its card. */
export function json(payload) {
  return h("pre", { class: "json", tabindex: "0" }, JSON.stringify(payload, null, 2));
}

function negative(payload) {
  const n = payload.negativeResponse;
  const service = n.service ? h("small", {}, ` to service ${n.service}`) : "";
  return h("div", { class: "chunk chunk-negative" }, refusal(n.nrc, n.name), service);
}

/** What a chunk is: a "progress" report of a running routine (one bar, updated in
 * place), a "summary" of the answer (said once, not numbered among its items), or an
 * "item" of the answer. */
export function kindOf(payload) {
  if (!payload || typeof payload !== "object") return "item";
  if (payload.routineId !== undefined && (payload.progress !== undefined || payload.status)) {
    return "progress";
  }
  if (payload.totalDtcs !== undefined || Array.isArray(payload.clearedDtcs)) return "summary";
  return "item";
}

/** A summary chunk in words. */
export function summary(payload) {
  if (payload.totalDtcs !== undefined) return faultCount(payload.totalDtcs);
  const cleared = payload.clearedDtcs.join(", ") || "none";
  return `Cleared: ${cleared}; ${payload.remainingDtcs ?? "?"} remaining.`;
}

const ROUTINE_STATES = {
  completed: "Routine completed",
  stopped: "Routine stopped",
  failed: "Routine failed",
  running: "Routine running",
};

/** A routine's state in words: "Routine running: 42 %", "Routine completed". */
export function routineState(payload) {
  const head = ROUTINE_STATES[payload.status] || `Routine ${spaced(payload.status || "running")}`;
  return payload.status === "running" && payload.progress !== undefined
    ? `${head}: ${payload.progress} %`
    : head;
}

/** A described ECU's answer (a DiagService): its service and each parameter by name,
 * with its unit; structured values as JSON. */
function described(payload) {
  const units = payload.units || {};
  return h(
    "div",
    { class: "chunk chunk-described" },
    h("strong", {}, payload.service),
    Object.entries(payload.parameters).map(([key, item]) =>
      h(
        "div",
        { class: "pair" },
        h("span", { class: "key" }, key),
        " ",
        item !== null && typeof item === "object" ? json(item) : withUnit(item, units[key]),
      ),
    ),
  );
}

/** One answer item, readable: a DTC with its status, a value with its unit, an ECU's
 * refusal in words, a described service's parameters with units, or pretty JSON. */
export function chunk(payload) {
  if (payload && payload.negativeResponse) return negative(payload);
  if (payload && payload.service && payload.parameters && typeof payload.parameters === "object") {
    return described(payload);
  }
  if (payload && payload.dtcCode) return dtc(payload);
  if (payload && payload.value !== undefined && (payload.dataId || payload.name)) {
    return value(payload);
  }
  return h("div", { class: "chunk" }, json(payload || {}));
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

const COMMAND_ID = "x-command-id";

/** A link to the command a call ran as (its answer is in the history too). */
export function commandLink(headers) {
  const id = headers && headers.get(COMMAND_ID);
  if (!id) return [];
  return [" ", h("a", { href: `#/command/${encodeURIComponent(id)}` }, "Open in history")];
}

/** An error shown in `node`, tagged with its code: the vehicle page clears the ones that
 * no longer hold (a "disconnected" once the vehicle is connected again). */
export function showError(node, error, ...more) {
  node.dataset.code = (error && error.code) || "";
  node.replaceChildren(explain(error), ...more.flat());
}

/** A data value as people read it: "922.25 rpm", "Oil temperature: 41 degC", or (a
 * structure) pretty JSON. */
export function dataText(data, unit) {
  if (data === null || data === undefined) return "—";
  if (typeof data !== "object") return withUnit(data, unit);
  if (data.value !== undefined && typeof data.value !== "object") {
    return withUnit(data.value, data.unit ?? unit);
  }
  const entries = Object.entries(data);
  const simple = entries.every(([, v]) => v === null || typeof v !== "object");
  if (!simple) return json(data);
  if (entries.length === 1) return withUnit(entries[0][1], unit);
  return entries.map(([k, v]) => `${k}: ${withUnit(v, null)}`).join("; ");
}

