"""What finding and keeping the actor's glasses costs per face (issue 21).

    python -m benchmarks.bench_glasses [--clips d13.mp4 d13-closeup d3.mp4] [--frames 120] [--rounds 3]

The faces are tracked once up front (the tracker is not what is timed); then, per clip, in ``--rounds`` rounds
over the same frames, each face's ``GlassesFinder.update`` (the fit every frame, the measurement every
``every``-th) and, where glasses are found, ``Glasses.keep`` (this frame's thin lines in the band) and
``GlassesKeep.lay`` (the actor's pixels laid back over a copy of the frame). Times are the main thread's CPU time
(``time.thread_time``) with OpenCV on one thread, so other work on a shared machine inflates them far less than
wall time; mean and p99 per face and frame over the rounds (a first round warms up, not counted). ``total``: per
face and frame, ``update`` always and ``keep`` + ``lay`` on the frames glasses are found in. A clip without
glasses pays for ``update`` only.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.eval_glasses import CLOSEUP, _frames

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=["d13.mp4", CLOSEUP, "d3.mp4"])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--models", type=Path, default=SHARED / "models")
    ap.add_argument(
        "--baseline",
        action="store_true",
        help="also the whole FaceProcessor per frame (s1.jpg swapped in) without glasses (ProcessorConfig(glasses="
        "None)) and with them, in alternating rounds: the main thread's CPU time, OpenCV on one thread",
    )
    args = ap.parse_args()

    from engines.face.glasses import GlassesFinder
    from engines.processor import FaceProcessor
    from engines.swap.raster import Window

    print(
        f"{'clip':<14} {'size':>10} {'faces':>5} {'glasses':>7} {'update ms':>9} {'p99':>5} {'keep ms':>7} "
        f"{'p99':>5} {'lay ms':>6} {'p99':>5} {'total ms':>8}"
    )
    for clip in args.clips:
        frames = _frames(clip, args.frames, args.models)
        tracker = FaceProcessor.from_models(args.models).tracker
        tracked = [(image, [(f.id, f.landmarks) for f in tracker.update(image, t)]) for image, t in frames]
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        update_ms: list[float] = []
        keep_ms: list[float] = []
        lay_ms: list[float] = []
        found = 0
        for round_ in range(args.rounds + 1):  # the first round warms up (the mesh topology, caches): not counted
            finder = GlassesFinder()
            if round_ == 1:
                update_ms.clear()
                keep_ms.clear()
                lay_ms.clear()
                found = 0
            for image, faces in tracked:
                whole = Window(0, 0, image.shape[1], image.shape[0])
                canvas = image[:, ::-1].copy()  # something else drawn there: the swap
                for face_id, landmarks in faces:
                    t0 = time.thread_time()
                    glasses = finder.update(image, face_id, landmarks)
                    t1 = time.thread_time()
                    update_ms.append((t1 - t0) * 1000.0)
                    if not glasses.present:
                        continue
                    found += 1
                    keep = glasses.keep(image, whole, finder.config)
                    t2 = time.thread_time()
                    if keep is not None:
                        keep.lay(canvas, image)
                    t3 = time.thread_time()
                    keep_ms.append((t2 - t1) * 1000.0)
                    lay_ms.append((t3 - t2) * 1000.0)
        cv2.setNumThreads(threads)
        h, w = frames[0][0].shape[:2]

        def stat(values: list[float], width: int) -> str:
            if not values:
                return f"{'-':>{width}} {'-':>5}"
            return f"{np.mean(values):{width}.2f} {np.percentile(values, 99):5.2f}"

        with_glasses = float(np.mean(keep_ms) + np.mean(lay_ms)) if keep_ms else 0.0
        total = float(np.mean(update_ms)) + with_glasses * found / max(len(update_ms), 1)
        print(
            f"{clip:<14} {f'{w}x{h}':>10} {len(update_ms):>5} {found:>7} {stat(update_ms, 9)} {stat(keep_ms, 7)} "
            f"{stat(lay_ms, 6)} {total:8.2f}"
        )
        if args.baseline:
            baseline(clip, frames, args.models, args.rounds)


def baseline(clip: str, frames: list[tuple[np.ndarray, float]], models: Path, rounds: int) -> None:
    """The processor's main-thread CPU time per frame, glasses off and on (the models' inference threads are not
    counted: the same in both)."""
    import tempfile

    from engines.face.glasses import GlassesConfig
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings

    with tempfile.TemporaryDirectory(prefix="stageswap-bench-glasses-") as data:
        store = IdentityStore(Path(data) / "identities", models)
        store.enroll("s1", [SHARED / "data" / "faces" / "s1.jpg"], face="largest")
        settings = ProcessSettings(identity="s1", watermark=False)
        times: dict[str, list[float]] = {"off": [], "on": []}
        threads = cv2.getNumThreads()
        cv2.setNumThreads(1)
        for round_ in range(rounds + 1):
            for name, config in (
                ("off", ProcessorConfig(glasses=None)),
                ("on", ProcessorConfig(glasses=GlassesConfig())),
            ):
                processor = FaceProcessor.from_models(models, config, store)
                for image, t in frames:
                    t0 = time.thread_time()
                    processor.process(image, t, settings)
                    if round_ > 0:
                        times[name].append((time.thread_time() - t0) * 1000.0)
        cv2.setNumThreads(threads)
    off, on = float(np.mean(times["off"])), float(np.mean(times["on"]))
    print(f"{clip:<14} processor per frame, main thread CPU ms: glasses off {off:.1f}, on {on:.1f} (+{on - off:.1f})")


if __name__ == "__main__":
    main()
