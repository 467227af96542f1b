"""A stream's sound: taken from the publisher or the input, held back as long as the picture, handed on.

The picture reaches monitors after its processing; the sound must reach them as late, or lips move before
the words. ``AudioOutput`` (one per stream, owned by its ``OutputFanout``) holds each ``AudioChunk`` until
the frame captured with it has been handed to the viewers' encoders (``PictureDelay.handed_at``), plus the
encoders' typical time, less Opus's 6.5 ms lookahead: the delay is the picture's own, frame by frame, so a
frame that the processing (or a busy machine) makes late holds its sound back with it. Sound and picture
then leave stageswap as far apart as they were captured, and a WebRTC receiver, which plays them by their
RTCP sender reports (made at sending time), keeps them together. (Holding sound a fixed, measured delay
instead left it 30-80 ms ahead of the frames that came late on a loaded 2-core machine: BENCHMARKS.md.)
Released sound goes to

- WHEP viewers: encoded once to Opus for all of them (``deliver(packet)``, like the picture's shared
  encoders: aiortc sends already-encoded packets as they are), each viewer's queue small and never waited on;
- sinks (recordings): ``on_audio(chunk)`` with every chunk, on this stream's audio thread.

When the picture stops (nothing handed over for ``picture_stall_s``: the publisher's video ended, the
worker is stuck), sound that comes due is dropped, whole chunks, and counted: monitors fall silent with the
picture instead of playing sound that has nothing to go with, and nothing piles up.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Protocol

import av
import numpy as np

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
"""Every chunk is 48 kHz, 16-bit, stereo: what Opus carries, and what the recordings' encoders take."""
LAYOUT = "stereo"
FORMAT = "s16"
OPUS_FRAME = 960
"""20 ms: the Opus frame WebRTC receivers expect."""
SNAP_SAMPLES = SAMPLE_RATE // 100
"""A chunk within 10 ms of where the previous one ended continues it (capture times jitter)."""
_TIME_BASE = Fraction(1, SAMPLE_RATE)
FRAME_MATCH_S = 0.010
"""Sound matches the first frame captured no more than this before it (half a 50 fps frame)."""


@dataclass(frozen=True)
class AudioChunk:
    """Some sound: ``samples`` is 1 x 2n int16, interleaved stereo at 48 kHz (PyAV's packed ``s16``)."""

    samples: np.ndarray
    pts_s: float
    """Media time of the first sample, on the stream's media clock (the same as ``FrameMeta.pts_s``)."""
    capture_s: float
    """When it was captured, on this machine's monotonic clock (the same as ``FrameMeta.captured_s``)."""

    @property
    def frames(self) -> int:
        """Samples per channel."""
        return int(self.samples.shape[1]) // 2

    @property
    def duration_s(self) -> float:
        return self.frames / SAMPLE_RATE


class AudioNormaliser:
    """Decoded frames in any format, rate, layout and size -> 20 ms chunks of 48 kHz s16 stereo.

    Every chunk is one Opus frame long, so each goes out exactly when it is due (a chunk spanning two
    of the source's frames would otherwise wait for the later one). Times run on from the first sample
    held back: a source's frames are contiguous."""

    def __init__(self) -> None:
        self._resampler = av.AudioResampler(format=FORMAT, layout=LAYOUT, rate=SAMPLE_RATE)
        self._pending = np.zeros((1, 0), dtype=np.int16)
        self._pending_pts_s = 0.0
        self._pending_capture_s = 0.0

    def chunks(self, frame: av.AudioFrame, pts_s: float, capture_s: float) -> list[AudioChunk]:
        """The 20 ms chunks complete with ``frame`` (media time ``pts_s``, captured at ``capture_s``)."""
        frame.pts = None  # the caller keeps the time; the resampler would check pts continuity
        parts = [f.to_ndarray() for f in self._resampler.resample(frame)]
        if not parts:
            return []
        samples = np.concatenate(parts, axis=1).astype(np.int16, copy=False)
        held = self._pending.shape[1] // 2
        if held == 0:
            self._pending_pts_s, self._pending_capture_s = pts_s, capture_s
        self._pending = np.concatenate([self._pending, samples], axis=1)
        out = []
        while self._pending.shape[1] >= 2 * OPUS_FRAME:
            out.append(
                chunk_from(
                    np.ascontiguousarray(self._pending[:, : 2 * OPUS_FRAME]),
                    self._pending_pts_s,
                    self._pending_capture_s,
                )
            )
            self._pending = self._pending[:, 2 * OPUS_FRAME :]
            self._pending_pts_s += OPUS_FRAME / SAMPLE_RATE
            self._pending_capture_s += OPUS_FRAME / SAMPLE_RATE
        return out


