"""The processing thread of one stream: newest frame from the ring -> processor -> fan-out.

One thread and one processor per stream: inference sessions are not thread-safe, and a thread per stream
keeps one stream's slow frame from delaying another's. The stream's settings are an immutable value read
once per frame, so a PATCH applies from the next frame and nothing restarts. A frame the processor fails
on passes through unprocessed (counted), and the stream goes on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

import numpy as np

from engines.processor import ProcessedFrame, error_text
from engines.settings import ProcessSettings
from streamer.live.fanout import OutputFanout
from streamer.live.metrics import StreamStats
from streamer.live.ring import FrameRing, RingClosed

log = logging.getLogger(__name__)


class FrameProcessor(Protocol):
    """What the worker needs of a processor (``engines.processor.FaceProcessor`` is one)."""

    @property
    def runtime(self) -> str: ...

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame: ...


class PassthroughProcessor:
    """Hands every frame on untouched: ``stageswap serve --processor passthrough``, the latency baseline."""

    runtime = "passthrough"
    frame_path = "passthrough"

    def process(
        self, image: np.ndarray, t_s: float | None = None, settings: ProcessSettings | None = None
    ) -> ProcessedFrame:
        return ProcessedFrame(image, (), {})


ProcessorFactory = Callable[[], FrameProcessor]


class Worker:
    """Owns the thread; ``stop()`` closes the ring and joins."""

    def __init__(
        self,
        stream: str,
        ring: FrameRing,
        make_processor: ProcessorFactory,
        settings: Callable[[], ProcessSettings],
        fanout: OutputFanout,
        stats: StreamStats,
        max_fps: float | None = None,
    ) -> None:
        self.stream = stream
        self._min_interval_s = 1.0 / max_fps if max_fps else 0.0
        """``--max-process-fps``: the least time from one frame's start to the next's (frames between are
        replaced in the ring by newer ones: dropped and counted there, never queued)."""
        self._ring = ring
        self._make_processor = make_processor
        self._settings = settings
        self._fanout = fanout
        self._stats = stats
        self.runtime = "starting"
        self.frame_path = "starting"
        """What the per-face stages' pixel work runs on (``FaceProcessor.frame_path``)."""
        self.watermark_id: int | None = None
        """The id the processor marks this stream's frames with (``engines.compose.watermark``); None: unmarked."""
        self.watermark_mark: str | None = None
        """Which mark (``engines.compose.watermark.MARKS``, ``serve --watermark-mark``) carries that id."""
        self.error: str | None = None
        """Why the processor could not be built (frames then pass through); None when it runs."""
        self.ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"worker-{stream}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Close the ring and wait for the thread (blocking: call it off the event loop)."""
        self._ring.close()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _build(self) -> FrameProcessor:
        try:
            processor = self._make_processor()
        except Exception as exc:  # a missing model must not take the stream down: frames pass through
            self.error = f"processor unavailable, frames pass through unprocessed: {exc}"
            log.error("stream %s: %s", self.stream, self.error)
            processor = PassthroughProcessor()
        self.runtime = processor.runtime
        self.frame_path = str(getattr(processor, "frame_path", processor.runtime))
        wid = getattr(processor, "watermark_id", None)
        self.watermark_id = wid if isinstance(wid, int) else None
        mark = getattr(processor, "watermark_mark", None)
        self.watermark_mark = mark if isinstance(mark, str) and self.watermark_id is not None else None
        return processor

    def _run(self) -> None:
        processor = self._build()
        self.ready.set()
        failing = False
        broken = False
        next_s = 0.0
        while True:
            try:
                wait_s = next_s - time.monotonic()
                if wait_s > 0:
                    time.sleep(min(wait_s, 0.5))
                    continue
                with self._ring.acquire(timeout_s=0.5) as slot:
                    if slot is None:
                        continue
                    settings = self._settings()  # one immutable value for the whole frame
                    # The processor reads numpy: the slot's host side (on the CUDA ring the page-locked
                    # buffer the upload came from, untouched while held: no download). With its per-face
                    # stages on torch (``frame_path`` torch-cuda) it copies this pinned buffer to the GPU
                    # again for its canvas; taking ``slot.image``, the uploaded device frame, is still to do.
                    image = slot.host
                    next_s = time.monotonic() + self._min_interval_s
                    t0 = time.perf_counter()
                    try:
                        result = processor.process(image, slot.meta.pts_s, settings)
                        failing = False
                    except Exception as exc:  # the processor guards its stages; this catches the rest
                        if not failing:
                            log.warning("stream %s: processing failed, frames pass through: %r", self.stream, exc)
                            failing = True
                        result = ProcessedFrame(image, (), {}, failed_stage="processor", error=error_text(exc))
                    stage_ms = dict(result.stage_ms)
                    stage_ms["total"] = (time.perf_counter() - t0) * 1000.0
                    self._fanout.publish(result.image, image, slot.meta, result)
                    self._stats.on_processed(
                        slot.meta.arrived_s,
                        stage_ms,
                        faces=len(result.faces),
                        face_list=result.face_list(),
                        failed=result.failed_stage is not None,
                        size=(int(image.shape[0]), int(image.shape[1])),
                        error=(result.failed_stage, result.error or "") if result.failed_stage else None,
                    )
                    broken = False
            except RingClosed:
                return
            except Exception:  # a bug past the processor drops this frame, never the stream's only thread
                if not broken:
                    log.exception("stream %s: handing a frame on failed; the stream goes on", self.stream)
                    broken = True
