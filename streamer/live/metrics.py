"""Live figures of a stream, and their Prometheus exposition.

``StreamStats`` is written by the ingest side (the event loop or a source thread) and the worker thread,
and read by the HTTP side: every method takes one short lock, so a reader never sees a half-updated
window and a writer never waits for a reader's percentile computation. Rates and percentiles cover a
trailing window (``ServeConfig.stats_window_s``), so the figures follow the stream as it is now.

``StatsCollector`` turns the snapshots into Prometheus metric families for ``GET /metrics``; it is
registered in a registry owned by the app (no module-level registry, no global state).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engines.stats import StageTimes
from streamer.live.health import RECENT_FRAMES

__all__ = ["CONTENT_TYPE_LATEST", "RateMeter", "StatsCollector", "StreamStats", "prometheus_text"]


class RateMeter:
    """Events per second over a trailing window (not thread-safe: the owner locks)."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def mark(self, now_s: float) -> None:
        self._times.append(now_s)
        self._trim(now_s)

    def rate(self, now_s: float) -> float:
        self._trim(now_s)
        n = len(self._times)
        if n < 2:
            return 0.0
        # Events per second between the first and the last event in the window, as long as the stream is
        # still flowing; a stream that stopped decays to 0 as its events leave the window.
        span_s = max(now_s - self._times[0], self._times[-1] - self._times[0])
        return (n - 1) / span_s if span_s > 0 else 0.0

    def _trim(self, now_s: float) -> None:
        limit = now_s - self.window_s
        while self._times and self._times[0] < limit:
            self._times.popleft()


def _percentiles(values: Iterable[float], qs: Mapping[str, float]) -> dict[str, float] | None:
    a = np.fromiter(values, dtype=np.float64)
    if a.size == 0:
        return None
    return {key: round(float(np.percentile(a, q)), 2) for key, q in qs.items()}


