"""Speed of the swap pipeline per stage, against tracking alone in the same run.

    python benchmarks/bench_swap.py [--clip s18.mp4] [--identity s1.jpg] [--frames 240] [--repeat 2]

Decodes the clip once into memory, then runs the real ``FaceProcessor`` over the frames twice per round:
tracking only (no identity, no relight: the baseline) and the full swap (identity + relight + blend).
Prints p50/p99 per stage, the per-face sum swap + relight + blend (the issue's <= 12 ms target), and
frames per second of processing alone (decode and encode excluded; the issue's >= 30 fps target).
Rounds alternate baseline and swap so that load from other processes hits both alike.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or REPO.parent / "shared")


def _frames(path: Path, count: int) -> list[tuple[np.ndarray, float]]:
    from streamer.record.media import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            out.append((frame.image, frame.time_s))
            if len(out) >= count:
                break
    return out


def _run(processor, frames, settings, per_stage: dict[str, list[float]]) -> float:  # type: ignore[no-untyped-def]
    """Process every frame; append per-stage ms (and the per-face swap+relight+blend sum); return seconds."""
    total = 0.0
    for image, t in frames:
        t0 = time.perf_counter()
        result = processor.process(image, t, settings)
        total += time.perf_counter() - t0
        ms = result.stage_ms
        for stage, value in ms.items():
            per_stage.setdefault(stage, []).append(value)
        if result.faces and "swap" in ms:
            per_face = (ms.get("swap", 0.0) + ms.get("relight", 0.0) + ms.get("blend", 0.0)) / len(result.faces)
            per_stage.setdefault("swap+relight+blend per face", []).append(per_face)
        per_stage.setdefault("total", []).append((time.perf_counter() - t0) * 1000.0)
    return total


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="s18.mp4", help="a clip in the shared clips (default: s18.mp4, 1280x720)")
    ap.add_argument("--identity", default="s1.jpg", help="an identity photo in the shared faces")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=2, help="rounds of baseline + swap")
    ap.add_argument("--models", default=str(SHARED / "models"))
    args = ap.parse_args()

    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings

    frames = _frames(SHARED / "data" / "clips" / args.clip, args.frames)
    h, w = frames[0][0].shape[:2]
    with tempfile.TemporaryDirectory(prefix="stageswap-bench-") as tmp:
        store = IdentityStore(Path(tmp) / "identities", args.models)
        store.enroll("bench", [SHARED / "data" / "faces" / args.identity], face="largest")
        runs = {
            "tracking only": ProcessSettings(relight=False),
            "swap + relight": ProcessSettings(identity="bench"),
        }
        stages: dict[str, dict[str, list[float]]] = {name: {} for name in runs}
        seconds = dict.fromkeys(runs, 0.0)
        counts = dict.fromkeys(runs, 0)
        for _ in range(args.repeat):
            for name, settings in runs.items():
                processor = FaceProcessor.from_models(args.models, identities=store)
                _run(processor, frames[:10], settings, {})  # warm-up: sessions, caches
                seconds[name] += _run(processor, frames, settings, stages[name])
                counts[name] += len(frames)

    print(f"clip {args.clip} {w}x{h}, {len(frames)} frames x {args.repeat} rounds, identity {args.identity}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()}")
    for name in runs:
        fps = counts[name] / seconds[name] if seconds[name] > 0 else float("nan")
        print(f"\n{name}: {fps:.1f} fps processing (decode/encode excluded)")
        print(f"  {'stage':<30} {'p50 ms':>8} {'p99 ms':>8} {'n':>6}")
        for stage, values in stages[name].items():
            a = np.asarray(values)
            print(f"  {stage:<30} {np.percentile(a, 50):8.2f} {np.percentile(a, 99):8.2f} {a.size:6d}")


if __name__ == "__main__":
    main()
