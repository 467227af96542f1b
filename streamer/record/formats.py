"""Recording formats: which codec goes in which container, with which FFmpeg encoder and options.

Three formats for post (DESIGN.md, issue 5), each in a container that stays readable when the writer is
killed mid-file:

- ``h264`` — libx264 (or ``h264_nvenc`` when the GPU has an encoder: found by opening one, not by
  guessing from the GPU name) in fragmented MP4 (default), MOV or MKV. CRF 18, no B-frames (every
  frame's timestamp is kept exactly, and the encoder holds back fewer frames, so less is in flight
  when a crash comes), a keyframe every fragment.
- ``prores`` — ProRes 422 HQ (``prores_ks`` profile 3, 10-bit 4:2:2) in MOV (default) or MKV.
  ``prores_aw`` (same profile, about 2.5x faster, slightly less exact rate control) is accepted as an
  explicit ``encoder`` for machines where ``prores_ks`` cannot keep up.
- ``ffv1`` — FFV1 version 3 in MKV, RGB (``bgr0``): lossless against the frames the worker produced,
  with per-slice CRCs so damage is detected.

Names here are what clients send; an unknown name or a pair that does not go together is an InputError
naming the choices.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

import av

from engines.errors import InputError

log = logging.getLogger(__name__)

CODECS: tuple[str, ...] = ("h264", "prores", "ffv1")
CONTAINERS: tuple[str, ...] = ("mp4", "mov", "mkv")
MUXERS: Mapping[str, str] = {"mp4": "mp4", "mov": "mov", "mkv": "matroska"}
"""Container name -> FFmpeg muxer."""


AUDIO_CODECS: Mapping[str, str] = {"aac": "aac", "pcm": "pcm_s16le", "opus": "libopus"}
"""What clients ask for -> the FFmpeg encoder: AAC, 16-bit PCM (the sound comes in 16-bit), Opus."""
AUDIO_BY_CONTAINER: Mapping[str, tuple[str, ...]] = {
    "mp4": ("aac",),
    "mov": ("pcm", "aac"),
    "mkv": ("opus", "pcm", "aac"),
}
"""The sound each container holds, the default first: AAC in MP4, PCM in MOV (editorial's choice next to
ProRes), Opus or PCM in MKV."""


def resolve_audio(container: str, audio: str | None) -> str | None:
    """The audio codec (a key of ``AUDIO_CODECS``) for a request, or None for ``"none"``; raises InputError."""
    allowed = AUDIO_BY_CONTAINER[container]
    if audio is None:
        return allowed[0]
    if audio == "none":
        return None
    if audio not in AUDIO_CODECS:
        raise InputError(f"unknown audio {audio!r}: use one of {', '.join(AUDIO_CODECS)} or none")
    if audio not in allowed:
        raise InputError(f"{container} cannot hold {audio} sound: use {' or '.join(allowed)} (or none)")
    return audio


@dataclass(frozen=True)
class CodecSpec:
    name: str
    encoders: tuple[str, ...]
    """FFmpeg encoders, in order of preference; the first one that opens here is the default."""
    containers: tuple[str, ...]
    """Containers that hold this codec; the first is the default."""
    intra_only: bool
    """Every frame is a keyframe (fragments are cut by duration alone)."""


CODEC_SPECS: Mapping[str, CodecSpec] = {
    "h264": CodecSpec("h264", ("h264_nvenc", "libx264"), ("mp4", "mov", "mkv"), intra_only=False),
    "prores": CodecSpec("prores", ("prores_ks", "prores_aw"), ("mov", "mkv"), intra_only=True),
    "ffv1": CodecSpec("ffv1", ("ffv1",), ("mkv",), intra_only=False),
}
HARDWARE_ENCODERS: frozenset[str] = frozenset({"h264_nvenc"})
"""Encoders that need a device; they are the default only where ``EncoderSupport`` could open one."""


@dataclass(frozen=True)
class RecordFormat:
    """A resolved, valid (codec, container, encoder) triple."""

    codec: str
    container: str
    encoder: str

    @property
    def ext(self) -> str:
        return self.container

    @property
    def muxer(self) -> str:
        return MUXERS[self.container]

    @property
    def intra_only(self) -> bool:
        return CODEC_SPECS[self.codec].intra_only


@dataclass(frozen=True)
class EncoderSupport:
    """Which hardware encoders open on this machine (probed once, at service start)."""

    available: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def probe(cls) -> EncoderSupport:
        """Try to open each hardware encoder on a small frame; those that open are available."""
        found = {name for name in HARDWARE_ENCODERS if _opens(name)}
        if found:
            log.info("hardware video encoders available: %s", ", ".join(sorted(found)))
        return cls(frozenset(found))

    def usable(self, encoder: str) -> bool:
        return encoder not in HARDWARE_ENCODERS or encoder in self.available


def _opens(encoder: str) -> bool:
    try:
        ctx: Any = av.CodecContext.create(encoder, "w")
        ctx.width, ctx.height, ctx.pix_fmt = 256, 256, "yuv420p"
        ctx.time_base = Fraction(1, 30)
        ctx.framerate = Fraction(30, 1)
        ctx.open()
        ctx.close()
        return True
    except Exception as exc:  # no device, no driver, no encoder unit (H100/H200 have no NVENC): not usable
        log.debug("encoder %s does not open here: %s", encoder, exc)
        return False


def resolve_format(
    codec: str | None = None,
    container: str | None = None,
    encoder: str | None = None,
    support: EncoderSupport | None = None,
) -> RecordFormat:
    """The format for a request; raises InputError naming the valid choices."""
    support = support or EncoderSupport()
    codec = codec or "h264"
    if codec not in CODEC_SPECS:
        raise InputError(f"unknown codec {codec!r}: use one of {', '.join(CODECS)}")
    spec = CODEC_SPECS[codec]
    if container is None:
        container = spec.containers[0]
    elif container not in CONTAINERS:
        raise InputError(f"unknown container {container!r}: use one of {', '.join(CONTAINERS)}")
    elif container not in spec.containers:
        raise InputError(f"{codec} cannot be recorded in {container}: use {' or '.join(spec.containers)}")
    if encoder is None:
        usable = [e for e in spec.encoders if support.usable(e)]
        encoder = usable[0]
    elif encoder not in spec.encoders:
        raise InputError(f"unknown encoder {encoder!r} for {codec}: use one of {', '.join(spec.encoders)}")
    elif not support.usable(encoder):
        raise InputError(f"encoder {encoder} is not available on this machine (no hardware encoder opened)")
    return RecordFormat(codec, container, encoder)


def format_for_path_suffix(suffix: str, codec: str = "h264") -> RecordFormat:
    """The format ``stageswap process`` writes for an output file extension and codec (raises InputError)."""
    ext = suffix.lower().lstrip(".")
    container = "mp4" if ext == "m4v" else ext
    if container not in CONTAINERS:
        raise InputError(f"unsupported extension {suffix!r}; use one of .mkv, .m4v, .mov, .mp4")
    if codec == "h264":
        return RecordFormat("h264", container, "libx264")
    return resolve_format(codec, container)


@dataclass(frozen=True)
class VideoCodecSetup:
    pix_fmt: str
    options: dict[str, str]
    gop_frames: int | None


def codec_setup(
    fmt: RecordFormat, width: int, height: int, keyint_frames: int, crf: int = 18, bits: int = 8
) -> VideoCodecSetup:
    """Pixel format and encoder options for ``fmt`` at a frame size (raises InputError for impossible sizes).

    ``bits``: the depth of the frames written (8, or 10/12/16 for 16-bit frames from colour-managed
    footage): ProRes is 10-bit whatever comes, FFV1 keeps the depth (RGB, lossless), H.264 stays 8-bit."""
    even = width % 2 == 0 and height % 2 == 0
    if fmt.encoder == "libx264":
        # No B-frames: presentation order = decode order, so timestamps come out exactly as written.
        opts = {"crf": str(crf), "preset": "veryfast", "bf": "0", "rc-lookahead": "10"}
        return VideoCodecSetup("yuv420p" if even else "yuv444p", opts, keyint_frames)
    if fmt.encoder == "h264_nvenc":
        opts = {"preset": "p4", "rc": "vbr", "cq": str(crf + 1), "bf": "0"}
        return VideoCodecSetup("yuv420p" if even else "yuv444p", opts, keyint_frames)
    if fmt.encoder in ("prores_ks", "prores_aw"):
        if width % 2:
            raise InputError(f"ProRes 422 needs an even frame width, got {width}x{height}: record h264 or ffv1")
        return VideoCodecSetup("yuv422p10le", {"profile": "3"}, None)  # 3 = HQ in both encoders
    if fmt.encoder == "ffv1":
        # Version 3 with slices (multi-threaded) and a CRC per slice; RGB so nothing is lost to chroma.
        pix_fmt = "bgr0" if bits <= 8 else "gbrp10le" if bits <= 10 else "gbrp12le" if bits <= 12 else "gbrp16le"
        return VideoCodecSetup(pix_fmt, {"level": "3", "slicecrc": "1", "slices": "4"}, keyint_frames)
    raise InputError(f"no settings for encoder {fmt.encoder!r}")


# -- timecode ---------------------------------------------------------------------------------------------

_TIMECODE = re.compile(r"(\d{2}):(\d{2}):(\d{2})[:;](\d{2})")


def timecode_base(rate: Fraction) -> int:
    """Frames per timecode second: the nominal rate rounded (29.97 counts 30 frames, non-drop-frame)."""
    return max(1, round(float(rate)))


def timecode_of(moment: datetime, rate: Fraction) -> str:
    """SMPTE ``HH:MM:SS:FF`` (non-drop-frame) of a time of day at ``rate`` (the frame field from its fraction)."""
    base = timecode_base(rate)
    frame = min(base - 1, math.floor(moment.microsecond / 1e6 * base))
    return f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}:{frame:02d}"


def check_timecode(text: Any, rate: Fraction) -> str:
    """A client's start timecode, validated (``HH:MM:SS:FF``, frames below the rate); raises InputError."""
    match = _TIMECODE.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise InputError(f"timecode must look like HH:MM:SS:FF, got {text!r}")
    hh, mm, ss, ff = (int(g) for g in match.groups())
    base = timecode_base(rate)
    if hh > 23 or mm > 59 or ss > 59 or ff >= base:
        raise InputError(f"timecode {text} is out of range (frames must be below {base} at {float(rate):g} fps)")
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"
