"""NDI output: what it adds to the worker, and whether its delay drifts (issue 26).

    python benchmarks/bench_ndi.py [--seconds 60] [--clip ../shared/data/clips/s18.mp4]

One stream (passthrough processor, so the worker's own cost is the hand-over to the fan-out) is fed a
720p clip at 30 fps, each frame's index stamped on it (``benchmarks.stamps``/``benchmarks.stamps``). Two runs
in the same process, the baseline first:

1. NDI off: the worker's hand-over (``OutputFanout.publish``) per frame;
2. NDI on (``settings.ndi.processed``) with ndi-python's own receiver connected on loopback: the same
   hand-over time, plus every received frame's delay from ingest (paired by its stamp), whose slope over
   the run is the drift.

Prints a table (p50/p99 hand-over ms, the difference of p50s, frames sent/received, delay p50/p95, drift
in ms per s). Needs the ndi extra.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.stamps import read_luma, stamp_bgr  # noqa: E402
from streamer.config import ServeConfig  # noqa: E402
from streamer.live.ring import FrameMeta  # noqa: E402
from streamer.live.streams import Stream  # noqa: E402
from streamer.live.worker import PassthroughProcessor  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")


def clip_frames(path: Path, count: int = 150) -> list[np.ndarray]:
    import av

    frames = []
    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            image = cv2.resize(frame.to_ndarray(format="bgr24"), (1280, 720), interpolation=cv2.INTER_AREA)
            frames.append(image)
            if len(frames) >= count:
                break
    return frames


def receive(name: str, stop: Any, out: Any) -> None:
    """A receiver in its own process, as a switcher would be (its decoding does not share our GIL); sends
    back (monotonic receive time, stamp) pairs when ``stop`` is set (CLOCK_MONOTONIC is system-wide)."""
    import NDIlib

    got: list[tuple[float, int]] = []
    _receive(NDIlib, name, stop, got)
    out.send(got)
    out.close()


def _receive(NDIlib: Any, name: str, stop: Any, out: list[tuple[float, int]]) -> None:  # noqa: N803

    settings = NDIlib.FindCreate()
    settings.show_local_sources = True
    settings.extra_ips = "127.0.0.1"
    finder = NDIlib.find_create_v2(settings)
    source = None
    while source is None and not stop.is_set():
        NDIlib.find_wait_for_sources(finder, 250)
        source = next((s for s in NDIlib.find_get_current_sources(finder) if s.ndi_name.endswith(f"({name})")), None)
    NDIlib.find_destroy(finder)
    if source is None:
        return
    rs = NDIlib.RecvCreateV3()
    rs.color_format = NDIlib.RECV_COLOR_FORMAT_BGRX_BGRA
    receiver = NDIlib.recv_create_v3(rs)
    NDIlib.recv_connect(receiver, source)
    while not stop.is_set():
        kind, video, _a, _m = NDIlib.recv_capture_v2(receiver, 200)
        if kind == NDIlib.FRAME_TYPE_VIDEO:
            now = time.monotonic()
            stamp = _corner_stamp(video.data)
            NDIlib.recv_free_video_v2(receiver, video)
            if stamp is not None:
                out.append((now, stamp))
    NDIlib.recv_destroy(receiver)


def _corner_stamp(bgrx: np.ndarray) -> int | None:
    """The stamp, read from the top-left corner only (the receiver must keep up: no full-frame work)."""
    h = bgrx.shape[0]
    side = min(h, bgrx.shape[1], h // 4 + 16)  # the stamp's grid is 8 cells of h/40: a fifth of the height
    corner = bgrx[:side, :side, :3].astype(np.float32)
    luma = np.zeros((h, side), np.float32)
    luma[:side] = 16.0 + (65.481 * corner[..., 2] + 128.553 * corner[..., 1] + 24.966 * corner[..., 0]) / 255.0
    return read_luma(luma)


def run(frames: list[np.ndarray], seconds: float, ndi: bool, fps: float = 30.0) -> dict[str, Any]:
    stream = Stream("bench", "input", ServeConfig(max_streams=2), PassthroughProcessor)
    publish_ms: list[float] = []
    publish = stream.fanout.publish

    def timed(*args: Any) -> None:
        t0 = time.perf_counter()
        publish(*args)
        publish_ms.append((time.perf_counter() - t0) * 1000.0)

    stream.fanout.publish = timed  # type: ignore[method-assign]
    received: list[tuple[float, int]] = []
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    mine, theirs = ctx.Pipe(duplex=False)
    listener = None
    stream.start()
    sent_at: list[tuple[float, float]] = []  # (arrival at ingest, handed to NDI), monotonic s
    if ndi:
        from streamer.plan import StoreResolver, make_plan

        resolver = StoreResolver(stream.config.data_dir / "identities", None)
        plan = make_plan(stream.plan, {"ndi": {"processed": True}}, resolver, stream.name).plan
        stream.apply_plan(plan, stream.plan.version)
        sender = stream.ndi["processed"]
        send = sender._send

        def timed_send(frame: Any, image: np.ndarray, meta: FrameMeta) -> None:
            send(frame, image, meta)
            sent_at.append((meta.arrived_s, time.monotonic()))

        sender._send = timed_send  # type: ignore[method-assign]
        listener = ctx.Process(target=receive, args=("stageswap bench", stop, theirs), daemon=True)
        listener.start()
        while stream.ndi["processed"].connections < 1:  # measure from when the receiver is connected
            time.sleep(0.05)
    ingested: dict[int, float] = {}
    start = time.monotonic()
    index = 0
    while time.monotonic() - start < seconds:
        due = start + index / fps
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        image = frames[index % len(frames)].copy()
        stamp_bgr(image, index)
        meta = FrameMeta(index, index / fps)
        ingested[index] = meta.arrived_s
        stream.ingest(image, meta)
        index += 1
    time.sleep(0.5)
    sent = stream.ndi["processed"].frames_sent if ndi else 0
    send_ms = stream.ndi["processed"].send_ms if ndi else 0.0
    stop.set()
    stream.close()
    if listener is not None:
        received = mine.recv()
        listener.join(5)
    delays = [(t - ingested[s], t - start) for t, s in received if s in ingested]
    if len(sent_at) > 10:
        arrived = np.array([a for a, _ in sent_at])
        out_ms = (np.array([b for _, b in sent_at]) - arrived) * 1000.0
        sender_at = arrived - start
        first, last = sender_at < sender_at[0] + 10, sender_at > sender_at[-1] - 10
        sender_stats = {
            "send_delay_p50": float(np.median(out_ms)),
            "send_delay_first10s": float(np.median(out_ms[first])),
            "send_delay_last10s": float(np.median(out_ms[last])),
            "send_drift_ms_per_s": float(np.polyfit(sender_at, out_ms, 1)[0]),
        }
    else:
        sender_stats = {}
    out: dict[str, Any] = {
        "frames_in": index,
        "publish_p50": statistics.median(publish_ms),
        "publish_p99": float(np.percentile(publish_ms, 99)),
        "processed": len(publish_ms),
        "sent": sent,
        "send_ms": send_ms,
        "received": len(received),
        **sender_stats,
    }
    if len(delays) > 10:
        d_ms = np.array([d for d, _ in delays]) * 1000.0
        at_s = np.array([t for _, t in delays])
        out["delay_p50"] = float(np.median(d_ms))
        out["delay_p95"] = float(np.percentile(d_ms, 95))
        out["drift_ms_per_s"] = float(np.polyfit(at_s, d_ms, 1)[0])
        first, last = at_s < at_s[0] + 10, at_s > at_s[-1] - 10
        out["delay_first10s"] = float(np.median(d_ms[first]))
        out["delay_last10s"] = float(np.median(d_ms[last]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clip", type=Path, default=SHARED / "data" / "clips" / "s18.mp4")
    args = parser.parse_args()
    frames = clip_frames(args.clip)
    base = run(frames, args.seconds, ndi=False)
    with_ndi = run(frames, args.seconds, ndi=True)
    print(f"720p30, {args.seconds:g} s each, clip {args.clip.name}, passthrough processor")
    print(
        "| run | frames in | worker hand-over p50 | p99 | NDI sent | received | NDI send ms | delay p50 | p95 "
        "| first 10 s | last 10 s | drift |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, r in (("NDI off (baseline)", base), ("NDI on, 1 receiver", with_ndi)):
        delay = (
            f"{r['delay_p50']:.1f} ms | {r['delay_p95']:.1f} ms | {r['delay_first10s']:.1f} ms | "
            f"{r['delay_last10s']:.1f} ms | {r['drift_ms_per_s']:+.3f} ms/s"
            if "delay_p50" in r
            else "— | — | — | — | —"
        )
        print(
            f"| {name} | {r['frames_in']} | {r['publish_p50']:.3f} ms | {r['publish_p99']:.3f} ms | {r['sent']} | "
            f"{r['received']} | {r['send_ms']:.1f} | {delay} |"
        )
    print(f"NDI adds {with_ndi['publish_p50'] - base['publish_p50']:+.3f} ms p50 to the worker's hand-over")
    if "send_delay_p50" in with_ndi:
        print(
            f"sender side (ingest -> handed to NDI): p50 {with_ndi['send_delay_p50']:.1f} ms, first 10 s "
            f"{with_ndi['send_delay_first10s']:.1f} ms, last 10 s {with_ndi['send_delay_last10s']:.1f} ms, "
            f"drift {with_ndi['send_drift_ms_per_s']:+.3f} ms/s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
