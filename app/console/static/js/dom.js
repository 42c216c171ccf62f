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

/** "Previous" / "Next" and "1–50 of 120" for a page of {total, limit, offset}. */
export function pager(page, label, go) {
  const first = page.total === 0 ? 0 : page.offset + 1;
  const last = Math.min(page.offset + page.limit, page.total);
  return h(
    "nav",
    { class: "pager", "aria-label": label },
    h(
      "button",
      {
        type: "button",
        disabled: page.offset === 0,
        onclick: () => go(Math.max(0, page.offset - page.limit)),
      },
      "Previous",
    ),
    h("span", {}, `${first}–${last} of ${page.total}`),
    h(
      "button",
      { type: "button", disabled: last >= page.total, onclick: () => go(page.offset + page.limit) },
      "Next",
    ),
  );
}
