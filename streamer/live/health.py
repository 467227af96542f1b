"""Whether a stream's output is what the operator asked for: ok, degraded (amber) or failing (red), and why.

Computed from a stream's live figures each time its JSON is built (``Stream.to_dict``), so every surface
(the monitor's banner, the stream list's dot, ``/metrics`` scrapers reading the JSON) judges alike. The
thresholds, stated once here and in README ("Stream health"):

- **failing** (red): the processor could not be built (frames pass through unprocessed); or at least
  ``FAILING_SHARE`` of the last ``RECENT_FRAMES`` processed frames failed in an engine; or the output runs
  below ``FAILING_RATE`` of the input's rate; or frames come in but none has gone out for ``STALLED_S``.
- **degraded** (amber): any of the last ``RECENT_FRAMES`` frames failed; or the output runs below
  ``DEGRADED_RATE`` of the input's rate (the worker drops frames: latest frame wins).
- **ok** otherwise, and while nothing comes in (a stream waiting for its publisher is not failing).

Rates are compared once the stream has run a whole stats window (its first frames come in a burst) and only
while the input runs at ``MIN_INPUT_FPS`` or more. Each reason is one short sentence; ``last_error`` is the
last engine failure's own text, with its stage and age, kept while it is recent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

HealthState = Literal["ok", "degraded", "failing"]

RECENT_FRAMES = 30
"""Engine failures are judged over this many last processed frames (a second at 30 fps)."""
FAILING_SHARE = 0.5
DEGRADED_RATE = 0.9
FAILING_RATE = 0.5
MIN_INPUT_FPS = 5.0
STALLED_S = 2.0
ERROR_SHOWN_S = 30.0
"""The last engine error is reported for this long after it happened (then only the counters keep it)."""

THRESHOLDS: dict[str, float] = {
    "recent_frames": RECENT_FRAMES,
    "failing_share": FAILING_SHARE,
    "degraded_rate": DEGRADED_RATE,
    "failing_rate": FAILING_RATE,
    "min_input_fps": MIN_INPUT_FPS,
    "stalled_s": STALLED_S,
}


def stream_health(stats: Mapping[str, Any], window_s: float) -> dict[str, Any]:
    """``{"state", "reasons": [...], "last_error": {...} | None}`` from a stream's ``stats`` (its JSON's
    ``stats``: rates, ``recent_failed``/``recent_frames``, ``last_error``, ``processor_error``, ages)."""
    failing: list[str] = []
    degraded: list[str] = []
    if stats.get("processor_error"):
        failing.append(str(stats["processor_error"]))
    recent = int(stats.get("recent_frames") or 0)
    failed = int(stats.get("recent_failed") or 0)
    if failed:
        text = f"{failed} of the last {recent} frames failed in an engine and went out unprocessed"
        (failing if failed >= FAILING_SHARE * recent else degraded).append(text)
    in_fps = float(stats.get("input_fps") or 0.0)
    out_fps = float(stats.get("output_fps") or 0.0)
    settled = float(stats.get("uptime_s") or 0.0) >= window_s
    inflowing = (stats.get("last_frame_age_s") is not None) and float(stats["last_frame_age_s"]) < STALLED_S
    out_age = stats.get("last_output_age_s")
    if inflowing and settled and (out_age is None or float(out_age) >= STALLED_S):
        failing.append(f"frames come in but none has gone out for {STALLED_S:g} s")
    elif settled and inflowing and in_fps >= MIN_INPUT_FPS:
        share = out_fps / in_fps
        text = f"output {out_fps:.1f} fps of {in_fps:.1f} fps in: frames are dropped (the processing is too slow)"
        if share < FAILING_RATE:
            failing.append(text)
        elif share < DEGRADED_RATE:
            degraded.append(text)
    state: HealthState = "failing" if failing else "degraded" if degraded else "ok"
    error = stats.get("last_error")
    shown = error if isinstance(error, Mapping) and float(error.get("age_s", 0.0)) <= ERROR_SHOWN_S else None
    return {"state": state, "reasons": failing + degraded, "last_error": dict(shown) if shown else None}
