#!/usr/bin/env python3
"""Per-frame processing time on the GPU: 1080p with 1 and 4 faces, 4K with 1 face (issue 6's goals).

Goals (H200): 1080p, 1 face <= 4 ms p50 and <= 8 ms p99; 1080p, 4 faces <= 8 ms p50; 4K, 1 face <= 10 ms p50.

Frames come from the shared clips, decoded up front (decode is not timed, as in the live service where it
happens on the ingest thread): ``roop_target_1080p.mp4`` as is (1 face), a 2x2 mosaic of four single-face
clips (4 faces), and the 1080p clip scaled to 3840x2160 (4K). Clips play forward then backward so the
tracker never sees a jump. Each scenario runs a fresh ``FaceProcessor`` on ``--device`` (warm-up frames
first, not counted) and, in the same run, on the CPU for ``--baseline-frames`` frames as the baseline.
With pycuda, the CUDA FrameRing's upload (put + acquire of a frame) is timed too.

With ``--swap-model NAME --data-dir DIR`` every frame is swapped with that registered model (a DFM trained
with ``stageswap train``, or one added with ``models add``), on the GPU and in the CPU baseline alike.

With ``--identity PHOTO`` (a photo in the shared faces, e.g. ``s1.jpg``) every face is mesh-swapped to that
person, enrolled into a temporary store, and relit to the actor's light: the per-face stages (swap, relight,
blend) run on every face. ``--stages`` picks their backend (``ProcessorConfig.stages``: ``auto`` is the torch
ops on CUDA and numpy on the CPU); each run reports it as ``frame_path``.

Usage: ``python benchmarks/bench_gpu.py [--frames 300] [--device cuda] [--json out.json] [--swap-model NAME
--data-dir DIR] [--identity s1.jpg] [--stages auto|numpy|torch]`` (``make bench-gpu``;
``BENCH_GPU_ARGS="--identity s1.jpg"``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()
MOSAIC_CLIPS = ("d3.mp4", "d10.mp4", "d0.mp4", "Obama_speaking.mp4")


@dataclass(frozen=True)
class Scenario:
    name: str
    frames: Callable[[], list[np.ndarray]]
    faces: int


def _decode(path: Path, limit: int = 400) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames: list[np.ndarray] = []
    while len(frames) < limit:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    if not frames:
        raise SystemExit(f"bench_gpu: cannot decode {path} (set STAGESWAP_SHARED to the shared material)")
    return frames


def _ping_pong(frames: list[np.ndarray]) -> list[np.ndarray]:
    return frames + frames[-2:0:-1]


def _fit(frame: np.ndarray, width: int, height: int) -> np.ndarray:
    """Letterbox ``frame`` into width x height (keeps faces undistorted)."""
    scale = min(width / frame.shape[1], height / frame.shape[0])
    w, h = round(frame.shape[1] * scale), round(frame.shape[0] * scale)
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    out[y : y + h, x : x + w] = cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA)
    return out


def _one_face_1080p() -> list[np.ndarray]:
    return _ping_pong(_decode(SHARED / "data" / "clips" / "roop_target_1080p.mp4"))


def _four_faces_1080p() -> list[np.ndarray]:
    clips = [_decode(SHARED / "data" / "clips" / name, 120) for name in MOSAIC_CLIPS]
    n = min(len(c) for c in clips)
    frames = []
    for i in range(n):
        tiles = [_fit(c[i], 960, 540) for c in clips]
        frames.append(np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])]))
    return _ping_pong(frames)


def _one_face_4k() -> list[np.ndarray]:
    return [cv2.resize(f, (3840, 2160), interpolation=cv2.INTER_CUBIC) for f in _one_face_1080p()]


SCENARIOS = (
    Scenario("1080p, 1 face", _one_face_1080p, 1),
    Scenario("1080p, 4 faces", _four_faces_1080p, 4),
    Scenario("4K, 1 face", _one_face_4k, 1),
)


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples)
    return {
        "p50": round(float(np.percentile(a, 50)), 3),
        "p99": round(float(np.percentile(a, 99)), 3),
        "mean": round(float(a.mean()), 3),
        "n": int(a.size),
    }


def run_processor(
    device: str,
    frames: list[np.ndarray],
    count: int,
    warmup: int,
    models: str | None,
    swap_model: str | None = None,
    data_dir: str | None = None,
    identities: Any = None,
    backend: str = "auto",
) -> dict[str, Any]:
    """Per-frame ms of ``FaceProcessor.process`` on ``device`` over ``count`` frames (after ``warmup``), swapping
    with the registered ``swap_model`` when one is named, else mesh-swapping to the one identity in
    ``identities`` (an IdentityStore) when given; the per-face stages on ``backend``."""
    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings
    from engines.stats import StageTimes

    user_models = None
    if swap_model is not None:
        from engines.paths import data_dir as resolve_data_dir
        from engines.swap.user_models import UserModelStore

        user_models = UserModelStore(resolve_data_dir(data_dir))
    config = ProcessorConfig(device=device, stages=backend)  # type: ignore[arg-type]  # checked by argparse
    processor = FaceProcessor.from_models(models, config, identities, user_models=user_models)
    settings = ProcessSettings()
    if swap_model is not None:
        settings = ProcessSettings(swap_model=swap_model)
    elif identities is not None:
        settings = ProcessSettings(identity=identities.list()[0].name)
    sync = _cuda_sync if device == "cuda" else (lambda: None)
    total: list[float] = []
    stages = StageTimes()
    faces: list[int] = []
    for i in range(warmup + count):
        frame = frames[i % len(frames)]
        sync()
        t0 = time.perf_counter()
        result = processor.process(frame, i / 30, settings)
        sync()
        ms = (time.perf_counter() - t0) * 1000.0
        if i >= warmup:
            total.append(ms)
            stages.add_all(result.stage_ms)
            faces.append(len(result.faces))
    return {
        "runtime": processor.runtime,
        "frame_path": processor.frame_path,
        "total_ms": _percentiles(total),
        "stage_ms": {k: v["p50"] for k, v in stages.summary().items()},
        "faces_mean": round(float(np.mean(faces)), 2),
        "frames_failed": processor.frames_failed,
    }


def _identities(photo: str, models: str | None) -> Any:
    """An IdentityStore in a temporary directory with the person in shared faces' ``photo`` enrolled."""
    import tempfile

    from engines.identity.store import IdentityStore

    path = SHARED / "data" / "faces" / photo
    if not path.is_file():
        raise SystemExit(f"bench_gpu: no photo {path}")
    store = IdentityStore(Path(tempfile.mkdtemp(prefix="bench_gpu_ids_")), models)
    store.enroll(path.stem.replace("_", "-").lower(), [path], face="largest")
    print(f"mesh-swapping every face to {photo}")
    return store


