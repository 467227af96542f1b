// The stage page: every node of the stage (this server and its --peer nodes) with its health and its streams,
// each stream's figures, and its main controls. One GET /api/stage a second; a control sends PATCH
// /api/stage/{node}/streams/{stream}, which this server applies or forwards to the node that has the stream
// (that node validates it: a refusal shows its reason). Watching plays through Janus when the stream is sent
// there, else WHEP: directly for this node's streams, relayed by this server for a peer's (no peer token here).

import { ApiError, getJson, request } from "./api.js";
import { $, fmt, setupTokenField } from "./page.js";
import { JanusPlayer, sfuMountpoint, sfuSummary } from "./sfu.js";
import { WhepPlayer } from "./webrtc.js";

const POLL_MS = 1000;
const ui = {
  nodes: $("#nodes"),
  summary: $("#summary"),
  error: $("#error"),
  watch: $("#watch"),
  watchTitle: $("#watch-title"),
  watchVideo: $("#watch-video"),
  watchMsg: $("#watch-msg"),
  watchStatus: $("#watch-status"),
};
const state = { stage: null, editing: new Set(), watching: null, player: null };

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

async function patch(node, stream, body, key) {
  state.editing.add(key);
  try {
    await request(`/api/stage/${encodeURIComponent(node)}/streams/${encodeURIComponent(stream)}`, {
      method: "PATCH",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    });
    ui.error.textContent = "";
  } catch (err) {
    ui.error.textContent = `${node} / ${stream}: ${err.message}`;
  } finally {
    state.editing.delete(key);
    refresh();
  }
}

function controls(node, s, down) {
  const key = `${node.name}/${s.name}`;
  const settings = s.settings || {};
  const swap = el("input", { type: "checkbox", checked: !!settings.swap, disabled: down, title: "swap" });
  swap.dataset.control = `${key}/swap`;
  swap.addEventListener("change", () => patch(node.name, s.name, { swap: swap.checked }, `${key}/swap`));
  const relight = el("input", { type: "checkbox", checked: !!settings.relight, disabled: down, title: "relight" });
  relight.dataset.control = `${key}/relight`;
  relight.addEventListener("change", () => patch(node.name, s.name, { relight: relight.checked }, `${key}/relight`));
  const strength = el("input", { type: "range", min: 0, max: 1, step: 0.05, value: settings.strength ?? 1, disabled: down });
  strength.dataset.control = `${key}/strength`;
  strength.addEventListener("input", () => state.editing.add(`${key}/strength`));
  strength.addEventListener("change", () =>
    patch(node.name, s.name, { strength: Number(strength.value) }, `${key}/strength`),
  );
  const watch = el("button", { textContent: "Watch", disabled: down });
  watch.addEventListener("click", () => startWatching(node, s));
  return [
    el("label", { className: "ctl" }, swap, " swap"),
    el("label", { className: "ctl" }, relight, " relight"),
    el("label", { className: "ctl strength" }, "strength ", strength),
    watch,
  ];
}

function streamRow(node, s, down) {
  const st = s.stats || {};
  const viewers = Object.values(st.viewers || {}).reduce((a, b) => a + b, 0);
  const cells = [
    el("td", {}, el("span", { className: `dot ${down ? "off" : s.live ? "live" : "wait"}` }), s.name),
    el("td", { textContent: `${fmt(st.input_fps, 1)} / ${fmt(st.output_fps, 1)}` }),
    el("td", { textContent: fmt(st.latency_ms?.p50, 0) }),
    el("td", { textContent: st.faces ?? "–" }),
    el("td", { textContent: s.settings?.identity ?? "–" }),
    el("td", { textContent: viewers }),
    el("td", { textContent: sfuSummary(s.sfu), title: s.sfu?.error || "" }),
    el("td", { textContent: s.recording?.active ? (s.recording.alarm ? "● REC behind" : "● REC") : "" }),
    el("td", { className: "controls" }, ...controls(node, s, down)),
  ];
  const tr = el("tr", {}, ...cells);
  tr.dataset.stream = `${node.name}/${s.name}`;
  if (down) tr.className = "stale";
  return tr;
}

