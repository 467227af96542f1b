"""Tracking benchmark: detection + mesh + smoothing per frame on shared clips, p50/p99 per stage.

    python benchmarks/bench_tracking.py [--clips s18.mp4 d3.mp4 ...] [--repeat 1]

Decoding is excluded (frames are decoded first); the figure is what the FaceProcessor spends per frame.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

from engines.processor import FaceProcessor
from engines.stats import StageTimes
from streamer.record.media import VideoReader

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=["s18.mp4", "d3.mp4", "d13.mp4", "roop_target_1080p.mp4"])
    ap.add_argument("--repeat", type=int, default=1, help="passes over each clip")
    ap.add_argument("--models", default=None)
    args = ap.parse_args()
    print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    for name in args.clips:
        with VideoReader(SHARED / "data" / "clips" / name) as reader:
            frames = [(f.image, f.time_s) for f in reader.frames()]
        proc = FaceProcessor.from_models(args.models)
        times = StageTimes()
        with_face = 0
        for rep in range(args.repeat):
            proc.tracker.reset()
            offset = rep * (frames[-1][1] + 1)
            for image, t in frames:
                t0 = time.perf_counter()
                result = proc.process(image, t + offset)
                times.add("total", (time.perf_counter() - t0) * 1000)
                times.add_all(result.stage_ms)
                with_face += bool(result.faces)
        h, w = frames[0][0].shape[:2]
        summary = times.summary()
        print(f"\n{name} {w}x{h}, {len(frames) * args.repeat} frames, face in {with_face}")
        for stage, s in summary.items():
            print(
                f"  {stage:<10} p50 {s['p50']:6.2f} ms  p99 {s['p99']:6.2f} ms  mean {s['mean']:6.2f} ms  (n={s['n']})"
            )


if __name__ == "__main__":
    main()