def _cuda_sync() -> None:
    import torch

    torch.cuda.synchronize()


def run_ring(frames: list[np.ndarray], count: int) -> dict[str, Any] | None:
    """put + acquire of one frame through the CUDA FrameRing (host staging, upload, event wait)."""
    if importlib.util.find_spec("pycuda") is None:
        return None
    from streamer.live.cuda_ring import CudaFrameRing
    from streamer.live.ring import FrameMeta

    samples = []
    with CudaFrameRing(slots=3) as ring:
        for i in range(count + 10):
            t0 = time.perf_counter()
            ring.put(frames[i % len(frames)], FrameMeta(i, i / 30))
            with ring.acquire(timeout_s=1) as slot:
                assert slot is not None
            if i >= 10:
                samples.append((time.perf_counter() - t0) * 1000.0)
    return _percentiles(samples)


def _machine(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    from engines.runtime.tensorrt import tensorrt_version

    info["tensorrt"] = tensorrt_version() or "not installed"
    return info


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--frames", type=int, default=300, help="timed frames per scenario (default 300)")
    p.add_argument("--warmup", type=int, default=30, help="untimed frames first (default 30)")
    p.add_argument("--baseline-frames", type=int, default=60, help="CPU frames per scenario, same run (0: none)")
    p.add_argument("--only", choices=[s.name for s in SCENARIOS], action="append", help="run only this scenario")
    p.add_argument("--models", help="models directory (default: the registry's search order)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--swap-model", metavar="NAME", help="swap every face with this registered model")
    p.add_argument("--data-dir", metavar="DIR", help="the data directory --swap-model is registered in")
    p.add_argument("--identity", metavar="PHOTO", help="mesh-swap every face to this shared photo's person")
    p.add_argument("--stages", choices=("auto", "numpy", "torch"), default="auto", help="the per-face stages' backend")
    args = p.parse_args(argv)
    if not (SHARED / "data" / "clips").is_dir():
        print(f"bench_gpu: shared clips not found under {SHARED} (set STAGESWAP_SHARED)", file=sys.stderr)
        return 2
    if args.models is None and (SHARED / "models").is_dir():
        os.environ.setdefault("STAGESWAP_MODELS", str(SHARED / "models"))
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print("bench_gpu: no CUDA GPU here (torch.cuda.is_available() is False); use --device cpu", file=sys.stderr)
            return 2
    machine = _machine(args.device)
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    results: dict[str, Any] = {
        "machine": machine,
        "device": args.device,
        "swap_model": args.swap_model,
        "identity": args.identity,
        "stages": args.stages,
        "scenarios": {},
    }
    identities = _identities(args.identity, args.models) if args.identity and not args.swap_model else None
    if args.swap_model:
        print(f"swapping every face with the registered model {args.swap_model!r}")
    for scenario in SCENARIOS:
        if args.only and scenario.name not in args.only:
            continue
        frames = scenario.frames()
        h, w = frames[0].shape[:2]
        entry: dict[str, Any] = {"size": f"{w}x{h}", "faces_expected": scenario.faces}
        model = (args.swap_model, args.data_dir, identities)
        entry[args.device] = run_processor(
            args.device, frames, args.frames, args.warmup, args.models, *model, backend=args.stages
        )
        if args.baseline_frames > 0 and args.device != "cpu":  # the CPU as it runs by default: numpy stages
            entry["cpu_baseline"] = run_processor("cpu", frames, args.baseline_frames, 5, args.models, *model)
        if args.device == "cuda":
            entry["ring_upload_ms"] = run_ring(frames, min(args.frames, 200))
        results["scenarios"][scenario.name] = entry
        _print(scenario.name, entry, args.device)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


def _print(name: str, entry: dict[str, Any], device: str) -> None:
    main_run = entry[device]
    t = main_run["total_ms"]
    line = (
        f"{name} ({entry['size']}): {device} [{main_run['runtime']}, stages {main_run['frame_path']}] "
        f"p50 {t['p50']:.2f} ms, p99 {t['p99']:.2f} ms, "
        f"mean {t['mean']:.2f} ms over {t['n']} frames; faces/frame {main_run['faces_mean']} "
        f"(expected {entry['faces_expected']}); failed frames {main_run['frames_failed']}"
    )
    print(line)
    print("    stage p50 ms: " + ", ".join(f"{k} {v:.2f}" for k, v in main_run["stage_ms"].items()))
    base = entry.get("cpu_baseline")
    if base:
        b = base["total_ms"]
        print(
            f"    baseline cpu [{base['runtime']}, stages {base['frame_path']}]: "
            f"p50 {b['p50']:.2f} ms, p99 {b['p99']:.2f} ms over {b['n']} frames"
        )
    ring = entry.get("ring_upload_ms")
    if ring:
        print(f"    CUDA ring put+acquire: p50 {ring['p50']:.2f} ms, p99 {ring['p99']:.2f} ms")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
