// A stream's health as the server judges it (README, "Stream health": ok, degraded = amber, failing = red,
// with the reasons and the last engine error in the engines' own words): what the banner on the monitor's
// video and the stream list's dot say. The thresholds live on the server, once.

const TONE = { ok: "live", degraded: "warn", failing: "off" };
const LABEL = { degraded: "Output degraded", failing: "Output failing" };

/** Seconds as "just now", "4 s ago", "2 min ago". */
function ago(seconds) {
  const s = Number(seconds) || 0;
  if (s < 1) return "just now";
  return s < 90 ? `${Math.round(s)} s ago` : `${Math.round(s / 60)} min ago`;
}

/** {state, tone (a .dot class), text (one line for a banner or a tooltip; "" when ok)} of a stream's JSON. */
export function healthOf(stream) {
  const health = stream?.health;
  if (!health) return { state: "ok", tone: stream?.live ? "live" : "wait", text: "" };
  const state = health.state in TONE ? health.state : "ok";
  if (state === "ok") return { state, tone: stream.live === false ? "wait" : "live", text: "" };
  const parts = [`${LABEL[state]}: ${(health.reasons || []).join("; ") || "see the server log"}.`];
  const error = health.last_error;
  if (error?.message) parts.push(`Last error (${error.stage}, ${ago(error.age_s)}): ${error.message}`);
  return { state, tone: TONE[state], text: parts.join(" ") };
}
