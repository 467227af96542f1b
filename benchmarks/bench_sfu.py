"""Monitors through Janus against monitors on our own fan-out: 1, 10, 30 viewers of a 720p30 processed stream.

    python benchmarks/bench_sfu.py --viewers 1 10 30 [--duration 20] [--warmup 6] [--json FILE]

One ``stageswap serve --processor full --sfu URL`` (an identity enrolled and swapped in, relight on) and one
Janus (Debian's, started on loopback ports with a generated config, as the tests do) run as their own
processes. A camera process publishes a shared clip at 720p30 over WHIP, each frame's loop position stamped
in its corner (``benchmarks.stamps``, as ``bench_latency.py``); its 10 s loop is encoded once beforehand,
as a camera's own encoder would, so that this machine's CPU goes to what is measured. The stream goes to
Janus as RTP. The viewers are child processes too, five to a process, so that no Python process of the
benchmark's own limits what is measured. For each viewer count it measures both paths
in the same run, one after the other, against the same server:

- ``janus``: N WebRTC viewers watch the stream's Janus mountpoint (the Streaming plugin's watch/start);
- ``direct``: N WHEP viewers watch it from stageswap's own fan-out (encoded once, packetised per viewer).

Per viewer: ``fps``, complete frames received per second over the window (what a monitor can show), and
``latency_p50_ms``, the median of publish-to-receive latency over the keyframes it received (about one every
2 s: each is decoded and its stamp read on this process's clock; the frames between keyframes are counted,
not decoded, so that 30 viewers' decoding does not take the machine the servers run on -- both paths are
measured the same way, so the difference between them is Janus's own). Per path: ``server_cpu``, stageswap's
CPU over the window in % of one core (from /proc, so these viewers are not counted), and ``janus_cpu``.

Acceptance (issue 27): through Janus every viewer >= 28 fps, stageswap's CPU within 5% of the 1-viewer run
(Janus does the per-viewer work), Janus's added latency <= 20 ms p50 (janus minus direct at 1 viewer).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender
from aiortc import rtcrtpreceiver as aiortc_receiver
from aiortc.mediastreams import MediaStreamError

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout: `python benchmarks/bench_sfu.py`

from benchmarks import stamps  # noqa: E402
from benchmarks.bench_latency import (  # noqa: E402
    SHARED,
    VIDEO_CLOCK_HZ,
    ServerProcess,
    enroll,
    load_frames,
    negotiate,
)
from tests.janus_helpers import JanusProcess, janus_missing, watch  # noqa: E402

WIDTH, HEIGHT = 1280, 720
PATHS = ("janus", "direct")
VIEWERS_PER_PROCESS = 5


# -- viewers that decode keyframes only ----------------------------------------------------------------


class KeyframeDecoder:
    """Stands in for aiortc's VP8 decoder in this process: keyframes are decoded (each on its own, as a
    keyframe needs nothing before it) so their stamps can be read; every other complete frame is passed on as
    a 16x16 placeholder, counted but not decoded."""

    PLACEHOLDER = av.VideoFrame(16, 16, "yuv420p")

    def decode(self, encoded_frame: Any) -> list[av.VideoFrame]:
        data = bytes(encoded_frame.data)
        if not data or data[0] & 1:  # VP8 frame tag: bit 0 clear on a key frame (RFC 6386, 9.1)
            return [self.PLACEHOLDER]
        codec = av.CodecContext.create("libvpx", "r")
        frames = list(codec.decode(av.Packet(data)))
        return frames or [self.PLACEHOLDER]


def _keyframe_decoders() -> None:
    aiortc_receiver.get_decoder = lambda codec: KeyframeDecoder()  # type: ignore[assignment,misc]


@dataclass
class ViewerLog:
    """What one viewer received: every frame's arrival, and each decoded keyframe's stamp and arrival."""

    times: list[float] = field(default_factory=list)
    stamped: list[tuple[int, float]] = field(default_factory=list)
    unreadable: int = 0

    def on_frame(self, frame: Any, now: float) -> None:
        self.times.append(now)
        if frame.width <= 16:
            return
        index = stamps.read_frame(frame)
        if index is None:
            self.unreadable += 1
        else:
            self.stamped.append((index, now))

    def to_dict(self) -> dict[str, Any]:
        return {"times": self.times, "stamped": self.stamped, "unreadable": self.unreadable}


def figures(log: dict[str, Any], sent: dict[int, list[float]], start: float, end: float) -> dict[str, Any]:
    """One viewer's fps over [start, end) and its median latency over the stamped keyframes received then (each
    paired with the latest send of its loop position before it arrived)."""
    n = sum(1 for t in log["times"] if start <= t < end)
    lat = []
    for i, t in log["stamped"]:
        times = sent.get(i, [])
        k = bisect.bisect_right(times, t)
        if start <= t < end and k:
            lat.append((t - times[k - 1]) * 1000.0)
    return {
        "fps": round(n / (end - start), 2),
        "latency_p50_ms": round(float(np.median(lat)), 1) if lat else None,
        "keyframes": len(lat),
    }


async def _consume(track: Any, log: ViewerLog) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            frame = await track.recv()
            log.on_frame(frame, time.monotonic())


async def _view_direct(http: aiohttp.ClientSession, base: str, stream: str, log: ViewerLog) -> Any:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    session = await negotiate(http, pc, urljoin(base, f"whep/{stream}?view=processed"), "WHEP view")
    task = asyncio.ensure_future(_consume(pc.getReceivers()[0].track, log))

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(aiohttp.ClientError):
            async with http.delete(session) as r:
                await r.read()
        await pc.close()

    return close


async def _view_janus(http: aiohttp.ClientSession, url: str, mountpoint: int, log: ViewerLog) -> Any:
    viewer = await watch(http, url, mountpoint, on_frame=log.on_frame)
    return lambda: viewer.close(http)


async def view_worker(args: argparse.Namespace) -> None:
    """Child process: ``--count`` viewers of one path; records until stdin closes, then writes ``--out``."""
    _keyframe_decoders()
    logs = [ViewerLog() for _ in range(args.count)]
    closers = []
    async with aiohttp.ClientSession() as http:
        for log in logs:
            if args.path == "janus":
                closers.append(await _view_janus(http, args.url, args.mountpoint, log))
            else:
                closers.append(await _view_direct(http, args.url, args.stream, log))
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # the parent closes it: stop
        await asyncio.gather(*(close() for close in closers), return_exceptions=True)
    Path(args.out).write_text(json.dumps([log.to_dict() for log in logs]))


LOOP_FRAMES = 300
"""The camera plays a loop of this many frames (10 s at 30 fps), stamped 0..299 and encoded once before it
starts: a camera's own encoder, not this process's CPU, then sets the pace. A stamp read back is paired
with the latest send of that loop position, unambiguous for any latency under 10 s."""
CAMERA_GOP = 60


def encode_loop(clip: Path) -> tuple[list[av.Packet], float]:
    """The clip's first LOOP_FRAMES frames at 720p, each stamped with its position, as VP8 packets (a keyframe
    every CAMERA_GOP frames), as an encoder in a camera would send them."""
    frames, fps = load_frames(clip, WIDTH, HEIGHT)
    codec = av.CodecContext.create("libvpx", "w")
    codec.width, codec.height, codec.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    codec.bit_rate = 4_000_000
    codec.time_base = Fraction(1, VIDEO_CLOCK_HZ)
    codec.gop_size = CAMERA_GOP
    codec.options = {"deadline": "good", "cpu-used": "4", "lag-in-frames": "0"}
    packets: list[av.Packet] = []
    for i in range(LOOP_FRAMES):
        image = frames[i % len(frames)].copy()
        stamps.stamp_i420(image, i)
        frame = av.VideoFrame.from_ndarray(image, format="yuv420p")
        frame.pts = i * 3000
        frame.pict_type = av.video.frame.PictureType.I if i % CAMERA_GOP == 0 else av.video.frame.PictureType.NONE
        packets.extend(codec.encode(frame))
    packets.extend(codec.encode(None))
    if len(packets) != LOOP_FRAMES:
        raise SystemExit(f"bench_sfu: the camera loop encoded to {len(packets)} packets, not {LOOP_FRAMES}")
    return packets, fps


class EncodedCamera(MediaStreamTrack):
    """Plays the encoded loop at the clip's rate, as a camera does (never bursts: late frames are skipped,
    but only to the next keyframe-safe position: it sends every frame of the loop in order)."""

    kind = "video"

    def __init__(self, packets: list[av.Packet], fps: float) -> None:
        super().__init__()
        self.packets = packets
        self.fps = fps
        self.sent: list[tuple[int, float]] = []
        self._start: float | None = None
        self._next = 0

    async def recv(self) -> av.Packet:
        now = time.monotonic()
        if self._start is None:
            self._start = now
        due = self._start + self._next / self.fps
        if due > now:
            await asyncio.sleep(due - now)
        raw = self._next
        self._next += 1
        source = self.packets[raw % LOOP_FRAMES]
        packet = av.Packet(bytes(source))
        packet.pts = packet.dts = raw * 3000
        packet.time_base = Fraction(1, VIDEO_CLOCK_HZ)
        self.sent.append((raw % LOOP_FRAMES, time.monotonic()))
        return packet


async def publish_worker(args: argparse.Namespace) -> None:
    """Child process: the stamped camera over WHIP; each frame's loop position and send time appended to ``--out``."""
    packets, fps = encode_loop(Path(args.clip))
    camera = EncodedCamera(packets, fps)
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    transceiver = pc.addTransceiver(camera, direction="sendonly")
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType.lower() == "video/vp8"]
    transceiver.setCodecPreferences(vp8)
    async with aiohttp.ClientSession() as http:
        await negotiate(http, pc, urljoin(args.url, f"whip/{args.stream}"), "WHIP publish")
    print("ready", flush=True)
    written = 0
    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    with open(args.out, "a") as out:
        while not stop.done():
            await asyncio.sleep(0.5)
            items = camera.sent[written:]
            out.write("".join(f"{i} {t:.6f}\n" for i, t in items))
            out.flush()
            written += len(items)
    await pc.close()


