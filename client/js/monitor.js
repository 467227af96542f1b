// The monitor page: processed output large, source inset or beside, live stats, and the control panel.
//
// Video: WHEP (`view=processed` and `view=source`), retried while the stream does not exist yet; or, when the
// server sends the stream to a Janus SFU (its JSON's `sfu`), from Janus's mountpoint with Janus's own JS
// client (sfu.js), falling back to WHEP when Janus cannot be reached. `?via=whep` forces WHEP.
// Recording: start/stop and the recording indicator and alarm (recording.js), from the same stats and events.
// Stats and settings: pushed on /ws (about twice a second); when the socket is down the page polls
// GET /api/streams/{stream} instead. Controls send PATCH /api/streams/{stream} bodies (ProcessSettings
// fields, engines/settings.py), so every refusal comes back with the server's reason.

import {
  ApiError,
  STREAM_NAME,
  getStream,
  listIdentities,
  listStreams,
  patchStream,
  wsUrl,
} from "./api.js";
import { EnrollForm } from "./enroll.js";
import { healthOf } from "./health.js";
import { Hotkeys } from "./hotkeys.js";
import { LightDisc } from "./lightdisc.js";
import { RecordingPanel } from "./recording.js";
import { SwapModelPicker } from "./swapmodels.js";
import { FaceTargets } from "./targets.js";
import { $, fmt, param, setupTokenField } from "./page.js";
import { JanusPlayer, sfuMountpoint, sfuSummary } from "./sfu.js";
import { WhepPlayer } from "./webrtc.js";

const RETRY_MS = 2000;
const POLL_MS = 1000;
const SEND_EVERY_MS = 80; // slider and light drags: at most ~12 patches per second

const ui = {
  stream: $("#stream"),
  streamList: $("#stream-list"),
  conn: $("#conn"),
  layout: $("#layout"),
  views: $("#views"),
  processed: $("#processed"),
  processedMsg: $("#processed-msg"),
  source: $("#source"),
  sourceMsg: $("#source-msg"),
  navPublish: $("#nav-publish"),
  stIn: $("#st-in"),
  stOut: $("#st-out"),
  stPlay: $("#st-play"),
  stLat: $("#st-lat"),
  stFaces: $("#st-faces"),
  stDrops: $("#st-drops"),
  stages: $("#stages tbody"),
  counters: $("#counters"),
  fields: $("#control-fields"),
  identity: $("#identity"),
  swapModel: $("#swap-model"),
  modelNote: $("#model-note"),
  swap: $("#swap"),
  relight: $("#relight"),
  strength: $("#strength"),
  strengthVal: $("#strength-val"),
  mode: $("#mode"),
  hdriRow: $("#hdri-row"),
  hdri: $("#hdri"),
  hdriApply: $("#hdri-apply"),
  lightReadout: $("#light-readout"),
  colour: $("#colour"),
  intensity: $("#intensity"),
  intensityVal: $("#intensity-val"),
  ambient: $("#ambient"),
  ambientVal: $("#ambient-val"),
  overlay: $("#overlay"),
  ndiProcessed: $("#ndi-processed"),
  ndiSource: $("#ndi-source"),
  ndiHint: $("#ndi-hint"),
  audio: $("#audio"),
  sound: $("#sound"),
  soundText: $("#sound-text"),
  controlError: $("#control-error"),
  healthBanner: $("#health-banner"),
  enrollForm: $("#enroll-form"),
  enrollName: $("#enroll-name"),
  enrollPhoto: $("#enroll-photo"),
  enrollSubmit: $("#enroll-submit"),
  enrollStatus: $("#enroll-status"),
  enrollError: $("#enroll-error"),
  consentBy: $("#consent-by"),
  production: $("#production"),
  validUntil: $("#valid-until"),
  consentDoc: $("#consent-doc"),
  unverified: $("#unverified"),
};

