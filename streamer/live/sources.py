"""Inputs that are not WebRTC: a capture device, an RTSP camera, an RTMP publisher (OBS, an encoder, FFmpeg:
stageswap listens) or server (stageswap pulls) or a video file, decoded with PyAV.

Each runs on its own thread and puts decoded frames into the stream's FrameRing, exactly like WHIP ingest
does, so the worker cannot tell them apart; their sound (any codec FFmpeg decodes, made 48 kHz stereo)
goes to the stream's sound on the same capture clock as the picture. A file plays at its own frame rate
(paced by its timestamps, so a 25 fps clip stays 25 fps) and starts again at the end when looping; a live
source is read as fast as it delivers. A file's timecode track (``streamer.live.timecodes``) travels with each
frame: a recording of the stream starts at the source's timecode. A source that fails (an RTSP camera
rebooting, a device unplugged) is reopened with a back-off, logged once per failure burst, while the
stream and its viewers stay up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any

import av
from av.video.reformatter import VideoReformatter

from engines.errors import InputError
from streamer.config import InputSpec
from streamer.live.audio import AudioCallback, AudioNormaliser
from streamer.live.ring import FrameMeta
from streamer.live.sender_reports import CaptureClock
from streamer.live.timecodes import FRAME_META_KEY, container_timecode

log = logging.getLogger(__name__)

FrameCallback = Callable[[Any, FrameMeta], None]
"""Called with (BGR image, meta) for each decoded frame; the stream puts it into its ring."""

_RETRY_S = (0.5, 1.0, 2.0, 5.0)
_OPEN_TIMEOUT_S = 5.0
_RTMP_WAIT_S = 30.0


def open_container(spec: InputSpec) -> Any:
    """Open ``spec`` with the options its kind needs (raises InputError with the reason)."""
    options: dict[str, str] = {}
    fmt: str | None = None
    timeout: float | tuple[float, float] = _OPEN_TIMEOUT_S
    if spec.kind == "rtsp":
        options = {"rtsp_transport": "tcp"}
    elif spec.kind == "device":
        fmt = "v4l2"
    elif spec.listens:
        # FFmpeg's RTMP server side: one publisher at a time (OBS, ffmpeg -f flv). Wait this long for one to
        # connect (then listen again: the stream and its viewers stay), reading as fast as it sends.
        options = {"listen": "1", "analyzeduration": "1000000"}
        timeout = (_RTMP_WAIT_S, _OPEN_TIMEOUT_S)
    try:
        return av.open(spec.source, mode="r", format=fmt, options=options, timeout=timeout)
    except (av.FFmpegError, OSError) as exc:
        if spec.listens and isinstance(exc, TimeoutError | av.error.ExitError):
            raise InputError(f"input {spec.name}: waiting for a publisher on {spec.source}") from exc
        raise InputError(f"input {spec.name}: cannot open {spec.source}: {exc}") from exc


def probe(spec: InputSpec) -> None:
    """Check that a file input opens and has video, before the server starts (devices and RTSP cameras may
    come up later, so they are only tried by the source thread)."""
    if spec.kind != "file":
        return
    container = open_container(spec)
    try:
        if not container.streams.video:
            raise InputError(f"input {spec.name}: {spec.source} has no video stream")
    finally:
        container.close()


class SourceThread:
    """What every non-WebRTC source shares: its own thread, a stop, and the last failure shown in the stream's
    stats while it is retried with a back-off (``SourceReader`` here, ``streamer.live.ndi.NdiReader``)."""

    thread_prefix = "source"

    def __init__(self, spec: InputSpec, on_frame: FrameCallback, on_audio: AudioCallback | None = None) -> None:
        self.spec = spec
        self._on_frame = on_frame
        self._on_audio = on_audio
        self._stop = threading.Event()
        self.error: str | None = None
        """The last failure, shown in the stream's stats until frames flow again."""
        self.finished = False
        """True once a non-looping file has played to its end (a live source never finishes)."""
        self.loops = 0
        self._index = 0
        self._thread = threading.Thread(target=self._run, name=f"{self.thread_prefix}-{spec.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _run(self) -> None:
        raise NotImplementedError

    def _failed(self, message: str, attempt: int) -> None:
        """Note a failure (logged once per different message) and wait before the next try."""
        if self.error != message:
            log.warning("%s (retrying)", message)
        self.error = message
        self._stop.wait(_RETRY_S[min(attempt, len(_RETRY_S) - 1)])


class SourceReader(SourceThread):
    """The thread that feeds one stream from one ``InputSpec``: a file, a capture device or an RTSP camera."""

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            try:
                container = open_container(self.spec)
            except InputError as exc:
                self._failed(str(exc), attempt)
                attempt += 1
                continue
            try:
                done = self._play(container)
                attempt = 0
            except (av.FFmpegError, OSError) as exc:
                self._failed(f"input {self.spec.name}: reading {self.spec.source} failed: {exc}", attempt)
                attempt += 1
                done = False
            finally:
                container.close()
            if done:
                self.finished = True
                log.info("input %s: %s played to its end", self.spec.name, self.spec.source)
                return

    def _play(self, container: Any) -> bool:
        """Play the container; True when a non-looping file ended, False when stopped or a live source ended."""
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        sound = container.streams.audio[0] if container.streams.audio and self._on_audio is not None else None
        paced = self.spec.kind == "file"
        offset_s = 0.0  # added to file timestamps on each loop so media time keeps increasing
        rate = Fraction(stream.average_rate or stream.guessed_rate or 30)
        timecode = container_timecode(container, stream, rate)
        clock = CaptureClock()  # a live source: its timestamps on our clock, for picture and sound alike
        normaliser = AudioNormaliser()
        while not self._stop.is_set():
            start_wall: float | None = None
            first_s: float | None = None
            file_start_s: float | None = None  # the first frame's time in this pass: the timecode's frame 0
            last_s = 0.0
            frame_s = 1.0 / float(rate)
            for kind, payload, time_s in _decode(container, stream, sound):
                if self._stop.is_set():
                    return False
                if kind == "audio":
                    if first_s is not None and start_wall is not None:  # sound from the first picture on
                        captured = start_wall + (time_s - first_s) if paced else clock.local_s(time_s, time.monotonic())
                        self._sound(normaliser, payload, offset_s + time_s - first_s, captured)
                    continue
                image = payload
                if first_s is None:
                    first_s = time_s
                    start_wall = time.monotonic()
                if file_start_s is None:
                    file_start_s = time_s
                assert start_wall is not None
                if paced:
                    due = start_wall + (time_s - first_s)
                    delay = due - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        return False
                    if delay < -1.0:  # fell more than a second behind (a stall): restart the clock here
                        offset_s += time_s - first_s  # media time goes on from where it was
                        start_wall, first_s = time.monotonic(), time_s
                last_s = time_s
                self.error = None
                extra = {}
                if timecode is not None:
                    extra[FRAME_META_KEY] = timecode.plus(round((time_s - file_start_s) * rate))
                captured = start_wall + (time_s - first_s) if paced else clock.local_s(time_s, time.monotonic())
                meta = FrameMeta(self._index, offset_s + time_s - (first_s or 0.0), extra=extra, capture_s=captured)
                self._index += 1
                self._on_frame(image, meta)
            if not paced:
                raise OSError("the live source ended")
            if not self.spec.loop:
                return True
            if first_s is None:
                raise OSError("the file has no decodable video frame")
            self.loops += 1
            offset_s += last_s - first_s + frame_s
            container.seek(0)
        return False

    def _sound(self, normaliser: AudioNormaliser, frame: Any, pts_s: float, capture_s: float) -> None:
        if self._on_audio is None:
            return
        try:
            chunks = normaliser.chunks(frame, pts_s, capture_s)
        except Exception as exc:  # sound we cannot convert is skipped: the picture goes on
            log.debug("input %s: skipping sound: %r", self.spec.name, exc)
            return
        for chunk in chunks:
            self._on_audio(chunk)


def _decode(container: Any, video: Any, sound: Any) -> Iterator[tuple[str, Any, float]]:
    """("video", BGR image, time) and ("audio", decoded frame, time) in the container's order.

    Sound that cannot be decoded is skipped (logged once): the picture goes on without it."""
    to_bgr = VideoReformatter()  # one scaler for the source, not one (with its threads) per frame
    normaliser = sound is not None
    sound_failed = False
    streams = [video] + ([sound] if sound is not None else [])
    for packet in container.demux(*streams):
        if packet.stream.type == "audio":
            if normaliser is None:
                continue
            try:
                frames = [f for f in packet.decode() if f.time is not None]
            except Exception as exc:  # sound we cannot decode is skipped: the picture goes on
                if not sound_failed:
                    log.warning("sound of %s cannot be decoded (%s): the picture goes on", container.name, exc)
                    sound_failed = True
                continue
            for frame in frames:
                yield "audio", frame, float(frame.time)
            continue
        for frame in packet.decode():
            time_s = float(frame.time) if frame.time is not None else 0.0
            yield "video", to_bgr.reformat(frame, format="bgr24").to_ndarray(), time_s
