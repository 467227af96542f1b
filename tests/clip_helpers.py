"""Lighter copies of the shared clips for tests that drive a page, an API or a command rather than measure
the frame path: the same picture and sound, at a lower frame rate or cut short, so the full pipeline (and a
WebRTC encoder and decoder, or a browser) runs on the frames the assertion needs and no more."""

from __future__ import annotations

import io
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np


def lighter_clip(clip: Path, out_dir: Path, *, fps: int | None = None, seconds: float | None = None) -> Path:
    """``clip`` re-encoded (H.264, CRF 18; its sound copied as it is) at ``fps`` frames a second and/or only
    its first ``seconds``; same size. Made with PyAV (no FFmpeg command needed), once per folder and name."""
    parts = [clip.stem, *([f"{fps}fps"] if fps else []), *([f"{seconds:g}s"] if seconds else [])]
    out = out_dir / f"{'-'.join(parts)}.mp4"
    if out.exists():
        return out
    out_dir.mkdir(parents=True, exist_ok=True)
    end_s = seconds if seconds else math.inf
    with av.open(str(clip)) as src, av.open(str(out), "w") as dst:
        video_in = src.streams.video[0]
        audio_in = src.streams.audio[0] if src.streams.audio else None
        rate = Fraction(fps) if fps else Fraction(video_in.average_rate or 30)
        video: Any = dst.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = (
            video_in.codec_context.width,
            video_in.codec_context.height,
            "yuv420p",
        )
        video.options = {"crf": "18", "preset": "ultrafast"}
        audio = dst.add_stream_from_template(audio_in) if audio_in is not None else None
        written = 0  # frames out; the next one is due at written / rate seconds
        for packet in src.demux(*(s for s in (video_in, audio_in) if s is not None)):
            if packet.stream is audio_in and audio is not None:
                if packet.pts is not None and packet.time_base is not None and packet.pts * packet.time_base < end_s:
                    packet.stream = audio
                    dst.mux(packet)
                continue
            for frame in packet.decode():
                t_s = float(frame.time) if frame.time is not None else written / rate
                if t_s >= end_s or t_s + 1e-6 < written / rate:
                    continue  # past the cut, or between two frames of the lower rate
                frame.pts, frame.time_base = written, 1 / rate
                dst.mux(video.encode(frame.reformat(format="yuv420p")))
                written += 1
        dst.mux(video.encode(None))
    return out


def frames_720p(path: Path, n: int) -> list[np.ndarray]:
    """The first ``n`` frames of a clip as BGR, scaled to 1280x720 where they are another size (the watermark's
    tests measure every clip at the live path's usual size)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="bgr24")
            if image.shape[:2] != (720, 1280):
                image = cv2.resize(image, (1280, 720), interpolation=cv2.INTER_AREA)
            out.append(image)
            if len(out) >= n:
                break
    return out


LIVE_BITRATE = 2_500_000
"""The live path's H.264 rate the watermark must survive (bits a second)."""


def h264_round_trip(
    frames: list[np.ndarray], options: dict[str, str] | None = None, gop_frames: int | None = None
) -> tuple[list[np.ndarray], int]:
    """``frames`` through H.264 in an MP4 in memory and back: (the decoded frames, the file's bytes). Without
    ``options``, at the live bitrate (veryfast, zerolatency); else with those x264 options (and ``gop_frames``)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        stream: Any = out.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if options is None:
            stream.bit_rate = LIVE_BITRATE
            stream.options = {"preset": "veryfast", "tune": "zerolatency"}
        else:
            stream.options = dict(options)
        if gop_frames is not None:
            stream.codec_context.gop_size = gop_frames
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    size = buf.tell()
    buf.seek(0)
    with av.open(buf) as container:
        return [f.to_ndarray(format="bgr24") for f in container.decode(video=0)], size
