"""Recording beside the live path: live fps and latency with and without a recording, in the same run.

    python benchmarks/bench_recording.py [--clip s18.mp4] [--phase-s 20] [--processor full|passthrough]
                                         [--view processed|source|both] [--codecs h264 prores] [--monitors 1]
                                         [--identity s1.jpg|none]

The real service runs in this process (``create_app``) with the clip as an ``--input`` camera (720p30 for
s18.mp4, looping, paced at its own rate), the full processor swapping ``--identity`` in. A probe sink on
the stream's fan-out notes every frame the worker hands on: live fps and latency (ingest arrival -> fan-
out, ms) per phase. ``--monitors`` WHEP monitors are attached at the fan-out (the shared encoder runs,
packets are discarded) so the live path includes monitor encoding. Phases alternate: off, each codec
recording, off again; during a recording the recorder's queue depth is sampled every 0.1 s. Each recording
phase is compared with the mean of the "off" phases around it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
from aiohttp import web

from engines.identity.store import IdentityStore
from engines.settings import ProcessSettings
from streamer.api import recording as api_recording
from streamer.api import routes as api
from streamer.api.recording import RECORDINGS
from streamer.api.server import create_app, make_runner
from streamer.config import InputSpec, ServeConfig
from streamer.governance.consent import enroll_with_consent
from streamer.live import webrtc
from streamer.live.fanout import OutputFanout
from streamer.live.ring import FrameMeta
from streamer.record.encoding import EncodeSpec, FileEncoder
from streamer.record.formats import resolve_format
from streamer.service import SERVICE

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


class Probe:
    """A fan-out sink noting when each frame reached the fan-out and how long after its arrival."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.times: list[float] = []
        self.latency_ms: list[float] = []

    def on_frame(self, processed: np.ndarray, source: np.ndarray, meta: FrameMeta, result: Any) -> None:
        now = time.monotonic()
        with self._lock:
            self.times.append(now)
            self.latency_ms.append((now - meta.arrived_s) * 1000.0)

    def window(self, t0: float, t1: float) -> dict[str, float]:
        with self._lock:
            pairs = [(t, ms) for t, ms in zip(self.times, self.latency_ms, strict=True) if t0 <= t <= t1]
        if len(pairs) < 2:
            return {"fps": 0.0, "p50": float("nan"), "p95": float("nan"), "p99": float("nan"), "frames": len(pairs)}
        ms = np.array([p[1] for p in pairs])
        span = pairs[-1][0] - pairs[0][0]
        return {
            "fps": (len(pairs) - 1) / span if span > 0 else 0.0,
            "p50": float(np.percentile(ms, 50)),
            "p95": float(np.percentile(ms, 95)),
            "p99": float(np.percentile(ms, 99)),
            "frames": len(pairs),
        }


class Discard:
    """A WHEP monitor stand-in: takes every encoded packet and drops it."""

    def __init__(self) -> None:
        self.packets = 0

    def deliver(self, packet: av.Packet, keyframe: bool) -> None:
        self.packets += 1


async def wait_for_stream(http: aiohttp.ClientSession, base: str, name: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        async with http.get(f"{base}/api/streams/{name}") as r:
            if r.status == 200 and (await r.json())["stats"]["frames_processed"] > 30:
                return
        await asyncio.sleep(0.5)
    raise SystemExit(f"stream {name} did not start")


async def run(args: argparse.Namespace) -> None:
    clip = SHARED / "data" / "clips" / args.clip
    with av.open(str(clip)) as c:
        v = c.streams.video[0]
        print(f"clip: {clip.name} {v.codec_context.width}x{v.codec_context.height} {float(v.average_rate or 0):g} fps")
    print(
        f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"processor {args.processor}, view {args.view}, {args.monitors} monitor(s), encoder nice +{args.encoder_nice}"
    )
    if args.cost_frames:
        encoder_costs(clip, args.codecs, args.cost_frames)
    with tempfile.TemporaryDirectory(prefix="bench-rec-") as tmp:
        settings = ProcessSettings()
        if args.processor == "full" and args.identity != "none":
            photo = SHARED / "data" / "faces" / args.identity
            store = IdentityStore(Path(tmp) / "identities")
            enroll_with_consent(store, "bench", [photo], None, allow_unverified=True, face="largest")
            settings = ProcessSettings(identity="bench")
            print(f"identity: {photo.name} swapped in")
        config = ServeConfig(
            data_dir=Path(tmp),
            processor=args.processor,
            inputs=(InputSpec.parse(f"cam1={clip}"),),
            max_streams=1,
            initial_settings=settings,
        )
        groups = (webrtc.register, api.register, api_recording.configured(encoder_nice=args.encoder_nice))
        app = create_app(config, route_groups=groups)
        runner = make_runner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        base = f"http://127.0.0.1:{runner.addresses[0][1]}"
        try:
            async with aiohttp.ClientSession() as http:
                await wait_for_stream(http, base, "cam1")
                stream = app[SERVICE].streams.get("cam1")
                fanout: OutputFanout = stream.fanout
                monitors = [Discard() for _ in range(args.monitors)]
                for m in monitors:
                    fanout.subscribe("processed", "vp8", m)
                probe = Probe()
                fanout.add_sink(probe)
                await asyncio.sleep(args.warmup_s)
                phases = ["off"]
                for codec in args.codecs:
                    phases += [codec, "off"]
                rows = []
                for phase in phases:
                    rows.append(await run_phase(http, base, app, probe, phase, args))
                    print(format_row(rows[-1]), flush=True)
                report(rows, args)
        finally:
            await runner.cleanup()


def encoder_costs(clip: Path, codecs: list[str], n: int) -> None:
    """CPU time per frame of each recording encoder alone (all its threads, colour conversion included).

    A machine sustains a recording at R fps beside the live path only if R x this fits in the CPU the
    live path leaves free; CPU time is far less disturbed by other load than wall time."""
    with av.open(str(clip)) as c:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(n), c.decode(video=0), strict=False)]
    print(f"\nencoder cost alone, {len(frames)} frames of {clip.name}:")
    with tempfile.TemporaryDirectory(prefix="bench-enc-") as tmp:
        for spec in codecs:
            codec, _, encoder = spec.partition(":")
            fmt = resolve_format(codec, encoder=encoder or None)
            enc = FileEncoder(
                Path(tmp) / f"cost.{fmt.ext}", EncodeSpec(fmt, Fraction(30), Fraction(1, 30), fsync_interval_s=None)
            )
            cpu0, wall0 = time.process_time(), time.perf_counter()
            for i, image in enumerate(frames):
                enc.write(image, i)
            enc.close()
            cpu_ms = (time.process_time() - cpu0) / len(frames) * 1000
            wall_fps = len(frames) / (time.perf_counter() - wall0)
            size = (Path(tmp) / f"cost.{fmt.ext}").stat().st_size
            print(
                f"  {fmt.encoder:<10} {cpu_ms:6.1f} CPU ms/frame = {cpu_ms * 30 / 1000:.2f} cores at 30 fps; "
                f"{wall_fps:5.1f} fps wall here; {size * 8 * 30 / len(frames) / 1e6:6.1f} Mbit/s"
            )
    print()