class StreamStats:
    """Counters, rates, latency and per-stage timings of one stream (thread-safe)."""

    def __init__(self, window_s: float = 5.0, stage_window: int = 150) -> None:
        self.window_s = window_s
        self._lock = threading.Lock()
        self.started_s = time.monotonic()
        self._frames_in = 0
        self._frames_processed = 0
        self._frames_failed = 0
        self._faces = 0
        self._face_list: list[dict[str, Any]] = []
        self._size: tuple[int, int] | None = None
        self._in_rate = RateMeter(window_s)
        self._out_rate = RateMeter(window_s)
        self._latency: deque[tuple[float, float]] = deque()
        self._stages = StageTimes(window=stage_window)
        self._last_in_s: float | None = None
        self._last_out_s: float | None = None
        self._recent_failed: deque[bool] = deque(maxlen=RECENT_FRAMES)
        self._last_error: tuple[str, str, float] | None = None
        """(stage, the engine's message, when) of the last frame an engine failed on."""

    def on_ingest(self, now_s: float | None = None) -> None:
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._frames_in += 1
            self._last_in_s = now_s
            self._in_rate.mark(now_s)

    def on_processed(
        self,
        arrived_s: float,
        stage_ms: Mapping[str, float],
        faces: int,
        failed: bool,
        size: tuple[int, int],
        now_s: float | None = None,
        error: tuple[str, str] | None = None,
        face_list: list[dict[str, Any]] | None = None,
    ) -> None:
        """One frame reached the fan-out; ``arrived_s`` is when it arrived at ingest (monotonic). ``error``:
        (stage, message) of the engine failure a ``failed`` frame passed through unprocessed for."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            self._frames_processed += 1
            self._frames_failed += int(failed)
            self._recent_failed.append(failed)
            self._last_out_s = now_s
            if failed and error is not None:
                self._last_error = (error[0], error[1], now_s)
            self._faces = faces
            self._face_list = face_list or []
            self._size = size
            self._out_rate.mark(now_s)
            self._latency.append((now_s, (now_s - arrived_s) * 1000.0))
            limit = now_s - self.window_s
            while self._latency and self._latency[0][0] < limit:
                self._latency.popleft()
            self._stages.add_all(stage_ms)

    def snapshot(self, now_s: float | None = None) -> dict[str, Any]:
        """The figures as JSON-ready values (see README, "Stream stats")."""
        now_s = time.monotonic() if now_s is None else now_s
        with self._lock:
            latency = [ms for t, ms in self._latency if t >= now_s - self.window_s]
            snap: dict[str, Any] = {
                "uptime_s": round(now_s - self.started_s, 2),
                "input_fps": round(self._in_rate.rate(now_s), 2),
                "output_fps": round(self._out_rate.rate(now_s), 2),
                "frames_in": self._frames_in,
                "frames_processed": self._frames_processed,
                "frames_failed": self._frames_failed,
                "latency_ms": _percentiles(latency, {"p50": 50, "p95": 95}),
                "stage_ms": self._stages.summary(),
                "faces": self._faces,
                "face_list": list(self._face_list),
                "width": self._size[1] if self._size else None,
                "height": self._size[0] if self._size else None,
                "last_frame_age_s": None if self._last_in_s is None else round(now_s - self._last_in_s, 2),
                "last_output_age_s": None if self._last_out_s is None else round(now_s - self._last_out_s, 2),
                "recent_frames": len(self._recent_failed),
                "recent_failed": sum(self._recent_failed),
                "last_error": None,
            }
            if self._last_error is not None:
                stage, message, at_s = self._last_error
                snap["last_error"] = {"stage": stage, "message": message, "age_s": round(now_s - at_s, 2)}
        return snap


class StatsCollector:
    """A Prometheus collector over the streams' JSON snapshots (``snapshots()`` returns name -> stream JSON)."""

    def __init__(self, snapshots: Callable[[], Mapping[str, Mapping[str, Any]]]) -> None:
        self._snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        streams = self._snapshots()
        yield _gauge("stageswap_streams", "Streams that exist now.", [], [([], len(streams))])
        counters = {
            "frames_in": "Frames that arrived at ingest.",
            "frames_processed": "Frames the worker handed to the fan-out.",
            "frames_dropped": "Frames replaced by a newer one before the worker took them (latest frame wins).",
            "frames_failed": "Frames an engine failed on (passed through unprocessed).",
        }
        for key, doc in counters.items():
            c = CounterMetricFamily(f"stageswap_{key}", doc, labels=["stream"])
            for name, s in streams.items():
                c.add_metric([name], float(s["stats"][key]))
            yield c
        gauges = {
            "input_fps": "Frames per second arriving at ingest.",
            "output_fps": "Frames per second leaving the worker.",
            "faces": "Faces in the last processed frame.",
            "uptime_seconds": "Seconds since the stream started.",
        }
        for key, doc in gauges.items():
            src = "uptime_s" if key == "uptime_seconds" else key
            yield _gauge(
                f"stageswap_{key}", doc, ["stream"], [([name], s["stats"][src]) for name, s in streams.items()]
            )
        yield _gauge(
            "stageswap_publisher_connected",
            "1 when a publisher (WHIP) or an input feeds the stream.",
            ["stream"],
            [([name], 1.0 if s["live"] else 0.0) for name, s in streams.items()],
        )
        levels = {"ok": 0.0, "degraded": 1.0, "failing": 2.0}
        yield _gauge(
            "stageswap_stream_health",
            "0 ok, 1 degraded (amber), 2 failing (red): README, Stream health.",
            ["stream"],
            [([name], levels.get(str((s.get("health") or {}).get("state")), 0.0)) for name, s in streams.items()],
        )
        yield _gauge(
            "stageswap_viewers",
            "WHEP viewers per view.",
            ["stream", "view"],
            [([name, view], n) for name, s in streams.items() for view, n in s["stats"]["viewers"].items()],
        )
        latency = GaugeMetricFamily(
            "stageswap_latency_ms", "Arrival at ingest to fan-out, ms, over the stats window.", labels=["stream", "q"]
        )
        stage = GaugeMetricFamily(
            "stageswap_stage_ms",
            "Per-stage processing time, ms, over the stats window.",
            labels=["stream", "stage", "q"],
        )
        for name, s in streams.items():
            for q, v in (s["stats"]["latency_ms"] or {}).items():
                latency.add_metric([name, q], v)
            for st, summary in s["stats"]["stage_ms"].items():
                for q in ("p50", "p99"):
                    stage.add_metric([name, st, q], summary[q])
        yield latency
        yield stage
        yield from _audio_metrics(streams)
        yield from _recording_metrics(streams)


