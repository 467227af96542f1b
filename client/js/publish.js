// The publish page: pick a camera, a size and a frame rate, and send it to the server over WHIP.

import { listStreams, STREAM_NAME } from "./api.js";
import { $, fmt, param, setStatus, setupTokenField } from "./page.js";
import { WhipPublisher } from "./webrtc.js";

const ui = {
  preview: $("#preview"),
  previewMsg: $("#preview-msg"),
  stream: $("#stream"),
  camera: $("#camera"),
  resolution: $("#resolution"),
  fps: $("#fps"),
  microphone: $("#microphone"),
  start: $("#start"),
  stop: $("#stop"),
  state: $("#state"),
  sent: $("#sent"),
  error: $("#error"),
  monitorLink: $("#monitor-link"),
  navMonitor: $("#nav-monitor"),
  nameNote: $("#name-note"),
};

let media = null; // the camera's MediaStream
let publisher = null;
let statsTimer = null;

function showError(message) {
  ui.error.textContent = message || "";
}

function setState(text, dot) {
  ui.state.innerHTML = "";
  const d = document.createElement("span");
  d.className = `dot ${dot}`;
  ui.state.append(d, document.createTextNode(text));
}

function constraints() {
  const [width, height] = ui.resolution.value.split("x").map(Number);
  const video = {
    width: { ideal: width },
    height: { ideal: height },
    frameRate: { ideal: Number(ui.fps.value) },
  };
  if (ui.camera.value) video.deviceId = { exact: ui.camera.value };
  // Scratch sound for the take: as the microphone hears it, none of the browser's call processing.
  const audio = ui.microphone.checked
    ? { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 2 }
    : false;
  return { video, audio };
}

async function listCameras() {
  const devices = await navigator.mediaDevices.enumerateDevices();
  const cameras = devices.filter((d) => d.kind === "videoinput");
  const chosen = ui.camera.value || media?.getVideoTracks()[0]?.getSettings().deviceId || "";
  ui.camera.innerHTML = "";
  cameras.forEach((cam, i) => {
    const option = new Option(cam.label || `Camera ${i + 1}`, cam.deviceId);
    ui.camera.add(option);
  });
  if (chosen) ui.camera.value = chosen;
  if (!cameras.length) ui.camera.add(new Option("no camera found", ""));
}

/** (Re)open the camera with the chosen settings; a live WHIP session switches track without renegotiating. */
async function openCamera() {
  showError("");
  ui.previewMsg.hidden = false;
  ui.previewMsg.textContent = "Waiting for the camera…";
  let next;
  try {
    next = await navigator.mediaDevices.getUserMedia(constraints());
  } catch (err) {
    ui.previewMsg.textContent = "No camera";
    showError(`The camera could not be opened: ${err.message || err.name}`);
    return;
  }
  const old = media;
  media = next;
  ui.preview.srcObject = media;
  ui.previewMsg.hidden = true;
  if (publisher?.pc) {
    const sender = publisher.pc.getSenders().find((s) => s.track?.kind === "video");
    if (sender) await sender.replaceTrack(media.getVideoTracks()[0]);
    publisher.mediaStream = media;
  }
  old?.getTracks().forEach((t) => t.stop());
  if (!publisher) showCamera();
  await listCameras();
}

/** The line under the buttons while nothing is sent: what the camera gives, and that it is not sent. */
function showCamera() {
  const settings = media?.getVideoTracks()[0]?.getSettings();
  ui.sent.textContent = settings
    ? `camera: ${settings.width}×${settings.height} at ${fmt(settings.frameRate)} fps · not sending`
    : "not sending";
}

/** A stream name nobody publishes to now: "cam", else cam2, cam3... (GET /api/streams; "cam" without it). */
async function freeName(wanted) {
  let taken;
  try {
    taken = new Set((await listStreams()).filter((s) => s.live !== false).map((s) => s.name));
  } catch {
    return { name: wanted, note: "" }; // no token yet: the server says so if the name is taken
  }
  if (!taken.has(wanted)) return { name: wanted, note: "" };
  const base = wanted.replace(/\d+$/, "") || "cam";
  for (let n = 2; n < 100; n += 1) {
    const name = `${base}${n}`;
    if (!taken.has(name)) return { name, note: `"${wanted}" is live already: ${name} is free.` };
  }
  return { name: wanted, note: "" };
}

