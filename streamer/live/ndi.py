"""NDI in and out: a stream's view published as an NDI source, and an NDI source used as a camera.

NDI (Vizrt NDI AB) is how a stage moves video between machines: switchers (OBS, vMix, TriCaster),
village monitors, Unreal Engine's NDI plugin. ``ndi-python`` wraps NDI's own SDK and its wheel bundles
NDI's proprietary runtime, so it is the optional ``ndi`` extra (README, "NDI": what installing it accepts).

- **Output** (``NdiSender``): one thread per published view. It takes the view's newest frame from the
  fan-out (``OutputFanout.tap``: latest wins, the worker never waits for NDI, whose send compresses the
  frame and takes ~10 ms at 720p), converts BGR to BGRX and sends it with the stream's frame rate and
  the source's timecode (``streamer.live.timecodes``; NDI synthesises one when the source has none). The
  source is named ``stageswap STREAM`` (``stageswap STREAM source`` for the camera view); receivers see
  it as ``HOST (stageswap STREAM)``.
- **Input** (``NdiReader``): ``--input cam=ndi://HOST (NAME)`` (or just ``ndi://NAME``) finds the source,
  receives BGRX frames, and puts them into the stream's ring like any other source, with the frame's NDI
  timecode. A source that disappears is looked for again with a back-off while the stream stays up.
- **Discovery** (``find_sources``, ``stageswap ndi list``): mDNS (Avahi on Linux) plus, for networks
  without it, the addresses in ``extra_ips`` (NDI asks those machines directly; loopback works too).
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import cv2
import numpy as np

from engines.errors import InputError
from streamer.config import InputSpec
from streamer.live.ring import FrameMeta
from streamer.live.sources import FrameCallback, SourceThread
from streamer.live.timecodes import FRAME_META_KEY, NDI_SYNTHESIZE, FrameTimecode, from_ndi

log = logging.getLogger(__name__)

SCHEME = "ndi://"
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(n, d)
    for n, d in ((24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (50, 1), (60000, 1001), (60, 1))
)
INSTALL_HINT = (
    "NDI needs the ndi extra: pip install 'stageswap[ndi]' (it installs ndi-python with NDI's own runtime, "
    "under the NDI SDK licence: see README, NDI)"
)


def ndi_lib() -> Any:
    """The NDIlib module, initialised (raises InputError naming the extra to install, or why NDI cannot run)."""
    try:
        import NDIlib
    except ImportError as exc:
        raise InputError(f"{INSTALL_HINT} ({exc})") from None
    if not NDIlib.initialize():
        raise InputError("NDI cannot run on this CPU (NDIlib.initialize failed: it needs SSE4.2 or NEON)")
    return NDIlib


def sender_name(stream: str, view: str) -> str:
    """The NDI source name a stream's view is published under."""
    return f"stageswap {stream}" if view == "processed" else f"stageswap {stream} {view}"


def matches(source_name: str, wanted: str) -> bool:
    """``HOST (NAME)`` matches ``HOST (NAME)`` itself, or ``NAME`` alone (any host)."""
    if source_name == wanted:
        return True
    inner = source_name[source_name.find("(") + 1 : -1] if source_name.endswith(")") and "(" in source_name else None
    return inner == wanted


@dataclass(frozen=True)
class NdiSource:
    name: str
    """``HOST (NAME)``, as NDI shows it."""
    url: str
    """The address NDI found it at (``IP:PORT``)."""


def find_sources(timeout_s: float = 2.0, extra_ips: Sequence[str] = (), wanted: str | None = None) -> list[NdiSource]:
    """The NDI sources visible within ``timeout_s`` (returns early once ``wanted`` is among them)."""
    lib = ndi_lib()
    finder = _finder(lib, extra_ips)
    try:
        deadline = time.monotonic() + timeout_s
        found: list[Any] = []
        while True:
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            lib.find_wait_for_sources(finder, min(remaining_ms, 250))
            found = lib.find_get_current_sources(finder)
            if wanted is not None and any(matches(s.ndi_name, wanted) for s in found):
                break
        return [NdiSource(str(s.ndi_name), str(s.url_address or "")) for s in found]
    finally:
        lib.find_destroy(finder)


def _finder(lib: Any, extra_ips: Sequence[str]) -> Any:
    """An NDI finder that shows this machine's sources too and asks ``extra_ips`` directly."""
    settings = lib.FindCreate()
    settings.show_local_sources = True
    if extra_ips:
        settings.extra_ips = ",".join(extra_ips)
    finder = lib.find_create_v2(settings)
    if finder is None:
        raise InputError("NDI discovery could not start (NDIlib.find_create_v2 failed)")
    return finder