class AudioSubscriber(Protocol):
    """A WHEP viewer's audio track: takes Opus packets on the audio thread, must not block."""

    def deliver(self, packet: av.Packet) -> None: ...


class AudioSink(Protocol):
    """A recording: takes every released chunk on the audio thread, must not block."""

    def on_audio(self, chunk: AudioChunk) -> None: ...


class PictureDelay:
    """How long the picture takes from capture to the viewers' senders, and when each frame was handed on.

    Two parts, measured where they happen: from capture to the fan-out (``handed``, per frame the worker
    hands on: the wait in the ring and the processing) and the encoding for the viewers (``encoded``, per
    frame a shared encoder encodes). ``delay_s`` is their medians over the last ``frames``: on a busy machine
    a few frames take much longer, and the sound should match the typical frame, not be pulled late by the
    slow ones (the mean put the sound 9 ms after the median frame at load 14 on 2 cores). ``handed_at``
    says when the frame captured at a given time was handed on, so sound can wait for a frame that is late."""

    def __init__(self, frames: int = 45) -> None:
        self._handed: collections.deque[float] = collections.deque(maxlen=frames)
        self._encode: collections.deque[float] = collections.deque(maxlen=frames)
        self._recent: collections.deque[tuple[float, float]] = collections.deque(maxlen=2 * frames)
        """(capture_s, handed_s) of the last frames handed on."""
        self._delay_s: float | None = None
        self.encode_s = 0.0
        self.last_handed_s: float | None = None
        """When a frame was last handed to the fan-out (monotonic)."""
        self.listener: Callable[[], None] | None = None
        """Called on the worker thread after each frame is handed on (the sound's thread waits for frames)."""

    def handed(self, capture_s: float, now_s: float | None = None) -> None:
        """A frame captured at ``capture_s`` was handed to the fan-out now (the worker thread)."""
        now_s = time.monotonic() if now_s is None else now_s
        self._handed.append(max(0.0, now_s - capture_s))
        self._recent.append((capture_s, now_s))
        self.last_handed_s = now_s
        self._update()
        if self.listener is not None:
            self.listener()

    def encoded(self, seconds: float) -> None:
        """A shared encoder took ``seconds`` for a frame (its thread)."""
        self._encode.append(seconds)
        self._update()

    def handed_at(self, capture_s: float) -> float | None:
        """When the first frame captured at or after ``capture_s`` (less 10 ms: its own frame) was handed on;
        None if none has been yet."""
        for captured, handed in list(self._recent):
            if captured >= capture_s - FRAME_MATCH_S:
                return handed
        return None

    def _update(self) -> None:
        handed = list(self._handed)
        if handed:
            encode = list(self._encode)
            self.encode_s = statistics.median(encode) if encode else 0.0
            self._delay_s = statistics.median(handed) + self.encode_s

    @property
    def delay_s(self) -> float | None:
        return self._delay_s


