// The HTTP side of stageswap (DESIGN.md, "Contracts"): every request carries the access token when one is
// set, and every refusal becomes an Error whose message is the server's own reason ({"error": "..."}).

const TOKEN_KEY = "stageswap.token";

/** The access token for this tab (sessionStorage: gone when the tab closes, never written to disk by us). */
export function getToken() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

export function setToken(token) {
  const value = (token || "").trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Headers with Authorization when a token is set, merged with `extra`. */
export function authHeaders(extra = {}) {
  const headers = { ...extra };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/** An Error carrying the HTTP status and the server's reason. */
export class ApiError extends Error {
  constructor(status, reason) {
    super(reason);
    this.status = status;
  }
}

async function reasonOf(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") return body.error;
  } catch {
    /* not JSON: use the text */
  }
  if (response.status === 401) return "the server needs an access token (set it at the top right)";
  return text.trim() || `${response.status} ${response.statusText}`;
}

/** fetch() that throws ApiError with the server's reason on any non-2xx answer. */
export async function request(path, { method = "GET", body, headers = {} } = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: authHeaders(headers), cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw new ApiError(response.status, await reasonOf(response));
  return response;
}

export async function getJson(path) {
  return (await request(path)).json();
}

async function sendJson(method, path, value) {
  const response = await request(path, {
    method,
    body: JSON.stringify(value),
    headers: { "Content-Type": "application/json" },
  });
  return response.status === 204 ? null : response.json();
}

// ---- streams ------------------------------------------------------------------------------------

/** GET /api/streams as a list of stream objects (the server answers a list or an object keyed by name). */
export async function listStreams() {
  const body = await getJson("/api/streams");
  const items = Array.isArray(body) ? body : body.streams ?? body;
  if (Array.isArray(items)) return items;
  return Object.entries(items).map(([name, s]) => ({ name, ...s }));
}

export function getStream(name) {
  return getJson(`/api/streams/${encodeURIComponent(name)}`);
}

/** PATCH /api/streams/{stream}: `patch` mirrors ProcessSettings (engines/settings.py). */
export function patchStream(name, patch) {
  return sendJson("PATCH", `/api/streams/${encodeURIComponent(name)}`, patch);
}

// ---- recording ----------------------------------------------------------------------------------

/** POST /api/streams/{stream}/recording: `options` {view, codec, container, frame_rate, ...} (README,
 * "Recording"); answers the recording ({id, files, state, ...}). The server names the files. */
export function startRecording(name, options = {}) {
  return sendJson("POST", `/api/streams/${encodeURIComponent(name)}/recording`, options);
}

/** DELETE /api/streams/{stream}/recording: stops it; answers its final state (frames written, dropped...). */
export async function stopRecording(name) {
  const response = await request(`/api/streams/${encodeURIComponent(name)}/recording`, { method: "DELETE" });
  return response.json();
}

// ---- identities ---------------------------------------------------------------------------------

/** GET /api/identities as a list of {name, ...} (accepts a list of names or of objects). */
export async function listIdentities() {
  const body = await getJson("/api/identities");
  const items = Array.isArray(body) ? body : body.identities ?? [];
  return items.map((item) => (typeof item === "string" ? { name: item } : item));
}

/** POST /api/identities, multipart: `name`, one or more `photo` files, and the consent: flat fields
 * (`consent_by`, `production`, `valid_until`, `document_sha256`) or `allow_unverified=true`. */
export async function enrollIdentity(name, files, consent = {}, options = {}) {
  const form = new FormData();
  form.append("name", name);
  // options: `face` ("largest", N or one per photo: "2,0") and `replace` ("true"), README "Browser UI"
  for (const [key, value] of Object.entries({ ...consent, ...options })) {
    if (value !== "" && value != null) form.append(key, String(value));
  }
  for (const file of files) form.append("photo", file, file.name);
  const response = await request("/api/identities", { method: "POST", body: form });
  return response.json().catch(() => ({ name }));
}

/** POST /api/faces: the faces in each photo, largest first, with thumbnails (to choose one to enroll). */
export async function findFaces(files) {
  const form = new FormData();
  for (const file of files) form.append("photo", file, file.name);
  const response = await request("/api/faces", { method: "POST", body: form });
  return (await response.json()).photos;
}

// ---- WebSocket ----------------------------------------------------------------------------------

/** The /ws URL for this page; the token travels as RFC 6750's access_token query parameter because
 * browsers cannot set headers on a WebSocket. */
export function wsUrl() {
  const url = new URL("/ws", window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  const token = getToken();
  if (token) url.searchParams.set("access_token", token);
  return url.toString();
}

/** A stream name as the server accepts it (engines/paths.check_name). */
export const STREAM_NAME = /^[a-z0-9][a-z0-9_-]{0,63}$/;