const state = {
  name: "",
  players: {}, // view -> {player, timer}
  settings: null,
  lastStats: null,
  lastStatsAt: 0,
  ws: null,
  wsTimer: null,
  pollTimer: null,
  editing: new Set(), // controls the operator is moving now: server echoes do not overwrite them
  fieldErrors: new Map(), // settings key -> the server's refusal, shown under its control
  queue: Promise.resolve(), // settings patches, one at a time (see send)
  sent: new Map(), // settings key -> the number of its newest patch (see send)
};

// ---- video --------------------------------------------------------------------------------------

function overlayFor(view) {
  return view === "processed" ? ui.processedMsg : ui.sourceMsg;
}

function videoFor(view) {
  return view === "processed" ? ui.processed : ui.source;
}

async function startView(view) {
  stopView(view);
  const name = state.name;
  const video = videoFor(view);
  const msg = overlayFor(view);
  const entry = { player: null, timer: null };
  state.players[view] = entry;
  const retry = (text) => {
    if (state.players[view] !== entry) return;
    msg.hidden = false;
    msg.textContent = text;
    entry.player?.stop();
    entry.player = null;
    entry.timer = setTimeout(attempt, RETRY_MS);
  };
  const attempt = async () => {
    if (state.players[view] !== entry) return;
    // An attempt still in flight when the page moved on (another stream, a new token) must not touch
    // what the newer one shows: every step checks that its entry is still the current one.
    const current = () => state.players[view] === entry && entry.player === player;
    const onState = (s) => {
      if (!current()) return;
      if (s === "connected") msg.hidden = true;
      else if (s === "failed" || s === "closed") retry("Connection lost, reconnecting…");
    };
    const audio = view === "processed"; // the sound comes with the output, delayed as its picture is
    const mount = param("via", "") === "whep" ? null : sfuMountpoint(await getStream(name).catch(() => null), view);
    if (state.players[view] !== entry) return;
    let player = mount
      ? new JanusPlayer(mount.url, mount.id, video, { onState })
      : new WhepPlayer(name, view, video, { onState, audio });
    entry.player = player;
    try {
      try {
        await player.play();
      } catch (err) {
        if (!mount || !current()) throw err;
        player.stop(); // Janus cannot be reached from here: our own fan-out serves this monitor instead
        msg.textContent = `Janus: ${err.message}; watching directly`;
        player = new WhepPlayer(name, view, video, { onState, audio });
        entry.player = player;
        await player.play();
      }
    } catch (err) {
      if (!current()) return;
      if (view === "processed") setConn(err.status === 404 ? "waiting" : "error", err.status === 404 ? "wait" : "off");
      const text =
        err.status === 404 ? `Waiting for “${name}” to be published…` : `Cannot play: ${err.message}`;
      retry(text);
      return;
    }
    if (!current()) {
      player.stop();
      return;
    }
    if (view === "processed") setConn(`connected via ${player.via}`, "live");
  };
  msg.hidden = false;
  msg.textContent = "Connecting…";
  attempt();
}

function stopView(view) {
  const entry = state.players[view];
  if (!entry) return;
  delete state.players[view];
  clearTimeout(entry.timer);
  entry.player?.stop();
}

function setConn(text, dot) {
  ui.conn.innerHTML = "";
  const d = document.createElement("span");
  d.className = `dot ${dot}`;
  ui.conn.append(d, document.createTextNode(text));
}

// Frames actually shown by the monitor, counted with requestVideoFrameCallback (Chromium, Firefox 132+).
// A new video source can strand a pending callback, so each (re)start takes a generation number and
// only the newest chain keeps counting.
const playCounter = { frames: 0, since: performance.now(), fps: null, generation: 0 };
function countFrames() {
  const video = ui.processed;
  if (!("requestVideoFrameCallback" in HTMLVideoElement.prototype)) return;
  const generation = ++playCounter.generation;
  const tick = () => {
    if (generation !== playCounter.generation) return;
    playCounter.frames++;
    video.requestVideoFrameCallback(tick);
  };
  video.requestVideoFrameCallback(tick);
}

// ---- stats --------------------------------------------------------------------------------------

/** On the output: who is swapped in (an identity, or a DFM's trained-in person), and UNVERIFIED in amber
 * when no consent is on record for them, so nobody watching the monitor can miss it. */
