#!/usr/bin/env python3
"""The neural-rendering probe on whole frames: train it, export it, run it without torch on a clip's faces (issue 19).

    python benchmarks/dnr_sheet.py --src FACESET --clip d3.mp4 [--cpu-seconds 150] [--resolution 64]
                                   [--frames 30 90 150 210 270 330] [--out out/dnr_frames.png] [--onnx out/dnr.onnx]

Trains ``engines.train.neural_render`` on the src faceset for ``--cpu-seconds`` of this process's CPU time (one
thread), exports it (``export_onnx``), registers it as a ``dnr`` model in a scratch data directory, and runs
``engines.swap.learned.NeuralRenderSwapper`` in ONNX Runtime (one thread) on the tracked faces of the chosen
frames: each row pair is the frame around the face and the face laid back through the swapper's own mask
(feathered by 2 px; not the FaceProcessor's blend, which would also keep the actor's eyes and mouth interior and
relight). Prints the swapper's p50 ms per face.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--src", type=Path, required=True, help="the src person's faceset folder")
    p.add_argument("--clip", default="d3.mp4", help="a clip (a name in the shared clips, or a path)")
    p.add_argument("--cpu-seconds", type=float, default=150.0)
    p.add_argument("--resolution", type=int, default=64)
    p.add_argument("--frames", type=int, nargs="+", default=[30, 90, 150, 210, 270, 330])
    p.add_argument("--models", type=Path, default=SHARED / "models")
    p.add_argument("--out", type=Path, default=Path("out/dnr_frames.png"))
    p.add_argument("--onnx", type=Path, default=Path("out/dnr.onnx"))
    args = p.parse_args(argv)
    import tempfile

    import torch

    from engines.runtime.onnxrt import OrtSession
    from engines.swap.learned import NeuralRenderSwapper
    from engines.swap.mesh import MeshSwapper
    from engines.swap.user_models import UserModelStore
    from engines.train.faceset import load_faceset
    from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, export_onnx
    from streamer.commands.faceset import build_tracker
    from streamer.record.media import VideoReader

    torch.set_num_threads(1)
    src = load_faceset(args.src, args.resolution)
    trainer = DnrTrainer(DnrTrainConfig(net=DnrConfig(resolution=args.resolution)), src)
    cpu = 0.0
    while cpu < args.cpu_seconds:
        c0 = time.process_time()
        trainer.step()
        cpu += time.process_time() - c0
    print(f"trained {trainer.iteration} iterations in {cpu:.0f} CPU-s, loss {trainer.last_losses[0]:.4f}", flush=True)
    args.onnx.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(trainer.net, args.onnx)
    with tempfile.TemporaryDirectory() as scratch:  # the model exactly as `models add` records it
        model = UserModelStore(scratch).add(args.onnx, name="probe", coverage=src.coverage, unverified=True)
    swapper = NeuralRenderSwapper(OrtSession(args.onnx, threads=1), model)
    tracker, mesh = build_tracker(str(args.models)), MeshSwapper()
    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "data" / "clips" / args.clip
    wanted, tiles, times = set(args.frames), [], []
    with VideoReader(clip) as reader:
        for i, frame in enumerate(reader.frames()):
            faces = tracker.update(frame.image, frame.time_s)  # every frame: the tracker follows the clip
            if i not in wanted or not faces:
                continue
            face = faces[0]
            geometry = mesh.geometry(frame.image, face.landmarks)
            if geometry is None:
                continue
            t0 = time.perf_counter()
            out = swapper.swap(frame.image, face.landmarks, face.points5, geometry)
            times.append((time.perf_counter() - t0) * 1000)
            win = geometry.window
            ys, xs = win.slices
            drawn = cv2.resize(out.image, (win.width, win.height), interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(out.mask, (win.width, win.height), interpolation=cv2.INTER_LINEAR)
            mask = (cv2.GaussianBlur(mask, (0, 0), 2.0) * (mask > 0))[..., None]
            result = frame.image.copy()
            result[ys, xs] = (drawn * mask + result[ys, xs] * (1.0 - mask) + 0.5).astype(np.uint8)
            y0, x0 = max(win.y0 - 20, 0), max(win.x0 - 20, 0)
            y1, x1 = win.y0 + win.height + 20, win.x0 + win.width + 20
            pair = [
                cv2.resize(im[y0:y1, x0:x1], (300, 300), interpolation=cv2.INTER_AREA) for im in (frame.image, result)
            ]
            tiles.append(np.concatenate(pair, axis=1))
    if not tiles:
        raise SystemExit(f"no face in the chosen frames of {clip}")
    if len(tiles) % 2:
        tiles.append(np.full_like(tiles[0], 255))
    sheet = np.concatenate([np.concatenate(tiles[k : k + 2], axis=1) for k in range(0, len(tiles), 2)], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet)
    print(f"swap (crop, raster, ONNX Runtime, colour, paste) p50 {np.median(times):.1f} ms per face; sheet {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
