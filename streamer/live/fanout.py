"""OutputFanout: one processed result per frame, handed to everyone who wants it, without waiting for anyone.

Two kinds of consumer:

- **monitors** (WHEP viewers) want the newest frame. Each (view, codec) pair has ONE ``SharedEncoder``
  thread that encodes the newest frame of its view and hands the same encoded packet to every viewer of
  that pair: encoding is paid once per stream and view, not once per viewer. That works without patching
  aiortc because an aiortc track may return already-encoded ``av.Packet`` objects, which its RTP sender
  packetises as they are (``Encoder.pack``). A viewer that falls behind (a stalled browser, a slow link)
  overflows its own small queue, skips to the next keyframe and asks for one; the encoder, the worker
  and the other viewers never wait for it.
- **sinks** (the recorder) want every frame: the worker thread calls ``sink.on_frame(...)`` for each
  processed frame. A sink must not block (it owns a bounded queue and its own thread).

Images handed on are the fan-out's own read-only copies: the ring slot is reused as soon as the worker
releases it, and a processor may reuse its output buffer, so consumers on other threads never see a frame
change under them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, Protocol

import av
import cv2
import numpy as np

from engines.compose.watermark import draw_badge
from engines.processor import ProcessedFrame
from streamer.live.audio import AudioOutput, PictureDelay
from streamer.live.ring import FrameMeta

log = logging.getLogger(__name__)

View = Literal["processed", "source"]
VIEWS: tuple[View, ...] = ("processed", "source")
Codec = Literal["vp8", "h264"]
CODECS: tuple[Codec, ...] = ("vp8", "h264")
VIDEO_CLOCK_HZ = 90_000
"""RTP video clock: encoded packets carry their arrival time in this time base."""
_TIME_BASE = Fraction(1, VIDEO_CLOCK_HZ)


class FrameSink(Protocol):
    """Receives every processed frame on the worker thread; must return at once (queue it, never block)."""

    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None: ...


MonitorTransform = Callable[[np.ndarray], np.ndarray]
"""What monitors (WHEP) see of a frame: e.g. log footage through a display view (``engines.colour.MonitorView``);
applied by each encoder thread, never by the worker, never to what sinks record."""


class PacketSubscriber(Protocol):
    """Receives each encoded packet of one (view, codec) pair; called on the encoder thread, must not block."""

    def deliver(self, packet: av.Packet, keyframe: bool) -> None: ...


@dataclass(frozen=True)
class EncoderSettings:
    bitrate: int = 2_500_000
    keyframe_interval_s: float = 2.0
    badge: bool = False
    """Draw a visible "SYNTHETIC" badge on the processed view monitors get (never on what sinks record)."""
    vp8_speed: int = 12
    """libvpx's speed for VP8 (1-16: higher is faster and coarser), fixed. Given a positive ``cpu-used`` (8, until
    issue 27), libvpx's realtime mode does not fix its speed: it reads (16 - cpu-used) / 16 of each frame's
    interval as time it may spend, and lowers its speed (more effort) while its own encodes take less
    (``vp8_auto_select_speed``): half of a 30 fps frame's 33 ms. So on a machine with CPU to spare it took up to
    about 16 ms of a 720p frame, half a core, on the cores the face engines need, and less under load: its cost
    and its bitstream changed from run to run. A negative ``cpu-used`` fixes the speed. 12: on the processed
    s18.mp4 at 720p and 2.5 Mbit/s, 6.1-7.1 ms a frame against 7.6-8.1 at a fixed 8 and 8.3-11 for the adaptive
    8 on this loaded 2-core machine, for 0.2 dB less PSNR (40.94 against 41.14) and 0.001 less SSIM at the same
    bit rate (BENCHMARKS.md, issue 27). Monitors get it; recordings are encoded apart (``streamer.record``)."""

    def __post_init__(self) -> None:
        if not 1 <= self.vp8_speed <= 16:  # 0 would be libvpx's adaptive speed again
            raise ValueError(f"vp8_speed must be 1-16, got {self.vp8_speed}")


class VideoEncoder:
    """BGR frames in, encoded ``av.Packet`` out, with the options WebRTC receivers expect (no B-frames,
    low-latency rate control, SPS/PPS repeated in-band on every H.264 keyframe)."""

    def __init__(self, codec: Codec, settings: EncoderSettings) -> None:
        if codec not in CODECS:
            raise ValueError(f"unsupported codec {codec!r}")
        self.codec: Codec = codec
        self.settings = settings
        self._ctx: Any = None
        self._size: tuple[int, int] | None = None
        self._last_pts = -1

    def encode(self, image: np.ndarray, pts: int, keyframe: bool) -> list[av.Packet]:
        """Encode one H x W x 3 BGR frame taken at ``pts`` (90 kHz ticks); may return no packet."""
        h, w = image.shape[:2]
        h2, w2 = h - h % 2, w - w % 2  # 4:2:0 needs even sizes: drop an odd last row/column
        if h2 < 16 or w2 < 16:
            raise ValueError(f"frame {w}x{h} is too small to encode")
        if self._size != (w2, h2):
            self._open(w2, h2)
            keyframe = True
        yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(image[:h2, :w2]), cv2.COLOR_BGR2YUV_I420), np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        pts = max(pts, self._last_pts + 1)
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = _TIME_BASE
        frame.pict_type = av.video.frame.PictureType.I if keyframe else av.video.frame.PictureType.NONE
        packets = list(self._ctx.encode(frame))
        for p in packets:
            p.time_base = _TIME_BASE
        return packets

    def _open(self, width: int, height: int) -> None:
        ctx: Any
        if self.codec == "vp8":
            ctx = av.CodecContext.create("libvpx", "w")
            ctx.options = {
                "deadline": "realtime",
                "cpu-used": str(-self.settings.vp8_speed),  # negative: this speed, fixed (see EncoderSettings)
                "lag-in-frames": "0",
                "error-resilient": "1",
                "static-thresh": "1",
                "undershoot-pct": "95",
                "overshoot-pct": "15",
                "bufsize": str(self.settings.bitrate // 2),
            }
            ctx.qmin = 4
            ctx.qmax = 56
        else:
            ctx = av.CodecContext.create("libx264", "w")
            ctx.options = {
                "preset": "veryfast",
                "tune": "zerolatency",
                "forced-idr": "1",
                "x264-params": "repeat-headers=1:aud=0",
                "bufsize": str(self.settings.bitrate // 2),
                "maxrate": str(self.settings.bitrate),
            }
            ctx.profile = "Constrained Baseline"
        ctx.width = width
        ctx.height = height
        ctx.pix_fmt = "yuv420p"
        ctx.bit_rate = self.settings.bitrate
        ctx.time_base = _TIME_BASE
        ctx.framerate = Fraction(30, 1)
        ctx.gop_size = 100_000  # keyframes come when asked for (new viewer, loss) and on a timer
        ctx.max_b_frames = 0
        # libvpx's worker threads busy-wait for each other: on a loaded machine two threads cost ten times the
        # CPU of one (measured: 69 vs 7 ms per 720p frame at load 13 on 2 cores). x264's sliced threads don't.
        ctx.thread_count = 2 if self.codec == "h264" and width * height > 640 * 480 else 1
        ctx.open()
        self._ctx = ctx
        self._size = (width, height)


class LatestFrame:
    """The newest frame of one view, for the encoder threads (latest wins, a sequence number per frame)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: tuple[np.ndarray, FrameMeta] | None = None
        self.seq = 0

    def put(self, image: np.ndarray, meta: FrameMeta) -> None:
        with self._cond:
            self._item = (image, meta)
            self.seq += 1
            self._cond.notify_all()

    def wait_newer(
        self, seq: int, timeout_s: float, stop: Callable[[], bool]
    ) -> tuple[int, np.ndarray, FrameMeta] | None:
        """The newest frame after ``seq``, or None on timeout or when ``stop()`` turns true."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.seq <= seq or self._item is None:
                remaining = deadline - time.monotonic()
                if stop() or remaining <= 0:
                    return None
                self._cond.wait(remaining)
            if stop():
                return None
            return self.seq, self._item[0], self._item[1]

    def wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class SharedEncoder:
    """The thread that encodes one view of one stream in one codec for all of that pair's viewers."""

    def __init__(
        self,
        stream: str,
        view: View,
        codec: Codec,
        source: LatestFrame,
        settings: EncoderSettings,
        epoch_s: float,
        monitor: Callable[[], MonitorTransform | None] | None = None,
        picture: PictureDelay | None = None,
    ) -> None:
        self.view: View = view
        self._monitor = monitor or (lambda: None)
        self.codec: Codec = codec
        self._source = source
        self._settings = settings
        self._epoch_s = epoch_s
        self._picture = picture
        self._subscribers: tuple[PacketSubscriber, ...] = ()
        self._outputs: frozenset[int] = frozenset()
        """ids of subscribers that are outputs (RTP to an SFU), not viewers: counted apart."""
        self._lock = threading.Lock()
        self._stopping = False
        self._keyframe_requested = True
        self.frames_encoded = 0
        self.frames_skipped = 0
        """Frames of the view replaced by a newer one while this encoder was busy (latest frame wins)."""
        self.encode_errors = 0
        self.encode_ms = 0.0
        self._thread = threading.Thread(target=self._run, name=f"encode-{stream}-{view}-{codec}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def subscribers(self) -> int:
        """Viewers served (outputs to an SFU are not viewers of ours: see ``outputs``)."""
        return len(self._subscribers) - len(self._outputs)

    @property
    def outputs(self) -> int:
        return len(self._outputs)

    def subscribe(self, sub: PacketSubscriber, output: bool = False) -> None:
        with self._lock:
            self._subscribers = (*self._subscribers, sub)
            if output:
                self._outputs = self._outputs | {id(sub)}
        self.request_keyframe()

    def unsubscribe(self, sub: PacketSubscriber) -> int:
        """Remove ``sub``; returns how many subscribers (viewers and outputs) are left."""
        with self._lock:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)
            self._outputs = self._outputs - {id(sub)}
            return len(self._subscribers)

    def request_keyframe(self) -> None:
        """The next encoded frame is a keyframe (a viewer joined, lost packets or skipped ahead)."""
        self._keyframe_requested = True

    def stop(self) -> None:
        """Ask the thread to end (returns at once; ``join`` waits)."""
        self._stopping = True
        self._source.wake()

    def join(self, timeout_s: float = 5.0) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        encoder = VideoEncoder(self.codec, self._settings)
        seq = 0
        last_key_s = float("-inf")
        failing = False
        while not self._stopping:
            item = self._source.wait_newer(seq, 0.5, lambda: self._stopping)
            if item is None:
                continue
            if seq:
                self.frames_skipped += item[0] - seq - 1
            seq, image, meta = item
            now_s = time.monotonic()
            keyframe = self._keyframe_requested or now_s - last_key_s >= self._settings.keyframe_interval_s
            self._keyframe_requested = False
            pts = round((meta.arrived_s - self._epoch_s) * VIDEO_CLOCK_HZ)
            t0 = time.perf_counter()
            try:
                monitor = self._monitor()
                if monitor is not None:  # log footage shown through a display view (here, off the worker)
                    image = monitor(image)
                packets = encoder.encode(image, pts, keyframe)
            except Exception as exc:  # an encoder error drops this frame for the viewers, never the stream
                self.encode_errors += 1
                if not failing:
                    log.warning("%s encoder for %s failed, retrying with a fresh one: %r", self.codec, self.view, exc)
                    failing = True
                encoder = VideoEncoder(self.codec, self._settings)
                self._keyframe_requested = True
                continue
            failing = False
            self.encode_ms = (time.perf_counter() - t0) * 1000.0
            if self._picture is not None:
                self._picture.encoded(self.encode_ms / 1000.0)
            self.frames_encoded += 1
            for packet in packets:
                is_key = bool(packet.is_keyframe)
                if is_key:
                    last_key_s = now_s
                for sub in self._subscribers:
                    try:
                        sub.deliver(packet, is_key)
                    except Exception:  # one broken viewer must not starve the others
                        log.exception("a viewer of %s/%s failed to take a packet", self.view, self.codec)