def _audio_metrics(streams: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    """The sound per stream (``stats.audio``): seconds taken in, chunks dropped, the picture's delay."""
    sound = {name: s["stats"].get("audio") or {} for name, s in streams.items()}
    seconds = CounterMetricFamily("stageswap_audio_seconds", "Seconds of sound taken in.", labels=["stream"])
    dropped = CounterMetricFamily(
        "stageswap_audio_dropped", "20 ms chunks of sound dropped (no picture to go with).", labels=["stream"]
    )
    for name, a in sound.items():
        seconds.add_metric([name], float(a.get("seconds_in", 0.0)))
        dropped.add_metric([name], float(a.get("dropped", 0)))
    yield seconds
    yield dropped
    yield _gauge(
        "stageswap_picture_delay_ms",
        "Capture to the viewers' encoders, median of the last frames, ms (the sound goes out with it).",
        ["stream"],
        [([name], a["delay_ms"]) for name, a in sound.items() if a.get("delay_ms") is not None],
    )


def _recording_metrics(streams: Mapping[str, Mapping[str, Any]]) -> Iterator[Metric]:
    """Recording figures per stream from each stream's ``recording`` JSON (``RecordingManager.status``; None or
    absent when the stream has not recorded): gauges for now, counters over the stream's recordings."""
    status = {name: s.get("recording") or {} for name, s in streams.items()}
    now = {
        "active": ("stageswap_recording_active", "1 while the stream is recording."),
        "alarm": ("stageswap_recording_alarm", "1 while the recorder is behind (its queue full, frames dropped)."),
        "queue": ("stageswap_recording_queue_frames", "Frames waiting in the recorder's queue (the fullest view)."),
        "duration_s": ("stageswap_recording_duration_seconds", "Media time recorded so far (0 when not recording)."),
    }
    for key, (metric, doc) in now.items():
        samples: list[tuple[list[str], Any]] = []
        for name, r in status.items():
            value: Any = 0.0
            if r.get("active"):
                value = (r.get("queue") or {}).get("frames") if key == "queue" else r.get(key)
            samples.append(([name], value))  # True/False count as 1/0
        yield _gauge(metric, doc, ["stream"], samples)
    written = CounterMetricFamily(
        "stageswap_recording_frames_written",
        "Frames the recorder's encoders wrote, per view, over the stream's recordings since the service started.",
        labels=["stream", "view"],
    )
    dropped = CounterMetricFamily(
        "stageswap_recording_frames_dropped",
        "Frames dropped from recordings because the recorder was behind, since the service started.",
        labels=["stream"],
    )
    for name, r in status.items():
        totals = r.get("totals") or {}
        for view, frames in (totals.get("frames_written") or {}).items():
            written.add_metric([name, view], float(frames))
        dropped.add_metric([name], float(totals.get("frames_dropped") or 0))
    yield written
    yield dropped


def _gauge(name: str, doc: str, labels: list[str], samples: list[tuple[list[str], Any]]) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, doc, labels=labels)
    for values, v in samples:
        g.add_metric(values, float(v or 0.0))
    return g


def prometheus_text(snapshots: Callable[[], Mapping[str, Mapping[str, Any]]]) -> bytes:
    """The Prometheus text exposition of the given streams (a fresh registry per call: nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(snapshots))
    return generate_latest(registry)
