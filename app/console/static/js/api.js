// The service's API as the console uses it: the session (tokens in sessionStorage, so a
// reload keeps it and closing the tab ends it), refreshed before the access token expires,
// and requests whose errors become one readable message.

const STORE_KEY = "sovd-console-session";
// Refresh this long before the access token expires (or at half its life if shorter).
const REFRESH_MARGIN_S = 60;

export class ApiError extends Error {
  constructor(status, code, message, retryAfter, parameters) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.parameters = parameters || null; // a GenericError's (an ECU's refusal: nrc, ...)
  }
}

let session = load();
let refreshTimer = null;
let refreshing = null;
const listeners = new Set();

function load() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
  } catch {
    return null;
  }
}

function save(next) {
  session = next;
  if (next) {
    sessionStorage.setItem(STORE_KEY, JSON.stringify(next));
  } else {
    sessionStorage.removeItem(STORE_KEY);
  }
  schedule();
  for (const listener of listeners) listener(session);
}

/** Called with the session (or null) whenever it changes. */
export function onSession(listener) {
  listeners.add(listener);
}

export function current() {
  return session;
}

export function accessToken() {
  return session ? session.access_token : null;
}

function fromPair(pair, user) {
  return {
    access_token: pair.access_token,
    refresh_token: pair.refresh_token,
    expires_at: Date.now() + pair.expires_in * 1000,
    lifetime_s: pair.expires_in,
    user,
  };
}

function schedule() {
  clearTimeout(refreshTimer);
  refreshTimer = null;
  if (!session) return;
  const margin = Math.min(REFRESH_MARGIN_S, session.lifetime_s / 2) * 1000;
  const due = Math.max(0, session.expires_at - margin - Date.now());
  refreshTimer = setTimeout(() => {
    refresh().catch(() => {});
  }, due);
}

async function parse(response) {
  if (response.status === 204) return null;
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

async function failure(response) {
  const body = (await parse(response)) || {};
  const retry = Number(response.headers.get("retry-after")) || null;
  // The SOVD tree's GenericError says its own codes as vendor-specific with a vendor_code.
  const code = body.error_code === "vendor-specific" && body.vendor_code
    ? body.vendor_code
    : body.error_code;
  return new ApiError(
    response.status,
    code || "",
    body.message || `${response.status} ${response.statusText}`,
    retry,
    body.parameters,
  );
}

async function post(path, body, token) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
}

export async function signIn(username, password) {
  const response = await post("/api/v1/auth/login", { username, password });
  if (!response.ok) throw await failure(response);
  const pair = await response.json();
  const meResponse = await fetch("/api/v1/auth/me", {
    headers: { authorization: `Bearer ${pair.access_token}` },
  });
  if (!meResponse.ok) throw await failure(meResponse);
  save(fromPair(pair, await meResponse.json()));
}

/** A new token pair; one refresh at a time (the old refresh token dies with it). */
export function refresh() {
  if (!session) return Promise.reject(new ApiError(401, "unauthorized", "signed out"));
  if (!refreshing) {
    const user = session.user;
    refreshing = (async () => {
      try {
        const response = await post("/api/v1/auth/refresh", {
          refresh_token: session.refresh_token,
        });
        if (!response.ok) {
          const error = await failure(response);
          if (response.status === 401) save(null); // the session has ended
          throw error;
        }
        save(fromPair(await response.json(), user));
      } finally {
        refreshing = null;
      }
    })();
  }
  return refreshing;
}

export async function signOut() {
  const token = accessToken();
  save(null);
  if (token) {
    // The session ends on the server too; if that fails, the tokens are forgotten anyway.
    await fetch("/api/v1/auth/logout", {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
    }).catch(() => {});
  }
}

/** A JSON request with the access token; one refresh and retry on a 401. Answers
 * {body, headers} (the SOVD tree names the command a call ran in X-Command-ID). */
export async function exchange(method, path, { query, body } = {}) {
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(key, value);
    }
    const text = params.toString();
    if (text) url += `?${text}`;
  }
  const send = () => {
    const headers = { authorization: `Bearer ${accessToken()}` };
    const init = { method, headers };
    if (body !== undefined) {
      headers["content-type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init);
  };
  if (!session) throw new ApiError(401, "unauthorized", "You are signed out.");
  let response = await send();
  if (response.status === 401 && session) {
    await refresh();
    response = await send();
  }
  if (!response.ok) throw await failure(response);
  return { body: await parse(response), headers: response.headers };
}

/** exchange(), answering only the body. */
export async function request(method, path, options) {
  return (await exchange(method, path, options)).body;
}

export const get = (path, query) => request("GET", path, { query });
export const postJson = (path, body) => request("POST", path, { body });
export const patch = (path, body) => request("PATCH", path, { body });
export const remove = (path) => request("DELETE", path);

/** A file's bytes as they are (an admin's PDX upload): POST with its own content type. */
export async function upload(path, query, file, contentType) {
  const url = `${path}?${new URLSearchParams(query)}`;
  const send = () =>
    fetch(url, {
      method: "POST",
      headers: { authorization: `Bearer ${accessToken()}`, "content-type": contentType },
      body: file,
    });
  if (!session) throw new ApiError(401, "unauthorized", "You are signed out.");
  let response = await send();
  if (response.status === 401 && session) {
    await refresh();
    response = await send();
  }
  if (!response.ok) throw await failure(response);
  return parse(response);
}

schedule();
