#!/usr/bin/env python3
"""Contact sheets of neural renderers on a clip's frames, drawn by the FaceProcessor as the product draws them
(issue 19).

    python benchmarks/dnr_sheet.py --model NAME [NAME ...] --data-dir DATA --clip d10.mp4
                                   [--frames 30 90 150 210 270 330] [--out out/dnr_frames.png]
    python benchmarks/dnr_sheet.py --src FACESET --clip d3.mp4 [--cpu-seconds 150] [--resolution 64]
                                   [--onnx out/dnr.onnx] [--frames ...] [--out ...]

Each row is one frame, around the actor's face: the input, then for each model the frame the FaceProcessor makes
with ``swap_model=NAME`` and the product's default settings (tracking; the morph toward the renderer's stored face
shape, ``stageswap.shape``, where the model has one; the renderer; the blend keeping the actor's eyes, mouth interior
and glasses). Models are drawn in the order given, so ``--model obama-dnrm obama-dnrms`` shows the same weights
without and with the shape. With ``--src`` it first trains ``engines.train.neural_render`` on the faceset for
``--cpu-seconds`` of this process's CPU time (one thread), exports it with the faceset's face shape as ``train``
does, and registers it in a scratch data directory as model ``probe``. Prints each model's swap-stage p50 ms per
frame with a face.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SHARED = Path(os.environ.get("STAGESWAP_SHARED") or (REPO.parent / "shared")).resolve()

from benchmarks.quality_metrics import side_by_side  # noqa: E402

if TYPE_CHECKING:
    from engines.swap.user_models import UserModelStore

TILE_PX = 300
"""Each panel's height on the sheet."""
MARGIN = 0.35
"""The crop around the actor's face box: this much of its size on each side (room for a morph that widens it)."""


@dataclass(frozen=True)
class DrawnFrame:
    """One frame of the clip as the processor drew it with each model."""

    index: int
    image: np.ndarray
    """The input frame (BGR)."""
    outputs: list[np.ndarray]
    """The processor's output frame, one per model, in order."""
    box: tuple[int, int, int, int]
    """x0, y0, x1, y1: the crop around the actor's (largest) face."""
    landmarks: np.ndarray
    """The actor's tracked mesh (468, 3) in frame pixels (the first model's run)."""


