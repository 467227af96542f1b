// WHIP (RFC 9725) publishing and WHEP playing with the browser's own RTCPeerConnection.
//
// Both send one complete SDP offer: ICE gathering finishes before the POST, so the server needs no
// trickle-ICE PATCHes (stageswap is on the stage LAN; gathering host candidates takes milliseconds).

import { ApiError, authHeaders } from "./api.js";

const GATHER_TIMEOUT_MS = 3000;

/** Resolve when ICE gathering is complete (or after a timeout: send what has been gathered by then). */
function gatheringComplete(pc, timeoutMs = GATHER_TIMEOUT_MS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    };
    const check = () => {
      if (pc.iceGatheringState === "complete") done();
    };
    const timer = setTimeout(done, timeoutMs);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

async function errorReason(response) {
  const text = await response.text().catch(() => "");
  try {
    const body = JSON.parse(text);
    if (body && typeof body.error === "string") return body.error;
  } catch {
    /* plain text */
  }
  if (response.status === 401) return "the server needs an access token (set it at the top right)";
  return text.trim() || `${response.status} ${response.statusText}`;
}

/** POST the local offer to `endpoint`, apply the answer; returns the session URL (Location). */
async function negotiate(pc, endpoint) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  await gatheringComplete(pc);
  let response;
  try {
    response = await fetch(endpoint, {
      method: "POST",
      body: pc.localDescription.sdp,
      headers: authHeaders({ "Content-Type": "application/sdp" }),
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, `cannot reach the server (${err.message})`);
  }
  if (response.status !== 201 && !response.ok) throw new ApiError(response.status, await errorReason(response));
  const answer = await response.text();
  const location = response.headers.get("Location");
  await pc.setRemoteDescription({ type: "answer", sdp: answer });
  return location ? new URL(location, new URL(endpoint, window.location.href)).toString() : null;
}

/** End a WHIP/WHEP session: DELETE its URL (best effort) and close the peer connection. */
async function hangUp(pc, sessionUrl) {
  if (sessionUrl) {
    try {
      await fetch(sessionUrl, { method: "DELETE", headers: authHeaders(), keepalive: true });
    } catch {
      /* the server cleans up after an ICE failure or a timeout anyway */
    }
  }
  pc.close();
}

/** A WHIP publisher: `await publish()` sends `stream` (a MediaStream) to POST /whip/{name}. */
export class WhipPublisher {
  constructor(name, mediaStream, { onState } = {}) {
    this.name = name;
    this.mediaStream = mediaStream;
    this.onState = onState || (() => {});
    this.pc = null;
    this.sessionUrl = null;
  }

  async publish() {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addEventListener("connectionstatechange", () => this.onState(pc.connectionState));
    // The picture, and the microphone's sound where the page opened one (it travels to monitors and
    // recordings in sync with the processed picture).
    for (const track of [...this.mediaStream.getVideoTracks(), ...this.mediaStream.getAudioTracks()]) {
      pc.addTransceiver(track, { direction: "sendonly", streams: [this.mediaStream] });
    }
    try {
      this.sessionUrl = await negotiate(pc, `/whip/${encodeURIComponent(this.name)}`);
    } catch (err) {
      pc.close();
      this.pc = null;
      throw err;
    }
  }

  /** Outbound video figures from getStats: fps, size, bitrate (bits/s since the previous call). */
  async outboundStats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    let out = null;
    report.forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") out = s;
    });
    if (!out) return null;
    const now = out.timestamp;
    let bitrate = null;
    if (this._last && now > this._last.timestamp) {
      bitrate = ((out.bytesSent - this._last.bytesSent) * 8 * 1000) / (now - this._last.timestamp);
    }
    this._last = { timestamp: now, bytesSent: out.bytesSent };
    return {
      fps: out.framesPerSecond ?? null,
      width: out.frameWidth ?? null,
      height: out.frameHeight ?? null,
      bitrate,
      limitation: out.qualityLimitationReason ?? null,
    };
  }

  async stop() {
    if (!this.pc) return;
    const pc = this.pc;
    this.pc = null;
    await hangUp(pc, this.sessionUrl);
    this.sessionUrl = null;
  }
}

/**
 * A WHEP player: plays /whep/{name}?view=... into a <video> element (or `endpoint`, e.g. the stage page's
 * relay to another node: /api/stage/{node}/whep/{name}?view=...), with the stream's sound when `audio` is
 * set (the element's `muted` decides whether it is heard).
 */
export class WhepPlayer {
  constructor(name, view, video, { onState, audio = false, endpoint } = {}) {
    this.name = name;
    this.view = view;
    this.video = video;
    this.audio = audio;
    this.onState = onState || (() => {});
    this.endpoint = endpoint || `/whep/${encodeURIComponent(name)}?view=${encodeURIComponent(view)}`;
    this.via = "WHEP";
    this.pc = null;
    this.sessionUrl = null;
  }

  async play() {
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    if (this.audio) pc.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    pc.addEventListener("track", (event) => {
      media.addTrack(event.track); // picture and sound in one stream: the browser keeps them in sync
      this.video.srcObject = media;
      this.video.play().catch(() => {
        /* autoplay of a muted video is allowed; a refusal shows the controls */
      });
    });
    pc.addEventListener("connectionstatechange", () => this.onState(pc.connectionState));
    try {
      this.sessionUrl = await negotiate(pc, this.endpoint);
    } catch (err) {
      pc.close();
      this.pc = null;
      throw err;
    }
  }

  /** Inbound video figures from getStats: decoded fps, jitter-buffer delay (ms), frames dropped, size. */
  async inboundStats() {
    if (!this.pc) return null;
    const { figures, totals } = await inboundVideoStats(this.pc, this._last);
    this._last = totals;
    return figures;
  }

  async stop() {
    if (!this.pc) return;
    const pc = this.pc;
    this.pc = null;
    this.video.srcObject = null;
    this._last = null;
    await hangUp(pc, this.sessionUrl);
    this.sessionUrl = null;
  }
}

/**
 * A receiving peer connection's inbound video figures from getStats: decoded fps, jitter-buffer delay (ms,
 * the mean over the frames since `last`, the totals the previous call returned), frames dropped, packets
 * lost, size. Shared by the WHEP player and the Janus player, so the monitor shows the same figures for both.
 */
export async function inboundVideoStats(pc, last) {
  const report = await pc.getStats();
  let inbound = null;
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
  });
  if (!inbound) return { figures: null, totals: last };
  // jitterBufferDelay is a running total: report the mean over the frames since the previous call.
  const delay = inbound.jitterBufferDelay || 0;
  const emitted = inbound.jitterBufferEmittedCount || 0;
  const before = last || { delay: 0, emitted: 0 };
  const frames = emitted - before.emitted;
  return {
    figures: {
      fps: inbound.framesPerSecond ?? null,
      jitterBufferMs: frames > 0 ? (1000 * (delay - before.delay)) / frames : null,
      framesDropped: inbound.framesDropped ?? 0,
      packetsLost: inbound.packetsLost ?? 0,
      width: inbound.frameWidth ?? null,
      height: inbound.frameHeight ?? null,
    },
    totals: { delay, emitted },
  };
}