class Child:
    """A worker process of this benchmark: started, waited for (``ready``), stopped by closing its stdin."""

    def __init__(self, *argv: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == "ready":
                return
            if not line and self.process.poll() is not None:
                raise SystemExit(f"bench_sfu: a worker ({self.process.args}) ended before it was ready")
        raise SystemExit("bench_sfu: a worker was not ready in time")

    def stop(self, timeout_s: float = 60.0) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            self.process.stdin.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


# -- one measurement -------------------------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _stream(http: aiohttp.ClientSession, base: str, stream: str) -> dict[str, Any]:
    async with http.get(urljoin(base, f"api/streams/{stream}")) as r:
        body: dict[str, Any] = await r.json()
    return body


async def measure_path(
    path: str,
    count: int,
    http: aiohttp.ClientSession,
    server: ServerProcess,
    janus: JanusProcess,
    stream: str,
    mountpoint: int,
    sent_file: Path,
    workdir: Path,
    args: argparse.Namespace,
) -> dict[str, Any]:
    workers: list[tuple[Child, Path]] = []
    loop = asyncio.get_running_loop()
    try:
        for w, start_i in enumerate(range(0, count, VIEWERS_PER_PROCESS)):
            out = workdir / f"viewers-{path}-{count}-{w}.json"
            k = min(VIEWERS_PER_PROCESS, count - start_i)
            url = janus.url if path == "janus" else server.url
            argv = ["view", "--path", path, "--url", url, "--stream", stream, "--mountpoint", str(mountpoint)]
            workers.append((Child(*argv, "--count", str(k), "--out", str(out)), out))
        for child, _ in workers:
            await loop.run_in_executor(None, child.wait_ready)
        await asyncio.sleep(args.warmup)  # every viewer connected, past its first keyframe
        before_json = await _stream(http, server.url, stream)
        before = before_json["stats"]
        assert janus.process is not None
        cpu0, jcpu0, start = _cpu_s(server.process.pid), _cpu_s(janus.process.pid), time.monotonic()
        await asyncio.sleep(args.duration)
        cpu1, jcpu1, end = _cpu_s(server.process.pid), _cpu_s(janus.process.pid), time.monotonic()
        after = await _stream(http, server.url, stream)
    finally:
        for child, _ in workers:
            await loop.run_in_executor(None, child.stop)
    logs = [log for _, out in workers for log in json.loads(out.read_text())]
    sent_s = _sent(sent_file)
    window = end - start
    stats = after["stats"]
    mount = (after.get("sfu") or {}).get("mountpoints", {}).get("processed", {})
    return {
        "viewers": [figures(log, sent_s, start, end) for log in logs],
        "server_cpu": round(100 * (cpu1 - cpu0) / window, 1),
        "server_cpu_ms_per_frame": round(
            1000 * (cpu1 - cpu0) / max(1, stats["frames_processed"] - before["frames_processed"]), 2
        ),
        "janus_cpu": round(100 * (jcpu1 - jcpu0) / window, 1),
        "published_fps": round(sum(1 for ts in sent_s.values() for t in ts if start <= t < end) / window, 2),
        "processed_fps": round((stats["frames_processed"] - before["frames_processed"]) / window, 2),
        "frames_failed": stats["frames_failed"] - before["frames_failed"],
        "janus_viewers": mount.get("viewers"),
        "rtp_to_janus_kbit_s": round(8 * (mount.get("bytes_sent", 0) - _bytes_sent(before_json)) / window / 1000, 1),
        "whep_viewers": stats["viewers"]["processed"],
        "encoders": stats["encoders"],
        "load_average": round(os.getloadavg()[0], 2),
    }


def _bytes_sent(stream: dict[str, Any]) -> int:
    return int(((stream.get("sfu") or {}).get("mountpoints", {}).get("processed") or {}).get("bytes_sent", 0))


def _sent(path: Path) -> dict[int, list[float]]:
    """The camera's send times by loop position (stamp), each list in time order."""
    sent: dict[int, list[float]] = {}
    for line in path.read_text().splitlines():
        index, t = line.split()
        sent.setdefault(int(index), []).append(float(t))
    return sent


def summary(result: dict[str, Any]) -> dict[str, Any]:
    fps = [v["fps"] for v in result["viewers"]]
    lat = [v["latency_p50_ms"] for v in result["viewers"] if v["latency_p50_ms"] is not None]
    return {
        "min_fps": min(fps) if fps else None,
        "median_latency_p50_ms": round(float(np.median(lat)), 1) if lat else None,
    }


async def run(args: argparse.Namespace) -> dict[int, dict[str, Any]]:
    reason = janus_missing()
    if reason is not None:
        raise SystemExit(f"bench_sfu: {reason}")
    clip = Path(args.clip) if Path(args.clip).is_file() else SHARED / "data" / "clips" / args.clip
    photo = Path(args.identity) if Path(args.identity).is_file() else SHARED / "data" / "faces" / args.identity
    for path in (clip, photo):
        if not path.is_file():
            raise SystemExit(f"bench_sfu: {path} not found (set STAGESWAP_SHARED or pass a path)")
    workdir = Path(tempfile.mkdtemp(prefix="bench-sfu-"))
    janus = JanusProcess(workdir / "janus")
    janus.start()
    secret = workdir / "janus.secret"
    secret.write_text(janus.admin_key + "\n")
    secret.chmod(0o600)
    extra = ("--sfu", janus.url, "--sfu-secret-file", str(secret), "--max-viewers", str(max(args.viewers) + 4))
    try:
        server = ServerProcess.start(args.processor, workdir, args.models, extra_args=list(extra))
    except BaseException:
        janus.stop()
        raise
    results: dict[int, dict[str, Any]] = {}
    stream, sent_file = "stage", workdir / "sent.txt"
    camera: Child | None = None
    loop = asyncio.get_running_loop()
    try:
        async with aiohttp.ClientSession() as http:
            if args.processor == "full":
                await enroll(http, server, "bench-identity", photo)
            camera = Child(
                "publish", "--url", server.url, "--stream", stream, "--clip", str(clip), "--out", str(sent_file)
            )
            await loop.run_in_executor(None, camera.wait_ready)
            if args.processor == "full":
                patch = {"identity": "bench-identity", "swap": True, "relight": True}
                async with http.patch(urljoin(server.url, f"api/streams/{stream}"), json=patch) as r:
                    if r.status != 200:
                        raise SystemExit(f"bench_sfu: selecting the identity: {await r.text()}")
            deadline = time.monotonic() + 20
            while ((await _stream(http, server.url, stream)).get("sfu") or {}).get("state") != "up":
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench_sfu: the stream never reached Janus; see {server.log_path}")
                await asyncio.sleep(0.2)
            mountpoint = (await _stream(http, server.url, stream))["sfu"]["mountpoints"]["processed"]["id"]
            for count in args.viewers:
                results[count] = {}
                for path in PATHS:
                    print(f"-- {count} viewer(s) through {path}: {args.warmup:.0f} s warm-up, {args.duration:.0f} s")
                    result = await measure_path(
                        path, count, http, server, janus, stream, mountpoint, sent_file, workdir, args
                    )
                    results[count][path] = result
                    print(json.dumps({"viewers": count, "path": path, **summary(result), **result}), flush=True)
    finally:
        if camera is not None:
            camera.stop()
        server.stop()
        janus.stop()
        print(f"logs: {workdir}", flush=True)
    return results


def verdicts(results: dict[int, dict[str, Any]]) -> list[str]:
    lines = []
    base = results.get(1) or results[min(results)]
    for count, paths in results.items():
        j, d = paths["janus"], paths["direct"]
        js, ds = summary(j), summary(d)
        cpu_change = (j["server_cpu"] - base["janus"]["server_cpu"]) / max(base["janus"]["server_cpu"], 1e-6)
        added = None
        if js["median_latency_p50_ms"] is not None and ds["median_latency_p50_ms"] is not None:
            added = js["median_latency_p50_ms"] - ds["median_latency_p50_ms"]
        checks = [
            (f"every Janus viewer >= 28 fps (lowest {js['min_fps']})", (js["min_fps"] or 0) >= 28.0),
            (
                f"stageswap CPU {j['server_cpu']:.1f}% = {cpu_change:+.1%} of the {min(results)}-viewer run",
                abs(cpu_change) <= 0.05,
            ),
            (
                f"latency added by Janus {added:+.1f} ms p50" if added is not None else "latency: no keyframes",
                (added or 99) <= 20,
            ),
        ]
        for text, ok in checks:
            lines.append(f"{count} viewer(s): {'PASS' if ok else 'FAIL'}  {text}")
        lines.append(
            f"{count} viewer(s): direct (for comparison): lowest {ds['min_fps']} fps, stageswap CPU "
            f"{d['server_cpu']:.1f}%, p50 {ds['median_latency_p50_ms']} ms"
        )
    return lines


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in ("view", "publish"):
        worker = argparse.ArgumentParser(prog=f"bench_sfu.py {sys.argv[1]}")
        for name in ("--url", "--stream", "--out", "--path", "--clip"):
            worker.add_argument(name, default="")
        worker.add_argument("--mountpoint", type=int, default=0)
        worker.add_argument("--count", type=int, default=1)
        wargs = worker.parse_args(sys.argv[2:])
        asyncio.run(view_worker(wargs) if sys.argv[1] == "view" else publish_worker(wargs))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, nargs="+", default=[1, 10, 30], help="viewer counts (default 1 10 30)")
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds per path and count (default 20)")
    ap.add_argument("--warmup", type=float, default=6.0, help="seconds after the viewers connect (default 6)")
    ap.add_argument("--clip", default="s18.mp4", help="a clip path, or a name in the shared clips")
    ap.add_argument("--identity", default="s1.jpg", help="photo swapped in by the full pipeline")
    ap.add_argument(
        "--processor",
        choices=["full", "passthrough"],
        default="full",
        help="full: the face engines, an identity swapped in (default); passthrough: no processing (when the "
        "machine cannot process 720p30 and serve the viewers at once, this still compares the two paths)",
    )
    ap.add_argument("--models", default=None, help="models directory (default: $STAGESWAP_MODELS or the cache)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    if any(n < 1 for n in args.viewers) or args.duration <= 2 or args.warmup < 0:
        ap.error("--viewers must be at least 1, --duration over 2 s, --warmup not negative")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stopped: still stop Janus, the server, the workers
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load {os.getloadavg()[0]:.1f}; 720p VP8, processor {args.processor}; viewers {args.viewers}",
        flush=True,
    )
    results = asyncio.run(run(args))
    print()
    for line in verdicts(results):
        print(line)
    if args.json:
        out: Any = results[args.viewers[0]] if len(args.viewers) == 1 else {str(k): v for k, v in results.items()}
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