class OutputFanout:
    """Per stream: sinks get every frame, viewers get the newest, encoded once per (view, codec)."""

    def __init__(self, stream: str, settings: EncoderSettings | None = None) -> None:
        self.stream = stream
        self.settings = settings or EncoderSettings()
        self._epoch_s = time.monotonic()
        self._latest: dict[View, LatestFrame] = {view: LatestFrame() for view in VIEWS}
        self._encoders: dict[tuple[View, Codec], SharedEncoder] = {}
        self._retired: list[SharedEncoder] = []
        self._sinks: tuple[FrameSink, ...] = ()
        self._taps: dict[View, int] = dict.fromkeys(VIEWS, 0)
        self.monitor: MonitorTransform | None = None
        """Applied to every frame the WHEP encoders send (the stream's ``colour.monitor``); None: frames as made."""
        self._failed_sinks: set[int] = set()
        self._lock = threading.Lock()
        self.frames_published = 0
        self.picture = PictureDelay()
        """How late the picture reaches the viewers' senders: the sound is held back as long."""
        self.audio = AudioOutput(stream, self.picture)
        """The stream's sound, released with the picture it goes with (``streamer.live.audio``)."""

    # -- sinks (recorder) ------------------------------------------------------------------------------
    def add_sink(self, sink: FrameSink) -> None:
        """From the next frame on, ``sink.on_frame`` is called on the worker thread for every frame (and
        ``sink.on_audio``, where it has one, with the stream's sound, on the audio thread)."""
        with self._lock:
            self._sinks = (*self._sinks, sink)
        if hasattr(sink, "on_audio"):
            self.audio.add_sink(sink)  # type: ignore[arg-type]

    def remove_sink(self, sink: FrameSink) -> None:
        with self._lock:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            self._failed_sinks.discard(id(sink))
        if hasattr(sink, "on_audio"):
            self.audio.remove_sink(sink)  # type: ignore[arg-type]

    # -- taps (NDI output) -----------------------------------------------------------------------------
    def tap(self, view: View) -> LatestFrame:
        """The newest frame of ``view``, for a consumer on its own thread (``streamer.live.ndi.NdiSender``): from now
        on the worker hands that view on even when no WHEP viewer watches it. ``untap`` when done."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        with self._lock:
            self._taps[view] += 1
        return self._latest[view]

    def untap(self, view: View) -> None:
        with self._lock:
            self._taps[view] = max(0, self._taps[view] - 1)

    # -- viewers ---------------------------------------------------------------------------------------
    def subscribe(self, view: View, codec: Codec, sub: PacketSubscriber, output: bool = False) -> SharedEncoder:
        """Start receiving encoded packets of ``view`` in ``codec`` (the pair's encoder starts if needed).

        ``output``: ``sub`` sends the view on (RTP to an SFU) rather than being a viewer: counted as an output."""
        if view not in VIEWS:
            raise ValueError(f"unknown view {view!r}")
        with self._lock:
            enc = self._encoders.get((view, codec))
            if enc is None:
                enc = SharedEncoder(
                    self.stream,
                    view,
                    codec,
                    self._latest[view],
                    self.settings,
                    self._epoch_s,
                    lambda: self.monitor,
                    self.picture,
                )
                self._encoders[(view, codec)] = enc
                enc.start()
            enc.subscribe(sub, output)
            self._reap()
        return enc

    def unsubscribe(self, view: View, codec: Codec, sub: PacketSubscriber) -> None:
        """Stop delivering to ``sub``; the pair's encoder stops with its last viewer (without blocking)."""
        with self._lock:
            enc = self._encoders.get((view, codec))
            if enc is None:
                return
            if enc.unsubscribe(sub) == 0:
                del self._encoders[(view, codec)]
                enc.stop()
                self._retired.append(enc)
            self._reap()

    def viewers(self) -> dict[str, int]:
        counts: dict[str, int] = dict.fromkeys(VIEWS, 0)
        for (view, _), enc in list(self._encoders.items()):
            counts[view] += enc.subscribers
        return counts

    def encoder_stats(self) -> list[dict[str, Any]]:
        return [
            {
                "view": view,
                "codec": codec,
                "viewers": enc.subscribers,
                "outputs": enc.outputs,
                "frames_encoded": enc.frames_encoded,
                "frames_skipped": enc.frames_skipped,
                "encode_ms": round(enc.encode_ms, 2),
                "errors": enc.encode_errors,
            }
            for (view, codec), enc in list(self._encoders.items())
        ]

    def _reap(self) -> None:
        self._retired = [e for e in self._retired if e._thread.is_alive()]

    # -- the worker's side -----------------------------------------------------------------------------
    def publish(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: ProcessedFrame) -> None:
        """Hand one frame on (worker thread). ``source`` may be the ring slot: it is copied if anyone needs it."""
        self.frames_published += 1
        self.picture.handed(meta.captured_s)
        sinks = self._sinks
        wanted = {view for (view, _codec) in list(self._encoders)} | {v for v, n in self._taps.items() if n}
        if not sinks and not wanted:
            return
        proc = _frozen_copy(processed)
        src = _frozen_copy(source) if sinks or "source" in wanted else source
        if "processed" in wanted:
            self._latest["processed"].put(draw_badge(proc) if self.settings.badge else proc, meta)
        if "source" in wanted:
            self._latest["source"].put(src, meta)
        if sinks:  # not the ring slot, which is about to be reused; the unmarked frame only if a sink records it
            wanted_unmarked = result.unmarked is not None and any(getattr(s, "wants_unmarked", False) for s in sinks)
            unmarked = _frozen_copy(result.unmarked) if wanted_unmarked and result.unmarked is not None else None
            result = dataclasses.replace(result, image=proc, unmarked=unmarked)
        for sink in sinks:
            try:
                sink.on_frame(proc, src, meta, result)
            except Exception:  # a failing sink is logged once and skipped; the live path goes on
                if id(sink) not in self._failed_sinks:
                    self._failed_sinks.add(id(sink))
                    log.exception("frame sink %r failed on stream %s", sink, self.stream)

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop and join every encoder thread (blocking: call it off the event loop)."""
        with self._lock:
            encoders = list(self._encoders.values()) + self._retired
            self._encoders.clear()
            self._retired = []
            self._sinks = ()
        for enc in encoders:
            enc.stop()
        for enc in encoders:
            enc.join(timeout_s)
        self.audio.close(timeout_s)


def _frozen_copy(image: np.ndarray) -> np.ndarray:
    out = np.array(image, copy=True, order="C")
    out.flags.writeable = False
    return out