class OpusPackets:
    """Chunks in, Opus packets out (20 ms each), stamped in 1/48000 s from the chunks' capture times."""

    LOOKAHEAD_S = 312 / SAMPLE_RATE
    """libopus's lookahead (``application=audio``): a packet holds sound from 6.5 ms before the samples it
    was made from, so sound for the viewers goes out that much earlier than the picture's delay."""

    def __init__(self, epoch_s: float, bitrate: int = 96_000) -> None:
        self._epoch_s = epoch_s
        self._bitrate = bitrate
        self._ctx: Any = None
        self._pending = np.zeros((1, 0), dtype=np.int16)
        self._next: int | None = None
        """Sample index (since the epoch) where the pending samples end."""

    def encode(self, chunk: AudioChunk) -> list[av.Packet]:
        start = round((chunk.capture_s - self._epoch_s) * SAMPLE_RATE)
        if self._next is None or abs(start - self._next) > SNAP_SAMPLES:
            self._pending = np.zeros((1, 0), dtype=np.int16)  # a gap, or time went back: start afresh there
            self._next = start
        self._pending = np.concatenate([self._pending, chunk.samples], axis=1)
        self._next += chunk.frames
        packets: list[av.Packet] = []
        pending_start = self._next - self._pending.shape[1] // 2
        while self._pending.shape[1] >= 2 * OPUS_FRAME:
            frame = av.AudioFrame.from_ndarray(self._pending[:, : 2 * OPUS_FRAME], format=FORMAT, layout=LAYOUT)
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, pending_start, _TIME_BASE
            self._pending = self._pending[:, 2 * OPUS_FRAME :]
            pending_start += OPUS_FRAME
            for packet in self._context().encode(frame):
                packet.time_base = _TIME_BASE
                packets.append(packet)
        return packets

    def _context(self) -> Any:
        if self._ctx is None:
            ctx: Any = av.CodecContext.create("libopus", "w")
            ctx.sample_rate, ctx.format, ctx.layout = SAMPLE_RATE, FORMAT, LAYOUT
            ctx.bit_rate = self._bitrate
            ctx.time_base = _TIME_BASE
            ctx.options = {"application": "audio", "frame_duration": "20"}
            ctx.open()
            self._ctx = ctx
        return self._ctx