function showSwapBadge(stream) {
  const badge = $("#swap-badge");
  const consent = stream.consent;
  const swapping = consent && stream.settings?.swap !== false;
  badge.hidden = !swapping;
  if (!swapping) return;
  const who = consent.identity ?? consent.model;
  badge.textContent = `swapping in ${who}${consent.model ? " (model)" : ""}`;
  if (consent.status !== "verified") {
    const mark = document.createElement("span");
    mark.className = "unverified";
    mark.textContent = String(consent.status || "unverified").toUpperCase();
    badge.append(mark);
  }
}

function showStats(stream) {
  state.lastStats = stream;
  state.lastStatsAt = performance.now();
  const s = stream.stats || {};
  ui.stIn.textContent = fmt(s.input_fps, 1);
  ui.stOut.textContent = fmt(s.output_fps, 1);
  ui.stLat.textContent = fmt(s.latency_ms?.p50, 0);
  ui.stLat.title = s.latency_ms ? `ingest → output, p95 ${fmt(s.latency_ms.p95, 0)} ms` : "";
  ui.stFaces.textContent = s.faces ?? "–";
  faceTargets.show(stream);
  showSwapBadge(stream);
  ui.stDrops.textContent = s.frames_dropped ?? "–";
  ui.stDrops.title = s.drops
    ? `dropped, newest frame wins: ${Object.entries(s.drops).map(([where, n]) => `${where} ${n}`).join(", ")}`
    : "";

  const rows = Object.entries(s.stage_ms || {});
  ui.stages.innerHTML = "";
  for (const [stage, q] of rows) {
    const tr = document.createElement("tr");
    for (const text of [stage, fmt(q.p50, 1), fmt(q.p99, 1)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    ui.stages.append(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = document.createElement("td");
    td.colSpan = 3;
    td.textContent = stream.processor === "passthrough" ? "passthrough: no processing" : "no frames processed yet";
    tr.append(td);
    ui.stages.append(tr);
  }
  const viewers = Object.values(s.viewers || {}).reduce((a, b) => a + b, 0);
  const size = s.width && s.height ? `${s.width}×${s.height}` : "–";
  const parts = [
    ["size", size],
    ["frames in", s.frames_in ?? "–"],
    ["processed", s.frames_processed ?? "–"],
    ["failed", s.frames_failed ?? "–"],
    ["viewers", viewers],
    ["via", state.players.processed?.player?.via ?? "–"],
    ["Janus", sfuSummary(stream.sfu)],
    ["runtime", s.runtime ?? "–"],
    ["latency p95", `${fmt(s.latency_ms?.p95, 0)} ms`],
    ["monitor buffer", `${fmt(state.player?.jitterBufferMs, 0)} ms`],
    ["packets lost", state.player?.packetsLost ?? "–"],
    ["uptime", s.uptime_s == null ? "–" : `${fmt(s.uptime_s / 60, 1)} min`],
  ];
  // a fixed grid of short values: the panels below never move while the operator reaches for a control
  ui.counters.innerHTML = parts
    .map(([k, v]) => `<span>${escapeHtml(k)}</span><b>${escapeHtml(String(v))}</b>`)
    .join("");
  showHealth(stream);
  recorder.show(stream.recording ?? null, s);
  if (stream.settings) applySettings(stream.settings);
  if (stream.live === false) setConn("no publisher", "wait");
}

/** On the output: an amber or red banner while the stream is degraded or failing, with why and the last
 * engine error in its own words (README, "Stream health"); gone when the output is fine again. */
function showHealth(stream) {
  const health = healthOf(stream);
  const banner = ui.healthBanner;
  banner.hidden = !health.text || stream.live === false;
  banner.className = `health-banner ${health.state}`;
  if (banner.textContent !== health.text) banner.textContent = health.text;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Find this page's stream in a /ws message (several shapes are accepted: one stream, a map, a list). */
function streamFromMessage(msg) {
  const name = state.name;
  if (msg.stream === name && (msg.stats || msg.settings)) return msg;
  if (msg.name === name && msg.stats) return msg;
  const streams = msg.streams;
  if (Array.isArray(streams)) return streams.find((s) => s.name === name) || null;
  if (streams && typeof streams === "object" && streams[name]) return { name, ...streams[name] };
  return null;
}

function onWsMessage(event) {
  let msg;
  try {
    msg = JSON.parse(event.data);
  } catch {
    return;
  }
  if (msg.type === "error") {
    showControlError(msg.error || msg.message || "refused");
    return;
  }
  const stream = streamFromMessage(msg);
  if (stream?.stats) showStats(stream);
  else if (stream?.settings) applySettings(stream.settings);
  if (msg.type === "stream_ended" && msg.stream === state.name) setConn("ended", "wait");
  if (msg.type === "recording" && msg.stream === state.name) recorder.onEvent(msg);
  if (msg.type === "identities_changed") refreshIdentities();
}

function connectWs() {
  clearTimeout(state.wsTimer);
  state.ws?.close();
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch {
    state.wsTimer = setTimeout(connectWs, RETRY_MS);
    return;
  }
  state.ws = ws;
  ws.addEventListener("message", onWsMessage);
  ws.addEventListener("close", () => {
    if (state.ws === ws) {
      state.ws = null;
      state.wsTimer = setTimeout(connectWs, RETRY_MS);
    }
  });
}

/** Poll the REST API when /ws has said nothing for a while (socket down, or an older server). */
async function poll() {
  const player = state.players.processed?.player;
  if (player) state.player = await player.inboundStats().catch(() => null);
  const now = performance.now();
  playCounter.fps = (1000 * playCounter.frames) / (now - playCounter.since);
  playCounter.frames = 0;
  playCounter.since = now;
  ui.stPlay.textContent = fmt(playCounter.fps, 1);
  if (now - state.lastStatsAt < 2 * POLL_MS) return;
  try {
    showStats(await getStream(state.name));
    ui.fields.disabled = false;
  } catch (err) {
    if (err.status === 404) {
      setConn("waiting", "wait");
      ui.stIn.textContent = ui.stOut.textContent = "–";
    } else if (err.status === 401) {
      setConn("needs a token", "off");
    }
  }
}

// ---- controls -----------------------------------------------------------------------------------

function showControlError(text) {
  ui.controlError.textContent = text || "";
}

/** The control each settings key belongs to: a refusal is shown under that control's row. */
const FIELD_CONTROL = {
  identity: "#identity",
  swap_model: "#swap-model",
  swap: "#swap",
  relight: "#relight",
  strength: "#strength",
  mode: "#mode",
  hdri: "#hdri",
  direction: "#light",
  colour: "#colour",
  intensity: "#intensity",
  ambient: "#ambient",
  debug_overlay: "#overlay",
  ndi_processed: "#ndi-processed",
  ndi_source: "#ndi-source",
  audio: "#audio",
};

/** Show (or clear, with "") the server's reason next to the control of settings key `key`. */
function showFieldError(key, text) {
  const control = FIELD_CONTROL[key] && $(FIELD_CONTROL[key]);
  const row = control?.closest(".row, .light-control");
  if (!row) {
    if (text) showControlError(text);
    return;
  }
  let slot = row.nextElementSibling?.classList.contains("field-error") ? row.nextElementSibling : null;
  if (!slot && !text) return;
  if (!slot) {
    slot = document.createElement("p");
    slot.className = "field-error";
    slot.setAttribute("role", "alert");
    row.after(slot);
  }
  slot.dataset.field = key;
  slot.textContent = text || "";
  slot.hidden = !text;
  control.setAttribute("aria-invalid", text ? "true" : "false");
  if (text) state.fieldErrors.set(key, text);
  else state.fieldErrors.delete(key);
}

function applySettings(settings) {
  state.settings = settings;
  ui.fields.disabled = false;
  // A refused HDRI keeps the light on "HDRI" with the name the operator typed and the reason under it,
  // until the operator picks another light or another name.
  const held = (key) => state.editing.has(key) || (state.fieldErrors.has("hdri") && (key === "mode" || key === "hdri"));
  const set = (el, key, fn) => {
    if (!held(key)) fn(el);
  };
  set(ui.identity, "identity", (el) => {
    const value = settings.identity ?? "";
    if (value && ![...el.options].some((o) => o.value === value)) el.add(new Option(value, value));
    el.value = value;
  });
  set(ui.swapModel, "swap_model", () => models.show(settings.swap_model));
  set(ui.swap, "swap", (el) => (el.checked = !!settings.swap));
  set(ui.relight, "relight", (el) => (el.checked = !!settings.relight));
  set(ui.overlay, "debug_overlay", (el) => (el.checked = !!settings.debug_overlay));
  const ndi = settings.ndi || {};
  set(ui.ndiProcessed, "ndi_processed", (el) => (el.checked = !!ndi.processed));
  set(ui.ndiSource, "ndi_source", (el) => (el.checked = !!ndi.source));
  ui.ndiHint.textContent =
    ndi.processed || ndi.source ? `as "stageswap ${state.name}"${ndi.source ? ` and "stageswap ${state.name} source"` : ""}` : "";
  set(ui.audio, "audio", (el) => (el.checked = settings.audio !== false));
  set(ui.strength, "strength", (el) => (el.value = settings.strength));
  ui.strengthVal.textContent = fmt(Number(ui.strength.value), 2);
  const target = settings.relight_target || {};
  set(ui.mode, "mode", (el) => (el.value = target.mode || "match"));
  ui.mode.querySelector('option[value="sh"]').disabled = !target.sh;
  ui.hdriRow.hidden = ui.mode.value !== "hdri";
  set(ui.hdri, "hdri", (el) => (el.value = target.hdri || ""));
  set(ui.intensity, "intensity", (el) => (el.value = target.intensity ?? 1));
  ui.intensityVal.textContent = fmt(Number(ui.intensity.value), 2);
  set(ui.ambient, "ambient", (el) => (el.value = target.ambient ?? 0.35));
  ui.ambientVal.textContent = fmt(Number(ui.ambient.value), 2);
  set(ui.colour, "colour", (el) => (el.value = rgbToHex(target.colour || [1, 1, 1])));
  if (!state.editing.has("direction")) light.set(target.direction, target.colour, target.ambient);
  showDirection(light.direction);
}

function rgbToHex(rgb) {
  return `#${rgb.map((v) => Math.round(Math.min(1, Math.max(0, v)) * 255).toString(16).padStart(2, "0")).join("")}`;
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [((n >> 16) & 255) / 255, ((n >> 8) & 255) / 255, (n & 255) / 255].map((v) => Math.round(v * 1000) / 1000);
}

function showDirection([x, y, z]) {
  const azimuth = (Math.atan2(x, z) * 180) / Math.PI;
  const elevation = (Math.asin(Math.max(-1, Math.min(1, y))) * 180) / Math.PI;
  ui.lightReadout.textContent = `azimuth ${fmt(azimuth)}° · elevation ${fmt(elevation)}°`;
}

/** PATCH the stream. Patches go out one at a time, in order: with several in flight the server could apply
 * them out of order (the browser uses several connections) and keep a stale value last. While one is on
 * its way, pushed stats (built before it) must not reset the control that sent it, so `key` stays in
 * state.editing until the answer is in, plus a short grace. */
function send(patch, key = null, field = key) {
  if (!STREAM_NAME.test(state.name)) return Promise.resolve();
  if (key) state.editing.add(key);
  const name = state.name;
  // Only the key's newest patch releases it: two picks in a row (a model, then another) must keep the control
  // held until the second is answered, or a push built before it puts the first pick back meanwhile.
  const number = key ? (state.sent.get(key) ?? 0) + 1 : 0;
  if (key) state.sent.set(key, number);
  const done = state.queue.then(() => sendNow(name, patch, key, field, number));
  state.queue = done;
  return done;
}

async function sendNow(name, patch, key, field, number = 0) {
  const release = () => {
    if (key && state.sent.get(key) === number) state.editing.delete(key);
  };
  try {
    const answer = await patchStream(name, patch);
    showControlError("");
    if (field) showFieldError(field, "");
    const settings = answer?.settings ?? (answer && "swap" in answer ? answer : null);
    if (settings && name === state.name) applySettings(settings);
  } catch (err) {
    const reason = err instanceof ApiError ? err.message : String(err);
    if (field) showFieldError(field, reason);
    else showControlError(reason);
    release();
    if (state.settings) applySettings(state.settings); // show what the server kept
    return;
  }
  if (key) setTimeout(release, 300);
}

/** A sender for continuous controls (sliders, the light): while a patch is on its way the newest value
 * waits, so the last value sent is always the last one set, at most one every SEND_EVERY_MS. */
function throttled(key, makePatch) {
  let pending = null;
  let busy = false;
  let release = null;
  const pump = async () => {
    busy = true;
    while (pending !== null) {
      const value = pending;
      pending = null;
      await send(makePatch(value), null, key);
      if (pending !== null) await new Promise((resolve) => setTimeout(resolve, SEND_EVERY_MS));
    }
    busy = false;
  };
  return (value) => {
    state.editing.add(key);
    clearTimeout(release);
    release = setTimeout(() => state.editing.delete(key), 1000);
    pending = value;
    if (!busy) pump();
  };
}

const sendStrength = throttled("strength", (v) => ({ strength: v }));
const sendIntensity = throttled("intensity", (v) => ({ relight_target: { intensity: v } }));
const sendAmbient = throttled("ambient", (v) => ({ relight_target: { ambient: v } }));
const sendColour = throttled("colour", (v) => ({ relight_target: { colour: v } }));
/* Moving the key light means "use this light": the mode switches to "direction" when the operator drags,
 * and the next patch carries the switch. Deciding when the (throttled) patch goes out instead would let a
 * light value still queued override a mode the operator picked after letting go of the light. */
let lightSwitchedMode = false;
const sendDirection = throttled("direction", (dir) => {
  const patch = { direction: dir.map((v) => Math.round(v * 1e4) / 1e4) };
  if (lightSwitchedMode && ui.mode.value === "direction") patch.mode = "direction";
  lightSwitchedMode = false;
  return { relight_target: patch };
});

const recorder = new RecordingPanel(
  {
    badge: $("#rec-badge"),
    badgeText: $("#rec-badge-text"),
    banner: $("#rec-alarm"),
    bannerText: $("#rec-alarm-text"),
    dismiss: $("#rec-dismiss"),
    fields: $("#rec-fields"),
    view: $("#rec-view"),
    format: $("#rec-format"),
    cfr: $("#rec-cfr"),
    rateNote: $("#rec-rate-note"),
    list: $("#rec-list"),
    start: $("#rec-start"),
    stop: $("#rec-stop"),
    state: $("#rec-state"),
    files: $("#rec-files"),
    error: $("#rec-error"),
  },
  () => state.name,
);

const faceTargets = new FaceTargets(
  ui.processed.closest(".stage"),
  ui.processed,
  (patch) => send(patch),
  async () => (await listIdentities()).map((item) => item.name),
);
const models = new SwapModelPicker(ui.swapModel, ui.modelNote, (name) => send({ swap_model: name }, "swap_model"));

const light = new LightDisc($("#light"), (dir) => {
  showDirection(dir);
  if (ui.mode.value !== "direction") {
    ui.mode.value = "direction";
    ui.hdriRow.hidden = true;
    showFieldError("hdri", "");
    lightSwitchedMode = true;
    state.editing.add("mode"); // pushed stats from before the switch must not undo it
    setTimeout(() => state.editing.delete("mode"), 1000);
  }
  sendDirection(dir);
});

function wireControls() {
  ui.identity.addEventListener("change", () => send({ identity: ui.identity.value || null }, "identity"));
  ui.swap.addEventListener("change", () => send({ swap: ui.swap.checked }, "swap"));
  ui.relight.addEventListener("change", () => send({ relight: ui.relight.checked }, "relight"));
  ui.overlay.addEventListener("change", () => send({ debug_overlay: ui.overlay.checked }, "debug_overlay"));
  ui.ndiProcessed.addEventListener("change", () => send({ ndi: { processed: ui.ndiProcessed.checked } }, "ndi_processed"));
  ui.ndiSource.addEventListener("change", () => send({ ndi: { source: ui.ndiSource.checked } }, "ndi_source"));
  ui.audio.addEventListener("change", () => send({ audio: ui.audio.checked }, "audio"));
  ui.sound.addEventListener("click", () => setSound(ui.processed.muted));
  ui.strength.addEventListener("input", () => {
    ui.strengthVal.textContent = fmt(Number(ui.strength.value), 2);
    sendStrength(Number(ui.strength.value));
  });
  ui.intensity.addEventListener("input", () => {
    ui.intensityVal.textContent = fmt(Number(ui.intensity.value), 2);
    sendIntensity(Number(ui.intensity.value));
  });
  ui.ambient.addEventListener("input", () => {
    ui.ambientVal.textContent = fmt(Number(ui.ambient.value), 2);
    light.set(null, null, Number(ui.ambient.value));
    sendAmbient(Number(ui.ambient.value));
  });
  ui.colour.addEventListener("input", () => {
    const rgb = hexToRgb(ui.colour.value);
    light.set(null, rgb, null);
    sendColour(rgb);
  });
  ui.mode.addEventListener("change", () => {
    ui.hdriRow.hidden = ui.mode.value !== "hdri";
    showFieldError("hdri", "");
    if (ui.mode.value === "hdri") {
      state.editing.add("mode"); // keep "hdri" showing while the operator names the image
      if (ui.hdri.value.trim()) send({ relight_target: { mode: "hdri", hdri: ui.hdri.value.trim() } }, "mode", "hdri");
      else showFieldError("hdri", "Name the HDRI image (in the data directory's hdri/ folder), then press Use.");
      return;
    }
    send({ relight_target: { mode: ui.mode.value } }, "mode");
  });
  const useHdri = () => send({ relight_target: { mode: "hdri", hdri: ui.hdri.value.trim() || null } }, "mode", "hdri");
  ui.hdriApply.addEventListener("click", (e) => {
    e.preventDefault();
    useHdri();
  });
  ui.hdri.addEventListener("keydown", (e) => {
    if (e.key === "Enter") {
      e.preventDefault();
      useHdri();
    }
  });
}

// ---- identities ---------------------------------------------------------------------------------

async function refreshIdentities(select = null) {
  let items;
  try {
    items = await listIdentities();
  } catch (err) {
    ui.enrollError.textContent = `identities: ${err.message}`;
    return;
  }
  if (ui.enrollError.textContent.startsWith("identities: ")) ui.enrollError.textContent = ""; // listed now
  const current = select ?? ui.identity.value;
  ui.identity.innerHTML = "";
  ui.identity.add(new Option("— none —", ""));
  for (const item of items) {
    const status = item.consent?.status;
    const label = status && status !== "verified" ? `${item.name} (${status})` : item.name;
    ui.identity.add(new Option(label, item.name));
  }
  if ([...ui.identity.options].some((o) => o.value === current)) ui.identity.value = current;
}

new EnrollForm(
  {
    form: ui.enrollForm,
    name: ui.enrollName,
    photo: ui.enrollPhoto,
    consentBy: ui.consentBy,
    production: ui.production,
    validUntil: ui.validUntil,
    consentDoc: ui.consentDoc,
    unverified: ui.unverified,
    submit: ui.enrollSubmit,
    status: ui.enrollStatus,
    error: ui.enrollError,
    faces: $("#enroll-faces"),
    replaceRow: $("#enroll-replace-row"),
    replace: $("#enroll-replace"),
  },
  async (name) => {
    await refreshIdentities(name);
    await send({ identity: name }, "identity"); // the new identity, selected on this stream
  },
);

// ---- page ---------------------------------------------------------------------------------------

async function refreshStreamList() {
  try {
    const streams = await listStreams();
    ui.streamList.innerHTML = "";
    for (const s of streams) ui.streamList.append(new Option(s.name, s.name));
  } catch {
    /* the list is a convenience */
  }
}

function open(name) {
  state.name = name;
  state.settings = null;
  state.lastStatsAt = 0;
  ui.navPublish.href = `publish.html?stream=${encodeURIComponent(name)}`;
  document.title = `stageswap · ${name}`;
  history.replaceState(null, "", `?stream=${encodeURIComponent(name)}`);
  ui.fields.disabled = true;
  recorder.reset();
  setConn("connecting", "wait");
  startView("processed");
  if (ui.layout.value !== "hide-source") startView("source");
  else stopView("source");
}

/** This monitor's own mute (the stream's sound is still sent; "Sound out" stops it for everyone). Muted
 * at first: browsers only play sound after a click on the page. */
function setSound(on) {
  ui.processed.muted = !on;
  ui.sound.setAttribute("aria-pressed", String(on));
  ui.soundText.textContent = on ? "Sound on" : "Sound off"; // the icon follows aria-pressed (CSS)
  if (on) ui.processed.play().catch(() => {});
}

/** What the hotkeys do (hotkeys.js): the same controls the operator would click. */
function operatorKeys() {
  let beforeBypass = null;
  return {
    swap: () => !ui.fields.disabled && ui.swap.click(),
    bypass: () => {
      if (ui.fields.disabled) return;
      const on = ui.swap.checked || ui.relight.checked;
      if (on) beforeBypass = { swap: ui.swap.checked, relight: ui.relight.checked };
      const next = on ? { swap: false, relight: false } : beforeBypass || { swap: true, relight: true };
      if (!on) beforeBypass = null;
      ui.swap.checked = next.swap;
      ui.relight.checked = next.relight;
      // Both boxes change: a stats push made before the patch must not undo either (send holds "swap").
      state.editing.add("relight");
      send(next, "swap").then(() => setTimeout(() => state.editing.delete("relight"), 300));
    },
    record: () => {
      const button = [$("#rec-stop"), $("#rec-start")].find((b) => !b.hidden);
      if (button && !button.disabled) button.click();
    },
    identity: (n) => {
      const option = ui.identity.options[n];
      if (ui.fields.disabled || !option) return;
      ui.identity.value = option.value;
      ui.identity.dispatchEvent(new Event("change"));
    },
  };
}

function setLayout(layout) {
  ui.views.className = `views ${layout}`;
  localStorage.setItem("stageswap.layout", layout);
  if (layout === "hide-source") stopView("source");
  else if (!state.players.source && state.name) startView("source");
}

ui.layout.value = localStorage.getItem("stageswap.layout") || "inset";
ui.views.className = `views ${ui.layout.value}`;
ui.layout.addEventListener("change", () => setLayout(ui.layout.value));
ui.stream.value = param("stream", "cam");
ui.stream.addEventListener("change", () => {
  const name = ui.stream.value.trim();
  if (!STREAM_NAME.test(name)) {
    // The controls must not go on acting on the stream shown before: off until a stream is named.
    setConn("not a stream name", "off");
    ui.fields.disabled = true;
    $("#rec-start").disabled = true;
    showControlError(`"${name}" is not a stream name (a-z, 0-9, - and _, up to 64): the controls are off until you name a stream.`);
    ui.stream.setAttribute("aria-invalid", "true");
    return;
  }
  ui.stream.setAttribute("aria-invalid", "false");
  showControlError("");
  open(name);
});
setupTokenField(() => {
  open(state.name);
  connectWs();
  refreshIdentities();
  models.refresh();
});
wireControls();
// ?clean=1: the program feed alone, full screen, nothing over it (a village monitor, a projector).
const clean = param("clean", "") === "1";
document.body.classList.toggle("clean", clean);
if (clean) ui.layout.value = "hide-source";
new Hotkeys(operatorKeys(), $("#keys-button"));
ui.processed.addEventListener("playing", countFrames);
open(ui.stream.value.trim());
connectWs();
refreshIdentities();
models.refresh();
refreshStreamList();
state.pollTimer = setInterval(poll, POLL_MS);
window.addEventListener("pagehide", () => {
  stopView("processed");
  stopView("source");
});
