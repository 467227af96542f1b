// The monitor page's recorder: start and stop recording the stream, and an indicator that cannot be
// missed — a red dot with the elapsed duration on the output video and in the panel, the file names the
// server chose, and the recorder's alarm (it fell behind and drops frames, or a write failed, e.g. a full
// disk) in a banner, in the server's words.
//
// What it shows comes from the stream's `recording` block in the stats (pushed on /ws about twice a second,
// polled when the socket is down; README "Stream JSON") and from the /ws `recording` events (started,
// progress, alarm, alarm_cleared, stopped, error), whichever arrives first. Start and stop are REST calls
// through api.js, so they carry the token and a refusal comes back with the server's reason.

import { ApiError, startRecording, stopRecording } from "./api.js";
import { formatDuration, framesOf, RecordingsList } from "./recordings.js";

const FORMAT_LABEL = { h264: "H.264", prores: "ProRes 422 HQ", ffv1: "FFV1" };
const POST_CODECS = ["prores", "ffv1"]; // recorded at constant rate unless the operator unticks it
const RATE_TOLERANCE = 0.02; // as the server's: more than 2% under the input rate is not constant

function capitalise(text) {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A server message with each file's folder left out (the panel lists the files by name). */
function withoutFolders(text) {
  return text.replace(/(?:\/[^/\s:]+)+\/([^/\s:]+)/g, "$1");
}

export class RecordingPanel {
  /**
   * @param el the page's elements: badge, badgeText (on the output video), banner, bannerText, dismiss,
   *   fields (the options' fieldset), view, format, cfr, rateNote, start, stop, state, files, error, list
   * @param streamName () => the stream this page shows now
   */
  constructor(el, streamName) {
    this.el = el;
    this.streamName = streamName;
    this.status = null;
    this.busy = false;
    this.dismissed = null; // id of a failed recording whose banner the operator closed
    this.stats = null;
    this.list = new RecordingsList(el.list, streamName);
    el.format.addEventListener("change", () => {
      el.cfr.checked = POST_CODECS.includes(el.format.value.split("/")[0]); // editors expect constant rate
      this.render();
    });
    el.cfr.addEventListener("change", () => this.render());
    el.cfr.checked = POST_CODECS.includes(el.format.value.split("/")[0]);
    el.start.addEventListener("click", () => this.start());
    el.stop.addEventListener("click", () => this.stop());
    el.dismiss.addEventListener("click", () => {
      this.dismissed = this.status?.id ?? null;
      this.render();
    });
    this.render();
  }

  /** The options as the server takes them (README, "Recording"). */
  options() {
    const [codec, container] = this.el.format.value.split("/");
    return { view: this.el.view.value, codec, container, frame_rate: this.el.cfr.checked ? "cfr" : "source" };
  }

  async start() {
    const name = this.streamName();
    this.showError("");
    this.setBusy(true);
    try {
      const rec = await startRecording(name, this.options());
      if (name === this.streamName()) this.show({ ...rec, active: rec.state === "recording" });
    } catch (err) {
      this.showError(`Refused: ${err instanceof ApiError ? err.message : String(err)}`);
    } finally {
      this.setBusy(false);
    }
  }

  async stop() {
    const name = this.streamName();
    this.showError("");
    this.setBusy(true);
    this.el.state.textContent = "stopping: writing what is queued…";
    try {
      const summary = await stopRecording(name);
      if (name === this.streamName()) this.show({ ...summary, active: false });
    } catch (err) {
      this.showError(`Refused: ${err instanceof ApiError ? err.message : String(err)}`);
      this.render();
    } finally {
      this.setBusy(false);
    }
  }

  /** The stream's `recording` block from the stats (null: it has not recorded since the server started),
   * and its live `stats` (the input and output rates: will a recording at source times be constant-rate?). */
  show(rec, stats = this.stats) {
    const ended = this.status?.active && !rec?.active;
    this.status = rec || null;
    this.stats = stats || null;
    this.render();
    if (ended) this.list.refresh();
  }

  /** A /ws `recording` event (the caller checked it is about this page's stream). */
  onEvent(msg) {
    const rec = msg.recording;
    if (!rec) return;
    const shown = { ...rec, active: rec.state === "recording" };
    if (msg.event === "alarm" && !shown.alarm_message) shown.alarm_message = msg.message;
    if (msg.event === "error" && !shown.error) shown.error = msg.message;
    this.show(shown);
    if (msg.event === "stopped" || msg.event === "error") this.list.refresh();
  }

  /** Another stream, or a new token: forget what was shown. */
  reset() {
    this.status = null;
    this.stats = null;
    this.showError("");
    this.render();
    this.list.refresh();
  }

  setBusy(busy) {
    this.busy = busy;
    this.render();
  }

  showError(text) {
    this.el.error.textContent = text || "";
  }

  render() {
    const el = this.el;
    const rec = this.status;
    const active = !!rec?.active;
    const finishing = rec?.state === "finishing";
    el.start.hidden = active;
    el.stop.hidden = !active;
    el.start.disabled = this.busy || finishing;
    el.stop.disabled = this.busy;
    el.fields.disabled = active || this.busy;
    document.title = `${active ? "● REC · " : ""}stageswap · ${this.streamName()}`;

    const failed = rec?.state === "failed" && rec.id !== this.dismissed;
    const behind = active && rec.alarm;
    // The badge on the output video: where the operator is looking.
    el.badge.hidden = !(active || failed);
    el.badge.className = `rec-badge${behind ? " behind" : ""}${failed ? " failed" : ""}`;
    if (active) el.badgeText.textContent = `REC ${formatDuration(rec.duration_s)}${behind ? " · BEHIND" : ""}`;
    else if (failed) el.badgeText.textContent = "REC STOPPED";

    // The banner: the recorder fell behind (frames are dropped from the file) or the recording failed.
    el.banner.hidden = !(behind || failed);
    el.banner.className = `rec-alarm${failed ? " failed" : ""}`;
    el.dismiss.hidden = !failed;
    if (behind) {
      const why = rec.alarm_message || `the recorder is behind: ${rec.frames_dropped} frame(s) dropped so far`;
      el.bannerText.textContent = `${capitalise(why)}. The file stays valid; the live output is not affected.`;
    } else if (failed) {
      const hint = rec.disk_full ? " Free space on the recordings disk, then record again." : "";
      el.bannerText.textContent = `Recording stopped: ${withoutFolders(rec.error || "it failed")}.${hint}`;
    }

    const warning = this.rateWarning(rec, active || finishing);
    el.rateNote.style.visibility = warning ? "visible" : "hidden"; // keeps its room: nothing below moves
    el.rateNote.textContent = warning;

    el.state.className = `rec-state${active ? " on" : ""}`;
    el.state.textContent = rec ? this.stateLine(rec) : "not recording";
    el.files.innerHTML = "";
    if (rec?.files) {
      const label = document.createElement("div");
      label.className = "hint";
      label.textContent = active || finishing ? "Recording to" : "Last recording";
      el.files.append(label);
      for (const [view, file] of Object.entries(rec.files)) {
        const row = document.createElement("div"); // the name says the view: {stream}-{UTC start}-{view}.{ext}
        row.className = "rec-file";
        row.textContent = file;
        row.title = `${view}: ${file} (in the server's recordings folder)`;
        el.files.append(row);
      }
    }
  }

  /** Before a recording: a stream dropping frames will not give a constant-rate file at source times. After
   * one (while it is the last): the server's own warning about the file it wrote. */
  rateWarning(rec, running) {
    if (rec && !running && rec.rate_warning) {
      return `Last recording: not constant-rate (${rec.average_fps} fps on average against ${rec.fps}): see below.`;
    }
    if (running ? rec.frame_rate === "cfr" : this.el.cfr.checked) return "";
    const s = this.stats || {};
    if (!(s.input_fps > 0) || !(s.output_fps >= 0) || s.output_fps >= s.input_fps * (1 - RATE_TOLERANCE)) return "";
    const rates = `the stream puts out ${s.output_fps.toFixed(1)} of ${s.input_fps.toFixed(1)} fps`;
    if (running) return `Not constant-rate: ${rates}; each frame keeps its own time.`;
    return `Will not be constant-rate: ${rates}. Tick Constant rate for a file to edit.`;
  }

  stateLine(rec) {
    const sound = rec.audio ? ` + ${rec.audio.codec === "pcm" ? "PCM" : rec.audio.codec === "aac" ? "AAC" : "Opus"} sound` : ", no sound";
    const format = `${FORMAT_LABEL[rec.codec] ?? rec.codec ?? "?"} ${String(rec.container ?? "").toUpperCase()}${sound}`;
    const frames = `${framesOf(rec)} frames`;
    const dropped = `${rec.frames_dropped ?? 0} dropped`;
    if (rec.active) {
      const queue = rec.queue ? ` · queue ${rec.queue.frames}/${rec.queue.max_frames}` : "";
      const rate = rec.frame_rate === "cfr" ? ` · CFR ${rec.fps}` : "";
      return `● REC ${formatDuration(rec.duration_s)} · ${format}${rate} · ${frames} · ${dropped}${queue}`;
    }
    if (rec.state === "finishing") return "stopping: writing what is queued…";
    const how = rec.state === "failed" ? "failed" : "finished";
    return `${how}: ${formatDuration(rec.duration_s)} · ${format} · ${frames} · ${dropped}`;
  }
}
