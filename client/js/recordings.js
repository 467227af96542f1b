// The monitor page's recordings list: a stream's finished recordings, newest first, each with its duration,
// frames, dropped frames, format and rate warning, a Play button (a player over the page) and a Download link
// per view, and the server's recordings folder. ProRes and FFV1 do not play in a browser: they get
// "Make proxy" (an H.264 copy made on the server, its progress shown) and then play the proxy.
//
// The links come from GET /api/recordings (README, "Play and download"): each carries a ticket for that one
// file, because a <video> element or a download link cannot send the Authorization header.

import { ApiError, getJson, request } from "./api.js";

/** Seconds as H:MM:SS (the elapsed duration of a recording). */
export function formatDuration(seconds) {
  const total = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

/** Frames in the file (the views hold the same frames: one view's count). */
export function framesOf(rec) {
  const counts = Object.values(rec.frames_written || {});
  return counts.length ? Math.max(...counts) : 0;
}

const FORMAT_LABEL = { h264: "H.264", prores: "ProRes", ffv1: "FFV1" };
const SHOWN = 8;
const PROXY_POLL_MS = 1500;
const RETRY_MS = 5000;

function megabytes(bytes) {
  return bytes >= 1e9 ? `${(bytes / 1e9).toFixed(1)} GB` : `${(bytes / 1e6).toFixed(1)} MB`;
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text != null) el.textContent = text;
  return el;
}

export class RecordingsList {
  /**
   * @param box the element the list goes into
   * @param streamName () => the stream this page shows now
   */
  constructor(box, streamName) {
    this.box = box;
    this.streamName = streamName;
    this.timer = null;
    this.player = null;
    this.loading = null;
  }

  /** Fetch and show the stream's recordings (again: after a recording stops, on another stream). */
  async refresh() {
    clearTimeout(this.timer);
    const name = this.streamName();
    // Only the newest request's answer is shown: refreshes overlap (the stop's reply, its event, the stats), and
    // an older listing answered late would put back what a newer one replaced, with nothing to look again.
    const asked = (this.asked = (this.asked || 0) + 1);
    let listing;
    try {
      listing = await getJson(`/api/recordings?stream=${encodeURIComponent(name)}`);
    } catch (err) {
      if (asked !== this.asked) return;
      this.render(null, err instanceof ApiError ? err.message : String(err));
      this.timer = setTimeout(() => this.refresh(), RETRY_MS); // the list comes back by itself when the server does
      return;
    }
    if (asked !== this.asked || name !== this.streamName()) return;
    this.render(listing, "");
    // Looked at again while a proxy is being made, or while a stopped recording is still finishing (its files
    // are being closed: no play or download yet) — the stop's event can come before the listing says finished.
    const pending = (listing.recordings || []).some(
      (rec) =>
        rec.state === "finishing" || Object.values(rec.media || {}).some((m) => m.proxy?.state === "making"),
    );
    if (pending) this.timer = setTimeout(() => this.refresh(), PROXY_POLL_MS);
  }

  render(listing, error) {
    const box = this.box;
    box.replaceChildren();
    if (error) {
      box.append(element("div", "error", `Recordings: ${error}`));
      return;
    }
    const finished = (listing.recordings || []).filter((rec) => rec.media);
    const head = element("div", "rec-list-head");
    head.append(element("span", null, finished.length ? `Recordings of ${this.streamName()}` : "No recordings of this stream yet"));
    box.append(head);
    for (const rec of finished.slice(0, SHOWN)) box.append(this.item(rec));
    if (finished.length > SHOWN) box.append(element("div", "hint", `and ${finished.length - SHOWN} older ones in the folder`));
    const folder = element("div", "hint rec-folder");
    folder.append("Folder on the server: ", element("code", null, listing.folder || "?"));
    box.append(folder);
  }