def draw(
    frames: Iterable[tuple[np.ndarray, float]],
    store: UserModelStore,
    names: Sequence[str],
    wanted: set[int],
    models_dir: str,
) -> tuple[list[DrawnFrame], list[list[float]]]:
    """Run each registered model ``names`` (``store``: their UserModelStore) through a FaceProcessor of its own on
    every frame (the tracker and the morph follow the clip), keeping the ``wanted`` frames' outputs; (the kept
    frames, each model's swap-stage ms per frame with a face)."""
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings

    processors = [FaceProcessor.from_models(models_dir, user_models=store) for _ in names]
    settings = [ProcessSettings(swap=True, swap_model=name) for name in names]
    kept: list[DrawnFrame] = []
    times: list[list[float]] = [[] for _ in names]
    for i, (image, t) in enumerate(frames):
        results = [p.process(image, t, s) for p, s in zip(processors, settings, strict=True)]
        for k, r in enumerate(results):
            if r.failed_stage is not None:
                raise SystemExit(f"{names[k]}: frame {i}: the {r.failed_stage} stage failed")
            if r.faces and "swap" in r.stage_ms:
                times[k].append(r.stage_ms["swap"])
        if i not in wanted or not results[0].faces:
            continue
        face = max(results[0].faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
        x0, y0, x1, y1 = (float(v) for v in face.box[:4])
        mx, my = MARGIN * (x1 - x0), MARGIN * (y1 - y0)
        h, w = image.shape[:2]
        box = (max(0, int(x0 - mx)), max(0, int(y0 - my)), min(w, int(x1 + mx)), min(h, int(y1 + my)))
        kept.append(DrawnFrame(i, image, [r.image for r in results], box, np.asarray(face.landmarks)))
    return kept, times


def sheet(drawn: Sequence[DrawnFrame], names: Sequence[str]) -> np.ndarray:
    """One row per frame: input | each model's output, cropped around the face."""
    rows = []
    for d in drawn:
        x0, y0, x1, y1 = d.box
        panels = [im[y0:y1, x0:x1] for im in (d.image, *d.outputs)]
        labels = [f"input {d.index}", *names]
        rows.append(side_by_side(panels, height=TILE_PX, labels=labels))
    width = max(r.shape[1] for r in rows)
    return np.vstack([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows])


def train_probe(args: argparse.Namespace, data: Path) -> str:
    """Train, export (with the faceset's face shape) and register the probe renderer in ``data``; its name."""
    import torch

    from engines.face.landmarks import FaceMesh
    from engines.runtime import load_model, models
    from engines.swap.user_models import UserModelStore
    from engines.train.faceset import load_faceset
    from engines.train.neural_render import DnrConfig, DnrTrainConfig, DnrTrainer, export_onnx
    from engines.train.shape import faceset_shape

    torch.set_num_threads(1)
    src = load_faceset(args.src, args.resolution)
    trainer = DnrTrainer(DnrTrainConfig(net=DnrConfig(resolution=args.resolution)), src)
    cpu = 0.0
    while cpu < args.cpu_seconds:
        c0 = time.process_time()
        trainer.step()
        cpu += time.process_time() - c0
    print(f"trained {trainer.iteration} iterations in {cpu:.0f} CPU-s, loss {trainer.last_losses[0]:.4f}", flush=True)
    shape = faceset_shape([args.src], FaceMesh(load_model(models.resolve("facemesh", str(args.models)))))
    args.onnx.parent.mkdir(parents=True, exist_ok=True)
    export_onnx(trainer.net, args.onnx, shape)
    UserModelStore(data).add(args.onnx, name="probe", coverage=src.coverage, unverified=True)
    return "probe"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", nargs="+", help="registered renderer(s) in --data-dir, one column each")
    which.add_argument("--src", type=Path, help="train a probe renderer on this faceset folder first")
    p.add_argument("--data-dir", type=Path, help="where --model's renderers are registered")
    p.add_argument("--clip", default="d3.mp4", help="a clip (a name in the shared clips, or a path)")
    p.add_argument("--cpu-seconds", type=float, default=150.0, help="--src: the probe's training CPU time")
    p.add_argument("--resolution", type=int, default=64, help="--src: the probe's resolution")
    p.add_argument("--frames", type=int, nargs="+", default=[30, 90, 150, 210, 270, 330], help="frame indices")
    p.add_argument("--models", type=Path, default=SHARED / "models", help="the face models (tracker, mesh)")
    p.add_argument("--out", type=Path, default=Path("out/dnr_frames.png"))
    p.add_argument("--onnx", type=Path, default=Path("out/dnr.onnx"), help="--src: where the probe is exported")
    args = p.parse_args(argv)
    if args.model and args.data_dir is None:
        p.error("--model needs --data-dir")

    from engines.swap.user_models import UserModelStore
    from streamer.record.media import VideoReader

    clip = Path(args.clip) if Path(args.clip).exists() else SHARED / "data" / "clips" / args.clip
    wanted = set(args.frames)
    with tempfile.TemporaryDirectory(prefix="dnr-sheet-") as scratch:
        data = args.data_dir if args.model else Path(scratch)
        names = args.model if args.model else [train_probe(args, data)]
        store = UserModelStore(data)
        for name in names:
            store.get(name)  # an unknown name fails before the clip runs
        with VideoReader(clip) as reader:
            frames = ((f.image, f.time_s) for i, f in zip(range(max(wanted) + 1), reader.frames(), strict=False))
            drawn, times = draw(frames, store, names, wanted, str(args.models))
    if not drawn:
        raise SystemExit(f"no face in the chosen frames of {clip}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), sheet(drawn, names))
    for name, ms in zip(names, times, strict=True):
        print(f"{name}: swap stage p50 {np.median(ms):.1f} ms per frame with a face ({len(ms)} frames)")
    print(f"sheet {args.out}: {len(drawn)} frames of {clip.name}, input | {' | '.join(names)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
