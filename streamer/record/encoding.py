"""One video file written frame by frame: encode, mux, and keep what is on disk always playable.

``FileEncoder`` is synchronous; ``streamer.record.recorder.Recorder`` runs one on its own thread. It serves the
live recordings and ``stageswap process`` alike.

Crash safety (``EncodeSpec.crash_safe``):

- fragmented containers: MP4/MOV with ``movflags=frag_keyframe+empty_moov+default_base_moof`` and
  fragments of at most ``fragment_s``; MKV with clusters of at most ``fragment_s``. A reader needs
  nothing written at the end of the file, so a file cut anywhere plays up to its last whole fragment.
- ``flush_packets=1``: whatever the muxer finished (a whole fragment) is handed to the OS before
  ``write`` returns, so the file size after each call is a fragment boundary (``committed_bytes``).
- ``fdatasync`` at most every ``fsync_interval_s`` (and the folder once), so a power cut loses at most
  that much more than a crash does.
- a write that fails (a full disk: ENOSPC, a quota, an I/O error) raises ``WriteFailed``; ``abort``
  then cuts the file back to ``committed_bytes``, the last fragment boundary, so the partial file is
  valid to its end instead of ending in half a fragment.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace, VideoReformatter

from engines.errors import OutputError
from streamer.record.formats import RecordFormat, codec_setup

log = logging.getLogger(__name__)

SOUND_RATE = 48_000
_SOUND_TIME_BASE = Fraction(1, SOUND_RATE)
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_BT709, _SPC_RGB = 1, 0  # AVColorPrimaries / AVColorTransferCharacteristic / AVColorSpace values
_RANGE_LIMITED, _RANGE_FULL = 1, 2  # AVColorRange: MPEG (tv), JPEG (pc)


class WriteFailed(OutputError):
    """Writing the file failed (the file is kept up to its last whole fragment after ``abort``)."""

    def __init__(self, message: str, disk_full: bool = False) -> None:
        super().__init__(message)
        self.disk_full = disk_full


@dataclass(frozen=True)
class EncodeSpec:
    format: RecordFormat
    rate: Fraction
    """Nominal frame rate: the encoder's rate control, the keyframe interval and the timecode count in it."""
    time_base: Fraction
    """Unit of the ``pts`` given to ``write`` (1/90000 for source timestamps, 1/rate for constant rate)."""
    crash_safe: bool = True
    fragment_s: float = 0.5
    fsync_interval_s: float | None = 1.0
    timecode: str | None = None
    """Start timecode ``HH:MM:SS:FF``: a tmcd track in MP4/MOV, a TIMECODE tag in MKV."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Container tags (title, comment...)."""
    crf: int = 18
    threads: int = 0
    """Encoder threads (0: FFmpeg picks)."""
    bits: int = 8
    """Depth of the frames written: 8 (uint8 frames), or 10/12/16 for uint16 frames (``codec_setup``)."""
    audio_codec: str | None = None
    """Sound to encode from 48 kHz stereo samples (``write_sound``): an FFmpeg encoder (``aac``, ``pcm_s16le``,
    ``libopus``), or None for none (``stageswap process`` copies its input's sound with ``audio_template``)."""

    @property
    def keyint_frames(self) -> int:
        """A keyframe every fragment, so each fragment decodes on its own."""
        return max(1, round(self.fragment_s * float(self.rate)))


