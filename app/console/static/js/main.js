// The console's shell: sign in and out, the navigation, and which view is shown
// (the address's hash: #/fleet, #/vehicle/{id}, #/history, #/command/{id}, #/numbers,
// #/admin), so the browser's back button and a reload keep the place.

import { current, onSession, signIn, signOut } from "./api.js";
import { showAdmin } from "./admin.js";
import { clear } from "./dom.js";
import { showFleet } from "./fleet.js";
import { showCommand, showHistory } from "./history.js";
import { showNumbers } from "./numbers.js";
import { showVehicle } from "./vehicle.js";
import { explain } from "./words.js";

const VIEWS = {
  fleet: showFleet,
  vehicle: showVehicle,
  history: showHistory,
  command: showCommand,
  numbers: showNumbers,
  admin: showAdmin,
};

const $ = (id) => document.getElementById(id);
let leave = null; // the shown view's clean-up (closes its sockets and timers)

function route() {
  const [name, arg] = location.hash.replace(/^#\/?/, "").split("/");
  if (!VIEWS[name]) return ["fleet", undefined];
  try {
    return [name, arg ? decodeURIComponent(arg) : undefined];
  } catch {
    return ["fleet", undefined]; // a hand-typed address such as #/vehicle/%E0
  }
}

export function notice(text) {
  const node = $("notice");
  node.textContent = text || "";
  node.hidden = !text;
}

function hideAll() {
  // Views other than the sign-in form are emptied too: no stale controls left behind.
  for (const section of document.querySelectorAll("main > section")) {
    section.hidden = true;
    if (section.id !== "view-signin") section.replaceChildren();
  }
}

async function render(moved = true) {
  if (leave) leave();
  leave = null;
  hideAll();
  notice("");
  const session = current();
  const signedIn = Boolean(session);
  $("nav").hidden = !signedIn;
  $("who").hidden = !signedIn;
  if (!signedIn) {
    $("view-signin").hidden = false;
    $("signin-username").focus();
    return;
  }
  const isAdmin = session.user.role === "admin";
  $("who-name").textContent = `${session.user.username} (${session.user.role})`;
  $("nav-admin").hidden = !isAdmin;
  let [name, arg] = route();
  if (name === "admin" && !isAdmin) name = "fleet";
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const section = $(`view-${name}`);
  clear(section);
  section.hidden = false;
  try {
    leave = (await VIEWS[name](section, { arg, isAdmin, user: session.user })) || null;
    // After a move (not the first load), the focus goes to the new view's heading, so
    // keyboard and screen-reader users start there.
    const heading = section.querySelector("h2");
    if (moved && heading) {
      heading.tabIndex = -1;
      heading.focus({ preventScroll: true });
    }
  } catch (error) {
    notice(explain(error));
  }
}

async function onSignIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const error = $("signin-error");
  const username = form.username.value.trim();
  const password = form.password.value;
  if (!username || !password) {
    error.textContent = "Enter your username and password.";
    return;
  }
  const button = form.querySelector("button");
  button.disabled = true;
  error.textContent = "";
  try {
    await signIn(username, password);
    form.reset();
  } catch (failure) {
    if (failure.status === 401) {
      error.textContent = "Wrong username or password.";
    } else if (failure.status === 429) {
      const wait = failure.retryAfter ? ` Try again in ${failure.retryAfter} s.` : "";
      error.textContent = `Too many failed sign-ins from here or for this user.${wait}`;
    } else {
      error.textContent = explain(failure);
    }
  } finally {
    button.disabled = false;
  }
}

function start() {
  $("signin-form").addEventListener("submit", onSignIn);
  $("sign-out").addEventListener("click", () => signOut());
  let signedIn = Boolean(current());
  onSession((session) => {
    // Only signing in or out redraws; a token refresh changes nothing on the page.
    if (Boolean(session) !== signedIn) {
      signedIn = Boolean(session);
      render();
    }
  });
  window.addEventListener("hashchange", () => render());
  render(false);
}

start();
