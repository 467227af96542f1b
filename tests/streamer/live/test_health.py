"""A stream's health from its figures: the stated thresholds, each reason in words, the last engine error."""

from __future__ import annotations

from typing import Any

from streamer.live.health import stream_health

WINDOW_S = 5.0


def _stats(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "uptime_s": 60.0,
        "input_fps": 30.0,
        "output_fps": 30.0,
        "last_frame_age_s": 0.03,
        "last_output_age_s": 0.05,
        "recent_frames": 30,
        "recent_failed": 0,
        "last_error": None,
        "processor_error": None,
    }
    base.update(kw)
    return base


def test_a_stream_that_keeps_up_is_ok() -> None:
    assert stream_health(_stats(), WINDOW_S) == {"state": "ok", "reasons": [], "last_error": None}


def test_a_falling_output_rate_is_amber_then_red() -> None:
    amber = stream_health(_stats(output_fps=26.0), WINDOW_S)  # 87% of the input
    assert amber["state"] == "degraded" and "output 26.0 fps of 30.0 fps in" in amber["reasons"][0]
    assert stream_health(_stats(output_fps=17.0), WINDOW_S)["state"] == "degraded"  # the 30 -> 17 fps
    assert stream_health(_stats(output_fps=14.0), WINDOW_S)["state"] == "failing"  # under half
    assert stream_health(_stats(output_fps=27.5), WINDOW_S)["state"] == "ok"  # within 10%
    # Not judged while the first frames are still in the window, nor on a trickle of input.
    assert stream_health(_stats(output_fps=5.0, uptime_s=2.0), WINDOW_S)["state"] == "ok"
    assert stream_health(_stats(input_fps=3.0, output_fps=1.0), WINDOW_S)["state"] == "ok"


def test_engine_failures_are_amber_then_red_with_the_engines_words() -> None:
    error = {"stage": "relight", "message": "no HDRI named 'studio' in /data/hdri", "age_s": 0.4}
    one = stream_health(_stats(recent_failed=1, last_error=error), WINDOW_S)
    assert one["state"] == "degraded" and one["last_error"] == error
    assert one["reasons"] == ["1 of the last 30 frames failed in an engine and went out unprocessed"]
    assert stream_health(_stats(recent_failed=15, last_error=error), WINDOW_S)["state"] == "failing"
    # An old error is not shown once the frames are fine again.
    old = {**error, "age_s": 120.0}
    assert stream_health(_stats(last_error=old), WINDOW_S) == {"state": "ok", "reasons": [], "last_error": None}


def test_no_processor_or_no_output_is_red_but_waiting_is_not() -> None:
    broken = stream_health(_stats(processor_error="processor unavailable: model facemesh missing"), WINDOW_S)
    assert broken["state"] == "failing" and "facemesh" in broken["reasons"][0]
    stalled = stream_health(_stats(last_output_age_s=3.0), WINDOW_S)
    assert stalled["state"] == "failing" and "none has gone out" in stalled["reasons"][0]
    never = stream_health(_stats(last_output_age_s=None, output_fps=0.0), WINDOW_S)
    assert never["state"] == "failing"
    waiting = _stats(input_fps=0.0, output_fps=0.0, last_frame_age_s=40.0, last_output_age_s=40.0)
    assert stream_health(waiting, WINDOW_S)["state"] == "ok"