class FileEncoder:
    """Encodes BGR frames into one file; the video stream opens at the first frame (its size).

    ``size`` opens it at once instead (needed when audio packets may come before the first frame)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        spec: EncodeSpec,
        audio_template: Any = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.spec = spec
        self.frames_written = 0
        self.committed_bytes = 0
        """File size at the last point where the file was whole (after a successful write)."""
        self.width = 0
        self.height = 0
        self.timecode = spec.timecode
        """Written into the file when the video stream opens (at the first frame unless ``size`` is given)."""
        self._stream: Any = None
        self._to_yuv: Any = VideoReformatter()
        """One scaler for the file (PyAV would make one, with its threads, per frame)."""
        self._yuv = True
        self._pix_fmt = ""
        self._last_frame: av.VideoFrame | None = None
        self._last_pts: int | None = None
        self._synced_s = time.monotonic()
        self._synced_bytes = 0
        self._dir_synced = False
        self._closed = False
        self.syncs = 0
        """fdatasyncs done: the file is on disk up to ``committed_bytes`` as of the last one."""
        try:
            self._container: Any = av.open(str(self.path), mode="w", format=spec.format.muxer, options=self._options())
        except (av.FFmpegError, OSError) as exc:
            raise _write_error(self.path, "cannot be created", exc) from exc
        self._fd: int | None = None  # opened once FFmpeg has created the file (at the first write)
        for key, value in spec.metadata.items():
            self._container.metadata[key] = value
        self._audio_out: Any = None
        self._audio_copy = False
        self._audio_decoder: Any = None
        self._sound_out: Any = None
        self.sound_seconds = 0.0
        try:
            if size is not None:
                self._open_video(*size)
            if audio_template is not None:
                self._open_audio(audio_template)
            elif spec.audio_codec is not None:
                self._sound_out = self._container.add_stream(spec.audio_codec, rate=SOUND_RATE)
                self._sound_out.layout = "stereo"
                self._sound_out.time_base = _SOUND_TIME_BASE
        except BaseException:
            self.abort()
            raise

    def _options(self) -> dict[str, str]:
        opts: dict[str, str] = {}
        if not self.spec.crash_safe:
            return opts
        fragment_us = str(max(1, round(self.spec.fragment_s * 1_000_000)))
        opts["flush_packets"] = "1"
        if self.spec.format.muxer in ("mp4", "mov"):
            flags = "empty_moov+default_base_moof"
            if not self.spec.format.intra_only:
                flags = "frag_keyframe+" + flags  # fragments start at keyframes: each decodes alone
            opts["movflags"] = flags
            opts["frag_duration"] = fragment_us  # and never last longer than this
        elif self.spec.format.muxer == "matroska":
            opts["cluster_time_limit"] = str(max(1, round(self.spec.fragment_s * 1000)))
        return opts

    def _open_video(self, width: int, height: int) -> None:
        setup = codec_setup(self.spec.format, width, height, self.spec.keyint_frames, self.spec.crf, self.spec.bits)
        stream: Any = self._container.add_stream(self.spec.format.encoder, rate=self.spec.rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = setup.pix_fmt
        stream.time_base = self.spec.time_base
        ctx = stream.codec_context
        ctx.time_base = self.spec.time_base
        ctx.framerate = self.spec.rate
        if setup.gop_frames is not None:
            ctx.gop_size = setup.gop_frames
        ctx.thread_type = "AUTO"
        ctx.thread_count = self.spec.threads
        stream.options = setup.options
        if self.timecode:
            stream.metadata["timecode"] = self.timecode
        # Tag the colours (players guess otherwise: BT.601 or BT.709 depending on the size).
        ctx.color_primaries, ctx.color_trc = _BT709, _BT709
        if setup.pix_fmt == "bgr0" or setup.pix_fmt.startswith("gbrp"):
            ctx.colorspace, ctx.color_range = _SPC_RGB, _RANGE_FULL
            self._yuv = False
        else:
            ctx.colorspace, ctx.color_range = _BT709, _RANGE_LIMITED
            self._yuv = True
        self._pix_fmt = setup.pix_fmt
        self._stream = stream
        self.width, self.height = width, height

    def _open_audio(self, template: Any) -> None:
        try:
            self._audio_out = self._container.add_stream_from_template(template)
            self._audio_copy = True
        except (av.FFmpegError, ValueError) as exc:
            log.info("audio %s cannot be copied into %s (%s): re-encoding to AAC", template.name, self.path, exc)
            self._audio_out = self._container.add_stream("aac", rate=template.rate or 48000)
            self._audio_decoder = av.CodecContext.create(template.codec_context.name, "r")
            self._audio_decoder.extradata = template.codec_context.extradata

    def write(self, image: np.ndarray, pts: int) -> None:
        """Encode one H x W x 3 BGR frame at ``pts`` (in ``spec.time_base``; must increase).

        A frame of another size than the first is scaled to it (the file keeps one size)."""
        if self._stream is None:
            h, w = image.shape[:2]
            self._open_video(w, h)
        deep = image.dtype == np.uint16  # 16-bit frames (colour-managed footage): kept deep where the codec can
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr48le" if deep else "bgr24")
        if deep and not self._yuv:
            frame = self._to_yuv.reformat(frame, self.width, self.height, self._pix_fmt)
        elif self._yuv:  # BT.709 matrix, limited range: what the stream is tagged with
            frame = self._to_yuv.reformat(
                frame,
                self.width,
                self.height,
                self._pix_fmt,
                dst_colorspace=Colorspace.ITU709,
                dst_color_range=ColorRange.MPEG,
            )
        self._encode(frame, pts)
        self._last_frame = frame

    def repeat_last(self, pts: int) -> None:
        """Encode the previous frame again at ``pts`` (constant frame rate: fill a gap)."""
        if self._last_frame is None:
            return
        self._encode(self._last_frame, pts)

    def _encode(self, frame: av.VideoFrame, pts: int) -> None:
        if self._last_pts is not None and pts <= self._last_pts:
            raise ValueError(f"pts {pts} does not increase (last {self._last_pts})")
        frame.pts = pts
        frame.time_base = self.spec.time_base
        try:
            packets = self._stream.encode(frame)
            for packet in packets:
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            raise _write_error(self.path, "writing failed", exc) from exc
        self._last_pts = pts
        self.frames_written += 1
        self._commit()

    def write_audio(self, packet: av.Packet) -> None:
        if self._audio_out is None:
            return
        try:
            if self._audio_copy:
                packet.stream = self._audio_out
                self._container.mux(packet)
            elif self._audio_decoder is not None:
                for frame in self._audio_decoder.decode(packet):
                    frame.pts = None
                    for out in self._audio_out.encode(frame):
                        self._container.mux(out)
        except OSError as exc:
            raise _write_error(self.path, "writing failed", exc) from exc
        except av.FFmpegError as exc:
            log.warning("dropping an audio packet that cannot be written to %s: %s", self.path, _reason(exc))

    def write_sound(self, samples: np.ndarray, pts: int) -> None:
        """Encode sound: ``samples`` 1 x 2n int16 (48 kHz stereo, interleaved) at ``pts`` in 1/48000 s, each
        call continuing the last one (``streamer.record.recording`` keeps it so)."""
        if self._sound_out is None:
            return
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="stereo")
        frame.sample_rate, frame.pts, frame.time_base = SOUND_RATE, pts, _SOUND_TIME_BASE
        try:
            for packet in self._sound_out.encode(frame):
                self._container.mux(packet)
        except OSError as exc:
            raise _write_error(self.path, "writing failed", exc) from exc
        except (av.FFmpegError, ValueError) as exc:
            log.warning("dropping sound that cannot be written to %s: %s", self.path, _reason(exc))
            return
        self.sound_seconds += samples.shape[1] / 2 / SOUND_RATE

    def _commit(self) -> None:
        """Note the size on disk (a fragment boundary: the muxer flushes whole fragments) and sync now and then."""
        if self._fd is None:
            self._fd = _open_for_sync(self.path)
            if self._fd is None:
                return
        size = os.fstat(self._fd).st_size
        self.committed_bytes = size
        interval = self.spec.fsync_interval_s
        if interval is None or size == self._synced_bytes:
            return
        now = time.monotonic()
        if now - self._synced_s >= interval:
            self.sync()

    def sync(self) -> None:
        """fdatasync the file (and its folder's entry, once): what is written survives a power cut."""
        if self._fd is None:
            return
        try:
            os.fdatasync(self._fd)
            if not self._dir_synced:
                _sync_dir(self.path.parent)
                self._dir_synced = True
        except OSError as exc:
            raise _write_error(self.path, "syncing to disk failed", exc) from exc
        self._synced_s = time.monotonic()
        self._synced_bytes = self.committed_bytes
        self.syncs += 1

    @property
    def bytes_on_disk(self) -> int:
        return self.committed_bytes

    def close(self) -> None:
        """Flush the encoder and finish the file (index, duration); raises WriteFailed."""
        if self._closed:
            return
        try:
            if self._stream is not None:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
            if self._audio_out is not None and not self._audio_copy:
                for packet in self._audio_out.encode(None):
                    self._container.mux(packet)
            if self._sound_out is not None:
                for packet in self._sound_out.encode(None):
                    self._container.mux(packet)
            self._container.close()
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise _write_error(self.path, "finishing the file failed", exc) from exc
        self._closed = True
        self._release()
        if self._fd is None:
            self._fd = _open_for_sync(self.path)
        if self._fd is None:  # nothing was ever written: FFmpeg did not create the file
            return
        self.committed_bytes = os.fstat(self._fd).st_size
        if self.spec.fsync_interval_s is not None:
            self.sync()
        self._close_fd()

    def abort(self) -> int:
        """Stop without finishing; cut the file back to its last whole fragment. Returns the bytes kept."""
        if self._closed:
            return self.committed_bytes
        self._closed = True
        # The muxer may try to write its trailer into a full disk: whatever it manages is cut off below.
        with contextlib.suppress(Exception):
            self._container.close()
        self._release()
        kept = self.committed_bytes
        if self.spec.crash_safe:
            with contextlib.suppress(OSError):
                if kept == 0:  # not even the header made it: there is nothing to play
                    self.path.unlink(missing_ok=True)
                elif self.path.stat().st_size != kept:
                    os.truncate(self.path, kept)
        self._close_fd()
        return kept

    def _release(self) -> None:
        """Drop the codec contexts now: FFmpeg's encoder threads end when a context is freed, and this
        object may live on in a reference cycle (the recorder's callbacks) until the garbage collector
        runs (found by the soak test: three x264 threads outlived each recording)."""
        self._stream = self._audio_out = self._audio_decoder = self._last_frame = self._sound_out = None
        self._container = self._to_yuv = None

    def _close_fd(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


def _open_for_sync(path: Path) -> int | None:
    """A read-only descriptor of the file FFmpeg writes: for its size and fdatasync (same inode)."""
    try:
        return os.open(path, os.O_RDONLY)
    except OSError:
        return None


def _sync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_error(path: Path, what: str, exc: BaseException) -> WriteFailed:
    code = getattr(exc, "errno", None)
    disk_full = code in DISK_FULL_ERRNOS
    reason = "the disk is full" if code == errno.ENOSPC else _reason(exc)
    return WriteFailed(f"{path}: {what}: {reason}", disk_full=disk_full)


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
