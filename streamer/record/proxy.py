"""Proxies: an H.264 copy of a recording that a browser plays, for the files it cannot (ProRes in MOV, FFV1 in
Matroska).

A proxy is for looking, not for post: at most ``max_height`` lines, H.264 (yuv420p, CRF 26), the sound as
AAC, each frame at its own time (a constant-rate file stays constant), ``+faststart`` so the page can play it
while it loads. It is made when an operator asks (``ProxyJobs.start``), on a thread at a lower CPU priority
(the live path gets the CPU first), into a hidden temporary file renamed into place when complete: a proxy
that exists is whole. It sits beside the recording as ``{recording}-{view}-proxy.mp4``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from engines.errors import OutputError

log = logging.getLogger(__name__)

PROXY_SUFFIX = "-proxy.mp4"
BROWSER_PLAYS = frozenset({("h264", "mp4")})
"""(codec, container) of recordings a browser plays as they are; the others get a proxy."""


def proxy_path(recording: Path) -> Path:
    """Where the proxy of ``recording`` (``{id}-{view}.{ext}``) goes: ``{id}-{view}-proxy.mp4`` beside it."""
    return recording.with_name(recording.stem + PROXY_SUFFIX)


def make_proxy(
    source: Path, target: Path, progress: Callable[[float], None] | None = None, max_height: int = 720
) -> Path:
    """Write the H.264 proxy of ``source`` to ``target`` (atomically); ``progress(0..1)`` as it goes.

    Raises OutputError naming the file when it cannot be read or written."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with av.open(str(source)) as src:
            video_in = src.streams.video[0]
            duration_s = float(src.duration / av.time_base) if src.duration else None
            audio_in = src.streams.audio[0] if src.streams.audio else None
            with av.open(str(tmp), "w", format="mp4", options={"movflags": "+faststart"}) as out:
                _transcode(src, out, video_in, audio_in, duration_s, progress, max_height)
        os.replace(tmp, target)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise OutputError(f"cannot make a proxy of {source.name}: {exc}") from exc
    if progress is not None:
        progress(1.0)
    return target


def _transcode(
    src: Any,
    out: Any,
    video_in: Any,
    audio_in: Any,
    duration_s: float | None,
    progress: Callable[[float], None] | None,
    max_height: int,
) -> None:
    height = min(max_height, int(video_in.height)) // 2 * 2
    width = max(2, round(int(video_in.width) * height / int(video_in.height)) // 2 * 2)
    rate = video_in.average_rate or Fraction(30)
    video = out.add_stream("libx264", rate=rate)
    video.width, video.height, video.pix_fmt = width, height, "yuv420p"
    video.time_base = video_in.time_base
    video.options = {"crf": "26", "preset": "veryfast"}
    audio = resampler = None
    if audio_in is not None:
        audio = out.add_stream("aac", rate=48000)
        audio.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
    streams = [video_in] + ([audio_in] if audio_in is not None else [])
    reported = -1.0
    for packet in src.demux(*streams):
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                scaled = frame.reformat(width=width, height=height, format="yuv420p")
                scaled.pts, scaled.time_base = frame.pts, frame.time_base
                out.mux(video.encode(scaled))
                if progress is not None and duration_s and frame.time is not None:
                    done = min(0.99, float(frame.time) / duration_s)
                    if done - reported >= 0.02:
                        reported = done
                        progress(done)
            elif audio is not None and resampler is not None:
                frame.pts = None  # the resampler keeps the sound continuous from the first sample
                for chunk in resampler.resample(frame):
                    out.mux(audio.encode(chunk))
    out.mux(video.encode())
    if audio is not None:
        out.mux(audio.encode())


@dataclass
class ProxyJob:
    state: str = "making"
    """``making``, ``ready`` or ``failed``."""
    progress: float = 0.0
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "progress": round(self.progress, 2), "error": self.error}


class ProxyJobs:
    """The proxies being made (one thread each, at ``nice`` lower priority), and what became of them."""

    def __init__(self, nice: int = 10) -> None:
        self._nice = nice
        self._lock = threading.Lock()
        self._jobs: dict[Path, ProxyJob] = {}

    def status(self, recording: Path) -> dict[str, Any] | None:
        """The proxy of ``recording``: ``{"state", "progress", "error"}``, or None when none was asked for."""
        with self._lock:
            job = self._jobs.get(recording)
        if job is not None and job.state != "ready":
            return job.to_dict()
        if proxy_path(recording).is_file():
            return ProxyJob("ready", 1.0).to_dict()
        return job.to_dict() if job is not None else None

    def start(self, recording: Path) -> dict[str, Any]:
        """Make the proxy of ``recording`` unless it is there or being made; returns its status."""
        with self._lock:
            job = self._jobs.get(recording)
            if (job is None or job.state == "failed") and not proxy_path(recording).is_file():
                job = self._jobs[recording] = ProxyJob()
                name = f"proxy-{recording.stem}"[:15]
                threading.Thread(target=self._run, args=(recording, job), name=name, daemon=True).start()
        return self.status(recording) or ProxyJob().to_dict()

    def _run(self, recording: Path, job: ProxyJob) -> None:
        with contextlib.suppress(OSError, AttributeError):
            tid = threading.get_native_id()
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)

        def report(done: float) -> None:
            job.progress = done

        try:
            make_proxy(recording, proxy_path(recording), report)
            job.state = "ready"
            log.info("proxy of %s made", recording.name)
        except Exception as exc:  # reported in the listing; the recording itself is untouched
            job.state, job.error = "failed", str(exc)
            log.error("proxy of %s failed: %s", recording.name, exc)
