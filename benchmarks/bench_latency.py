"""Latency benchmark of the live service: a real clip in over WHIP, the processed output back over WHEP.

    python benchmarks/bench_latency.py [--sizes 480 720 1080] [--duration 60] [--warmup 6]
                                       [--clip s18.mp4] [--identity s1.jpg] [--codec vp8|h264] [--json out.json]
                                       [--watermark-mark NAME]

This process plays the clip as a camera would (paced at its frame rate, each frame's index stamped in
its top-left corner with ``benchmarks.stamps``), publishes it with aiortc to ``POST /whip/{stream}`` and
pulls ``POST /whep/{stream}?view=processed`` back. Each received frame's stamp is read, so frame i's
latency is its receive time minus its send time on this process's monotonic clock: everything between
is measured — encode, RTP over loopback, the server's decode, ring, processing, fan-out encode, our
decode. Two servers run side by side (``stageswap serve --processor passthrough`` and ``--processor
full`` with an identity enrolled and swapped in) and every size is measured on both, one after the
other, so the pipeline's cost is read against a baseline taken in the same run on the same machine.
``--watermark-mark NAME`` is given to both servers as ``serve --watermark-mark`` (passthrough marks nothing);
without it they draw serve's default mark. The stream's ``watermark_mark`` is reported with the server's stats.

Reported per run over the measurement window (after ``--warmup`` seconds):

- ``sent_fps``: frames this process published (a camera never bursts: if it falls behind it skips);
- ``delivered_fps``: distinct published frames that came back, per second;
- ``latency_ms`` p50 / p95 / p99 over the frames that came back;
- ``drift_ms_per_s``: how fast latency grows (a queue building up shows here): the Theil-Sen slope of
  each second's median latency against send time, which a busy machine's bursts do not move much;
- ``dropped``: published frames that never came back (latest-frame-wins drops them on purpose when
  the pipeline is slower than the camera) and ``unreadable`` frames whose stamp did not read.

Acceptance (issue 20, 720p30, a close-up clip): full delivered fps >= 95% of passthrough's; full latency
p50 <= passthrough p50 + 40 ms; |drift| <= 0.5 ms/s over 60 s; and with ``--max-process-fps 15`` latency
still flat (the fps and latency bounds do not apply then: half the frames are dropped on purpose).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout: `python benchmarks/bench_latency.py`

from benchmarks import stamps  # noqa: E402
from streamer.live.decode_backlog import bound_decoder  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")
SIZES: dict[str, tuple[int, int]] = {"240": (426, 240), "480": (854, 480), "720": (1280, 720), "1080": (1920, 1080)}
PROCESSORS = ("passthrough", "full")
VIDEO_CLOCK_HZ = 90_000
FRAME_BUDGET_BYTES = 400 * 1024 * 1024
"""Decoded clip frames kept in memory per size (the clip loops): decoding is not part of what we measure."""
IN_FLIGHT_S = 1.0
"""Frames sent in the window's last second may still be on their way: they are left out of the counts."""


# -- the camera ------------------------------------------------------------------------------------------