function nodeCard(node) {
  const down = node.state !== "up";
  const head = el(
    "h2",
    {},
    el("span", { className: `dot ${node.state === "up" ? "live" : node.state === "down" ? "off" : "wait"}` }),
    node.name,
    el("span", { className: "hint", textContent: node.local ? " (this server)" : ` ${node.url}` }),
  );
  const status = el("div", {
    className: `status ${down ? "bad" : ""}`,
    textContent: down
      ? `${node.state.toUpperCase()}: ${node.error || "no answer yet"}${node.streams.length ? " (streams as last seen)" : ""}`
      : `up · ${node.streams.length} stream${node.streams.length === 1 ? "" : "s"}` +
        (node.round_trip_ms != null && !node.local ? ` · ${fmt(node.round_trip_ms, 0)} ms` : ""),
  });
  status.dataset.node = node.name;
  const table = el("table", { className: "stage-streams" });
  table.append(
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        ...["stream", "fps in / out", "latency ms", "faces", "identity", "viewers", "Janus", "rec", ""].map((t) =>
          el("th", { textContent: t }),
        ),
      ),
    ),
  );
  const body = el("tbody");
  for (const s of node.streams) body.append(streamRow(node, s, down));
  if (!node.streams.length) body.append(el("tr", {}, el("td", { colSpan: 9, className: "hint", textContent: "no streams" })));
  table.append(body);
  const card = el("section", { className: `panel node ${down ? "down" : ""}` }, head, status, table);
  card.dataset.node = node.name;
  return card;
}

function render(stage) {
  // a control the operator is moving (a slider dragged, a change on its way) is not redrawn under their hand;
  // the focused control keeps the focus across the redraw
  if (state.editing.size) return;
  const focused = document.activeElement?.dataset?.control;
  ui.nodes.replaceChildren(...stage.nodes.map(nodeCard));
  if (focused) ui.nodes.querySelector(`[data-control="${CSS.escape(focused)}"]`)?.focus();
  const up = stage.nodes.filter((n) => n.state === "up").length;
  const streams = stage.nodes.reduce((a, n) => a + n.streams.length, 0);
  ui.summary.textContent = `${up} of ${stage.nodes.length} nodes up · ${streams} streams`;
}

async function refresh() {
  try {
    state.stage = await getJson("/api/stage");
    render(state.stage);
    if (!state.editing.size) ui.error.textContent = "";
  } catch (err) {
    ui.error.textContent = err instanceof ApiError ? err.message : String(err);
  }
}

async function startWatching(node, s) {
  await stopWatching();
  ui.watch.hidden = false;
  ui.watchTitle.textContent = `${node.name} / ${s.name}`;
  ui.watchMsg.hidden = false;
  ui.watchMsg.textContent = "Connecting…";
  const onState = (st) => {
    if (st === "connected") ui.watchMsg.hidden = true;
    else if (st === "failed" || st === "closed") {
      ui.watchMsg.hidden = false;
      ui.watchMsg.textContent = "Connection lost";
    }
  };
  const mount = sfuMountpoint(s, "processed");
  const endpoint = node.local
    ? undefined
    : `/api/stage/${encodeURIComponent(node.name)}/whep/${encodeURIComponent(s.name)}?view=processed`;
  let player = mount
    ? new JanusPlayer(mount.url, mount.id, ui.watchVideo, { onState })
    : new WhepPlayer(s.name, "processed", ui.watchVideo, { onState, endpoint });
  state.player = player;
  try {
    try {
      await player.play();
    } catch (err) {
      if (!mount) throw err;
      player.stop();
      player = new WhepPlayer(s.name, "processed", ui.watchVideo, { onState, endpoint });
      state.player = player;
      await player.play();
    }
    ui.watchStatus.textContent = `via ${player.via}`;
  } catch (err) {
    ui.watchMsg.textContent = `Cannot play: ${err.message}`;
  }
}

async function stopWatching() {
  const player = state.player;
  state.player = null;
  ui.watch.hidden = true;
  ui.watchStatus.textContent = "";
  if (player) await player.stop();
}

$("#watch-close").addEventListener("click", stopWatching);
setupTokenField(refresh);
refresh();
setInterval(refresh, POLL_MS);
window.addEventListener("pagehide", stopWatching);
