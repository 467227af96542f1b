"""Lip sync, measured: how far apart sound and picture reach a WHEP viewer and a recording.

    python benchmarks/bench_lipsync.py [--source input|ffmpeg] [--processor full|passthrough]
                                       [--duration 30] [--identity s1.jpg] [--json out.json]

A clip is made for it: the shared clip ``d10.mp4`` (a face, so the full pipeline has work) in which one
frame a second has a white band across its top eighth (the face stays, so that frame costs the pipeline
what any other does), and a click (5 ms of 1 kHz at 80% of full scale) starts on exactly that frame's
instant, in silence otherwise. ``stageswap serve`` (its own process, ``--processor full`` with the identity enrolled
and swapped in) plays it, either as ``--input`` (the file's timestamps) or published over WHIP by FFmpeg's
own muxer (``tests.ffmpeg_publish.py``: the publisher's RTP and sender reports). This process

- watches ``/whep/cam`` with sound and picture and notes when every RTP packet arrives (it wraps its own
  aiortc receivers' ``_handle_rtp_packet``, as stageswap does for sender reports). A white frame is
  "shown" when its last packet arrived, a click "heard" when the packet holding its first loud sample
  arrived, plus that sample's place in the packet: a WebRTC receiver plays the two by their RTCP sender
  reports, which stageswap makes as it sends, so arrival is what a player syncs by;
- records the stream (MP4, AAC) over the same seconds and reads the file back: each white frame's time
  against its click's.

Offset = click - flash (positive: the sound is late). Reported: n, mean, p50/p95/max of |offset| in ms,
per place; and the share of the clip's 30 fps the WHEP viewer received (``whep_frame_share``).
Acceptance (issue 23): p95 <= 45 ms at both places over 30 s with the full pipeline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import av
import numpy as np
from aiortc import RTCPeerConnection, RTCSessionDescription

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout: `python benchmarks/bench_lipsync.py`

from benchmarks.bench_latency import ServerProcess, enroll  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")
FPS = 30
RATE = 48_000
CLICK_S = 0.005
FLASH_LEVEL = 200
"""Mean luma of the top band above which a frame is the flash (the clip's own frames stay far below)."""
BAND = 8
"""The flash is the top 1/BAND of the frame."""
CLICK_LEVEL = 0.3 * 32767


# -- the clip ------------------------------------------------------------------------------------------
def make_clip(path: Path, base: Path, seconds: float) -> None:
    """``base``'s picture (looped, 30 fps) with a white frame and a click at every whole second."""
    src = av.open(str(base))
    frames = [f.to_ndarray(format="bgr24") for f in src.decode(src.streams.video[0])]
    src.close()
    out = av.open(str(path), mode="w")
    video: Any = out.add_stream("libx264", rate=FPS)
    video.width, video.height, video.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
    video.options = {"crf": "18", "bf": "0", "g": "30"}
    sound: Any = out.add_stream("aac", rate=RATE)
    sound.layout = "stereo"
    total = round(seconds * FPS)
    band = frames[0].shape[0] // BAND
    samples_per_frame = RATE // FPS
    click = np.zeros(samples_per_frame, dtype=np.float32)
    n = round(CLICK_S * RATE)
    click[:n] = 0.8 * np.sin(2 * np.pi * 1000 * np.arange(n) / RATE)
    for i in range(total):
        image = frames[i % len(frames)]
        if i % FPS == 0:
            image = image.copy()
            image[:band] = 255
        frame = av.VideoFrame.from_ndarray(image, format="bgr24")
        frame.pts, frame.time_base = i, Fraction(1, FPS)
        for packet in video.encode(frame):
            out.mux(packet)
        mono = click if i % FPS == 0 else np.zeros(samples_per_frame, dtype=np.float32)
        pcm = (np.repeat(mono, 2) * 32767).astype(np.int16).reshape(1, -1)
        chunk = av.AudioFrame.from_ndarray(pcm, format="s16", layout="stereo")
        chunk.sample_rate, chunk.pts, chunk.time_base = RATE, i * samples_per_frame, Fraction(1, RATE)
        for packet in sound.encode(chunk):
            out.mux(packet)
    for stream in (video, sound):
        for packet in stream.encode(None):
            out.mux(packet)
    out.close()


# -- events ----------------------------------------------------------------------------------------------
def is_flash(frame: av.VideoFrame) -> bool:
    gray = frame.to_ndarray(format="gray")
    return bool(gray[: gray.shape[0] // BAND].mean() > FLASH_LEVEL)


def pair(flashes: list[float], clicks: list[float]) -> list[float]:
    """click - flash, in seconds, for each flash with a click within half a second."""
    offsets = []
    for flash in flashes:
        near = [c for c in clicks if abs(c - flash) < 0.5]
        if near:
            offsets.append(min(near, key=lambda c: abs(c - flash)) - flash)
    return offsets


def onsets(samples: np.ndarray, start_s: float) -> list[float]:
    """Times of clicks (first loud sample after 0.3 s of quiet) in a mono int16 run starting at ``start_s``."""
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > CLICK_LEVEL)
    times, last = [], -1e9
    for index in loud:
        t = start_s + index / RATE
        if t - last > 0.3:
            times.append(t)
        last = t
    return times


def summary(offsets: list[float]) -> dict[str, Any]:
    if not offsets:
        return {"n": 0}
    ms = np.array(offsets) * 1000.0
    return {
        "n": len(ms),
        "mean_ms": round(float(ms.mean()), 1),
        "p50_abs_ms": round(float(np.percentile(np.abs(ms), 50)), 1),
        "p95_abs_ms": round(float(np.percentile(np.abs(ms), 95)), 1),
        "max_abs_ms": round(float(np.abs(ms).max()), 1),
    }


def recording_offsets(path: Path) -> list[float]:
    container = av.open(str(path))
    flashes, pcm, first_audio = [], [], None
    for frame in container.decode(*container.streams.video[:1], *container.streams.audio[:1]):
        if isinstance(frame, av.VideoFrame):
            if frame.time is not None and is_flash(frame):
                flashes.append(float(frame.time))
        elif isinstance(frame, av.AudioFrame):
            if first_audio is None:
                first_audio = float(frame.time or 0.0)
            pcm.append(frame.to_ndarray().reshape(-1)[:: 1 if frame.format.is_planar else 2][: frame.samples])
    container.close()
    if not pcm or first_audio is None:
        return []
    samples = np.concatenate(pcm)
    if samples.dtype.kind == "f":
        samples = (samples * 32767).astype(np.int16)
    flashes = [f for i, f in enumerate(flashes) if i == 0 or f - flashes[i - 1] > 0.5]
    return pair(flashes, onsets(samples, first_audio))


# -- the viewer ------------------------------------------------------------------------------------------
class ArrivalLog:
    """When each RTP timestamp's packets arrived at one of our receivers (the last packet of each)."""

    def __init__(self, receiver: Any) -> None:
        self.origin: int | None = None
        self.arrived: dict[int, float] = {}
        original = receiver._handle_rtp_packet

        async def handle(packet: Any, arrival_time_ms: int) -> None:
            if self.origin is None:
                self.origin = packet.timestamp
            self.arrived[packet.timestamp] = time.monotonic()
            await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = handle

    def of(self, pts: int) -> float | None:
        if self.origin is None:
            return None
        return self.arrived.get((self.origin + pts) & 0xFFFFFFFF)


async def watch(url: str, seconds: float) -> tuple[list[float], list[float], int]:
    """Flash and click times (arrival clock) seen by a WHEP viewer over ``seconds``, and its frame count."""
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=pc.localDescription.sdp, headers={"Content-Type": "application/sdp"}) as r,
    ):
        if r.status != 201:
            raise SystemExit(f"bench_lipsync: WHEP {r.status}: {await r.text()}")
        await pc.setRemoteDescription(RTCSessionDescription(await r.text(), "answer"))
    receivers = {rx.track.kind: rx for rx in pc.getReceivers()}
    logs = {kind: ArrivalLog(rx) for kind, rx in receivers.items()}
    flashes: list[float] = []
    clicks: list[float] = []
    quiet_since = 0.0
    frames = 0

    async def pictures() -> None:
        nonlocal frames
        while True:
            frame = await receivers["video"].track.recv()
            frames += 1
            if is_flash(frame):  # type: ignore[arg-type]
                at = logs["video"].of(frame.pts)  # type: ignore[union-attr]
                if at is not None and (not flashes or at - flashes[-1] > 0.5):
                    flashes.append(at)

    async def sound() -> None:
        nonlocal quiet_since
        while True:
            frame = await receivers["audio"].track.recv()
            mono = frame.to_ndarray().reshape(-1)[::2]  # type: ignore[union-attr]
            loud = np.flatnonzero(np.abs(mono.astype(np.int32)) > CLICK_LEVEL)
            at = logs["audio"].of(frame.pts)  # type: ignore[union-attr]
            if loud.size and at is not None:
                t = at + loud[0] / RATE
                if t - quiet_since > 0.3:
                    clicks.append(t)
                quiet_since = at + loud[-1] / RATE

    tasks = [asyncio.ensure_future(pictures()), asyncio.ensure_future(sound())]
    await asyncio.sleep(seconds)
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    await pc.close()
    return flashes, clicks, frames


