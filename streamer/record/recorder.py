"""Recorder: one file encoded and muxed on its own thread, fed through a bounded queue.

The live path hands frames over with ``has_room`` + ``push``, which never wait: when the queue is full
the caller drops the frame from the recording (and raises the alarm; ``streamer.record.recording`` does both),
the live path goes on, and the file stays valid. ``stageswap process`` uses ``put``, which waits for room
instead (offline, nothing may be dropped).

The queue is bounded twice, in frames and in bytes (``QueueLimits``): by default 2 s of frames at the
stream's nominal rate and 2 s of 1080p30 BGR (about 373 MB) per file, whichever comes first. The bytes
bound keeps a 4K stream from taking 4x the memory; the frames bound keeps the delay to disk short.

The encoder thread runs at a lower CPU priority (``nice``, default +10; FFmpeg's own encoder threads
inherit it): when the machine is short of CPU, the live path wins and the queue absorbs the difference.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import av
import numpy as np

from engines.errors import OutputError
from streamer.record.encoding import EncodeSpec, FileEncoder, WriteFailed

log = logging.getLogger(__name__)

DEFAULT_QUEUE_SECONDS = 2.0
DEFAULT_QUEUE_BYTES = 1920 * 1080 * 3 * 60
"""2 s of 1080p30 BGR frames: 373 MB."""

RecorderState = Literal["starting", "recording", "finishing", "finished", "failed"]


@dataclass(frozen=True)
class QueueLimits:
    max_frames: int
    max_bytes: int

    @classmethod
    def for_rate(
        cls, rate: Fraction | float, seconds: float = DEFAULT_QUEUE_SECONDS, max_bytes: int = DEFAULT_QUEUE_BYTES
    ) -> QueueLimits:
        return cls(max(2, math.ceil(float(rate) * seconds)), max_bytes)


@dataclass(frozen=True)
class VideoItem:
    image: np.ndarray
    """H x W x 3 uint8 BGR; must not change once pushed (the live path hands read-only copies)."""
    pts: int
    fill_from: int | None = None
    """Constant frame rate: first slot of a gap before ``pts``; the previous frame is repeated from it."""


@dataclass(frozen=True)
class AudioItem:
    packet: av.Packet


@dataclass(frozen=True)
class SoundItem:
    """Sound to encode (live recordings): 1 x 2n int16, 48 kHz stereo, at ``pts`` in 1/48000 s."""

    samples: np.ndarray
    pts: int


class _End:
    pass


_END = _End()
Item = VideoItem | AudioItem | SoundItem | _End
MAX_SOUND_ITEMS = 500
"""Sound waiting in a recorder's queue (about 10 s of 20 ms chunks) beyond which more is dropped, counted."""