function updateLinks() {
  const name = ui.stream.value.trim();
  const href = `monitor.html?stream=${encodeURIComponent(name)}`;
  ui.monitorLink.href = href;
  ui.navMonitor.href = href;
}

async function start() {
  showError("");
  const name = ui.stream.value.trim();
  if (!STREAM_NAME.test(name)) {
    showError("The stream name must be 1 to 64 lower-case letters, digits, - or _, starting with a letter or digit.");
    return;
  }
  if (!media) await openCamera();
  if (!media) return;
  ui.start.disabled = true;
  ui.stream.disabled = true;
  setState(`connecting to ${name}…`, "wait");
  publisher = new WhipPublisher(name, media, { onState: onPeerState });
  try {
    await publisher.publish();
  } catch (err) {
    publisher = null;
    ui.start.disabled = false;
    ui.stream.disabled = false;
    setState("not publishing", "off");
    showCamera();
    showError(`The server refused the stream: ${err.message}`);
    return;
  }
  ui.stop.disabled = false;
  statsTimer = setInterval(showSent, 1000);
}

function onPeerState(state) {
  const name = ui.stream.value.trim();
  if (state === "connected") setState(`publishing ${name}`, "live");
  else if (state === "failed") {
    clearInterval(statsTimer);
    statsTimer = null;
    ui.sent.textContent = "not sending: the connection failed";
    setState("connection failed", "off");
    showError("The connection to the server failed; press Stop, then Start again.");
  } else if (state === "disconnected") setState("connection interrupted…", "wait");
  else setState(`${state}…`, "wait");
}

async function showSent() {
  const sending = publisher;
  const s = await sending?.outboundStats();
  if (!s || sending !== publisher || !statsTimer) return; // stopped meanwhile: never show a stale "sending"
  const kbps = s.bitrate == null ? "–" : fmt(s.bitrate / 1000);
  const limit = s.limitation && s.limitation !== "none" ? ` · limited by ${s.limitation}` : "";
  ui.sent.textContent = `sending ${s.width ?? "–"}×${s.height ?? "–"} at ${fmt(s.fps)} fps · ${kbps} kbit/s${limit}`;
}

async function stop() {
  clearInterval(statsTimer);
  statsTimer = null;
  ui.stop.disabled = true;
  await publisher?.stop();
  publisher = null;
  ui.start.disabled = false;
  ui.stream.disabled = false;
  setState("not publishing", "");
  showCamera();
}

async function chooseName() {
  const asked = param("stream", "");
  if (asked) {
    ui.stream.value = asked; // a name in the address is the operator's choice: the server says if it is live
  } else if (!publisher) {
    const { name, note } = await freeName(ui.stream.value.trim() || "cam");
    if (!publisher && !ui.stream.matches(":focus")) ui.stream.value = name;
    ui.nameNote.textContent = note;
  }
  updateLinks();
}

chooseName();
setupTokenField(chooseName);
ui.stream.addEventListener("input", () => {
  ui.nameNote.textContent = "";
  updateLinks();
});
ui.start.addEventListener("click", start);
ui.stop.addEventListener("click", stop);
for (const el of [ui.camera, ui.resolution, ui.fps]) el.addEventListener("change", openCamera);
// The sound joins at the next publish (a live session keeps the tracks it was negotiated with).
ui.microphone.addEventListener("change", openCamera);
window.addEventListener("pagehide", () => publisher?.stop());
navigator.mediaDevices?.addEventListener?.("devicechange", listCameras);

if (!navigator.mediaDevices?.getUserMedia) {
  showError("This browser gives no camera access here (a camera needs https:// or http://localhost).");
} else {
  openCamera();
}
