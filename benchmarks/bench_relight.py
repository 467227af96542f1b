"""Relighting speed per face: normals, light measurement, per-pixel relight; numpy path against torch on CPU.

    python -m benchmarks.bench_relight [--clips s18.mp4 d13.mp4 roop_target_1080p.mp4] [--repeat 50]

A face is tracked on the 10th frame of each clip; its window (the mesh's box plus 10%) is relit to a key
light from the side. Printed per clip: the window size and the median / p90 milliseconds of

- ``normals``: ``pixel_normals`` on the coarse shading grid (``SHADING_GRID_PX``), what the CPU path uses;
- ``measure+relight``: ``FaceRelighter.relight`` (skin samples, light fit, smoothing, target, relight);
- ``relight numpy``: ``relight_face`` alone (the per-pixel step, coarse shading grid upsampled);
- ``relight torch``: ``SHRelight`` on the CPU with per-pixel normals (the module the GPU runs), one face;

(wall-clock p50/p90 and CPU-time p50: on a shared machine the CPU time is the steadier figure) and the
largest difference between the numpy and torch outputs, in 8-bit levels.

Then, per frame through a ``FaceProcessor`` (``--no-swap``, a key light, watermark off) on ``--person-clip``
(720p, one face): the relight and blend stages' time per face with today's face-only relight and with the
person relighted (``engines.light.person``: segmentation every ``person_every`` frames included, amortised),
the two processors run frame by frame in turn so they share the machine's load.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from engines.face.topology import face_topology
from engines.light.relight import SHADING_GRID_PX, FaceRelighter, pixel_normals, relight_face
from engines.light.relight_torch import SHRelight
from engines.processor import FaceProcessor
from engines.settings import ProcessSettings, RelightTarget
from engines.swap.raster import Window, rasterize
from streamer.record.media import VideoReader

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def timeit(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(wall p50, wall p90, CPU-time p50) in ms: CPU time is what the step costs on a busy shared machine."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        cpu.append((time.process_time() - c0) * 1000.0)
        wall.append((time.perf_counter() - t0) * 1000.0)
    return float(np.median(wall)), float(np.percentile(wall, 90)), float(np.median(cpu))


def bench_face(
    name: str, image: np.ndarray, lm: np.ndarray, target: RelightTarget, module: SHRelight, repeat: int
) -> None:
    xy = lm[:, :2]
    pad = 0.1 * float((xy.max(0) - xy.min(0)).max())
    x0, y0 = (np.maximum(xy.min(0) - pad, 0)).astype(int)
    x1, y1 = np.minimum(xy.max(0) + pad, [image.shape[1], image.shape[0]]).astype(int)
    window = Window(int(x0), int(y0), int(x1 - x0), int(y1 - y0))
    crop = np.ascontiguousarray(image[window.slices])
    mask = rasterize(lm, face_topology().triangles, window).mask
    grid, _ = pixel_normals(lm, window, grid_px=SHADING_GRID_PX)
    relighter = FaceRelighter()
    result = relighter.relight(1, 0.0, crop, grid, mask, target)
    assert result is not None
    full, _ = pixel_normals(lm, window)
    with torch.no_grad():
        inputs = (
            torch.from_numpy(crop.transpose(2, 0, 1)[None].astype(np.float32) / 255.0),
            torch.from_numpy(full.transpose(2, 0, 1)[None].copy()),
            torch.from_numpy(mask[None, None].astype(np.float32)),
            torch.from_numpy(result.sh_source[None].astype(np.float32)),
            torch.from_numpy(result.sh_target[None].astype(np.float32)),
        )
        torch_out = module(*inputs)[0].numpy().transpose(1, 2, 0) * 255.0
    exact = relight_face(crop, full, mask, result.sh_source, result.sh_target, shading_grid_px=None)
    fast = relight_face(crop, grid, mask, result.sh_source, result.sh_target)
    rows = {
        "normals (grid)": timeit(lambda: pixel_normals(lm, window, grid_px=SHADING_GRID_PX), repeat),
        "measure+relight": timeit(lambda: relighter.relight(1, 0.0, crop, grid, mask, target), repeat),
        "relight numpy": timeit(lambda: relight_face(crop, grid, mask, result.sh_source, result.sh_target), repeat),
    }
    with torch.no_grad():
        rows["relight torch"] = timeit(lambda: module(*inputs), max(5, repeat // 5))
    h, w = crop.shape[:2]
    print(f"\n{name}: face window {w}x{h}")
    for label, (p50, p90, cpu) in rows.items():
        print(f"  {label:<16} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  cpu p50 {cpu:6.2f} ms")
    d_exact = np.abs(torch_out - exact.astype(np.float64))[mask]
    d_fast = np.abs(fast.astype(int) - exact.astype(int))[mask]
    print(
        f"  torch vs numpy (per-pixel normals): max {d_exact.max():.2f} levels; "
        f"coarse grid vs per-pixel: mean {d_fast.mean():.2f}, p99 {np.percentile(d_fast, 99):.0f} levels"
    )


def bench_person(models: str | None, clip: Path, frames: int) -> None:
    """Relight + blend ms per face through the processor: face only against the person, interleaved."""
    from dataclasses import replace

    from engines.compose.watermark import WatermarkConfig
    from engines.processor import ProcessorConfig

    base = ProcessorConfig(watermark=WatermarkConfig(enabled=False))
    procs = {
        "face only": FaceProcessor.from_models(models, replace(base, person_light=None)),
        "person": FaceProcessor.from_models(models, base),
    }
    target = RelightTarget(mode="direction", direction=(-0.8, 0.2, 0.6), intensity=1.1, ambient=0.25)
    settings = ProcessSettings(swap=False, relight_target=target)
    wall: dict[str, list[float]] = {k: [] for k in procs}
    cpu: dict[str, list[float]] = {k: [] for k in procs}
    with VideoReader(clip) as reader:
        for i, frame in enumerate(reader.frames()):
            if i >= frames:
                break
            for name, proc in procs.items():
                c0 = time.thread_time()
                result = proc.process(frame.image, frame.time_s, settings)
                c1 = time.thread_time()
                if i >= 10 and len(result.faces) == 1:  # after the first detections settle
                    ms = result.stage_ms
                    wall[name].append(ms.get("relight", 0.0) + ms.get("blend", 0.0))
                    cpu[name].append((c1 - c0) * 1000.0)
    h, w = frame.image.shape[:2]
    print(f"\nper face through FaceProcessor, {clip.name} {w}x{h}, {len(wall['person'])} frames with one face:")
    for name in procs:
        values = np.array(wall[name])
        print(
            f"  {name:<10} relight+blend mean {values.mean():6.2f} ms  p50 {np.median(values):6.2f} ms  "
            f"p90 {np.percentile(values, 90):6.2f} ms"
        )
        print(f"  {name:<10} whole frame CPU time mean {np.mean(cpu[name]):6.2f} ms (this thread)")
    extra = np.mean(wall["person"]) - np.mean(wall["face only"])
    extra_cpu = np.mean(cpu["person"]) - np.mean(cpu["face only"])
    print(
        f"  person - face only: {extra:+.2f} ms wall (relight+blend), {extra_cpu:+.2f} ms CPU (whole frame) per face"
        " (means: the segmentation every few frames included)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", nargs="+", default=["s18.mp4", "d13.mp4", "roop_target_1080p.mp4"])
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--models", default=str(SHARED / "models") if (SHARED / "models").is_dir() else None)
    ap.add_argument("--person-clip", default="s18.mp4", help="720p clip for the per-face processor comparison")
    ap.add_argument("--person-frames", type=int, default=120)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"torch {torch.__version__} (1 thread)"
    )
    tracker = FaceProcessor.from_models(args.models).tracker
    target = RelightTarget(mode="direction", direction=(-0.8, 0.2, 0.6), intensity=1.1, ambient=0.25)
    module = SHRelight().eval()
    for name in args.clips:
        tracker.reset()
        with VideoReader(SHARED / "data" / "clips" / name) as reader:
            for i, frame in enumerate(reader.frames()):
                faces = tracker.update(frame.image, frame.time_s)
                if i >= 10 and faces:
                    break
        bench_face(name, frame.image, faces[0].landmarks, target, module, args.repeat)
    bench_person(args.models, SHARED / "data" / "clips" / args.person_clip, args.person_frames)


if __name__ == "__main__":
    main()
