// Live numbers, read from the service's own /metrics (the same telemetry Prometheus
// scrapes) every few seconds: commands per minute, success rate, p95 duration, open
// streams. Links to /metrics, /openapi.json and Prometheus when configured.

import { clear, h } from "./dom.js";

const EVERY_MS = 5000;
const WINDOW_MS = 60_000;
const EXECUTED = "commands_executed_total";
const DURATION_BUCKET = "command_execution_duration_seconds_bucket";
const STREAMS = "websocket_connections_active";

/** The Prometheus text format's samples: [{name, labels, value}]. */
export function parseMetrics(text) {
  const samples = [];
  const line = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/;
  const label = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (const raw of text.split("\n")) {
    if (!raw || raw.startsWith("#")) continue;
    const match = line.exec(raw);
    if (!match) continue;
    const labels = {};
    for (const [, key, value] of (match[2] || "").matchAll(label)) labels[key] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

function total(samples, name, where = () => true) {
  return samples
    .filter((s) => s.name === name && where(s.labels))
    .reduce((sum, s) => sum + s.value, 0);
}

/** The q-quantile of a cumulative histogram (as PromQL's histogram_quantile does). */
export function quantile(samples, name, q) {
  const buckets = new Map();
  for (const s of samples) {
    if (s.name !== name) continue;
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  }
  const bounds = [...buckets.keys()].sort((a, b) => a - b);
  const count = buckets.get(Infinity) || 0;
  if (!count) return null;
  const rank = q * count;
  let lower = 0;
  let below = 0;
  for (const bound of bounds) {
    const cumulative = buckets.get(bound);
    if (cumulative >= rank) {
      if (bound === Infinity) return lower; // beyond the last finite bucket
      return lower + ((bound - lower) * (rank - below)) / Math.max(cumulative - below, 1e-9);
    }
    lower = bound;
    below = cumulative;
  }
  return null;
}

function figure(label, value) {
  return h("div", { class: "figure" }, h("dt", {}, label), h("dd", {}, value));
}

export async function showNumbers(section) {
  const settings = await (await fetch("/console/settings.json")).json();
  const figures = h("dl", { class: "figures", "aria-live": "polite" });
  const note = h("p", { class: "hint" });
  const links = [
    h("a", { href: "/metrics" }, "/metrics"),
    " · ",
    h("a", { href: "/openapi.json" }, "/openapi.json"),
  ];
  if (settings.prometheus_url) {
    links.push(" · ", h("a", { href: settings.prometheus_url, rel: "noopener" }, "Prometheus"));
  }
  clear(
    section,
    h("h2", { id: "numbers-title" }, "Live numbers"),
    figures,
    note,
    h("p", {}, links),
  );
  if (!settings.metrics_enabled) {
    clear(note, "Metrics are turned off on this service (SOVD_METRICS_ENABLED=false).");
    return null;
  }
  if (settings.metrics_need_token) {
    clear(note, "/metrics needs its own token here (SOVD_METRICS_TOKEN): see Prometheus.");
    return null;
  }
  const history = []; // [time, commands ended] over the last minute

  async function poll() {
    let samples;
    try {
      const response = await fetch("/metrics");
      if (!response.ok) throw new Error(`${response.status}`);
      samples = parseMetrics(await response.text());
    } catch {
      clear(note, "Could not read /metrics just now; retrying.");
      return;
    }
    const now = Date.now();
    const ended = total(samples, EXECUTED);
    history.push([now, ended]);
    while (history.length > 1 && now - history[0][0] > WINDOW_MS) history.shift();
    const [since, first] = history[0];
    const perMinute =
      now > since ? (((ended - first) * 60_000) / (now - since)).toFixed(1) : "…";
    const completed = total(samples, EXECUTED, (l) => l.status === "completed");
    const p95 = quantile(samples, DURATION_BUCKET, 0.95);
    clear(
      figures,
      figure("Commands per minute", perMinute),
      figure("Success rate", ended ? `${((completed / ended) * 100).toFixed(1)} %` : "—"),
      figure("p95 duration", p95 === null ? "—" : `${(p95 * 1000).toFixed(0)} ms`),
      figure("Open streams", String(total(samples, STREAMS))),
    );
    clear(
      note,
      `Success rate and p95 since the service started (${ended} commands ended); ` +
        `per minute over the last ${Math.round((now - since) / 1000)} s. ` +
        `Refreshed every ${EVERY_MS / 1000} s.`,
    );
  }

  await poll();
  const timer = setInterval(poll, EVERY_MS);
  return () => clearInterval(timer);
}