def load_frames(
    clip: Path, width: int, height: int, closeup_models: Path | None = None
) -> tuple[list[np.ndarray], float]:
    """The clip's frames scaled to ``width`` x ``height`` as I420 arrays, and its frame rate. With
    ``closeup_models``, a close-up: cropped so the face fills 60% of the height first (``benchmarks.closeup``)."""
    import cv2

    frames: list[np.ndarray] = []
    limit = max(30, FRAME_BUDGET_BYTES // (width * height * 3 // 2))
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 30)
        if closeup_models is None:
            for frame in container.decode(stream):
                frames.append(frame.reformat(width=width, height=height, format="yuv420p").to_ndarray())
                if len(frames) >= limit:
                    break
        else:
            from benchmarks.closeup import closeup_crop, face_boxes

            bgr = []
            for frame in container.decode(stream):
                bgr.append(frame.to_ndarray(format="bgr24"))
                if len(bgr) >= limit:
                    break
            h0, w0 = bgr[0].shape[:2]
            crop = closeup_crop((w0, h0), face_boxes(bgr[:: max(1, len(bgr) // 15)], closeup_models), width / height)
            for image in bgr:
                frames.append(cv2.cvtColor(crop.apply(image, (width, height)), cv2.COLOR_BGR2YUV_I420))
    if not frames:
        raise SystemExit(f"bench_latency: {clip} has no video frames")
    return frames, fps


class StampedClipTrack(MediaStreamTrack):
    """A camera playing the clip in a loop at ``fps``, each frame stamped with its index.

    Like a camera it never bursts: a frame is due at ``start + i / fps``; if the sender fell behind
    (the encoder was slow), the frames whose time has passed are skipped, not queued.
    """

    kind = "video"

    def __init__(self, frames: list[np.ndarray], fps: float) -> None:
        super().__init__()
        self.frames = frames
        self.fps = fps
        self.sent_s: dict[int, float] = {}
        self.skipped = 0
        self._start: float | None = None
        self._next = 0

    async def recv(self) -> av.VideoFrame:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        index = self._next
        behind = int((now - self._start) * self.fps) - index
        if behind > 0:
            self.skipped += behind
            index += behind
        due = self._start + index / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        self._next = index + 1
        image = self.frames[index % len(self.frames)].copy()
        stamps.stamp_i420(image, index % (stamps.MAX_INDEX + 1))
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = round(index * VIDEO_CLOCK_HZ / self.fps)
        frame.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        self.sent_s[index] = time.monotonic()
        return frame


def drift_ms_per_s(send_s: np.ndarray, latency_ms: np.ndarray) -> float:
    """How fast latency grows, ms per second of sending: the Theil-Sen slope of the per-second medians.

    A queue that builds up raises latency steadily; a busy machine (other work on the same cores) adds
    bursts that come and go. The median of each second takes out single slow frames, and the Theil-Sen
    estimate (the median of the slopes between every two seconds) is not moved by up to ~29% of seconds
    being disturbed, where a least-squares line through the frames is pulled by one burst near either end."""
    if len(send_s) < 2:
        return 0.0
    seconds = np.floor(send_s - send_s.min()).astype(np.int64)
    t, y = [], []
    for second in np.unique(seconds):
        picked = seconds == second
        t.append(float(np.median(send_s[picked])))
        y.append(float(np.median(latency_ms[picked])))
    if len(t) < 2:
        return 0.0
    ta, ya = np.array(t), np.array(y)
    i, j = np.triu_indices(len(ta), k=1)
    return float(np.median((ya[j] - ya[i]) / (ta[j] - ta[i])))


# -- the server ------------------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    processor: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        processor: str,
        workdir: Path,
        models: str | None,
        timeout_s: float = 90.0,
        extra_args: list[str] | None = None,
    ) -> ServerProcess:
        log_path = workdir / f"serve-{processor}.log"
        data_dir = workdir / f"data-{processor}"
        cmd = [sys.executable, "-m", "streamer", "serve", "--port", "0", "--processor", processor]
        cmd += ["--data-dir", str(data_dir)]
        if models:
            cmd += ["--models", models]
        cmd += extra_args or []
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            text = log_path.read_text(errors="replace")
            found = re.search(r"open (http://\S+/) in a browser", text)
            if found:
                return cls(processor, found.group(1), process, log_path)
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"bench_latency: stageswap serve --processor {processor} did not start:\n{text}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def _check(response: aiohttp.ClientResponse, what: str) -> None:
    if response.status >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status}: {await response.text()}")


async def enroll(http: aiohttp.ClientSession, server: ServerProcess, name: str, photo: Path) -> None:
    """Enroll ``photo`` as ``name`` through the API (explicitly unverified: a benchmark, not a production)."""
    form = aiohttp.FormData()
    form.add_field("name", name)
    form.add_field("allow_unverified", "true")
    form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
    async with http.post(urljoin(server.url, "api/identities"), data=form) as response:
        await _check(response, f"enrolling {photo.name}")


def _prefer_codec(transceiver: Any, codec: str) -> None:
    wanted = f"video/{codec.upper()}"
    caps = RTCRtpSender.getCapabilities("video").codecs
    chosen = [c for c in caps if c.mimeType.upper() == wanted.upper()]
    chosen += [c for c in caps if c.mimeType.lower() == "video/rtx"]
    transceiver.setCodecPreferences(chosen)


async def negotiate(http: aiohttp.ClientSession, pc: RTCPeerConnection, endpoint: str, what: str) -> str:
    """Send the complete offer (aiortc gathers before setLocalDescription returns); return the session URL."""
    await pc.setLocalDescription(await pc.createOffer())
    headers = {"Content-Type": "application/sdp"}
    async with http.post(endpoint, data=pc.localDescription.sdp, headers=headers) as response:
        await _check(response, what)
        answer = await response.text()
        location = response.headers.get("Location", "")
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    return urljoin(endpoint, location)


async def receive(track: MediaStreamTrack, received_s: dict[int, float], counters: dict[str, int]) -> None:
    """Read every frame the viewer gets; note when each stamped index first arrived.

    Frames already decoded and waiting when one is taken all arrived by then: they are read with the same
    receive time, so the time this process takes to read stamps (on a busy machine) is not counted as the
    pipeline's latency and cannot build up into a queue of its own."""
    waiting: asyncio.Queue[Any] | None = getattr(track, "_queue", None)  # aiortc's decoded frames
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        now = time.monotonic()
        batch = [frame]
        while waiting is not None and not waiting.empty():
            newer = waiting.get_nowait()
            if newer is None:  # the end of the track
                waiting.put_nowait(None)
                break
            batch.append(newer)
        for item in batch:
            index = stamps.read_frame(item)
            counters["frames"] += 1
            if index is None:
                counters["unreadable"] += 1
            else:
                received_s.setdefault(index, now)


# -- one measurement -------------------------------------------------------------------------------------


@dataclass
class Result:
    processor: str
    size: str
    width: int
    height: int
    clip_fps: float
    window_s: float
    sent_fps: float
    delivered_fps: float
    latency_p50_ms: float
    latency_p95_ms: float
    latency_p99_ms: float
    drift_ms_per_s: float
    sent: int
    delivered: int
    dropped: int
    unreadable: int
    camera_skipped: int
    latency_p50_by_10s_ms: list[float]
    """Median latency of each 10 s of the window: the drift, seen as a series."""
    server: dict[str, Any]


async def measure(
    http: aiohttp.ClientSession,
    server: ServerProcess,
    size: str,
    frames: list[np.ndarray],
    fps: float,
    args: argparse.Namespace,
    identity: str | None,
) -> Result:
    width, height = SIZES[size]
    stream = f"bench-{server.processor}-{size}p-{int(time.time()) % 100000}"
    camera = StampedClipTrack(frames, fps)
    publisher = RTCPeerConnection()
    viewer = RTCPeerConnection()
    received_s: dict[int, float] = {}
    counters = {"frames": 0, "unreadable": 0}
    tasks: list[asyncio.Task[None]] = []
    sessions: list[str] = []

    @viewer.on("track")
    def _on_track(track: MediaStreamTrack) -> None:
        tasks.append(asyncio.ensure_future(receive(track, received_s, counters)))

    try:
        _prefer_codec(publisher.addTransceiver(camera, direction="sendonly"), args.codec)
        wanted = viewer.addTransceiver("video", direction="recvonly")
        bound_decoder(wanted)  # this viewer's decoder skips to a keyframe rather than queue, like the server's
        sessions.append(await negotiate(http, publisher, urljoin(server.url, f"whip/{stream}"), "WHIP publish"))
        if identity is not None:
            patch = {"identity": identity, "swap": True, "relight": True}
            async with http.patch(urljoin(server.url, f"api/streams/{stream}"), json=patch) as response:
                await _check(response, "selecting the identity")
        _prefer_codec(wanted, args.codec)
        whep = urljoin(server.url, f"whep/{stream}?view=processed")
        sessions.append(await negotiate(http, viewer, whep, "WHEP view"))
        await asyncio.sleep(args.warmup)
        unreadable_before = counters["unreadable"]
        window_start = time.monotonic()
        await asyncio.sleep(args.duration)
        window_end = time.monotonic()
        async with http.get(urljoin(server.url, f"api/streams/{stream}")) as response:
            await _check(response, "reading the stream's stats")
            stream_json = await response.json()
            server_stats = stream_json["stats"]
    finally:
        for url in reversed(sessions):
            with contextlib.suppress(aiohttp.ClientError):
                async with http.delete(url) as response:
                    await response.read()
        await viewer.close()
        await publisher.close()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    last_counted = window_end - IN_FLIGHT_S
    sent = {i: t for i, t in camera.sent_s.items() if window_start <= t < last_counted}
    pairs = sorted((t, received_s[i] - t) for i, t in sent.items() if i in received_s)
    window_s = last_counted - window_start
    send_t = np.array([t - window_start for t, _ in pairs])
    latency_ms = np.array([lat * 1000.0 for _, lat in pairs])
    if len(pairs) < 10:
        raise RuntimeError(
            f"{server.processor} {size}p: only {len(pairs)} of {len(sent)} frames came back "
            f"({counters['frames']} received, {counters['unreadable']} unreadable); see {server.log_path}"
        )
    slope = drift_ms_per_s(send_t, latency_ms)
    by_10s = [
        round(float(np.median(latency_ms[(send_t >= t) & (send_t < t + 10.0)])), 1)
        for t in np.arange(0.0, window_s, 10.0)
        if np.any((send_t >= t) & (send_t < t + 10.0))
    ]
    p50, p95, p99 = (float(v) for v in np.percentile(latency_ms, [50, 95, 99]))
    keep = ("input_fps", "output_fps", "frames_in", "frames_processed", "frames_dropped", "frames_failed")
    server_view = {k: server_stats.get(k) for k in keep}
    server_view["latency_ms"] = server_stats.get("latency_ms")
    server_view["drops"] = server_stats.get("drops")
    server_view["total_ms"] = (server_stats.get("stage_ms") or {}).get("total")
    server_view["watermark_ms"] = (server_stats.get("stage_ms") or {}).get("watermark")  # the mark stage's share
    server_view["watermark_mark"] = stream_json.get("watermark_mark")  # the mark drawn (None: unmarked)
    return Result(
        processor=server.processor,
        size=size,
        width=width,
        height=height,
        clip_fps=round(fps, 3),
        window_s=round(window_s, 2),
        sent_fps=round(len(sent) / window_s, 2),
        delivered_fps=round(len(pairs) / window_s, 2),
        latency_p50_ms=round(p50, 1),
        latency_p95_ms=round(p95, 1),
        latency_p99_ms=round(p99, 1),
        drift_ms_per_s=round(slope, 3),
        sent=len(sent),
        delivered=len(pairs),
        dropped=len(sent) - len(pairs),
        unreadable=counters["unreadable"] - unreadable_before,
        camera_skipped=(max(sent) - min(sent) + 1 - len(sent)) if sent else 0,
        latency_p50_by_10s_ms=by_10s,
        server=server_view,
    )


# -- report ----------------------------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| size | processor | sent fps | delivered fps | latency p50 | p95 | p99 | drift | dropped | "
        "server in→out p50 |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    rows = []
    for r in results:
        server_p50 = (r.server.get("latency_ms") or {}).get("p50")
        rows.append(
            f"| {r.height}p | {r.processor} | {r.sent_fps:.1f} | {r.delivered_fps:.1f} | {r.latency_p50_ms:.0f} ms | "
            f"{r.latency_p95_ms:.0f} ms | {r.latency_p99_ms:.0f} ms | {r.drift_ms_per_s:+.2f} ms/s | "
            f"{r.dropped}/{r.sent} | {server_p50 if server_p50 is not None else '–'} ms |"
        )
    return "\n".join([head, *rows])


def verdicts(results: list[Result], duration_s: float, slowed: bool = False) -> list[str]:
    """PASS/FAIL per size against the acceptance; ``slowed`` (``--max-process-fps``): only the drift applies."""
    lines = []
    by = {(r.size, r.processor): r for r in results}
    for size in SIZES:
        base, full = by.get((size, "passthrough")), by.get((size, "full"))
        if base is None or full is None:
            continue
        fps_ratio = full.delivered_fps / base.delivered_fps if base.delivered_fps else 0.0
        extra_ms = full.latency_p50_ms - base.latency_p50_ms
        checks = [
            (
                f"full fps {full.delivered_fps:.1f} = {fps_ratio:.0%} of passthrough {base.delivered_fps:.1f}",
                fps_ratio >= 0.95,
            ),
            (f"full p50 {full.latency_p50_ms:.0f} ms = passthrough + {extra_ms:.0f} ms", extra_ms <= 40.0),
            (
                f"drift {full.drift_ms_per_s:+.2f} / {base.drift_ms_per_s:+.2f} ms/s over {duration_s:.0f} s",
                abs(full.drift_ms_per_s) <= 0.5 and abs(base.drift_ms_per_s) <= 0.5,
            ),
        ]
        if slowed:
            checks = checks[2:]
        for text, ok in checks:
            lines.append(f"{size}p: {'PASS' if ok else 'FAIL'}  {text}")
    for r in results:
        failed, processed = r.server.get("frames_failed") or 0, r.server.get("frames_processed") or 0
        if failed:
            lines.append(
                f"WARNING {r.height}p {r.processor}: the server passed {failed} of {processed} frames through "
                "unprocessed (an engine failed: see the server log); that run did not measure the full pipeline"
            )
        if r.camera_skipped > 0.02 * (r.sent + r.camera_skipped):
            lines.append(
                f"WARNING {r.height}p {r.processor}: this process could not publish at the camera's rate "
                f"({r.camera_skipped} frames skipped): the machine is too busy for a fair figure"
            )
    return lines


async def run(args: argparse.Namespace) -> list[Result]:
    clip = Path(args.clip) if Path(args.clip).is_file() else SHARED / "data" / "clips" / args.clip
    photo = Path(args.identity) if Path(args.identity).is_file() else SHARED / "data" / "faces" / args.identity
    for path in (clip, photo):
        if not path.is_file():
            raise SystemExit(f"bench_latency: {path} not found (set STAGESWAP_SHARED or pass a path)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-latency-"))
    extra = ["--max-process-fps", f"{args.max_process_fps:g}"] if args.max_process_fps else []
    if args.watermark_mark:
        extra += ["--watermark-mark", args.watermark_mark]
    servers = {p: ServerProcess.start(p, workdir, args.models, extra_args=extra) for p in args.processors}
    results: list[Result] = []
    try:
        async with aiohttp.ClientSession() as http:
            identity = None
            if "full" in servers:
                identity = "bench-identity"
                await enroll(http, servers["full"], identity, photo)
            for size in args.sizes:
                closeup = Path(args.models or os.environ.get("STAGESWAP_MODELS") or SHARED / "models")
                frames, fps = load_frames(clip, *SIZES[size], closeup if args.closeup else None)
                fps = args.fps or fps
                for processor in args.processors:
                    print(
                        f"-- {size}p {processor}: {args.warmup:.0f} s warm-up, {args.duration:.0f} s measured",
                        flush=True,
                    )
                    result = await measure(
                        http, servers[processor], size, frames, fps, args, identity if processor == "full" else None
                    )
                    print(json.dumps(asdict(result)), flush=True)
                    results.append(result)
                del frames
    finally:
        for server in servers.values():
            server.stop()
        print(f"server logs: {workdir}", flush=True)
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", choices=list(SIZES), default=["480", "720", "1080"])
    ap.add_argument("--processors", nargs="+", choices=PROCESSORS, default=list(PROCESSORS))
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds per run (default 60)")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds before measuring (bitrate ramp, models)")
    ap.add_argument("--clip", default="s18.mp4", help="a clip path, or a name in the shared clips")
    ap.add_argument("--fps", type=float, default=None, help="camera frame rate (default: the clip's)")
    ap.add_argument("--identity", default="s1.jpg", help="photo swapped in by the full pipeline")
    ap.add_argument(
        "--max-process-fps",
        type=float,
        default=None,
        help="servers process at most this many frames a second (serve --max-process-fps): processing slower "
        "than the camera, to show that latency stays flat when frames are dropped",
    )
    ap.add_argument(
        "--watermark-mark",
        default=None,
        metavar="NAME",
        help="the servers' invisible mark (serve --watermark-mark: standard, hush, ...; default: serve's default)",
    )
    ap.add_argument("--codec", choices=["vp8", "h264"], default="vp8")
    ap.add_argument("--closeup", action="store_true", help="crop the clip so the face fills 60%% of the height")
    ap.add_argument("--models", default=None, help="models directory (default: $STAGESWAP_MODELS or the cache)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if args.duration <= IN_FLIGHT_S + 1 or args.warmup < 0:
        ap.error("--duration must be over 2 s and --warmup not negative")

    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"aiortc loopback, codec {args.codec}, clip {args.clip}{' (close-up)' if args.closeup else ''}, "
        f"watermark mark {args.watermark_mark or 'serve default'}, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    results = asyncio.run(run(args))
    print(f"load at the end: {os.getloadavg()[0]:.1f}")
    print()
    print(table(results))
    print()
    for line in verdicts(results, args.duration, slowed=bool(args.max_process_fps)):
        print(line)
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))


if __name__ == "__main__":
    main()
