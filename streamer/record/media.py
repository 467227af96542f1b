"""Reading video files with PyAV, for the batch `process` command (writing: ``streamer.record.encoding``).

The reader yields decoded video frames as BGR arrays with their presentation time, and the input's
audio packets untouched, interleaved as they are in the file. The writer keeps the input's
resolution, frame timestamps (so variable frame rate survives) and audio (copied as-is when the output
container can hold it, else re-encoded to AAC).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from engines.errors import InputError, OutputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoFrame:
    image: np.ndarray  # H x W x 3 BGR: uint8, or uint16 from a reader opened ``deep``
    pts: int | None
    time_s: float
    time_base: Fraction


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: Fraction
    frames: int  # 0 when the container does not say
    time_base: Fraction
    has_audio: bool
    timecode: str | None = None
    """The first frame's SMPTE timecode when the file carries one (``streamer.live.timecodes``); kept in the output."""
    bits: int = 8
    """Bits per component of the decoded video (8 for most H.264, 10 for ProRes 422 or 10-bit HEVC...)."""


class VideoReader:
    """Demuxes a video file; ``items()`` yields ``VideoFrame`` and audio ``av.Packet`` objects in file order."""

    def __init__(self, path: str | os.PathLike[str], deep: bool = False) -> None:
        """``deep``: decode frames as 16-bit BGR (uint16, full range of the type) to keep 10/12-bit footage."""
        self.path = Path(path)
        self.deep = deep
        if not self.path.exists():
            raise InputError(f"input {self.path} does not exist")
        if not self.path.is_file():
            raise InputError(f"input {self.path} is not a file")
        try:
            self._container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError) as exc:
            raise InputError(f"input {self.path} cannot be read as video: {_reason(exc)}") from exc
        videos = self._container.streams.video
        if not videos:
            self._container.close()
            raise InputError(f"input {self.path} has no video stream")
        self.video = videos[0]
        self.video.thread_type = "AUTO"
        self.audio = self._container.streams.audio[0] if self._container.streams.audio else None
        ctx = self.video.codec_context
        fps = self.video.average_rate or self.video.guessed_rate or Fraction(30, 1)
        if not ctx.width or not ctx.height:
            self._container.close()
            raise InputError(f"input {self.path} has a video stream without a frame size")
        self.info = VideoInfo(
            width=ctx.width,
            height=ctx.height,
            fps=Fraction(fps),
            frames=int(self.video.frames or 0),
            time_base=Fraction(self.video.time_base or Fraction(1, 90000)),
            has_audio=self.audio is not None,
            timecode=_timecode(self._container, self.video, Fraction(fps)),
            bits=_bits(ctx),
        )

    def items(self) -> Iterator[VideoFrame | av.Packet]:
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        try:
            for packet in self._container.demux(*streams):
                if packet.stream.type == "audio":
                    if packet.dts is not None:
                        yield packet
                    continue
                for frame in packet.decode():
                    if isinstance(frame, av.VideoFrame):
                        yield self._frame(frame)
        except av.FFmpegError as exc:
            raise InputError(f"input {self.path} is damaged: {_reason(exc)}") from exc

    def frames(self) -> Iterator[VideoFrame]:
        for item in self.items():
            if isinstance(item, VideoFrame):
                yield item

    def _frame(self, frame: av.VideoFrame) -> VideoFrame:
        tb = Fraction(frame.time_base) if frame.time_base else self.info.time_base
        time_s = float(frame.pts * tb) if frame.pts is not None else 0.0
        return VideoFrame(frame.to_ndarray(format="bgr48le" if self.deep else "bgr24"), frame.pts, time_s, tb)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _bits(ctx: Any) -> int:
    try:
        return max(int(c.bits) for c in ctx.format.components)
    except (AttributeError, TypeError, ValueError):  # no format known before decoding
        return 8


def _timecode(container: Any, stream: Any, rate: Fraction) -> str | None:
    from streamer.live.timecodes import container_timecode

    found = container_timecode(container, stream, rate)
    return found.text if found is not None else None


def check_writable(path: Path) -> None:
    """Raise OutputError unless a file can be created at ``path``."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise OutputError(f"output {path} is a directory; give a file name such as {path / 'out.mp4'}")
    if not parent.is_dir():
        raise OutputError(f"output {path} cannot be written: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"output {path} cannot be written: no permission to write in {parent}")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]
