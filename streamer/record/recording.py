"""Recording sessions: per stream, start and stop, one file per view, frame-synchronised, with a sidecar.

A ``RecordingSession`` is a fan-out sink (``OutputFanout.add_sink``): the worker thread calls
``on_frame`` for every processed frame. The session decides once per frame — for every view together —
whether the frame is recorded, so the processed and source files always hold the same frames with the
same timestamps. When any view's queue is full the frame is dropped from every view, counted in
``frames_dropped``, logged and announced as an ``alarm`` event (at most one per ``alarm_interval_s``),
and ``alarm_cleared`` once the queues are back under half full: never silent.

Timestamps:

- ``frame_rate="source"`` (default): each frame keeps its media time from ingest (``FrameMeta.pts_s``),
  relative to the first recorded frame, in 1/90000 s. Variable frame rate stays variable. A timestamp
  that goes backwards or repeats (a source restarting) is a discontinuity: the frame is placed one
  nominal frame after the previous one and later frames keep that offset (``timestamp_discontinuities``).
- ``frame_rate="cfr"``: constant frame rate at the stream's nominal rate. Frame *k* of the file is at
  ``k / fps``. Each incoming frame goes to the slot ``round(t * fps)`` of its media time *t*. A frame
  landing in a slot that already holds one is not recorded (``frames_skipped``: the first frame of a slot
  wins). Slots left empty before a frame (the source was slower than nominal, or frames were dropped)
  are filled by repeating the previous frame (``frames_duplicated``). So
  ``frames_written = frames_recorded + frames_duplicated``.

Files are named by the server, ``{stream}-{UTC start}-{view}.{ext}`` in ``data_dir/recordings``, beside a
sidecar ``{stream}-{UTC start}.json`` (written at start, refreshed about once a second while recording,
final at stop; a sidecar left saying ``recording`` after a crash is repaired by
``RecordingManager.recover``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import re
import shutil
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import numpy as np

from engines import __version__
from engines.errors import InputError, OutputError
from engines.paths import check_name, inside, write_atomic
from streamer.errors import ConflictError, NotFoundError
from streamer.governance.provenance import UNKNOWN_MARK, UNMARKED
from streamer.live.audio import AudioChunk
from streamer.live.ring import FrameMeta
from streamer.live.timecodes import FRAME_META_KEY as TIMECODE_KEY
from streamer.live.timecodes import FrameTimecode
from streamer.record.encoding import EncodeSpec, WriteFailed
from streamer.record.formats import (
    AUDIO_CODECS,
    EncoderSupport,
    RecordFormat,
    check_timecode,
    resolve_audio,
    resolve_format,
    timecode_of,
)
from streamer.record.recorder import (
    DEFAULT_QUEUE_BYTES,
    DEFAULT_QUEUE_SECONDS,
    QueueLimits,
    Recorder,
    SoundItem,
    VideoItem,
)
from streamer.record.repair import count_video_frames, trim_partial_tail
from streamer.record.sound import SoundTrack

log = logging.getLogger(__name__)

View = Literal["processed", "source"]
VIEW_CHOICES: tuple[str, ...] = ("processed", "source", "both")
FRAME_RATE_MODES: tuple[str, ...] = ("source", "cfr")
POST_CODECS: tuple[str, ...] = ("prores", "ffv1")
"""Codecs recorded for post (grading, VFX): constant frame rate unless a request says otherwise."""
RATE_TOLERANCE = 0.02
"""A source-timed recording whose frames average this much under its nominal rate is called variable-rate."""
SOURCE_CLOCK_HZ = 90_000
DEFAULT_FPS = Fraction(30, 1)
STANDARD_RATES: tuple[Fraction, ...] = tuple(
    Fraction(r) for r in ("24000/1001", "24", "25", "30000/1001", "30", "48", "50", "60000/1001", "60")
)
RECORDING_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}-\d{8}T\d{6}\.\d{3}Z")
REQUEST_KEYS = ("view", "codec", "container", "encoder", "frame_rate", "fps", "timecode", "audio", "watermark")

Event = dict[str, Any]
Emit = Callable[[Event], None]


class StorageError(OutputError):
    """Not enough free space to start a recording."""

    http_status = 507


def nominal_rate(value: Any, what: str = "fps") -> Fraction:
    """A frame rate from a number or ``"N/D"``; within 0.5% of a standard rate it becomes that rate."""
    try:
        rate = Fraction(str(value)) if isinstance(value, str) else Fraction(value)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise InputError(f"{what} must be a frame rate such as 25, 29.97 or 30000/1001, got {value!r}") from exc
    if isinstance(value, bool) or not 1 <= rate <= 240:
        raise InputError(f"{what} must be between 1 and 240, got {value!r}")
    nearest = min(STANDARD_RATES, key=lambda standard: abs(rate - standard))
    if abs(rate - nearest) <= nearest * Fraction(5, 1000):
        return nearest
    return rate.limit_denominator(1001)


@dataclass(frozen=True)
class RecordingRequest:
    """What a client asks for (the body of ``POST /api/streams/{stream}/recording``)."""

    view: str = "processed"
    codec: str = "h264"
    container: str | None = None
    encoder: str | None = None
    frame_rate: str = "source"
    """``source`` (each frame at its own media time) or ``cfr``; the default is ``cfr`` for ``POST_CODECS``:
    editors and grading tools expect a constant rate, and a stream that drops frames is not one."""
    fps: Fraction | None = None
    """Nominal rate; default: the stream's (its source's rate, else the measured input rate, else 30)."""
    timecode: str | None = None
    """Start timecode; default: the UTC time of day of the first recorded frame."""
    audio: str | None = None
    """The sound's codec (``aac``, ``pcm``, ``opus``) or ``none``; default: the container's (AAC in MP4, PCM in
    MOV, Opus in MKV). A stream without sound is recorded without an audio track."""
    watermark: bool = True
    """False: the processed view is recorded without the invisible watermark (``engines.compose.watermark``)
    even while the stream's monitors show it marked; True (default): as the stream marks it (its own
    ``watermark`` setting). The source view is never marked either way."""

    @classmethod
    def from_json(cls, body: Any) -> RecordingRequest:
        """Validate a JSON body (None or {} = all defaults); raises InputError naming the bad key."""
        if body is None:
            return cls()
        if not isinstance(body, Mapping):
            raise InputError("the recording options must be a JSON object")
        unknown = sorted(set(body) - set(REQUEST_KEYS))
        if unknown:
            raise InputError(f"unknown recording option {unknown[0]!r}: use {', '.join(REQUEST_KEYS)}")
        for key in ("view", "codec", "container", "encoder", "frame_rate", "timecode", "audio"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise InputError(f"{key} must be a string, got {body[key]!r}")
        if body.get("watermark") is not None and not isinstance(body["watermark"], bool):
            raise InputError(f"watermark must be true or false, got {body['watermark']!r}")
        view = body.get("view") or "processed"
        if view not in VIEW_CHOICES:
            raise InputError(f"unknown view {view!r}: use one of {', '.join(VIEW_CHOICES)}")
        codec = body.get("codec") or "h264"
        frame_rate = body.get("frame_rate") or ("cfr" if codec in POST_CODECS else "source")
        if frame_rate not in FRAME_RATE_MODES:
            raise InputError(f"unknown frame_rate {frame_rate!r}: use source (keep timestamps) or cfr")
        fps = nominal_rate(body["fps"]) if body.get("fps") is not None else None
        request = cls(
            view=view,
            codec=codec,
            container=body.get("container"),
            encoder=body.get("encoder"),
            frame_rate=frame_rate,
            fps=fps,
            timecode=body.get("timecode"),
            audio=body.get("audio"),
            watermark=body.get("watermark") is not False,
        )
        fmt = resolve_format(request.codec, request.container, None)  # names checked now; the encoder at start
        resolve_audio(fmt.container, request.audio)
        return request

    @property
    def views(self) -> tuple[View, ...]:
        if self.view == "both":
            return ("processed", "source")
        return ("source",) if self.view == "source" else ("processed",)


@dataclass(frozen=True)
class RecordingConfig:
    """Where recordings go and how the recorder behaves (frozen; one per service)."""

    directory: Path
    queue_seconds: float = DEFAULT_QUEUE_SECONDS
    """Queue bound per file, in seconds of frames at the nominal rate."""
    queue_max_bytes: int = DEFAULT_QUEUE_BYTES
    """Queue bound per file in bytes of raw frames (default 2 s of 1080p30 BGR, 373 MB)."""
    min_free_bytes: int = 512 * 2**20
    """A recording does not start with less free space than this on the recordings disk (507)."""
    fragment_s: float = 0.5
    """Longest fragment/cluster: at most this much is lost when the writer dies."""
    fsync_interval_s: float | None = 1.0
    encoder_nice: int = 10
    """Niceness added to the encoder threads: under CPU pressure the live path gets the CPU first."""
    sidecar_interval_s: float = 1.0
    """How often the sidecar is refreshed and a ``progress`` event sent while recording."""
    alarm_interval_s: float = 1.0
    finish_timeout_s: float = 60.0
    version: str = __version__


@dataclass(frozen=True)
class FinishedRecording:
    """What a finalise hook gets (e.g. provenance signing): the sidecar, the files, the summary."""

    id: str
    sidecar: Path
    files: Mapping[str, Path]
    summary: Mapping[str, Any]


FinaliseHook = Callable[[FinishedRecording], None]


def _utc_stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%S") + f".{moment.microsecond // 1000:03d}Z"


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RecordingSession:
    """One recording of one stream: a Recorder per view, fed in lockstep from the worker thread."""

    def __init__(
        self,
        rec_id: str,
        stream: str,
        request: RecordingRequest,
        fmt: RecordFormat,
        rate: Fraction,
        files: Mapping[View, Path],
        sidecar: Path,
        config: RecordingConfig,
        started: datetime,
        settings: Mapping[str, Any] | None = None,
        emit: Emit | None = None,
        on_end: Callable[[RecordingSession], None] | None = None,
        audio: str | None = None,
        watermark_id: str | None = None,
        watermark_mark: str | None = None,
    ) -> None:
        self.id = rec_id
        self.stream = stream
        self.request = request
        self.format = fmt
        self.rate = rate
        self.files = dict(files)
        self.sidecar = sidecar
        self.config = config
        self.started_utc = started
        self.settings = dict(settings) if settings is not None else None
        self.watermark_id = watermark_id if request.watermark and "processed" in files else None
        """The watermark id the processed view's frames carry (8 hex digits), None: unmarked (the source view
        never is)."""
        self.watermark_mark = watermark_mark if self.watermark_id is not None else None
        """Which mark carries ``watermark_id`` (``engines.compose.watermark.MARKS``: standard, quiet, ...); None:
        unmarked, or a mark of other settings."""
        self.wants_unmarked = not request.watermark and "processed" in files
        """The fan-out hands this sink the processed frame from before the watermark (``ProcessedFrame.unmarked``)."""
        self._emit = emit or (lambda event: None)
        self._on_end = on_end
        self.cfr = request.frame_rate == "cfr"
        self.time_base = 1 / rate if self.cfr else Fraction(1, SOURCE_CLOCK_HZ)
        self.state = "recording"
        self.error: str | None = None
        self.disk_full = False
        self.ended_utc: datetime | None = None
        self.start_timecode: str | None = request.timecode
        self.timecode_source = "request" if request.timecode is not None else None
        """Where ``start_timecode`` came from: ``request`` (the client's), ``source`` (the input's own timecode,
        ``streamer.live.timecodes``) or ``time_of_day`` (the first frame's UTC time of day)."""
        self.first_frame_utc: datetime | None = None
        # Counters (written on the worker thread, read anywhere).
        self.frames_received = 0
        self.frames_recorded = 0
        self.frames_dropped = 0
        self.frames_duplicated = 0
        self.frames_skipped = 0
        self.timestamp_discontinuities = 0
        self.first_pts_s: float | None = None
        self._offset_s = 0.0
        self._last_rel_s = -math.inf
        self._last_pts = -1
        self._alarm_since: float | None = None
        self._alarm_sent_s = -math.inf
        self._alarm_dropped_at_start = 0
        self.alarms = 0
        self.alarm_message: str | None = None
        """Why the alarm is on (queue full, frames dropped so far); None while the recorder keeps up."""
        self._lock = threading.Lock()
        self._ended = False
        self._sidecar_lock = threading.Lock()
        self._sidecar_written_s = -math.inf
        self._frames_in_files: dict[str, int] | None = None
        limits = QueueLimits.for_rate(rate, config.queue_seconds, config.queue_max_bytes)
        self.limits = limits
        self.recorders: dict[View, Recorder] = {}
        self.sound = SoundTrack(audio) if audio is not None else None
        """The sound's placement in the files (``audio`` codec), or None: no audio track."""

    # -- lifecycle -------------------------------------------------------------------------------------
    def open(self) -> None:
        """Create the files and start their threads (raises OutputError; nothing is left open then)."""
        try:
            for view, path in self.files.items():
                spec = EncodeSpec(
                    format=self.format,
                    rate=self.rate,
                    time_base=self.time_base,
                    fragment_s=self.config.fragment_s,
                    fsync_interval_s=self.config.fsync_interval_s,
                    timecode=None,  # set at the first frame (it is that frame's time of day)
                    metadata={"title": f"{self.stream} {view}", "comment": f"stageswap {self.config.version}"},
                    audio_codec=AUDIO_CODECS[self.sound.codec] if self.sound is not None else None,
                )
                self.recorders[view] = Recorder(
                    path,
                    spec,
                    self.limits,
                    name=f"record-{self.stream}-{view}",
                    nice=self.config.encoder_nice,
                    on_error=self._recorder_failed,
                    on_synced=self._synced if not self.recorders else None,
                )
        except BaseException:
            for recorder in self.recorders.values():
                recorder.abort()
            for path in self.files.values():
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
        for recorder in self.recorders.values():
            recorder.start()
        self._write_sidecar(force=True)

    @property
    def active(self) -> bool:
        return not self._ended

    # -- the worker's side -----------------------------------------------------------------------------
    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: Any = None) -> None:
        """Queue this frame for every view, or drop it from every view (never waits on the disk)."""
        with self._lock:
            if self._ended:
                return
            self.frames_received += 1
            unmarked = getattr(result, "unmarked", None)
            if not self.request.watermark and unmarked is not None:
                processed = unmarked  # the same frame before the processor marked it
            images = {"processed": processed, "source": source}
            if self.first_pts_s is None:
                self._first_frame(meta)
            pts, fill_from = self._place(meta.pts_s)
            if pts is None:
                self.frames_skipped += 1
                return
            recorders = self.recorders
            if not all(r.has_room(images[view].nbytes) for view, r in recorders.items()):
                if all(r.accepting for r in recorders.values()):
                    self.frames_dropped += 1
                    self._alarm()
                return
            for view, recorder in recorders.items():
                recorder.push(VideoItem(_frozen(images[view]), pts, fill_from))
            if fill_from is not None:
                self.frames_duplicated += pts - fill_from
            self._last_pts = pts
            self.frames_recorded += 1
            if self._alarm_since is not None and self._caught_up():
                self._clear_alarm()

    def on_audio(self, chunk: AudioChunk) -> None:
        """The stream's sound (its audio thread): placed in every view's file in sync with the frames."""
        with self._lock:
            if self._ended or self.sound is None or self.first_pts_s is None:
                return  # the track starts with the first recorded frame
            placed = self.sound.place(chunk, chunk.pts_s - self.first_pts_s + self._offset_s)
            if placed is None:
                return
            for recorder in self.recorders.values():
                recorder.push_sound(SoundItem(placed.samples, placed.pts))

    def _first_frame(self, meta: FrameMeta) -> None:
        self.first_pts_s = meta.pts_s
        # The frame's arrival at ingest as UTC: its time of day is the start timecode.
        arrived = datetime.now(UTC) - timedelta(seconds=max(0.0, time.monotonic() - meta.arrived_s))
        self.first_frame_utc = arrived
        source_tc = meta.extra.get(TIMECODE_KEY)
        if self.start_timecode is None and isinstance(source_tc, FrameTimecode):
            self.start_timecode = source_tc.at_rate(self.rate).text  # the stage's clock, not this machine's
            self.timecode_source = "source"
        elif self.start_timecode is None:
            self.start_timecode = timecode_of(arrived, self.rate)
            self.timecode_source = "time_of_day"
        for recorder in self.recorders.values():
            recorder.set_timecode(self.start_timecode)

    def _place(self, pts_s: float) -> tuple[int | None, int | None]:
        """(pts in the file, first slot of a gap to fill) for a frame at media time ``pts_s``; None: skip it."""
        assert self.first_pts_s is not None
        rel = pts_s - self.first_pts_s + self._offset_s
        if rel <= self._last_rel_s:
            # Time went backwards or stood still (a source restarted): continue one frame later.
            self.timestamp_discontinuities += 1
            fixed = self._last_rel_s + float(1 / self.rate)
            self._offset_s += fixed - rel
            rel = fixed
        self._last_rel_s = rel
        if self.cfr:
            slot = round(rel * self.rate)
            if slot <= self._last_pts:
                return None, None
            return slot, (self._last_pts + 1 if slot > self._last_pts + 1 and self._last_pts >= 0 else None)
        pts = max(round(rel * SOURCE_CLOCK_HZ), self._last_pts + 1)
        return pts, None

    def _alarm(self) -> None:
        now = time.monotonic()
        if self._alarm_since is None:
            self._alarm_since = now
            self._alarm_dropped_at_start = self.frames_dropped - 1
            self.alarms += 1
        queue = ", ".join(f"{view} {r.queued_frames}/{self.limits.max_frames}" for view, r in self.recorders.items())
        message = (
            f"recorder for {self.stream} is behind: its queue is full ({queue} frames), "
            f"{self.frames_dropped} frame(s) dropped from the recording so far"
        )
        self.alarm_message = message  # kept current for the stream's stats, announced at most once a second
        if now - self._alarm_sent_s < self.config.alarm_interval_s:
            return
        self._alarm_sent_s = now
        log.warning("%s", message)
        self._emit(self._event("alarm", message=message))

    def _caught_up(self) -> bool:
        """The alarm ends when every queue is back under half full (not at the first frame that fits)."""
        return all(2 * r.queued_frames <= self.limits.max_frames for r in self.recorders.values())

    def _clear_alarm(self) -> None:
        dropped = self.frames_dropped - self._alarm_dropped_at_start
        seconds = time.monotonic() - (self._alarm_since or time.monotonic())
        self._alarm_since = None
        self.alarm_message = None
        message = f"recorder for {self.stream} caught up after {seconds:.1f} s; {dropped} frame(s) were dropped"
        log.info("%s", message)
        self._emit(self._event("alarm_cleared", message=message))

    # -- the recorders' side ---------------------------------------------------------------------------
    def _synced(self, recorder: Recorder) -> None:
        if self._write_sidecar():
            self._emit(self._event("progress"))

    def _recorder_failed(self, recorder: Recorder, error: WriteFailed) -> None:
        """A view's file cannot be written (disk full): end the whole recording, the live path goes on."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self.state = "failed"
            self.error = str(error)
            self.disk_full = error.disk_full
        # Another thread ends the rest: this one is a recorder thread and must not join itself.
        threading.Thread(target=self._end_after_error, name=f"record-{self.stream}-end", daemon=True).start()

    def _end_after_error(self) -> None:
        for recorder in self.recorders.values():
            if recorder.state != "failed":
                recorder.abort()
        self._finalise()
        message = f"recording {self.id} stopped: {self.error}"
        log.error("%s", message)
        self._emit(self._event("error", message=message))

    def stop(self) -> dict[str, Any]:
        """Finish every file (what is queued is written) and the sidecar; blocking, call it off the loop."""
        with self._lock:
            if self._ended:
                return self.snapshot()
            self._ended = True
            self.state = "finishing"
        errors = [r.finish(self.config.finish_timeout_s) for r in self.recorders.values()]
        failure = next((e for e in errors if e is not None), None)
        if failure is not None:
            self.state = "failed"
            self.error = str(failure)
            self.disk_full = failure.disk_full
        else:
            self.state = "finished"
        self._finalise()
        kind = "error" if failure is not None else "stopped"
        self._emit(self._event(kind, message=self.error))
        return self.snapshot()

    def _finalise(self) -> None:
        self.ended_utc = datetime.now(UTC)
        if self.state == "failed":
            # What a reader gets from each file now that it is cut at its last whole fragment.
            self._frames_in_files = {view: count_video_frames(path) for view, path in self.files.items()}
        self._write_sidecar(force=True)
        if self._on_end is not None:
            self._on_end(self)

    # -- reporting -------------------------------------------------------------------------------------
    @property
    def duration_s(self) -> float:
        if self.frames_recorded == 0:
            return 0.0
        if self.cfr:
            return round((self._last_pts + 1) / float(self.rate), 3)
        return round(self._last_pts / SOURCE_CLOCK_HZ + float(1 / self.rate), 3)

    @property
    def average_fps(self) -> float | None:
        """Frames per second of media time in the files (None before the first frame)."""
        if self.frames_recorded == 0 or self.duration_s <= 0:
            return None
        if self.cfr:
            return round(float(self.rate), 2)
        written = self.frames_recorded + self.frames_duplicated
        return round(written / self.duration_s, 2)

    def rate_warning(self) -> str | None:
        """Why the file is not constant-rate, when it is not (its frames keep their source times and average
        under the nominal rate: the stream dropped frames); None for a constant-rate one."""
        average = self.average_fps
        if self.cfr or average is None or average >= float(self.rate) * (1 - RATE_TOLERANCE):
            return None
        return (
            f"variable frame rate: {average:.1f} fps on average against {float(self.rate):g} nominal (the frames "
            "keep their source times and the stream dropped some); record at constant rate for editing"
        )

    def frames_written(self) -> dict[str, int]:
        """Frames per view in the files: what the encoders wrote, or what a failed file kept."""
        if self._frames_in_files is not None:
            return dict(self._frames_in_files)
        return self.encoder_frames()

    def encoder_frames(self) -> dict[str, int]:
        """Frames per view the encoders wrote (never goes down, unlike a failed file's count)."""
        return {view: r.frames_written for view, r in self.recorders.items()}

    def snapshot(self) -> dict[str, Any]:
        """The recording as the API, the events and the sidecar show it."""
        written = self.frames_written()
        queue_frames = max((r.queued_frames for r in self.recorders.values()), default=0)
        return {
            "id": self.id,
            "stream": self.stream,
            "state": self.state,
            "view": self.request.view,
            "views": list(self.files),
            "watermark": self.watermark_id is not None,
            "watermark_id": self.watermark_id,
            "watermark_mark": self.watermark_mark,
            "watermark_marks": {
                view: (self.watermark_mark or UNKNOWN_MARK) if view == "processed" and self.watermark_id else UNMARKED
                for view in self.files
            },
            "files": {view: path.name for view, path in self.files.items()},
            "sidecar": self.sidecar.name,
            "codec": self.format.codec,
            "container": self.format.container,
            "encoder": self.format.encoder,
            "frame_rate": self.request.frame_rate,
            "fps": _rate_json(self.rate),
            "start_timecode": self.start_timecode,
            "timecode_source": self.timecode_source,
            "start_utc": _iso(self.started_utc),
            "first_frame_utc": _iso(self.first_frame_utc),
            "end_utc": _iso(self.ended_utc),
            "duration_s": self.duration_s,
            "average_fps": self.average_fps,
            "rate_warning": self.rate_warning(),
            "frames_received": self.frames_received,
            "frames_recorded": self.frames_recorded,
            "frames_written": written,
            "frames_dropped": self.frames_dropped,
            "frames_duplicated": self.frames_duplicated,
            "frames_skipped": self.frames_skipped,
            "timestamp_discontinuities": self.timestamp_discontinuities,
            "first_pts_s": self.first_pts_s,
            "alarm": self._alarm_since is not None,
            "alarm_message": self.alarm_message,
            "alarms": self.alarms,
            "queue": {
                "frames": queue_frames,
                "max_frames": self.limits.max_frames,
                "max_bytes": self.limits.max_bytes,
                "high_water_frames": max((r.queue_frames_max for r in self.recorders.values()), default=0),
            },
            "bytes": {view: r.bytes_on_disk for view, r in self.recorders.items()},
            "audio": self._audio_snapshot(),
            "error": self.error,
            "disk_full": self.disk_full,
        }

    def _audio_snapshot(self) -> dict[str, Any] | None:
        if self.sound is None:
            return None
        return {
            "codec": self.sound.codec,
            "encoder": AUDIO_CODECS[self.sound.codec],
            "duration_s": round(self.sound.seconds, 3),
            "silence_s": round(self.sound.silence_s, 3),
            "cut_s": round(self.sound.cut_s, 3),
            "dropped": sum(r.sound_dropped for r in self.recorders.values()),
        }

    def sidecar_json(self) -> dict[str, Any]:
        out = self.snapshot()
        out["identity"] = (self.settings or {}).get("identity")
        out["settings"] = self.settings
        out["stageswap_version"] = self.config.version
        out["fragment_s"] = self.config.fragment_s
        return out

    def _event(self, kind: str, message: str | None = None) -> Event:
        event: Event = {"type": "recording", "event": kind, "stream": self.stream, "recording": self.snapshot()}
        if message:
            event["message"] = message
        return event

    def _write_sidecar(self, force: bool = False) -> bool:
        """Write the sidecar atomically (at most every ``sidecar_interval_s`` unless forced); never raises."""
        with self._sidecar_lock:
            now = time.monotonic()
            if not force and now - self._sidecar_written_s < self.config.sidecar_interval_s:
                return False
            self._sidecar_written_s = now
            try:
                _atomic_json(self.sidecar, self.sidecar_json())
            except OSError as exc:
                log.error("cannot write the sidecar %s: %s", self.sidecar, exc.strerror or exc)
            return True

    def __repr__(self) -> str:
        return f"RecordingSession({self.id!r}, {self.state})"


def _frozen(image: np.ndarray) -> np.ndarray:
    """The frame as the queue may keep it: the fan-out's read-only copies as they are, anything else copied."""
    if not image.flags.writeable and image.flags.c_contiguous:
        return image
    out = np.array(image, copy=True, order="C")
    out.flags.writeable = False
    return out


def _rate_json(rate: Fraction) -> float | str:
    return int(rate) if rate.denominator == 1 else f"{rate.numerator}/{rate.denominator}"


def _atomic_json(path: Path, data: Mapping[str, Any]) -> None:
    write_atomic(path, json.dumps(data, indent=2) + "\n", mode=0o644, fsync=False)


@dataclass
class RecordingTotals:
    """Counts over the recordings of one stream that ended (the metrics' counters: they never go down).

    ``frames_written`` counts what each view's encoder wrote (a failed recording's file may keep fewer: it
    is cut back to its last whole fragment)."""

    recordings: int = 0
    frames_written: dict[str, int] = field(default_factory=dict)
    frames_dropped: int = 0

    def add(self, session: RecordingSession) -> None:
        self.recordings += 1
        for view, frames in session.encoder_frames().items():
            self.frames_written[view] = self.frames_written.get(view, 0) + frames
        self.frames_dropped += session.frames_dropped

    def including(self, running: RecordingSession | None) -> dict[str, Any]:
        """These totals plus an unfinished recording's figures so far, as JSON."""
        written = dict(self.frames_written)
        dropped, recordings = self.frames_dropped, self.recordings
        if running is not None:
            recordings += 1
            dropped += running.frames_dropped
            for view, frames in running.encoder_frames().items():
                written[view] = written.get(view, 0) + frames
        return {"recordings": recordings, "frames_written": written, "frames_dropped": dropped}


class RecordingManager:
    """The recordings of one service: at most one per stream, in ``config.directory``.

    ``emit`` receives every event (``{"type": "recording", "event": started|progress|alarm|alarm_cleared|
    stopped|error, ...}``); it is called from the worker and recorder threads, so it must be thread-safe
    and must not block. ``on_end(session)`` is called once when a recording ends for any reason."""

    def __init__(
        self,
        config: RecordingConfig,
        support: EncoderSupport | None = None,
        emit: Emit | None = None,
        on_end: Callable[[RecordingSession], None] | None = None,
    ) -> None:
        self.config = config
        self.support = support or EncoderSupport()
        self._emit = emit or (lambda event: None)
        self._on_end = on_end
        self._lock = threading.Lock()
        self._active: dict[str, RecordingSession] = {}
        self._last: dict[str, RecordingSession] = {}
        self._totals: dict[str, RecordingTotals] = {}
        self._hooks: list[FinaliseHook] = []

    def add_finalise_hook(self, hook: FinaliseHook) -> None:
        """Call ``hook`` after each recording is finalised (files closed, sidecar final), on that thread."""
        self._hooks.append(hook)

    # -- start / stop ----------------------------------------------------------------------------------
    def start(
        self,
        stream: str,
        request: RecordingRequest,
        nominal_fps: Fraction | None = None,
        settings: Mapping[str, Any] | None = None,
        sound: bool = False,
        watermark_id: str | None = None,
        watermark_mark: str | None = None,
    ) -> RecordingSession:
        """Open the files of a new recording of ``stream`` (the caller then feeds it frames, and sound where
        ``sound`` says the stream has some). ``watermark_id``: the id the stream's processed frames carry
        (None: unmarked), ``watermark_mark`` the mark that carries it (``MARKS``' name); the recording shows them
        unless its request turns the mark off.

        Raises InputError (bad options), ConflictError (already recording), StorageError (disk nearly
        full), OutputError (the files cannot be created)."""
        check_name(stream, "stream name")
        fmt = resolve_format(request.codec, request.container, request.encoder, self.support)
        audio = resolve_audio(fmt.container, request.audio) if sound else None
        rate = request.fps or nominal_fps or DEFAULT_FPS
        if request.timecode is not None:
            request = replace(request, timecode=check_timecode(request.timecode, rate))
        with self._lock:
            if stream in self._active:
                raise ConflictError(
                    f"stream {stream!r} is already recording ({self._active[stream].id}); stop it first"
                )
            folder = self._folder()
            free = shutil.disk_usage(folder).free
            if free < self.config.min_free_bytes:
                raise StorageError(
                    f"only {free / 2**20:.0f} MB free in {folder}; a recording needs at least "
                    f"{self.config.min_free_bytes / 2**20:.0f} MB"
                )
            started = datetime.now(UTC)
            while True:
                rec_id = f"{stream}-{_utc_stamp(started)}"
                files = {view: inside(folder, f"{rec_id}-{view}.{fmt.ext}") for view in request.views}
                sidecar = inside(folder, f"{rec_id}.json")
                if not sidecar.exists() and not any(p.exists() for p in files.values()):
                    break
                started += timedelta(milliseconds=1)
            session = RecordingSession(
                rec_id,
                stream,
                request,
                fmt,
                rate,
                files,
                sidecar,
                self.config,
                started,
                settings=settings,
                emit=self._emit,
                on_end=self._ended,
                audio=audio,
                watermark_id=watermark_id,
                watermark_mark=watermark_mark,
            )
            session.open()
            self._active[stream] = session
        log.info("recording %s started: %s", rec_id, ", ".join(str(p) for p in files.values()))
        self._emit(session._event("started"))
        return session

    def stop(self, stream: str) -> dict[str, Any]:
        """Stop the recording of ``stream`` and return its final state (blocking: call it off the loop)."""
        check_name(stream, "stream name")
        with self._lock:
            session = self._active.get(stream)
        if session is None:
            last = self._last.get(stream)
            why = f"; its last recording {last.id} ended: {last.state}" if last is not None else ""
            if last is not None and last.error:
                why += f" ({last.error})"
            raise ConflictError(f"stream {stream!r} is not recording{why}")
        summary = session.stop()
        log.info("recording %s stopped: %s", session.id, summary["frames_written"])
        return summary

    def stop_all(self) -> list[dict[str, Any]]:
        with self._lock:
            sessions = list(self._active.values())
        return [s.stop() for s in sessions]

    def _ended(self, session: RecordingSession) -> None:
        with self._lock:
            if self._active.get(session.stream) is session:
                del self._active[session.stream]
            self._last[session.stream] = session
            self._totals.setdefault(session.stream, RecordingTotals()).add(session)
        if self._on_end is not None:
            try:
                self._on_end(session)
            except Exception:
                log.exception("recording %s: end callback failed", session.id)
        files = {str(view): path for view, path in session.files.items()}
        finished = FinishedRecording(session.id, session.sidecar, files, session.sidecar_json())
        for hook in list(self._hooks):
            try:
                hook(finished)
            except Exception:
                log.exception("recording %s: finalise hook %r failed", session.id, hook)

    # -- queries ---------------------------------------------------------------------------------------
    def active(self, stream: str) -> RecordingSession | None:
        with self._lock:
            return self._active.get(stream)

    def status(self, stream: str) -> dict[str, Any] | None:
        """What ``stream``'s stats show about recording (README, "Stream JSON"): its running recording, else
        its last one (so a recording that stopped itself on a full disk keeps saying why), with ``active``,
        and ``totals`` over every recording of the stream since the service started (the metrics' counters).
        None when the stream has not recorded since the service started."""
        with self._lock:
            unfinished = self._active.get(stream)  # recording, or finishing after a stop
            session = unfinished or self._last.get(stream)
            # Under the lock: a recording ending now is counted either as unfinished or in the totals, never twice.
            totals = self._totals.get(stream, RecordingTotals()).including(unfinished)
        if session is None:
            return None
        out = session.snapshot()
        out["active"] = unfinished is not None and unfinished.active
        if not out["active"]:  # a recording that ended is not behind any more, whatever it last said
            out["alarm"], out["alarm_message"] = False, None
        out["totals"] = totals
        return out

    def recordings(self, limit: int = 200, stream: str | None = None) -> list[dict[str, Any]]:
        """Active recordings first, then finished ones from their sidecars (newest first); only ``stream``'s
        when given."""
        with self._lock:
            active = {s.id: s.snapshot() for s in self._active.values() if stream in (None, s.stream)}
        finished: list[dict[str, Any]] = []
        folder = self.config.directory
        if folder.is_dir():
            for path in folder.glob(f"{stream}-*.json" if stream else "*.json"):
                data = _read_json(path)
                if data is not None and data["id"] not in active and stream in (None, data.get("stream")):
                    finished.append(_public(data))
        finished.sort(key=lambda d: str(d.get("start_utc") or ""), reverse=True)
        return (list(active.values()) + finished)[:limit]

    def get(self, rec_id: str) -> dict[str, Any]:
        with self._lock:
            for session in self._active.values():
                if session.id == rec_id:
                    return session.snapshot()
        if not isinstance(rec_id, str) or not RECORDING_ID.fullmatch(rec_id):
            raise NotFoundError(f"no recording {rec_id!r}: ids look like STREAM-YYYYMMDDTHHMMSS.mmmZ")
        path = self.config.directory / f"{rec_id}.json"
        data = _read_json(path) if path.is_file() else None
        if data is None:
            raise NotFoundError(f"no recording {rec_id!r}")
        return _public(data)

    def file(self, rec_id: str, view: str) -> Path:
        """The file of view ``view`` of recording ``rec_id`` (NotFoundError: no such recording, view or file)."""
        recording = self.get(rec_id)
        name = (recording.get("files") or {}).get(view)
        if not isinstance(name, str):
            views = ", ".join(recording.get("files") or {}) or "none"
            raise NotFoundError(f"recording {rec_id!r} has no {view!r} file (views: {views})")
        path = inside(self.config.directory, name)
        if not path.is_file():
            raise NotFoundError(f"the file {name} of recording {rec_id!r} is no longer in the recordings folder")
        return path

    def recover(self) -> list[dict[str, Any]]:
        """Finish the sidecars of recordings a crash interrupted: cut torn tails, count frames, say so.

        Call at service start, before any recording starts."""
        folder = self.config.directory
        recovered: list[dict[str, Any]] = []
        if not folder.is_dir():
            return recovered
        with self._lock:
            active = {s.id for s in self._active.values()}
        for path in sorted(folder.glob("*.json")):
            data = _read_json(path)
            if data is None or data.get("state") not in ("recording", "finishing") or data.get("id") in active:
                continue
            frames: dict[str, int] = {}
            sizes: dict[str, int] = {}
            for view, name in (data.get("files") or {}).items():
                try:
                    file = inside(folder, name)
                    trimmed = trim_partial_tail(file)
                except (InputError, OSError) as exc:
                    log.warning("recording %s: file %s cannot be repaired: %s", data.get("id"), name, exc)
                    continue
                frames[view] = count_video_frames(file)
                sizes[view] = trimmed.size_after
                if trimmed.trimmed_bytes:
                    log.info(
                        "recording %s: cut a torn fragment (%d bytes) off %s",
                        data.get("id"),
                        trimmed.trimmed_bytes,
                        name,
                    )
            data["state"] = "interrupted"
            data["frames_written"] = frames
            data["bytes"] = sizes
            data["error"] = "the service stopped without finishing this recording (crash or power cut)"
            try:
                _atomic_json(path, data)
            except OSError as exc:
                log.error("cannot update the sidecar %s: %s", path, exc)
            log.warning("recording %s was interrupted; kept %s frames", data.get("id"), frames)
            recovered.append(_public(data))
        return recovered

    def _folder(self) -> Path:
        folder = self.config.directory
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the recordings folder {folder}: {exc.strerror or exc}") from exc
        return folder


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "id" in data else None


_PRIVATE_KEYS = ("settings",)


def _public(data: Mapping[str, Any]) -> dict[str, Any]:
    """A sidecar as the API lists it (the full settings stay in the file)."""
    return {k: v for k, v in data.items() if k not in _PRIVATE_KEYS}


__all__ = [
    "FinishedRecording",
    "RecordingConfig",
    "RecordingManager",
    "RecordingRequest",
    "RecordingSession",
    "RecordingTotals",
    "StorageError",
]
