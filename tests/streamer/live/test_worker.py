"""The processing thread: newest frame wins, settings from the next frame, failures pass frames through."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from engines.errors import ModelError
from engines.processor import FaceProcessor, ProcessedFrame
from engines.settings import ProcessSettings
from streamer.live.fanout import OutputFanout
from streamer.live.metrics import StreamStats
from streamer.live.ring import CpuFrameRing, FrameMeta
from streamer.live.worker import PassthroughProcessor, Worker
from streamer.record.media import VideoReader


@pytest.fixture(scope="module")
def frames(clips: Path) -> list[np.ndarray]:
    with VideoReader(clips / "d3.mp4") as reader:
        return [f.image for _, f in zip(range(60), reader.frames(), strict=False)]


class _Sink:
    def __init__(self) -> None:
        self.metas: list[FrameMeta] = []
        self.results: list[ProcessedFrame] = []

    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
        self.metas.append(meta)
        self.results.append(result)


class _Recording:
    """A processor that takes ``delay_s`` per frame and remembers the settings object of each frame."""

    runtime = "test"

    def __init__(self, delay_s: float = 0.0, fail_every: int = 0, gate: threading.Event | None = None) -> None:
        self.delay_s = delay_s
        self.fail_every = fail_every
        self.gate = gate
        """Set: the first frame waits for it (a processor slower than any producer, on any machine)."""
        self.seen: list[ProcessSettings] = []
        self.thread: str | None = None

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        self.thread = threading.current_thread().name
        assert settings is not None
        self.seen.append(settings)
        if self.gate is not None and len(self.seen) == 1:
            assert self.gate.wait(30)
        time.sleep(self.delay_s)
        if self.fail_every and len(self.seen) % self.fail_every == 0:
            raise RuntimeError("engine exploded")
        return ProcessedFrame(255 - image, (), {"fake": self.delay_s * 1000})


def _run(
    worker: Worker,
    ring: CpuFrameRing,
    frames: list[np.ndarray],
    interval_s: float,
    in_step: bool = False,
    then: Callable[[], None] | None = None,
) -> None:
    """Put ``frames`` every ``interval_s``, then stop the worker (it works off the newest unread frame first).

    ``in_step``: each frame only once the worker took the one before, so that none is dropped however busy
    the machine (at a fixed interval a starved worker's ring drops frames, newest wins). ``then``: called once
    every frame is in."""
    worker.start()
    assert worker.ready.wait(30)
    for i, image in enumerate(frames):
        ring.put(image, FrameMeta(i, i / 30))
        time.sleep(interval_s)
        deadline = time.monotonic() + 30
        while in_step and ring.stats.read <= i and time.monotonic() < deadline:
            time.sleep(0.005)
    if then is not None:
        then()
    time.sleep(0.2)
    worker.stop()


def _worker(processor: object, settings: list[ProcessSettings]) -> tuple[Worker, CpuFrameRing, _Sink, StreamStats]:
    ring = CpuFrameRing()
    fanout = OutputFanout("cam")
    sink = _Sink()
    fanout.add_sink(sink)
    stats = StreamStats()
    worker = Worker("cam", ring, lambda: processor, lambda: settings[-1], fanout, stats)  # type: ignore[arg-type,return-value]
    return worker, ring, sink, stats


def test_a_slow_processor_drops_old_frames_instead_of_queueing_them(frames: list[np.ndarray]) -> None:
    gate = threading.Event()
    processor = _Recording(delay_s=0.05, gate=gate)
    worker, ring, sink, stats = _worker(processor, [ProcessSettings()])
    # The first frame is held until all 40 are in: the worker is slower than the camera however busy the machine
    # (at 5 ms a frame against 50 ms it was only while the producer kept its pace).
    _run(worker, ring, frames[:40], 0.005, then=gate.set)
    indices = [m.index for m in sink.metas]
    assert indices == sorted(indices) and len(set(indices)) == len(indices)
    assert indices[-1] == 39  # the newest frame is always the one processed last
    assert len(indices) < 20 and ring.stats.dropped == 40 - len(indices)
    snap = stats.snapshot()
    assert snap["frames_processed"] == len(indices)
    assert snap["stage_ms"]["fake"]["p50"] == pytest.approx(50.0)
    assert snap["stage_ms"]["total"]["p50"] >= 50.0
    assert processor.thread == "worker-cam" and not worker.alive


def test_max_fps_caps_processing_and_the_ring_drops_the_frames_between(frames: list[np.ndarray]) -> None:
    """``serve --max-process-fps``: a fast processor takes at most the cap; the rest are dropped, newest wins."""
    processor = _Recording()
    ring = CpuFrameRing()
    fanout = OutputFanout("cam")
    sink = _Sink()
    fanout.add_sink(sink)
    worker = Worker("cam", ring, lambda: processor, lambda: ProcessSettings(), fanout, StreamStats(), max_fps=10.0)
    started = time.monotonic()
    _run(worker, ring, frames[:60], 0.01)  # 60 frames in about 0.6 s (longer on a busy machine)
    elapsed_s = time.monotonic() - started
    indices = [m.index for m in sink.metas]
    # At most one frame per 0.1 s (plus the first): a busy machine can only make it fewer.
    assert 1 <= len(indices) <= elapsed_s * 10.0 + 1
    assert indices == sorted(indices) and ring.stats.read == len(indices)
    # Every frame not processed was dropped in the ring and counted (the last may be left unread at the stop).
    assert 60 - len(indices) - 1 <= ring.stats.dropped <= 60 - len(indices)


def test_settings_apply_from_the_next_frame_without_restarting(frames: list[np.ndarray]) -> None:
    processor = _Recording()
    built: list[_Recording] = []
    settings = [ProcessSettings()]
    ring = CpuFrameRing()

    def build() -> _Recording:
        built.append(processor)
        return processor

    worker = Worker("cam", ring, build, lambda: settings[-1], OutputFanout("cam"), StreamStats())
    worker.start()
    assert worker.ready.wait(30)  # the first frames are processed with the first settings
    for i, image in enumerate(frames[:20]):
        if i == 10:
            settings.append(ProcessSettings(strength=0.25, debug_overlay=True))
        ring.put(image, FrameMeta(i, i / 30))
        time.sleep(0.02)
    time.sleep(0.1)
    worker.stop()
    assert len(built) == 1  # one processor for the life of the stream
    strengths = [s.strength for s in processor.seen]
    assert strengths[0] == 1.0 and strengths[-1] == 0.25
    first_new = strengths.index(0.25)
    assert all(s == 1.0 for s in strengths[:first_new]) and all(s == 0.25 for s in strengths[first_new:])


def test_a_failing_processor_passes_frames_through_and_counts_them(frames: list[np.ndarray]) -> None:
    processor = _Recording(fail_every=3)
    worker, ring, sink, stats = _worker(processor, [ProcessSettings()])
    _run(worker, ring, frames[:12], 0.03, in_step=True)
    assert len(sink.results) == 12  # every frame went on
    failed = [r for r in sink.results if r.failed_stage is not None]
    assert len(failed) == 4 and all(r.failed_stage == "processor" for r in failed)
    for meta, result in zip(sink.metas, sink.results, strict=True):
        expected = frames[meta.index] if result.failed_stage else 255 - frames[meta.index]
        assert np.array_equal(result.image, expected)  # the sink's copy, never the reused ring slot
    assert stats.snapshot()["frames_failed"] == 4


def test_a_processor_that_cannot_be_built_leaves_the_stream_running_unprocessed(frames: list[np.ndarray]) -> None:
    def broken() -> PassthroughProcessor:
        raise ModelError("model 'yunet' not found; fix: stageswap models fetch yunet")

    ring = CpuFrameRing()
    sink = _Sink()
    fanout = OutputFanout("cam")
    fanout.add_sink(sink)
    worker = Worker("cam", ring, broken, ProcessSettings, fanout, StreamStats())
    _run(worker, ring, frames[:5], 0.03, in_step=True)
    assert worker.runtime == "passthrough" and worker.error is not None and "yunet" in worker.error
    assert len(sink.metas) == 5


def test_the_real_processor_tracks_the_face_in_the_worker(frames: list[np.ndarray], models_dir: Path) -> None:
    settings = [ProcessSettings(swap=False, relight=False, debug_overlay=True)]
    ring = CpuFrameRing()
    sink = _Sink()
    fanout = OutputFanout("cam")
    fanout.add_sink(sink)
    worker = Worker(
        "cam", ring, lambda: FaceProcessor.from_models(models_dir), lambda: settings[-1], fanout, StreamStats()
    )
    worker.start()
    assert worker.ready.wait(60)
    for i, image in enumerate(frames[:20]):
        ring.put(image, FrameMeta(i, i / 30))
        # The next frame only once this one is out, so that a busy machine cannot make the ring drop any.
        deadline = time.monotonic() + 30
        while len(sink.results) <= i and worker.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
    worker.stop()
    assert worker.error is None and worker.runtime != "passthrough"
    assert len(sink.results) == 20
    assert all(len(r.faces) == 1 for r in sink.results[2:])
    changed = [not np.array_equal(r.image, frames[m.index]) for m, r in zip(sink.metas, sink.results, strict=True)]
    assert all(changed[2:])  # the overlay is drawn


def test_a_failure_past_the_processor_drops_the_frame_not_the_thread(frames: list[np.ndarray]) -> None:
    class _FlakyFanout(OutputFanout):
        def publish(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
            if meta.index % 2 == 0:
                raise RuntimeError("fan-out bug")
            super().publish(processed, source, meta, result)

    ring = CpuFrameRing()
    sink = _Sink()
    fanout = _FlakyFanout("cam")
    fanout.add_sink(sink)
    worker = Worker("cam", ring, PassthroughProcessor, ProcessSettings, fanout, StreamStats())
    _run(worker, ring, frames[:10], 0.03, in_step=True)
    assert [m.index for m in sink.metas] == [1, 3, 5, 7, 9]  # the thread lived through every failure