class AudioOutput:
    """The delay line and fan-out of one stream's sound (see the module doc); ``close`` joins its thread."""

    def __init__(
        self,
        stream: str,
        picture: PictureDelay,
        picture_stall_s: float = 1.0,
        max_queue_s: float = 3.0,
    ) -> None:
        self.stream = stream
        self._picture = picture
        self._stall_s = picture_stall_s
        self._max_queue_s = max_queue_s
        self._cond = threading.Condition()
        self._queue: collections.deque[AudioChunk] = collections.deque()
        self._queued_s = 0.0
        self._subscribers: tuple[AudioSubscriber, ...] = ()
        self._sinks: tuple[AudioSink, ...] = ()
        self._failed: set[int] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._epoch_s = time.monotonic()
        picture.listener = self._wake
        self.chunks_in = 0
        self.chunks_out = 0
        self.dropped = 0
        """Chunks dropped: no picture to go with, or more than ``max_queue_s`` waiting."""
        self.seconds_in = 0.0
        self.last_chunk_s: float | None = None
        """When sound last came in (monotonic): the stream has sound while this is recent."""

    # -- the ingest side -------------------------------------------------------------------------------
    def push(self, chunk: AudioChunk) -> None:
        """Sound came in (any thread); it is released when the picture it goes with is."""
        with self._cond:
            if self._stopping:
                return
            self._queue.append(chunk)
            self._queued_s += chunk.duration_s
            while self._queued_s > self._max_queue_s and len(self._queue) > 1:
                old = self._queue.popleft()
                self._queued_s -= old.duration_s
                self.dropped += 1
            self.chunks_in += 1
            self.seconds_in += chunk.duration_s
            self.last_chunk_s = time.monotonic()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"audio-{self.stream}", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def has_sound(self, within_s: float = 2.0) -> bool:
        """Sound came in during the last ``within_s``."""
        return self.last_chunk_s is not None and time.monotonic() - self.last_chunk_s <= within_s

    # -- the output side -------------------------------------------------------------------------------
    def subscribe(self, sub: AudioSubscriber) -> None:
        with self._cond:
            self._subscribers = (*self._subscribers, sub)

    def unsubscribe(self, sub: AudioSubscriber) -> None:
        with self._cond:
            self._subscribers = tuple(s for s in self._subscribers if s is not sub)

    def add_sink(self, sink: AudioSink) -> None:
        with self._cond:
            self._sinks = (*self._sinks, sink)

    def remove_sink(self, sink: AudioSink) -> None:
        with self._cond:
            self._sinks = tuple(s for s in self._sinks if s is not sink)
            self._failed.discard(id(sink))

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def delay_ms(self) -> float | None:
        delay = self._picture.delay_s
        return None if delay is None else round(delay * 1000.0, 1)

    def stats(self) -> dict[str, Any]:
        return {
            "chunks_in": self.chunks_in,
            "chunks_out": self.chunks_out,
            "seconds_in": round(self.seconds_in, 2),
            "dropped": self.dropped,
            "delay_ms": self.delay_ms(),
            "viewers": self.subscribers,
        }

    def close(self, timeout_s: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            self._queue.clear()
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout_s)

    # -- the thread ------------------------------------------------------------------------------------
    def _due_s(self, chunk: AudioChunk) -> float | None:
        """When ``chunk`` goes out: when the frame captured with it was handed on, plus the viewers' encoding
        time, less Opus's lookahead. None while that frame has not come; once the picture's delay plus
        ``picture_stall_s`` have passed without it, the chunk goes to be dropped."""
        handed = self._picture.handed_at(chunk.capture_s)
        if handed is None:
            overdue = chunk.capture_s + (self._picture.delay_s or 0.0) + self._stall_s
            return overdue if time.monotonic() > overdue else None
        return handed + self._picture.encode_s - OpusPackets.LOOKAHEAD_S

    def _take_due(self) -> list[AudioChunk]:
        """Wait a little for the next chunk's time; the chunks due now (often none)."""
        with self._cond:
            if self._stopping:
                return []
            if not self._queue:
                self._cond.wait(0.1)
                return []
            if self._picture.delay_s is None:  # no picture has gone out yet: nothing to go with
                self._drop_stale()
                self._cond.wait(0.05)
                return []
            now = time.monotonic()
            due: list[AudioChunk] = []
            when: float | None = None
            while self._queue:
                when = self._due_s(self._queue[0])
                if when is None or when > now:
                    break
                chunk = self._queue.popleft()
                self._queued_s -= chunk.duration_s
                due.append(chunk)
            if not due:  # wake at the head's time, or when a frame is handed on, or to look again
                self._cond.wait(min(when - now, 0.05) if when is not None else 0.05)
            return due

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _drop_stale(self) -> None:
        """No picture yet: sound older than the stall time has nothing to go with (called with the lock)."""
        limit = time.monotonic() - self._stall_s
        while self._queue and self._queue[0].capture_s < limit:
            self._queued_s -= self._queue.popleft().duration_s
            self.dropped += 1

    def _picture_flows(self) -> bool:
        last = self._picture.last_handed_s
        return last is not None and time.monotonic() - last <= self._stall_s

    def _run(self) -> None:
        opus = OpusPackets(self._epoch_s)
        while not self._stopping:
            for chunk in self._take_due():
                if not self._picture_flows():
                    self.dropped += 1
                    continue
                self.chunks_out += 1
                for sink in self._sinks:
                    try:
                        sink.on_audio(chunk)
                    except Exception:  # a failing recording is logged once and skipped; monitors go on
                        if id(sink) not in self._failed:
                            self._failed.add(id(sink))
                            log.exception("audio sink %r failed on stream %s", sink, self.stream)
                subscribers = self._subscribers
                if not subscribers:
                    continue
                try:
                    packets = opus.encode(chunk)
                except Exception as exc:  # an encoder error drops this chunk for the viewers, never the stream
                    log.warning("stream %s: Opus encoding failed, starting afresh: %r", self.stream, exc)
                    opus = OpusPackets(self._epoch_s)
                    continue
                for packet in packets:
                    for sub in subscribers:
                        with contextlib.suppress(Exception):
                            sub.deliver(packet)


def silence(seconds: float) -> np.ndarray:
    """``seconds`` of stereo silence as a chunk's samples."""
    return np.zeros((1, 2 * max(0, round(seconds * SAMPLE_RATE))), dtype=np.int16)


def chunk_from(samples: np.ndarray, pts_s: float, capture_s: float) -> AudioChunk:
    samples.flags.writeable = False
    return AudioChunk(samples, pts_s, capture_s)


AudioCallback = Callable[[AudioChunk], None]
"""Called with each chunk of sound an input decodes; the stream delays and hands it on."""
