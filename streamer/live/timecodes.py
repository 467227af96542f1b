"""The source's SMPTE timecode: read from a file's timecode track or an NDI frame, carried with each frame.

A stage conforms everything by timecode, so when the input carries one, recordings and NDI output use it
instead of the time of day: the first recorded frame's source timecode becomes the recording's start
timecode (converted to the recording's rate when they differ), and NDI frames carry it on.

Where it comes from:

- a file's timecode: the ``timecode`` tag FFmpeg reads from a MOV/MP4 ``tmcd`` track, an MXF timecode
  component or a Matroska ``TIMECODE`` tag — the timecode of the file's first frame; frame ``n`` is that
  plus ``n`` frames (``FrameTimecode``), restarting from it when a looping file starts again;
- an NDI frame's ``timecode`` (100 ns units since midnight; NDI's ``synthesize`` value means "none").

Not read: timecode inside the video bitstream (H.264/HEVC picture-timing SEI), and jam-sync from an LTC
audio channel (README, "Timecode"). Arithmetic (drop-frame included) is the ``timecode`` package's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from timecode import Timecode

FRAME_META_KEY = "timecode"
"""``FrameMeta.extra[FRAME_META_KEY]``: the frame's ``FrameTimecode``, when its source has a timecode."""
NDI_TICKS_PER_S = 10_000_000
"""NDI timecodes count 100 ns ticks."""
NDI_SYNTHESIZE = 0x7FFFFFFFFFFFFFFF
"""``NDIlib_send_timecode_synthesize``: a sender that leaves the timecode to NDI (no source timecode)."""
_TEXT = re.compile(r"(\d{2}):(\d{2}):(\d{2})([:;.])(\d{2,3})")
_DAY_S = 24 * 3600


@dataclass(frozen=True)
class FrameTimecode:
    """One frame's timecode: ``HH:MM:SS:FF`` (``;`` before the frames for drop-frame) at ``rate``."""

    text: str
    rate: Fraction

    @property
    def drop_frame(self) -> bool:
        return ";" in self.text

    def _tc(self) -> Timecode:
        return Timecode(_rate_arg(self.rate), self.text)

    def plus(self, frames: int) -> FrameTimecode:
        """The timecode ``frames`` frames later (wraps at 24 hours, as SMPTE timecode does)."""
        if frames == 0:
            return self
        tc = self._tc() + frames
        return FrameTimecode(_text(tc, self.drop_frame), self.rate)

    @property
    def seconds(self) -> float:
        """Seconds since midnight of this frame (drop-frame counted at the true NTSC rate)."""
        return self._tc().frame_number / float(self.rate)

    def at_rate(self, rate: Fraction) -> FrameTimecode:
        """The same instant at another frame rate (a 25 fps source recorded at 50 fps keeps its clock time)."""
        if Fraction(rate) == self.rate:
            return self
        return from_seconds(self.seconds, Fraction(rate))

    def ndi_ticks(self) -> int:
        """This timecode as NDI's 100 ns ticks since midnight."""
        return round(self.seconds * NDI_TICKS_PER_S)


def parse(text: Any, rate: Fraction) -> FrameTimecode | None:
    """A container's ``timecode`` tag as a ``FrameTimecode`` (None when missing or not a timecode)."""
    if not isinstance(text, str):
        return None
    match = _TEXT.fullmatch(text.strip())
    if match is None or Fraction(rate) <= 0:
        return None
    hh, mm, ss, sep, ff = match.groups()
    base = max(1, round(float(rate)))
    if int(hh) > 23 or int(mm) > 59 or int(ss) > 59 or int(ff) >= base:
        return None
    drop = sep in ";." and Fraction(rate).denominator == 1001
    return FrameTimecode(f"{hh}:{mm}:{ss}{';' if drop else ':'}{int(ff):02d}", Fraction(rate))


def from_seconds(seconds: float, rate: Fraction) -> FrameTimecode:
    """The timecode of the frame at ``seconds`` since midnight (non-drop-frame except at 1001-based rates)."""
    rate = Fraction(rate)
    frame = int(round((seconds % _DAY_S) * float(rate)))
    drop = rate.denominator == 1001 and round(float(rate)) in (30, 60)
    tc = Timecode(_rate_arg(rate), frames=frame + 1, force_non_drop_frame=not drop)
    return FrameTimecode(_text(tc, drop), rate)


def from_ndi(ticks: int, rate: Fraction) -> FrameTimecode | None:
    """An NDI frame's timecode (None when the sender left it to NDI's clock)."""
    if ticks is None or ticks < 0 or ticks >= NDI_SYNTHESIZE:
        return None
    return from_seconds(ticks / NDI_TICKS_PER_S, rate)


def container_timecode(container: Any, stream: Any, rate: Fraction) -> FrameTimecode | None:
    """The timecode of the first frame of an opened PyAV container (video stream's tag, then any stream's,
    then the container's), or None when it carries none."""
    candidates = [stream.metadata, *(s.metadata for s in container.streams), container.metadata]
    for tags in candidates:
        for key in ("timecode", "TIMECODE"):
            found = parse(tags.get(key), rate)
            if found is not None:
                return found
    return None


def _rate_arg(rate: Fraction) -> str:
    return f"{rate.numerator}/{rate.denominator}" if rate.denominator != 1 else str(rate.numerator)


def _text(tc: Timecode, drop: bool) -> str:
    hh, mm, ss, ff = tc.frames_to_tc(tc.frames)[:4]
    return f"{int(hh):02d}:{int(mm):02d}:{int(ss):02d}{';' if drop else ':'}{int(ff):02d}"
