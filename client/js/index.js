// The start page: links, and the streams that exist now (refreshed every few seconds).

import { listStreams } from "./api.js";
import { healthOf } from "./health.js";
import { $, fmt, setupTokenField } from "./page.js";

const list = $("#streams");
const error = $("#error");

async function refresh() {
  let streams;
  try {
    streams = await listStreams();
    error.textContent = "";
  } catch (err) {
    error.textContent = err.message;
    return;
  }
  list.innerHTML = "";
  if (!streams.length) {
    const li = document.createElement("li");
    li.className = "hint";
    li.textContent = "No stream yet: publish a camera to start one.";
    list.append(li);
  }
  for (const s of streams) {
    const li = document.createElement("li");
    const health = healthOf(s);
    const dot = document.createElement("span");
    dot.className = `dot ${s.live ? health.tone : "wait"}`;
    dot.title = s.live ? health.text || "ok: the output keeps up and no engine fails" : "waiting for its publisher";
    li.dataset.health = health.state;
    const link = document.createElement("a");
    link.href = `monitor.html?stream=${encodeURIComponent(s.name)}`;
    link.textContent = s.name;
    const info = document.createElement("span");
    info.className = "hint";
    const st = s.stats || {};
    info.textContent = `${fmt(st.output_fps, 1)} fps · ${st.width ?? "–"}×${st.height ?? "–"} · ${s.processor ?? ""}`;
    li.append(dot, link, info);
    if (s.live && health.text) {
      const why = document.createElement("span");
      why.className = `health-note ${health.state}`;
      why.textContent = health.text;
      li.append(why);
    }
    if (s.recording?.active) {
      const rec = document.createElement("span");
      rec.className = `rec-tag${s.recording.alarm ? " behind" : ""}`;
      rec.textContent = s.recording.alarm ? "● REC · behind" : "● REC";
      rec.title = Object.values(s.recording.files || {}).join("\n");
      li.append(rec);
    }
    list.append(li);
  }
}

$("#whip-url").textContent = `${window.location.origin}/whip/<stream>`;
setupTokenField(refresh);
refresh();
setInterval(refresh, 3000);