async def run_phase(
    http: aiohttp.ClientSession, base: str, app: web.Application, probe: Probe, phase: str, args: argparse.Namespace
) -> dict[str, Any]:
    row: dict[str, Any] = {"phase": phase}
    depth: list[int] = []
    if phase != "off":
        codec, _, encoder = phase.partition(":")
        body = {"codec": codec, "view": args.view, **({"encoder": encoder} if encoder else {})}
        async with http.post(f"{base}/api/streams/cam1/recording", json=body) as r:
            if r.status != 201:
                raise SystemExit(f"cannot start recording: {r.status} {await r.text()}")
        await asyncio.sleep(1.0)  # the encoder opens at the first frame; measure from here
    t0 = time.monotonic()
    manager = app[RECORDINGS]
    while time.monotonic() - t0 < args.phase_s:
        session = manager.active("cam1")
        if session is not None:
            depth.append(max((r.queued_frames for r in session.recorders.values()), default=0))
        await asyncio.sleep(0.1)
    t1 = time.monotonic()
    row.update(probe.window(t0, t1))
    if phase != "off":
        session = manager.active("cam1")
        limit = session.limits.max_frames if session is not None else 0
        async with http.delete(f"{base}/api/streams/cam1/recording") as r:
            summary = await r.json()
        row.update(
            queue_max=max(depth, default=0),
            queue_mean=statistics.fmean(depth) if depth else 0.0,
            queue_limit=limit,
            rec_dropped=summary["frames_dropped"],
            rec_written=summary["frames_written"],
            encoder=summary["encoder"],
        )
        await asyncio.sleep(2.0)  # let the encoder threads wind down before the next phase
    return row


def format_row(row: dict[str, Any]) -> str:
    text = (
        f"{row['phase']:<8} live {row['fps']:5.2f} fps  latency p50 {row['p50']:6.1f} ms  p95 {row['p95']:6.1f} ms  "
        f"p99 {row['p99']:6.1f} ms  ({row['frames']} frames)"
    )
    if row["phase"] != "off":
        text += (
            f"  | {row['encoder']}: queue max {row['queue_max']}/{row['queue_limit']} mean {row['queue_mean']:.1f}, "
            f"dropped {row['rec_dropped']}, written {row['rec_written']}"
        )
    return text


def report(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\nagainst the mean of the 'off' phases before and after each recording:")
    for i, row in enumerate(rows):
        if row["phase"] == "off":
            continue
        before, after = rows[i - 1], rows[i + 1]
        fps0 = (before["fps"] + after["fps"]) / 2
        p50 = (before["p50"] + after["p50"]) / 2
        p95 = (before["p95"] + after["p95"]) / 2
        print(
            f"  {row['phase']:<8} fps {row['fps']:.2f} vs {fps0:.2f} ({100 * (row['fps'] / fps0 - 1):+.1f}%), "
            f"latency p50 {row['p50'] - p50:+.1f} ms, p95 {row['p95'] - p95:+.1f} ms; "
            f"queue max {row['queue_max']} of {row['queue_limit']} frames, {row['rec_dropped']} dropped"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default="s18.mp4", help="shared clip used as the camera (default s18.mp4, 720p30)")
    ap.add_argument("--phase-s", type=float, default=20.0, help="seconds per phase (default 20)")
    ap.add_argument("--warmup-s", type=float, default=5.0)
    ap.add_argument("--processor", choices=["full", "passthrough"], default="full")
    ap.add_argument("--view", choices=["processed", "source", "both"], default="processed")
    ap.add_argument(
        "--codecs",
        nargs="+",
        default=["h264", "prores"],
        help="recordings to compare: h264, prores, ffv1, or CODEC:ENCODER such as prores:prores_aw",
    )
    ap.add_argument("--cost-frames", type=int, default=60, help="frames per encoder in the cost table (0: skip)")
    ap.add_argument("--monitors", type=int, default=1, help="WHEP monitor encoders attached (default 1)")
    ap.add_argument("--encoder-nice", type=int, default=10, help="recorder thread niceness (default 10, as served)")
    ap.add_argument(
        "--identity",
        default="s1.jpg",
        help="photo in the shared faces swapped in by the full processor (enrolled unverified, in a temporary data "
        "dir); 'none' for tracking and relighting only",
    )
    asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    main()
