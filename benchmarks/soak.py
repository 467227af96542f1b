"""Soak test of the live service: a shooting day in miniature — publish, process, two viewers, a recording.

    python benchmarks/soak.py [--duration 600] [--warmup 120] [--size 480] [--clip s18.mp4]
                              [--identity s1.jpg] [--sample 5] [--json out.json]      (make soak)

``stageswap serve --processor full`` runs in its own process with an identity enrolled and swapped in.
This process publishes a clip over WHIP at its frame rate (480p by default, each frame's index stamped
with ``benchmarks.stamps``), watches the processed view with two WHEP viewers, records the stream (H.264),
and — so that leaks have something to leak — lets a third viewer and a WebSocket client come and go every
30 s. Every ``--sample`` seconds it reads the server process's RSS, open file descriptors and threads
(``/proc``) and the stream's stats; each viewer's end-to-end latency comes from the stamps.

Reported, and judged after the warm-up (the first ``--warmup`` seconds: caches, allocator arenas, encoder
buffers filling):

- RSS growth: median of the last minute against the median of the first minute after warm-up (<= 5%);
- latency drift: the Theil-Sen slope of end-to-end latency (medians of 30 s windows) after warm-up
  (|drift| <= 0.1 ms/s: at most 48 ms over 8 minutes), with the least-squares slope and each minute's p50;
- file descriptors and threads: no more in the last minute than in the first minute after warm-up (20
  viewers and WebSocket clients came and went meanwhile), and one more stream's whole life after the
  teardown leaves none behind. Idle (after a first 15 s stream) and after-teardown counts are printed:
  pools a process makes once and keeps (asyncio's executor, torch's and OpenCV's workers) may grow up to
  their size during the run, which is not a leak;
- the recording: frames written, dropped (queue full), and the file read back to its end.

Exit status 0 when every check passes, 1 otherwise. The machine's load average is printed with the
figures: on a shared machine the absolute rates mean little; drift and growth are what this measures.
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
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # run from a checkout: `python benchmarks/soak.py`

from benchmarks.bench_latency import StampedClipTrack, load_frames, negotiate, receive  # noqa: E402
from streamer.record.repair import count_video_frames  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")
SIZES = {"360": (640, 360), "480": (854, 480), "720": (1280, 720)}
STREAM = "soak"
CHURN_EVERY_S = 30.0
CHURN_STAY_S = 10.0
PRIME_S = 15.0
SWAP = {"identity": "soak-identity", "swap": True, "relight": True}
MAX_RSS_GROWTH = 0.05
MAX_DRIFT_MS_PER_S = 0.1
"""Robust (Theil-Sen) slope of the 30-second latency medians: at most 48 ms over 8 minutes."""


# -- the server process ----------------------------------------------------------------------------------


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    data_dir: Path

    @classmethod
    def start(cls, workdir: Path, models: str | None, timeout_s: float = 120.0) -> Server:
        log_path, data_dir = workdir / "serve.log", workdir / "data"
        cmd = [sys.executable, "-m", "streamer", "serve", "--port", "0", "--processor", "full"]
        cmd += ["--data-dir", str(data_dir), "--max-streams", "2"]
        if models:
            cmd += ["--models", models]
        with open(log_path, "wb") as log_file:
            process = subprocess.Popen(
                cmd, cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stdout=log_file, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while True:
            text = log_path.read_text(errors="replace")
            found = re.search(r"open (http://\S+/) in a browser", text)
            if found:
                return cls(found.group(1), process, log_path, data_dir)
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise SystemExit(f"soak: stageswap serve did not start:\n{text}")
            time.sleep(0.2)

    def resources(self) -> dict[str, int]:
        """RSS (kB), open file descriptors and threads of the server process, from /proc."""
        pid = self.process.pid
        status = Path(f"/proc/{pid}/status").read_text()
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return {
            "rss_kb": int(fields["VmRSS"].split()[0]),
            "fds": len(os.listdir(f"/proc/{pid}/fd")),
            "threads": int(fields["Threads"]),
        }

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return -9


async def _ok(response: aiohttp.ClientResponse, what: str) -> Any:
    if response.status >= 400:
        raise RuntimeError(f"{what}: HTTP {response.status}: {await response.text()}")
    return await response.json() if response.content_type == "application/json" else None


# -- peers -----------------------------------------------------------------------------------------------


@dataclass
class Watcher:
    """A WHEP viewer that notes when each stamped frame first arrived."""

    pc: RTCPeerConnection
    location: str = ""
    received_s: dict[int, float] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {"frames": 0, "unreadable": 0})
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @classmethod
    async def open(cls, http: aiohttp.ClientSession, base: str) -> Watcher:
        watcher = cls(RTCPeerConnection(RTCConfiguration(iceServers=[])))

        @watcher.pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            watcher.tasks.append(asyncio.ensure_future(receive(track, watcher.received_s, watcher.counters)))

        watcher.pc.addTransceiver("video", direction="recvonly")
        watcher.location = await negotiate(http, watcher.pc, urljoin(base, f"whep/{STREAM}"), "WHEP view")
        return watcher

    async def close(self, http: aiohttp.ClientSession) -> None:
        with contextlib.suppress(aiohttp.ClientError):
            async with http.delete(self.location) as response:
                await response.read()
        await self.pc.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def churn(http: aiohttp.ClientSession, base: str, stop: asyncio.Event, counts: dict[str, int]) -> None:
    """Every ``CHURN_EVERY_S``: a third viewer and a WebSocket client come, stay ``CHURN_STAY_S``, and go."""
    ws_url = urljoin(base, "ws").replace("http", "ws", 1)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CHURN_EVERY_S - CHURN_STAY_S)
        if stop.is_set():
            return
        viewer = await Watcher.open(http, base)
        async with http.ws_connect(ws_url) as ws:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), CHURN_STAY_S)
            await ws.receive(timeout=5)
        counts["viewers"] += 1 if viewer.counters["frames"] else 0
        counts["rounds"] += 1
        await viewer.close(http)


async def prime(http: aiohttp.ClientSession, base: str, frames: list[np.ndarray], fps: float) -> None:
    """A first stream for ``PRIME_S`` (publisher, the identity swapped in, a viewer, a recording), then gone:
    thread pools made once per process and kept (asyncio's executor, torch's and OpenCV's workers, the
    runtimes') exist before the baseline is taken, so they are not counted as leaks."""
    camera = StampedClipTrack(frames, fps)
    publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    publisher.addTransceiver(camera, direction="sendonly")
    whip = await negotiate(http, publisher, urljoin(base, f"whip/{STREAM}"), "WHIP publish (priming)")
    stream_url = urljoin(base, f"api/streams/{STREAM}")
    async with http.patch(stream_url, json=SWAP) as r:  # the same pipeline: torch's and OpenCV's pools start
        await _ok(r, "selecting the identity (priming)")
    viewer = await Watcher.open(http, base)
    async with http.post(f"{stream_url}/recording", json={"codec": "h264", "view": "processed"}) as r:
        await _ok(r, "starting the priming recording")
    await asyncio.sleep(PRIME_S)
    async with http.delete(f"{stream_url}/recording") as r:
        await _ok(r, "stopping the priming recording")
    await viewer.close(http)
    async with http.delete(whip) as r:
        await r.read()
    await publisher.close()
    await asyncio.sleep(5.0)


# -- the run ---------------------------------------------------------------------------------------------


@dataclass
class Sample:
    t_s: float
    rss_kb: int
    fds: int
    threads: int
    output_fps: float
    server_latency_p50_ms: float | None
    processing_p50_ms: float | None
    frames_dropped: int
    recording_queue: int
    load_avg_1m: float


async def soak(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    clip = Path(args.clip) if Path(args.clip).is_file() else SHARED / "data" / "clips" / args.clip
    photo = Path(args.identity) if Path(args.identity).is_file() else SHARED / "data" / "faces" / args.identity
    for path in (clip, photo):
        if not path.is_file():
            raise SystemExit(f"soak: {path} not found (set STAGESWAP_SHARED or pass a path)")
    width, height = SIZES[args.size]
    frames, fps = load_frames(clip, width, height)
    base = server.url
    samples: list[Sample] = []
    async with aiohttp.ClientSession() as http:
        form = aiohttp.FormData()
        form.add_field("name", "soak-identity")
        form.add_field("allow_unverified", "true")
        form.add_field("photo", photo.read_bytes(), filename=photo.name, content_type="image/jpeg")
        async with http.post(urljoin(base, "api/identities"), data=form) as r:
            await _ok(r, f"enrolling {photo.name}")
        await prime(http, base, frames, fps)
        idle = server.resources()  # after a first stream came and went
        camera = StampedClipTrack(frames, fps)
        publisher = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        publisher.addTransceiver(camera, direction="sendonly")
        whip = await negotiate(http, publisher, urljoin(base, f"whip/{STREAM}"), "WHIP publish")
        stream_url = urljoin(base, f"api/streams/{STREAM}")
        async with http.patch(stream_url, json=SWAP) as r:
            await _ok(r, "selecting the identity")
        viewers = [await Watcher.open(http, base) for _ in range(2)]
        async with http.post(f"{stream_url}/recording", json={"codec": "h264", "view": "processed"}) as r:
            recording = await _ok(r, "starting the recording")
        stop = asyncio.Event()
        churned = {"rounds": 0, "viewers": 0}
        churner = asyncio.ensure_future(churn(http, base, stop, churned))
        start_s = time.monotonic()
        print(
            f"soak: {args.duration:.0f} s at {height}p{fps:.0f}, warm-up {args.warmup:.0f} s, identity swapped in, "
            f"2 viewers, recording {recording['id']}; server pid {server.process.pid}",
            flush=True,
        )
        next_print = start_s
        while (now := time.monotonic()) - start_s < args.duration:
            await asyncio.sleep(max(0.0, args.sample - (time.monotonic() - now)))
            async with http.get(stream_url) as r:
                info = await _ok(r, "reading the stream")
            async with http.get(f"{stream_url}/recording") as r:
                rec = await _ok(r, "reading the recording")
            stats = info["stats"]
            res = server.resources()
            sample = Sample(
                t_s=round(time.monotonic() - start_s, 1),
                rss_kb=res["rss_kb"],
                fds=res["fds"],
                threads=res["threads"],
                output_fps=stats["output_fps"],
                server_latency_p50_ms=(stats.get("latency_ms") or {}).get("p50"),
                processing_p50_ms=((stats.get("stage_ms") or {}).get("total") or {}).get("p50"),
                frames_dropped=stats["frames_dropped"],
                recording_queue=rec["queue"]["frames"],
                load_avg_1m=round(os.getloadavg()[0], 2),
            )
            samples.append(sample)
            if time.monotonic() >= next_print:
                next_print += 60.0
                print(
                    f"  {sample.t_s:6.0f} s  rss {sample.rss_kb / 1024:7.1f} MB  fds {sample.fds:4d}  "
                    f"threads {sample.threads:3d}  out {sample.output_fps:5.1f} fps  "
                    f"server p50 {sample.server_latency_p50_ms} ms  load {os.getloadavg()[0]:.1f}",
                    flush=True,
                )
        stop.set()
        await churner
        before_teardown = server.resources()
        async with http.delete(f"{stream_url}/recording") as r:
            final = await _ok(r, "stopping the recording")
        for watcher in viewers:
            await watcher.close(http)
        async with http.delete(whip) as r:
            await r.read()
        await publisher.close()
        await asyncio.sleep(5.0)  # the stream ends and its threads are joined
        after = server.resources()
        await prime(http, base, frames, fps)  # one more stream's whole life: it must leave nothing behind
        again = server.resources()
    file = server.data_dir / "recordings" / final["files"]["processed"]
    ends = {"idle": idle, "before_teardown": before_teardown, "after": after, "again": again}
    return report(args, camera, viewers, samples, ends, final, file, churned, start_s)


def _latency(camera: StampedClipTrack, watcher: Watcher, start_s: float) -> tuple[np.ndarray, np.ndarray]:
    pairs = sorted(
        (t - start_s, (watcher.received_s[i] - t) * 1000.0) for i, t in camera.sent_s.items() if i in watcher.received_s
    )
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def theil_sen_per_window(t: np.ndarray, values: np.ndarray, window_s: float) -> float:
    """Median of the pairwise slopes between the medians of consecutive ``window_s`` windows (robust to a
    few noisy windows on a shared machine, unlike least squares over every frame)."""
    if len(t) < 2:
        return float("nan")
    starts = np.arange(float(t[0]), float(t[-1]), window_s)
    centres, medians = [], []
    for start in starts:
        inside = (t >= start) & (t < start + window_s)
        if np.count_nonzero(inside) >= 10:
            centres.append(start + window_s / 2)
            medians.append(float(np.median(values[inside])))
    slopes = [
        (medians[j] - medians[i]) / (centres[j] - centres[i])
        for i in range(len(centres))
        for j in range(i + 1, len(centres))
    ]
    return float(np.median(slopes)) if slopes else float("nan")


def load_adjusted_drift(t: np.ndarray, lat: np.ndarray, samples: list[Sample]) -> float:
    """The time coefficient of latency ~ a + b * time + c * load average (the machine's 1-minute load at each
    frame, interpolated from the samples): a diagnostic for a shared machine, where latency follows the
    other work on it. Not a check: the checks use the plain Theil-Sen slope."""
    if len(t) < 10 or len(samples) < 2:
        return float("nan")
    load = np.interp(t, [s.t_s for s in samples], [s.load_avg_1m for s in samples])
    design = np.column_stack([np.ones_like(t), t, load])
    coef, *_ = np.linalg.lstsq(design, lat, rcond=None)
    return float(coef[1])


def by_minute(samples: list[Sample], start_s: float, end_s: float) -> list[dict[str, Any]]:
    """Per minute after warm-up: the machine's load and the server's own figures (what the latency follows)."""
    rows = []
    for m in np.arange(start_s, end_s, 60.0):
        inside = [s for s in samples if m <= s.t_s < m + 60]
        if not inside:
            continue
        proc = [s.processing_p50_ms for s in inside if s.processing_p50_ms is not None]
        rows.append(
            {
                "minute": int(m // 60),
                "load_avg_1m": round(statistics.median(s.load_avg_1m for s in inside), 1),
                "server_output_fps": round(statistics.median(s.output_fps for s in inside), 1),
                "processing_p50_ms": round(statistics.median(proc), 1) if proc else None,
                "rss_mb": round(statistics.median(s.rss_kb for s in inside) / 1024, 1),
                "threads_max": max(s.threads for s in inside),
                "fds_max": max(s.fds for s in inside),
            }
        )
    return rows


def report(
    args: argparse.Namespace,
    camera: StampedClipTrack,
    viewers: list[Watcher],
    samples: list[Sample],
    ends: dict[str, dict[str, int]],
    final: dict[str, Any],
    file: Path,
    churned: dict[str, int],
    start_s: float,
) -> dict[str, Any]:
    idle, after, again = ends["idle"], ends["after"], ends["again"]
    warm = [s for s in samples if s.t_s >= args.warmup]
    if len(warm) < 4:
        raise SystemExit("soak: too few samples after the warm-up; raise --duration or lower --warmup")
    first = [s.rss_kb for s in warm if s.t_s < args.warmup + 60] or [warm[0].rss_kb]
    last = [s.rss_kb for s in warm if s.t_s >= args.duration - 60] or [warm[-1].rss_kb]
    rss_growth = statistics.median(last) / statistics.median(first) - 1.0
    first_window = [s for s in warm if s.t_s < args.warmup + 60] or warm[:1]
    last_window = [s for s in warm if s.t_s >= args.duration - 60] or warm[-1:]
    first_max = {k: max(getattr(s, k) for s in first_window) for k in ("fds", "threads")}
    last_max = {k: max(getattr(s, k) for s in last_window) for k in ("fds", "threads")}
    per_viewer: list[dict[str, Any]] = []
    for watcher in viewers:
        t, lat = _latency(camera, watcher, start_s)
        keep = t >= args.warmup
        t, lat = t[keep], lat[keep]
        slope = float(np.polyfit(t, lat, 1)[0]) if len(t) > 10 else float("nan")
        robust = theil_sen_per_window(t, lat, 30.0)
        first_min = lat[t < args.warmup + 60]
        last_min = lat[t >= args.duration - 60]
        per_viewer.append(
            {
                "frames": len(lat),
                "fps": round(len(lat) / max(1.0, float(t[-1] - t[0])) if len(t) else 0.0, 2),
                "latency_p50_ms": round(float(np.median(lat)), 1),
                "latency_p99_ms": round(float(np.percentile(lat, 99)), 1),
                "first_minute_p50_ms": round(float(np.median(first_min)), 1) if len(first_min) else None,
                "last_minute_p50_ms": round(float(np.median(last_min)), 1) if len(last_min) else None,
                "drift_ms_per_s": round(robust, 4),
                "drift_least_squares_ms_per_s": round(slope, 4),
                "p50_by_minute_ms": [
                    round(float(np.median(lat[(t >= m) & (t < m + 60)])), 1)
                    for m in np.arange(args.warmup, args.duration, 60.0)
                    if np.any((t >= m) & (t < m + 60))
                ],
                "drift_load_adjusted_ms_per_s": round(load_adjusted_drift(t, lat, samples), 4),
                "unreadable": watcher.counters["unreadable"],
            }
        )
    written = final["frames_written"]["processed"]
    in_file = count_video_frames(file)
    result = {
        "machine": f"{platform.node()} {os.cpu_count()} cores, load average median "
        f"{statistics.median(s.load_avg_1m for s in samples):.1f} (max {max(s.load_avg_1m for s in samples):.1f})",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "size": f"{SIZES[args.size][0]}x{SIZES[args.size][1]}",
        "sent_fps": round(len(camera.sent_s) / args.duration, 2),
        "camera_skipped": camera.skipped,
        "rss_mb": {
            "idle": round(idle["rss_kb"] / 1024, 1),
            "after_warmup": round(statistics.median(first) / 1024, 1),
            "last_minute": round(statistics.median(last) / 1024, 1),
            "peak": round(max(s.rss_kb for s in samples) / 1024, 1),
            "after_teardown": round(after["rss_kb"] / 1024, 1),
        },
        "rss_growth": round(rss_growth, 4),
        "fds": {k: v["fds"] for k, v in ends.items()},
        "threads": {k: v["threads"] for k, v in ends.items()},
        "fds_range_after_warmup": [min(s.fds for s in warm), max(s.fds for s in warm)],
        "threads_range_after_warmup": [min(s.threads for s in warm), max(s.threads for s in warm)],
        "server_output_fps_median": round(statistics.median(s.output_fps for s in warm), 2),
        "server_latency_p50_ms_first_last": [warm[0].server_latency_p50_ms, warm[-1].server_latency_p50_ms],
        "frames_dropped_live": warm[-1].frames_dropped,
        "by_minute": by_minute(warm, args.warmup, args.duration),
        "viewers": per_viewer,
        "churn": churned,
        "recording": {
            "id": final["id"],
            "state": final["state"],
            "frames_written": written,
            "frames_in_file": in_file,
            "frames_dropped": final["frames_dropped"],
            "alarms": final["alarms"],
            "queue_high_water": final["queue"]["high_water_frames"],
            "duration_s": final["duration_s"],
        },
        "samples": [asdict(s) for s in samples],
    }
    checks = [
        (f"RSS growth after warm-up {rss_growth:+.1%} (<= {MAX_RSS_GROWTH:.0%})", rss_growth <= MAX_RSS_GROWTH),
        *[
            (
                f"viewer {i + 1} latency drift {v['drift_ms_per_s']:+.4f} ms/s (|d| <= {MAX_DRIFT_MS_PER_S}), "
                f"p50 first/last minute {v['first_minute_p50_ms']} / {v['last_minute_p50_ms']} ms",
                abs(v["drift_ms_per_s"]) <= MAX_DRIFT_MS_PER_S,
            )
            for i, v in enumerate(per_viewer)
        ],
        *[
            (
                f"{what}: idle {idle[key]}, first minute after warm-up max {first_max[key]}, last minute max "
                f"{last_max[key]}, after teardown {after[key]}, after one more stream {again[key]}",
                last_max[key] <= first_max[key] and again[key] <= after[key],
            )
            for key, what in (("fds", "file descriptors"), ("threads", "threads"))
        ],
        (
            f"recording {final['state']}: {written} frames written, {in_file} read back, "
            f"{final['frames_dropped']} dropped",
            final["state"] == "finished" and in_file == written > 0,
        ),
    ]
    result["checks"] = [{"check": text, "pass": ok} for text, ok in checks]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of soak (default 600)")
    parser.add_argument("--warmup", type=float, default=120.0, help="seconds before the figures count (default 120)")
    parser.add_argument("--size", choices=sorted(SIZES), default="480")
    parser.add_argument("--clip", default="s18.mp4", help="a clip in ../shared/data/clips or a path")
    parser.add_argument("--identity", default="s1.jpg", help="a photo in ../shared/data/faces or a path")
    parser.add_argument("--sample", type=float, default=5.0, help="seconds between samples (default 5)")
    parser.add_argument("--models", help="models directory for the server")
    parser.add_argument("--json", type=Path, help="write every figure and sample here")
    args = parser.parse_args()
    if args.duration < args.warmup + 120:
        parser.error("--duration must leave at least two minutes after --warmup")
    workdir = Path(tempfile.mkdtemp(prefix="stageswap-soak-"))
    server = Server.start(workdir, args.models)
    try:
        result = asyncio.run(soak(args, server))
    finally:
        rc = server.stop()
    result["server_exit"] = rc
    print(f"\nsoak: {result['machine']}; server log {server.log_path}")
    print(
        f"  sent {result['sent_fps']} fps ({result['camera_skipped']} camera frames skipped), server output "
        f"{result['server_output_fps_median']} fps (median), RSS MB {result['rss_mb']}"
    )
    for i, viewer in enumerate(result["viewers"]):
        print(f"  viewer {i + 1}: {json.dumps(viewer)}")
    print(f"  recording: {json.dumps(result['recording'])}; churn: {result['churn']}")
    for row in result["by_minute"]:
        print(f"  minute {row['minute']}: {json.dumps(row)}")
    ok = all(c["pass"] for c in result["checks"]) and rc == 0
    for check in result["checks"]:
        print(f"{'PASS' if check['pass'] else 'FAIL'}  {check['check']}")
    print(f"{'PASS' if rc == 0 else 'FAIL'}  server exit status {rc} after SIGTERM")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