# -- the run ---------------------------------------------------------------------------------------------
async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    clip = workdir / "lipsync.mp4"
    make_clip(clip, SHARED / "data" / "clips" / "d10.mp4", args.duration + args.warmup + 20)
    extra = ["--input", f"cam={clip}"] if args.source == "input" else []
    server = ServerProcess.start(args.processor, workdir, args.models, extra_args=extra)
    publisher: subprocess.Popen[bytes] | None = None
    try:
        async with aiohttp.ClientSession() as http:
            if args.source == "ffmpeg":
                from tests.ffmpeg_publish import make_certificate

                cert, key = make_certificate(workdir)
                cmd = [sys.executable, "-m", "tests.ffmpeg_publish", urljoin(server.url, "whip/cam")]
                # Long enough for a slow start (enrolling on a busy machine); stopped when the run ends.
                cmd += ["--clip", str(clip), "--seconds", str(args.duration + args.warmup + 120)]
                cmd += ["--cert", str(cert), "--key", str(key)]
                publisher = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 20
            while True:
                async with http.get(urljoin(server.url, "api/streams/cam")) as r:
                    if r.status == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("bench_lipsync: the stream did not start")
                await asyncio.sleep(0.2)
            if args.processor == "full" and args.identity:
                await enroll(http, server, "lipsync", SHARED / "data" / "faces" / args.identity)
                async with http.patch(urljoin(server.url, "api/streams/cam"), json={"identity": "lipsync"}) as r:
                    r.raise_for_status()
            await asyncio.sleep(args.warmup)
            async with http.post(urljoin(server.url, "api/streams/cam/recording"), json={"container": "mp4"}) as r:
                r.raise_for_status()
            flashes, clicks, frames = await watch(urljoin(server.url, "whep/cam"), args.duration)
            async with http.delete(urljoin(server.url, "api/streams/cam/recording")) as r:
                r.raise_for_status()
                recording = await r.json()
            async with http.get(urljoin(server.url, "api/streams/cam")) as r:
                stats = (await r.json()).get("stats", {}) if r.status == 200 else {}
        file = workdir / f"data-{args.processor}" / "recordings" / recording["files"]["processed"]
        return {
            "source": args.source,
            "processor": args.processor,
            "duration_s": args.duration,
            "whep": summary(pair(flashes, clicks)),
            "whep_frames": frames,
            "whep_frame_share": round(frames / (FPS * args.duration), 3),
            "recording": summary(recording_offsets(file)),
            "recording_audio": recording.get("audio"),
            "latency_ms": stats.get("latency_ms"),
            "audio": stats.get("audio"),
            "output_fps": stats.get("output_fps"),
        }
    finally:
        if publisher is not None:
            publisher.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                publisher.wait(10)
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("input", "ffmpeg"), default="input")
    parser.add_argument("--processor", choices=("full", "passthrough"), default="full")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--identity", default="s1.jpg")
    parser.add_argument("--models", default=os.environ.get("STAGESWAP_MODELS"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="lipsync-") as tmp:
        result = asyncio.run(run(args, Path(tmp)))
    result["machine"] = f"{platform.node()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}"
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