  item(rec) {
    const li = element("div", "rec-item");
    li.dataset.id = rec.id;
    const when = (rec.start_utc || "").replace("T", " ").replace(/\.\d+Z$/, " UTC");
    const format = `${FORMAT_LABEL[rec.codec] ?? rec.codec} ${String(rec.container || "").toUpperCase()}`;
    const rate = rec.frame_rate === "cfr" ? `CFR ${rec.fps}` : rec.average_fps ? `${rec.average_fps} fps` : "";
    const state = rec.state === "finished" ? "" : ` · ${rec.state}`;
    li.append(element("div", "rec-when", when + state));
    li.append(
      element(
        "div",
        "rec-facts",
        `${formatDuration(rec.duration_s)} · ${framesOf(rec)} frames · ${rec.frames_dropped ?? 0} dropped · ${format}${rate ? ` · ${rate}` : ""}`,
      ),
    );
    if (rec.rate_warning) li.append(element("div", "hint warn rec-rate-warning", rec.rate_warning));
    for (const [view, media] of Object.entries(rec.media)) li.append(this.viewRow(rec, view, media));
    return li;
  }

  viewRow(rec, view, media) {
    const row = element("div", "rec-view");
    row.dataset.view = view;
    row.append(element("span", "rec-view-name", view));
    if (media.missing) {
      const why = media.empty ? "no frames were recorded: none came from the stream" : `${media.file} is no longer in the folder`;
      row.append(element("span", "hint warn", why));
      return row;
    }
    const playable = media.plays ? media.url : media.proxy_url;
    if (playable) {
      const play = element("button", "rec-play", media.plays ? "▶ Play" : "▶ Play proxy");
      play.type = "button";
      play.addEventListener("click", () => this.play(`${rec.id} · ${view}`, playable, media.download));
      row.append(play);
    } else if (media.proxy?.state === "making") {
      row.append(element("span", "hint rec-proxy", `making a proxy… ${Math.round(100 * media.proxy.progress)}%`));
    } else {
      const make = element("button", "rec-make-proxy", "Make proxy to play");
      make.type = "button";
      make.title = "Browsers cannot play ProRes or FFV1: the server makes an H.264 copy to look at";
      make.addEventListener("click", () => this.makeProxy(rec.id, make));
      row.append(make);
      if (media.proxy?.state === "failed") row.append(element("span", "error", `proxy failed: ${media.proxy.error}`));
    }
    const download = element("a", "rec-download", `Download (${megabytes(media.bytes)})`);
    download.href = media.download;
    download.setAttribute("download", media.file);
    download.title = media.file;
    row.append(download);
    return row;
  }

  async makeProxy(id, button) {
    button.disabled = true;
    try {
      await request(`/api/recordings/${encodeURIComponent(id)}/proxy`, { method: "POST" });
    } catch (err) {
      button.disabled = false;
      button.after(element("span", "error", err instanceof ApiError ? err.message : String(err)));
      return;
    }
    this.refresh();
  }

  /** A player over the page: the file plays as the browser loads it (ranges), Escape or Close ends it. */
  play(title, url, download) {
    this.closePlayer();
    const shade = element("div", "rec-player");
    shade.setAttribute("role", "dialog");
    shade.setAttribute("aria-label", `recording ${title}`);
    const frame = element("div", "rec-player-frame");
    const bar = element("div", "rec-player-bar");
    bar.append(element("span", "grow", title));
    const link = element("a", null, "Download");
    link.href = download;
    bar.append(link);
    const close = element("button", null, "Close");
    close.type = "button";
    close.addEventListener("click", () => this.closePlayer());
    bar.append(close);
    const video = element("video");
    video.controls = true;
    video.autoplay = true;
    video.muted = true; // autoplay needs it; the controls unmute
    video.src = url;
    const problem = element("div", "error");
    video.addEventListener("error", () => {
      problem.textContent = "This browser cannot play the file: download it instead.";
    });
    frame.append(bar, video, problem);
    shade.append(frame);
    shade.addEventListener("click", (event) => {
      if (event.target === shade) this.closePlayer();
    });
    this.onKey = (event) => {
      if (event.key === "Escape") this.closePlayer();
    };
    document.addEventListener("keydown", this.onKey);
    document.body.append(shade);
    this.player = shade;
    close.focus();
  }

  closePlayer() {
    if (!this.player) return;
    const video = this.player.querySelector("video");
    video.pause();
    video.removeAttribute("src");
    video.load();
    this.player.remove();
    this.player = null;
    document.removeEventListener("keydown", this.onKey);
  }
}
