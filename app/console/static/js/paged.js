// One page of an API list ({items, total, limit, offset}) as a table with its pager:
// the fleet, the history and the audit log show their lists so.

import { get } from "./api.js";
import { clear, h, table } from "./dom.js";
import { explain } from "./words.js";

export const PAGE_SIZE = 20;

/** "Previous" / "Next" and "1–50 of 120" for a page of {total, limit, offset}. */
function pager(page, label, go) {
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

/** The list at `path` filtered by `filters()` (the view's current filters), a page of
 * `size` at a time from `state.offset` (the view's state: it outlives a visit), each item
 * a row of `row(item)` under `heads`; `prepare` (if given) runs first on every load.
 * `load()` reads the page at the offset (a page equal to the one shown redraws nothing,
 * so a focus stays put); `restart()` goes back to the first page, for new filters.
 * `nodes`: the error line, the table and the pager. */
export function pagedTable(state, { path, filters, caption, heads, empty, label, row, prepare, size }) {
  const list = table(caption, heads, [], empty);
  const paging = h("div");
  const error = h("p", { class: "error", role: "alert" });
  let shown = "";

  async function load() {
    try {
      if (prepare) await prepare();
      const page = await get(path, { ...filters(), limit: size ?? PAGE_SIZE, offset: state.offset });
      clear(error);
      const now = JSON.stringify(page);
      if (now === shown) return;
      shown = now;
      list.fill(page.items.map(row));
      clear(
        paging,
        pager(page, label, (offset) => {
          state.offset = offset;
          load();
        }),
      );
    } catch (failure) {
      clear(error, explain(failure));
    }
  }

  return {
    nodes: [error, list.node, paging],
    load,
    restart: () => {
      state.offset = 0;
      return load();
    },
  };
}
