// Watching through Janus (README, "A stage"): a stream that the server sends to a Janus SFU is played from
// Janus's Streaming mountpoint with Janus's own JS client (janus-gateway from npm, served by stageswap at
// /sfu/janus.js with the WebRTC adapter it needs at /sfu/adapter.js; never copied into client/). The player
// has the WHEP player's shape (play, inboundStats, stop, onState), so the monitor shows the same figures.

import { inboundVideoStats } from "./webrtc.js";

let loading = null;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const el = document.createElement("script");
    el.src = src;
    el.onload = resolve;
    el.onerror = () => reject(new Error(`${src} is not served: install Janus's JS client (make janus-setup)`));
    document.head.append(el);
  });
}

/** Janus's JS client, loaded once and initialised (rejects with the reason when it is not installed). */
export function loadJanus() {
  if (!loading) {
    loading = (async () => {
      await loadScript("/sfu/adapter.js");
      await loadScript("/sfu/janus.js");
      await new Promise((resolve) => window.Janus.init({ debug: false, callback: resolve }));
      if (!window.Janus.isWebrtcSupported()) throw new Error("this browser has no WebRTC");
      return window.Janus;
    })();
    loading.catch(() => {
      loading = null;
    });
  }
  return loading;
}

/** The mountpoint a stream's JSON names for `view` when Janus has it now, or null. */
export function sfuMountpoint(stream, view) {
  const sfu = stream?.sfu;
  if (!sfu || sfu.state !== "up") return null;
  const mount = sfu.mountpoints?.[view];
  return mount ? { url: sfu.url, id: mount.id } : null;
}

/** The SFU in a few characters: its state and the monitors Janus serves ("up · 12 viewers"), or "off". */
export function sfuSummary(sfu) {
  if (!sfu) return "off";
  if (sfu.state !== "up") return sfu.state;
  const n = Object.values(sfu.mountpoints || {}).reduce((a, m) => a + (m.viewers || 0), 0);
  return `up · ${n} viewer${n === 1 ? "" : "s"}`;
}

/** Plays one Streaming mountpoint of a Janus into a <video> element. */
export class JanusPlayer {
  constructor(url, mountpoint, video, { onState } = {}) {
    this.url = url;
    this.mountpoint = mountpoint;
    this.video = video;
    this.onState = onState || (() => {});
    this.via = "Janus";
    this.janus = null;
    this.handle = null;
    this._last = null;
  }

  async play() {
    const Janus = await loadJanus();
    await new Promise((resolve, reject) => {
      let settled = false;
      const fail = (why) => {
        const err = new Error(`Janus at ${this.url}: ${why}`);
        if (!settled) {
          settled = true;
          reject(err);
        } else {
          this.onState("failed");
        }
      };
      this.janus = new Janus({
        server: this.url,
        success: () => {
          this.janus.attach({
            plugin: "janus.plugin.streaming",
            success: (handle) => {
              this.handle = handle;
              handle.send({ message: { request: "watch", id: this.mountpoint } });
            },
            error: (why) => fail(why),
            onmessage: (msg, jsep) => {
              if (msg.error) {
                fail(msg.error);
                return;
              }
              if (!jsep) return;
              this.handle.createAnswer({
                jsep,
                tracks: [{ type: "data" }], // nothing sent: the offered video is received
                success: (answer) => this.handle.send({ message: { request: "start" }, jsep: answer }),
                error: (why) => fail(why?.message || String(why)),
              });
            },
            onremotetrack: (track, mid, on) => {
              if (track.kind !== "video" || !on) return;
              this.video.srcObject = new MediaStream([track]);
              this.video.play().catch(() => {
                /* autoplay of a muted video is allowed */
              });
            },
            webrtcState: (up) => {
              if (up && !settled) {
                settled = true;
                resolve();
              }
              this.onState(up ? "connected" : "failed");
            },
            iceState: (s) => {
              if (s === "failed" || s === "disconnected") this.onState("failed");
            },
            hangup: () => this.onState("closed"),
          });
        },
        error: (why) => fail(why),
        destroyed: () => this.onState("closed"),
      });
    });
  }

  /** The same figures as the WHEP player, from Janus's peer connection. */
  async inboundStats() {
    const pc = this.handle?.webrtcStuff?.pc;
    if (!pc) return null;
    const { figures, totals } = await inboundVideoStats(pc, this._last);
    this._last = totals;
    return figures;
  }

  async stop() {
    const janus = this.janus;
    this.janus = null;
    this.handle = null;
    this._last = null;
    this.video.srcObject = null;
    if (janus) janus.destroy({ cleanupHandles: true });
  }
}
