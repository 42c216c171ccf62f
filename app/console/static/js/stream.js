// A command's answer, live: the WebSocket /ws/responses/{id}, resumed with `since` (the
// last sequence number shown) when it drops, and a Cancel button while it runs.

import { accessToken, postJson, refresh } from "./api.js";
import { clear, h } from "./dom.js";
import {
  TERMINAL,
  chunk,
  explain,
  kindOf,
  outcome,
  routineState,
  statusBadge,
  summary,
} from "./words.js";

const MAX_RETRIES = 5;
const ROUTINE_FIELDS = new Set(["ecuAddress", "routineId", "action", "status", "progress"]);
// Close codes after which reconnecting cannot help (see the README's close codes).
const FINAL_CLOSES = {
  4404: "This command does not exist, or it is not yours.",
  4400: "The stream refused the resume point.",
  4429: "You have too many streams open; close another tab and reload.",
  4503: "The service has too many streams open; try again shortly.",
};

export class LiveCommand {
  /** command: the command as GET /api/v1/commands/{id} returns it. */
  constructor(command) {
    this.command = command;
    this.lastSequence = 0;
    this.retries = 0;
    this.socket = null;
    this.closed = false;
    this.status = statusBadge(command.status);
    this.cancelButton = h(
      "button",
      { type: "button", class: "danger", onclick: () => this.cancel() },
      "Cancel",
    );
    this.events = h("ol", { class: "events", "aria-label": "Answer", hidden: true });
    // A running routine: one bar, updated in place, and its state in words.
    this.bar = h("progress", { max: 100, "aria-label": "Progress" });
    this.barText = h("span", { class: "progress-text" });
    this.progress = h("div", { class: "progress", hidden: true }, this.bar, this.barText);
    this.summaryLine = h("p", { class: "summary", hidden: true });
    this.result = h("p", { class: "outcome", role: "status", "aria-live": "polite" });
    this.note = h("p", { class: "hint", "aria-live": "polite" });
    this.node = h(
      "section",
      { class: "card live", "aria-label": `Command ${command.command_name}` },
      h(
        "div",
        { class: "row" },
        h("h3", {}, `${command.command_name} `, this.status),
        this.cancelButton,
      ),
      this.progress,
      this.events,
      this.summaryLine,
      this.result,
      this.note,
    );
    this.setStatus(command.status);
  }

  setStatus(status) {
    this.command = { ...this.command, status };
    this.status.replaceWith((this.status = statusBadge(status)));
    this.cancelButton.hidden = TERMINAL.has(status);
  }

  add(node) {
    this.events.hidden = false;
    this.events.append(h("li", {}, node));
  }

  showProgress(payload) {
    this.progress.hidden = false;
    if (payload.progress !== undefined) this.bar.value = payload.progress;
    if (payload.status && payload.status !== "running") this.bar.value = this.bar.max;
    this.barText.textContent = routineState(payload);
    // A routine's result parameters, where its end carries some.
    const results = Object.entries(payload).filter(([key]) => !ROUTINE_FIELDS.has(key));
    if (results.length) this.add(chunk(Object.fromEntries(results)));
  }

  finish(status, errorCode, errorMessage) {
    this.setStatus(status);
    this.result.className = `outcome outcome-${status}`;
    clear(this.result, outcome(status, errorCode, errorMessage));
    this.stop();
    if (this.onEnd) this.onEnd(status);
  }

  /** The stored answers of a command that has ended: no socket needed. */
  showStored(chunks) {
    for (const item of chunks) this.onChunk(item);
    const c = this.command;
    this.finish(c.status, c.error_code, c.error_message);
  }

  onChunk(item) {
    if (item.sequence_number <= this.lastSequence) return; // already shown
    this.lastSequence = item.sequence_number;
    const payload = item.response_payload;
    const kind = kindOf(payload);
    if (kind === "progress") this.showProgress(payload);
    else if (kind === "summary") {
      this.summaryLine.hidden = false;
      this.summaryLine.textContent = summary(payload);
    } else this.add(chunk(payload));
  }

  start() {
    if (this.closed || TERMINAL.has(this.command.status)) return;
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const params = new URLSearchParams({ token: accessToken() || "", since: this.lastSequence });
    const url = `${scheme}://${location.host}/ws/responses/${this.command.command_id}?${params}`;
    const socket = (this.socket = new WebSocket(url));
    socket.addEventListener("message", (message) => this.onMessage(JSON.parse(message.data)));
    socket.addEventListener("close", (event) => this.onClose(event));
  }

  onMessage(event) {
    this.retries = 0;
    clear(this.note);
    if (event.event === "response") {
      this.onChunk(event);
    } else if (event.event === "status") {
      if (event.status === "completed") this.finish("completed");
      else this.setStatus(event.status);
    } else if (event.event === "error") {
      this.finish(event.status, event.error_code, event.error_message);
    }
  }

  async onClose(event) {
    this.socket = null;
    if (this.closed || event.code === 1000) return;
    if (FINAL_CLOSES[event.code]) {
      clear(this.note, FINAL_CLOSES[event.code]);
      return;
    }
    if (this.retries >= MAX_RETRIES) {
      clear(this.note, "The live stream stopped; reload to see the outcome.");
      return;
    }
    this.retries += 1;
    clear(this.note, `Connection lost; resuming after answer ${this.lastSequence}…`);
    if (event.code === 1008) {
      // The token expired or was refused: a fresh one, or the session has ended.
      try {
        await refresh();
      } catch {
        clear(this.note, "Your session has ended; sign in again to follow this command.");
        return;
      }
    }
    setTimeout(() => this.start(), 250 * 2 ** this.retries);
  }

  async cancel() {
    this.cancelButton.disabled = true;
    try {
      const command = await postJson(`/api/v1/commands/${this.command.command_id}/cancel`);
      if (TERMINAL.has(command.status)) {
        this.finish(command.status, command.error_code, command.error_message);
      }
    } catch (error) {
      clear(this.note, explain(error));
    } finally {
      this.cancelButton.disabled = false;
    }
  }

  /** Leave the stream (the view changes); the command runs on. */
  stop() {
    this.closed = true;
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }
}
