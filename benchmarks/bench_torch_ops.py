#!/usr/bin/env python3
"""Per-face cost of each torch twin of a per-face stage beside the numpy stage it mirrors (issue 20, item 3).

For faces tracked in shared clips (the frame decoded and tracked up front, not timed), each op runs on the
processor's own inputs — the work window, the geometry grid of normals, the mask, the light, the alpha,
the face mesh, a face texture — ``--repeats`` times; printed: p50 ms of the numpy function and of its torch
twin on ``--device`` (CUDA synchronised before each clock read). How equal they are is the test's business
(``tests/engines/test_torch_ops.py``). On the CPU this says what the torch ops cost where they are not meant
to run; on a GPU (``--device cuda``), where the per-face time goes.

Usage: ``python benchmarks/bench_torch_ops.py [--device cpu|cuda] [--repeats 30] [--clips d3.mp4 ...]
[--threads 1] [--json out.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()


def _inputs(clip: Path, frame_index: int) -> dict[str, Any]:
    """The per-face stage inputs of the first face in frame ``frame_index`` of ``clip`` (tracked from frame 0)."""
    from engines.compose import blend
    from engines.face.tracker import FaceTracker
    from engines.light import relight
    from engines.processor import FaceProcessor
    from engines.resample import shrink
    from engines.settings import RelightTarget
    from engines.swap.mesh import MeshSwapper
    from engines.swap.texture import unwrap
    from streamer.record.media import VideoReader

    tracker: FaceTracker = FaceProcessor.from_models().tracker
    with VideoReader(clip) as reader:
        for i, frame in enumerate(reader.frames()):
            faces = tracker.update(frame.image, frame.time_s)
            if i >= frame_index and faces:
                image, face, t_s = frame.image, faces[0], frame.time_s
                break
        else:
            raise SystemExit(f"{clip.name}: no face by frame {frame_index}")
    swapper = MeshSwapper()
    geometry = swapper.geometry(image, face.landmarks, face.id, t_s)
    assert geometry is not None
    actor = geometry.to_work(swapper.actor_window(image, geometry))
    hs, ws = geometry.small_size
    alpha_small = blend.face_alpha_small(geometry, blend.BlendConfig())
    skin = blend.skin_mask(geometry, alpha_small)
    actor_small = shrink(actor, (ws, hs))
    source = relight.measure_light(actor_small, geometry.normals_small, skin)
    assert source is not None
    key = RelightTarget(mode="direction", direction=(-0.6, 0.4, 0.7))
    target = relight.target_sh(key, source, None)
    face_bgr = relight.relight_face(actor, geometry.normals_small, geometry.labels() >= 0, source, target)
    texture = unwrap(image, geometry.landmarks).texture
    return {
        "frame": image,
        "geometry": geometry,
        "actor": actor,
        "actor_small": actor_small,
        "skin": skin,
        "covered": geometry.labels() >= 0,
        "source": source,
        "target": target,
        "face": face_bgr,
        "face_small": shrink(face_bgr, (ws, hs)),
        "alpha": geometry.to_window(alpha_small),
        "alpha_small": alpha_small,
        "texture": texture,
        "texel": geometry.upsample(geometry.uv_small) * float(texture.shape[0]) - 0.5,
    }


def _ops(x: dict[str, Any], device: str) -> list[tuple[str, Callable[[], Any], Callable[[], Any]]]:
    """(name, numpy call, torch call) per op, the torch inputs already on ``device``."""
    import torch

    from engines import resample, torch_resample
    from engines.compose import blend
    from engines.compose import torch_ops as compose_t
    from engines.face.topology import face_topology
    from engines.light import relight
    from engines.light import torch_ops as light_t
    from engines.swap import raster
    from engines.swap import torch_ops as swap_t
    from engines.swap.mesh import _remap

    def t(a: Any) -> torch.Tensor:
        return torch.from_numpy(np.array(a, copy=True)).to(device)

    g = x["geometry"]
    hs, ws = g.small_size
    tris = face_topology().all_triangles
    lm = g.landmarks.astype(np.float64)
    tx = {k: t(v) for k, v in x.items() if isinstance(v, np.ndarray)}
    normals, tris_t, lm_t = t(g.normals_small), t(tris), t(lm)
    gains = blend.colour_gains(x["face_small"], x["actor_small"], x["skin"])
    assert gains is not None
    gains_t = t(gains)
    frame_np, frame_t = x["frame"].copy(), tx["frame"].clone()
    pasted = g.to_window(x["face"])
    pasted_t = t(pasted)
    window = (g.window.width, g.window.height)
    return [
        (
            "measure light",
            lambda: relight.measure_light(x["actor_small"], g.normals_small, x["skin"]),
            lambda: light_t.measure_light(tx["actor_small"], normals, tx["skin"]),
        ),
        (
            "relight",
            lambda: relight.relight_face(x["actor"], g.normals_small, x["covered"], x["source"], x["target"]),
            lambda: light_t.relight_window(tx["actor"], normals, tx["covered"], tx["source"], tx["target"]),
        ),
        (
            "shrink to geometry",
            lambda: resample.shrink(x["face"], (ws, hs)),
            lambda: torch_resample.shrink(tx["face"], (ws, hs)),
        ),
        (
            "colour gains",
            lambda: blend.colour_gains(x["face_small"], x["actor_small"], x["skin"]),
            lambda: compose_t.colour_gains(tx["face_small"], tx["actor_small"], tx["skin"]),
        ),
        (
            "apply gains",
            lambda: blend.apply_gains(x["face"], gains),
            lambda: compose_t.apply_gains(tx["face"], gains_t),
        ),
        (
            "alpha to window",
            lambda: g.to_window(x["alpha_small"]),
            lambda: torch_resample.resize_linear(tx["alpha_small"], window),
        ),
        (
            "composite",
            lambda: blend.composite(frame_np, g, pasted, x["alpha"]),
            lambda: compose_t.composite(frame_t, g.window, pasted_t, tx["alpha"]),
        ),
        (
            "raster (window)",
            lambda: raster.rasterize(lm, tris, g.window),
            lambda: swap_t.rasterize(lm_t, tris_t, g.window),
        ),
        (
            "texture lookup",
            lambda: _remap(x["texture"], x["texel"]),
            lambda: swap_t.sample_bilinear(tx["texture"], tx["texel"]),
        ),
    ]


def _p50_ms(call: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    call()  # warm-up (tables made, kernels loaded)
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        sync()
        samples.append((time.perf_counter() - t0) * 1000.0)
    return float(np.percentile(samples, 50))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--clips", nargs="+", default=["s18.mp4", "roop_target_1080p.mp4"])
    p.add_argument("--frame", type=int, default=20, help="the frame whose first face is timed (default 20)")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenCV threads (default 1)")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)

    import cv2
    import torch

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_torch_ops: --device cuda, but torch sees no CUDA GPU", file=sys.stderr)
        return 2

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    machine = {
        "device": torch.cuda.get_device_name() if args.device == "cuda" else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "threads": args.threads,
        "load_avg": os.getloadavg()[0],
    }
    print(f"# {machine}")
    results: dict[str, Any] = {"machine": machine, "clips": {}}
    for name in args.clips:
        x = _inputs(SHARED / "data" / "clips" / name, args.frame)
        g = x["geometry"]
        print(f"\n{name}: face window {g.window.width}x{g.window.height}, work {g.work_size[1]}x{g.work_size[0]}")
        print(f"{'op':<20} {'numpy ms':>9} {'torch ' + args.device + ' ms':>14}")
        rows = {}
        for op, numpy_call, torch_call in _ops(x, args.device):
            a = _p50_ms(numpy_call, args.repeats, lambda: None)
            b = _p50_ms(torch_call, args.repeats, sync)
            rows[op] = {"numpy_ms": round(a, 3), "torch_ms": round(b, 3)}
            print(f"{op:<20} {a:>9.2f} {b:>14.2f}")
        results["clips"][name] = {"window": [g.window.width, g.window.height], "ops": rows}
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