class Recorder:
    """One output file: a FileEncoder on its own thread behind a bounded queue.

    ``on_error(recorder, error)`` is called on the recorder thread when writing fails (a full disk);
    the queue is then discarded and nothing more is taken. ``on_synced(recorder)`` is called on the
    recorder thread after each fdatasync (about once per ``fsync_interval_s``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: EncodeSpec,
        limits: QueueLimits,
        name: str = "recorder",
        nice: int = 10,
        audio_template: Any = None,
        size: tuple[int, int] | None = None,
        on_error: Callable[[Recorder, WriteFailed], None] | None = None,
        on_synced: Callable[[Recorder], None] | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self.limits = limits
        self.name = name
        self._nice = nice
        self._on_error = on_error
        self._on_synced = on_synced
        self._cond = threading.Condition()
        self._queue: deque[Item] = deque()
        self._queued_frames = 0
        self._queued_bytes = 0
        self.queue_frames_max = 0
        """High-water mark of the queue, in frames."""
        self.queue_bytes_max = 0
        self.state: RecorderState = "starting"
        self.error: WriteFailed | None = None
        self.frames_written = 0
        self.frames_repeated = 0
        self._queued_sound = 0
        self.sound_dropped = 0
        """Sound chunks dropped because this recorder was far behind."""
        self.encode_ms_total = 0.0
        self.encode_ms_max = 0.0
        self._abort_requested = False
        self._encoder = FileEncoder(self.path, spec, audio_template=audio_template, size=size)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Recorder:
        self.state = "recording"
        self._thread.start()
        return self

    def set_timecode(self, timecode: str) -> None:
        """The start timecode, known at the first frame: call before pushing it (the file opens with it)."""
        self._encoder.timecode = timecode

    # -- producer side ---------------------------------------------------------------------------------
    @property
    def accepting(self) -> bool:
        return self.state == "recording"

    def has_room(self, nbytes: int) -> bool:
        """Room for one more frame of ``nbytes`` (never waits). False once the recorder stopped or failed."""
        with self._cond:
            return (
                self.state == "recording"
                and self._queued_frames < self.limits.max_frames
                and (self._queued_frames == 0 or self._queued_bytes + nbytes <= self.limits.max_bytes)
            )

    def push(self, item: VideoItem) -> None:
        """Queue a frame without checking room (after ``has_room``; one producer thread)."""
        with self._cond:
            if self.state != "recording":
                return
            self._queue.append(item)
            self._queued_frames += 1
            self._queued_bytes += item.image.nbytes
            self.queue_frames_max = max(self.queue_frames_max, self._queued_frames)
            self.queue_bytes_max = max(self.queue_bytes_max, self._queued_bytes)
            self._cond.notify_all()

    def push_sound(self, item: SoundItem) -> bool:
        """Queue sound without waiting; False (and counted) when the recorder is not taking it or is far behind."""
        with self._cond:
            if self.state != "recording":
                return False
            if self._queued_sound >= MAX_SOUND_ITEMS:
                self.sound_dropped += 1
                return False
            self._queue.append(item)
            self._queued_sound += 1
            self._cond.notify_all()
            return True

    def put(self, item: VideoItem | AudioItem, timeout_s: float | None = None) -> None:
        """Queue an item, waiting for room (offline use); raises the write error once the recorder failed."""
        nbytes = item.image.nbytes if isinstance(item, VideoItem) else 0
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                if self.error is not None:
                    raise self.error
                if self.state != "recording":
                    raise OutputError(f"{self.path}: the recorder is {self.state}")
                full = isinstance(item, VideoItem) and (
                    self._queued_frames >= self.limits.max_frames
                    or (self._queued_frames > 0 and self._queued_bytes + nbytes > self.limits.max_bytes)
                )
                if not full:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise OutputError(f"{self.path}: the recorder did not take a frame for {timeout_s} s")
                self._cond.wait(remaining)
            self._queue.append(item)
            if isinstance(item, VideoItem):
                self._queued_frames += 1
                self._queued_bytes += nbytes
                self.queue_frames_max = max(self.queue_frames_max, self._queued_frames)
                self.queue_bytes_max = max(self.queue_bytes_max, self._queued_bytes)
            self._cond.notify_all()

    @property
    def queued_frames(self) -> int:
        return self._queued_frames

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    @property
    def bytes_on_disk(self) -> int:
        return self._encoder.committed_bytes

    # -- ending ----------------------------------------------------------------------------------------
    def finish(self, timeout_s: float | None = None) -> WriteFailed | None:
        """Write what is queued, finish the file and join the thread (blocking: call it off the event loop).

        Returns the write error if the recording failed (the file is then valid up to its last fragment)."""
        with self._cond:
            if self.state == "recording":
                self.state = "finishing"
                self._queue.append(_END)
                self._cond.notify_all()
            elif self.state == "starting":  # never started: nothing queued, just finish the file
                self.state = "finishing"
                self._queue.append(_END)
                self._thread.start()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            log.error(
                "recorder %s did not finish within %s s; the file is cut at its last fragment", self.name, timeout_s
            )
        return self.error

    def abort(self) -> None:
        """Stop now, dropping what is queued; the file keeps its whole fragments (e.g. after an error upstream)."""
        with self._cond:
            self._queue.clear()
            self._queued_frames = self._queued_bytes = self._queued_sound = 0
            if self.state in ("recording", "starting"):
                self.state = "finishing"
                if not self._thread.is_alive():
                    self._encoder.abort()
                    self.state = "finished"
                    return
                self._queue.append(_END)
                self._abort_requested = True
                self._cond.notify_all()
        self._thread.join()

    # -- the thread ------------------------------------------------------------------------------------
    def _next(self) -> Item:
        with self._cond:
            while not self._queue:
                self._cond.wait()
            item = self._queue.popleft()
            if isinstance(item, VideoItem):
                self._queued_frames -= 1
                self._queued_bytes -= item.image.nbytes
                self._cond.notify_all()
            elif isinstance(item, SoundItem):
                self._queued_sound -= 1
            return item

    def _run(self) -> None:
        if self._nice:
            # Linux priorities are per thread: this one, and the encoder threads FFmpeg starts from it.
            with contextlib.suppress(OSError, AttributeError):
                tid = threading.get_native_id()
                os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
        encoder = self._encoder
        syncs_seen = 0
        try:
            while True:
                item = self._next()
                if isinstance(item, _End):
                    break
                if isinstance(item, AudioItem):
                    encoder.write_audio(item.packet)
                    continue
                if isinstance(item, SoundItem):
                    encoder.write_sound(item.samples, item.pts)
                    continue
                t0 = time.perf_counter()
                if item.fill_from is not None:
                    for pts in range(item.fill_from, item.pts):
                        encoder.repeat_last(pts)
                        self.frames_repeated += 1
                encoder.write(item.image, item.pts)
                ms = (time.perf_counter() - t0) * 1000.0
                self.encode_ms_total += ms
                self.encode_ms_max = max(self.encode_ms_max, ms)
                self.frames_written = encoder.frames_written
                if self._on_synced is not None and encoder.syncs != syncs_seen:
                    syncs_seen = encoder.syncs
                    self._on_synced(self)
            if self._abort_requested:
                encoder.abort()
            else:
                encoder.close()
            self.frames_written = encoder.frames_written
            with self._cond:
                self.state = "finished"
        except WriteFailed as exc:
            self._fail(exc)
        except Exception as exc:  # an encoder bug must end this recording visibly, never the live path
            log.exception("recorder %s failed", self.name)
            self._fail(WriteFailed(f"{self.path}: recording failed: {exc!r}"))

    def _fail(self, exc: WriteFailed) -> None:
        kept = self._encoder.abort()
        self.frames_written = self._encoder.frames_written
        with self._cond:
            self.error = exc
            self.state = "failed"
            self._queue.clear()
            self._queued_frames = self._queued_bytes = self._queued_sound = 0
            self._cond.notify_all()
        log.error(
            "recording to %s stopped: %s (the file is kept up to its last whole fragment, %d bytes)",
            self.path,
            exc,
            kept,
        )
        if self._on_error is not None:
            try:
                self._on_error(self, exc)
            except Exception:
                log.exception("recorder %s: error callback failed", self.name)
