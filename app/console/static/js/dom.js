// Building the page: elements from data, always as text (never parsed as HTML), so nothing a
// vehicle or a user typed can become markup.

/** h("p", {class: "x", onclick: fn}, "text", child, [children]) */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      node.className = value;
    } else if (value === true) {
      node.setAttribute(key, "");
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

export function clear(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

let ids = 0;
/** A unique id for label/aria-describedby pairs. */
export function uid(prefix) {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled field: the label, the control and an optional hint tied to it. */
export function field(labelText, control, hint) {
  control.id ||= uid("f");
  const parts = [h("label", { for: control.id }, labelText), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, value, attrs = {}) {
  return h(
    "select",
    attrs,
    options.map(([optionValue, text]) =>
      h("option", { value: optionValue, selected: optionValue === value }, text),
    ),
  );
}

export function badge(kind, text) {
  return h("span", { class: `badge badge-${kind}` }, text);
}

export function when(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** A table whose cells carry their column's label (data-label), so that at phone width
 * the stylesheet stacks each row as label/value pairs instead of hiding columns.
 * rows: arrays of cells; a cell is a node, text, or {header: x} for a row header. */
export function table(caption, heads, rows, empty) {
  const body = h("tbody");
  fillRows(body, heads, rows, empty);
  return {
    node: h(
      "div",
      { class: "scroll stack" },
      h(
        "table",
        {},
        h("caption", { class: "visually-hidden" }, caption),
        h("thead", {}, h("tr", {}, heads.map((t) => h("th", { scope: "col" }, t)))),
        body,
      ),
    ),
    body,
    fill: (next, nextEmpty) => fillRows(body, heads, next, nextEmpty ?? empty),
  };
}

function fillRows(body, heads, rows, empty) {
  if (!rows.length && empty) {
    clear(body, h("tr", {}, h("td", { colspan: heads.length, class: "empty" }, empty)));
    return;
  }
  clear(
    body,
    rows.map((cells) =>
      h(
        "tr",
        {},
        cells.map((cell, i) =>
          cell && cell.header !== undefined
            ? h("th", { scope: "row", "data-label": heads[i] }, cell.header)
            : h("td", { "data-label": heads[i] }, cell),
        ),
      ),
    ),
  );
}

/** Runs `work` now and every `everyMs` while the tab is visible (a hidden tab asks
 * nothing; it catches up as soon as it is shown again). Answers the stop function. */
export function every(everyMs, work) {
  let timer = null;
  let busy = false;
  let stopped = false;
  const tick = async () => {
    timer = null;
    if (stopped || busy || document.hidden) return;
    busy = true;
    try {
      await work();
    } catch {
      // the view shows its own errors; the next tick tries again
    } finally {
      busy = false;
      if (!stopped && !document.hidden) timer = setTimeout(tick, everyMs);
    }
  };
  const onVisible = () => {
    if (!document.hidden && timer === null) tick();
  };
  document.addEventListener("visibilitychange", onVisible);
  timer = setTimeout(tick, everyMs);
  return () => {
    stopped = true;
    clearTimeout(timer);
    document.removeEventListener("visibilitychange", onVisible);
  };
}

/** A vehicle as people name it: "Volkswagen Golf · WVWZZZ1KZAW000001". */
export function vehicleName(vehicle) {
  return `${vehicle.make} ${vehicle.model} · ${vehicle.vin}`;
}