def nominal_rate(deltas_s: Sequence[float]) -> Fraction:
    """A stream's frame rate from its frame intervals: the standard rate within 3% of the median, else whole fps."""
    if not deltas_s:
        return Fraction(30)
    fps = 1.0 / max(1e-3, statistics.median(deltas_s))
    nearest = min(STANDARD_RATES, key=lambda r: abs(float(r) - fps))
    return nearest if abs(float(nearest) - fps) <= 0.03 * fps else Fraction(max(1, min(240, round(fps))))


class RateEstimator:
    """A stream's nominal frame rate from the media times of the frames it ingests (every frame, before the
    ring drops any: what reaches a slow consumer says nothing about the camera's rate)."""

    def __init__(self, window: int = 31) -> None:
        self._deltas: deque[float] = deque(maxlen=window)
        self._last_s: float | None = None
        self.rate = Fraction(30)

    def add(self, pts_s: float) -> None:
        if self._last_s is not None and pts_s > self._last_s:
            self._deltas.append(pts_s - self._last_s)
            if len(self._deltas) % 8 == 1 or len(self._deltas) < 8:  # cheap: a median every few frames
                self.rate = nominal_rate(self._deltas)
        self._last_s = pts_s


class NdiSender:
    """The thread that publishes one view of one stream as an NDI source (latest frame wins)."""

    def __init__(
        self,
        stream: str,
        view: str,
        latest: Any,
        rate: Callable[[], Fraction] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.stream = stream
        self.view = view
        self.name = sender_name(stream, view)
        self._latest = latest
        self._rate = rate or (lambda: Fraction(30))
        self._on_close = on_close
        self._lib = ndi_lib()
        settings = self._lib.SendCreate()
        settings.ndi_name = self.name
        settings.clock_video = False  # paced by the stream's own frames, never by NDI (it would block)
        self._sender = self._lib.send_create(settings)
        if self._sender is None:
            raise InputError(f"NDI sender {self.name!r} could not be created")
        self._stopping = False
        self.frames_sent = 0
        self.frames_skipped = 0
        """Frames the fan-out replaced before this thread took them (NDI slower than the stream)."""
        self.errors = 0
        self.send_ms = 0.0
        self.rate = Fraction(30)
        self.timecode: str | None = None
        self._bgrx: np.ndarray | None = None
        self._thread = threading.Thread(target=self._run, name=f"ndi-{stream}-{view}", daemon=True)

    def start(self) -> NdiSender:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop and join the thread, then destroy the sender (blocking: call it off the event loop)."""
        self._stopping = True
        self._latest.wake()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._sender is not None and not self._thread.is_alive():
            self._lib.send_destroy(self._sender)
            self._sender = None
        if self._on_close is not None:
            self._on_close()

    @property
    def connections(self) -> int:
        sender = self._sender
        return int(self._lib.send_get_no_connections(sender, 0)) if sender is not None else 0

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "frames_sent": self.frames_sent,
            "frames_skipped": self.frames_skipped,
            "send_ms": round(self.send_ms, 2),
            "connections": self.connections,
            "fps": float(self.rate),
            "timecode": self.timecode,
            "errors": self.errors,
        }

    def _run(self) -> None:
        seq = 0
        frame = self._lib.VideoFrameV2()
        frame.FourCC = self._lib.FOURCC_VIDEO_TYPE_BGRX
        failing = False
        while not self._stopping:
            item = self._latest.wait_newer(seq, 0.5, lambda: self._stopping)
            if item is None:
                continue
            new_seq, image, meta = item
            if seq:
                self.frames_skipped += max(0, new_seq - seq - 1)
            seq = new_seq
            t0 = time.perf_counter()
            try:
                self._send(frame, image, meta)
                failing = False
            except Exception as exc:  # one bad frame must not end the output
                self.errors += 1
                if not failing:
                    log.warning("NDI output %s: sending failed: %r", self.name, exc)
                    failing = True
                continue
            self.send_ms = (time.perf_counter() - t0) * 1000.0
            self.frames_sent += 1

    def _send(self, frame: Any, image: np.ndarray, meta: FrameMeta) -> None:
        h, w = image.shape[:2]
        if self._bgrx is None or self._bgrx.shape[:2] != (h, w):
            self._bgrx = np.empty((h, w, 4), np.uint8)
        cv2.cvtColor(image, cv2.COLOR_BGR2BGRA, dst=self._bgrx)
        self.rate = self._rate()
        source_tc = meta.extra.get(FRAME_META_KEY)
        if isinstance(source_tc, FrameTimecode):
            frame.timecode = source_tc.ndi_ticks()
            self.timecode = source_tc.text
        else:
            frame.timecode = NDI_SYNTHESIZE
        frame.data = self._bgrx
        frame.frame_rate_N, frame.frame_rate_D = self.rate.numerator, self.rate.denominator
        self._lib.send_send_video_v2(self._sender, frame)


class NdiReader(SourceThread):
    """The thread that feeds one stream from an NDI source (``--input cam=ndi://NAME``)."""

    thread_prefix = "ndi-in"

    def __init__(self, spec: InputSpec, on_frame: FrameCallback, extra_ips: Sequence[str] = ()) -> None:
        super().__init__(spec, on_frame)
        self.wanted = spec.source[len(SCHEME) :] if spec.source.startswith(SCHEME) else spec.source
        self._extra_ips = tuple(extra_ips)
        self.connected_to: str | None = None
        self._first_ts: int | None = None

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                lib = ndi_lib()
                source = self._find(lib)
                attempt = 0 if self._receive(lib, source) else attempt + 1
            except InputError as exc:
                self._failed(str(exc), attempt)
                attempt += 1

    def _find(self, lib: Any) -> Any:
        finder = _finder(lib, self._extra_ips)
        try:
            deadline = time.monotonic() + 5.0
            while not self._stop.is_set() and time.monotonic() < deadline:
                lib.find_wait_for_sources(finder, 250)
                for source in lib.find_get_current_sources(finder):
                    if matches(source.ndi_name, self.wanted):
                        found = lib.Source()
                        found.ndi_name, found.url_address = source.ndi_name, source.url_address
                        return found
        finally:
            lib.find_destroy(finder)
        raise InputError(f"input {self.spec.name}: NDI source {self.wanted!r} not found (stageswap ndi list)")

    def _receive(self, lib: Any, source: Any) -> bool:
        """Receive until stopped or the source stops sending (True when frames came)."""
        settings = lib.RecvCreateV3()
        settings.color_format = lib.RECV_COLOR_FORMAT_BGRX_BGRA
        settings.bandwidth = lib.RECV_BANDWIDTH_HIGHEST
        settings.allow_video_fields = False
        settings.ndi_recv_name = f"stageswap {self.spec.name}"
        receiver = lib.recv_create_v3(settings)
        if receiver is None:
            raise InputError(f"input {self.spec.name}: NDI receiver could not be created")
        got_frames = False
        silent_since = time.monotonic()
        try:
            lib.recv_connect(receiver, source)
            self.connected_to = str(source.ndi_name)
            while not self._stop.is_set():
                kind, video, _audio, meta = lib.recv_capture_v2(receiver, 250)
                if kind == lib.FRAME_TYPE_VIDEO:
                    try:
                        self._frame(video)
                    finally:
                        lib.recv_free_video_v2(receiver, video)
                    got_frames = True
                    silent_since = time.monotonic()
                elif kind == lib.FRAME_TYPE_METADATA:
                    lib.recv_free_metadata(receiver, meta)
                elif kind == lib.FRAME_TYPE_ERROR:
                    raise InputError(f"input {self.spec.name}: NDI source {self.wanted!r} went away")
                elif time.monotonic() - silent_since > 5.0:
                    raise InputError(f"input {self.spec.name}: NDI source {self.wanted!r} sends no video")
        finally:
            self.connected_to = None
            lib.recv_destroy(receiver)
        return got_frames

    def _frame(self, video: Any) -> None:
        data = np.asarray(video.data)
        if data.ndim != 3 or data.shape[2] != 4:
            return
        image = np.ascontiguousarray(data[:, :, :3])  # BGRX -> BGR, copied: NDI's buffer is freed at once
        rate = Fraction(int(video.frame_rate_N or 30), int(video.frame_rate_D or 1))
        extra: dict[str, Any] = {}
        timecode = from_ndi(int(video.timecode), rate) if rate > 0 else None
        if timecode is not None:
            extra[FRAME_META_KEY] = timecode
        self.error = None
        meta = FrameMeta(self._index, self._media_time_s(int(video.timestamp), rate), extra=extra)
        self._index += 1
        self._on_frame(image, meta)

    def _media_time_s(self, timestamp: int, rate: Fraction) -> float:
        """The sender's timestamp (100 ns) from its first frame; frame count over rate when it sends none."""
        if 0 < timestamp < NDI_SYNTHESIZE:
            if self._first_ts is None or timestamp < self._first_ts:
                self._first_ts = timestamp - round(self._index / float(rate) * 1e7) if rate > 0 else timestamp
            return (timestamp - self._first_ts) / 1e7
        return self._index / float(rate) if rate > 0 else 0.0
