"""Where a learned swap's artifacts come from: the model's own output beside what the pipeline makes of it.

    python -m benchmarks.learned_sheet --swap-model NAME --data-dir DIR [--clip d3.mp4] [--frames 6]
                                       [--closeup] [--opening-grow-px G --opening-feather-px F]
                                       [--out out/learned-sheet.png]

A trained DFM draws a 64..512 px face; the processor cuts the actor's face in the model's framing, runs the
model, pastes its face back into the face's window (upscaled), multiplies the blend's mask (the mesh outline
with the actor's eyes and mouth kept) by the model's own mask, relights and blends. When the result shows a
smudge or a ring, each of those steps is a suspect; this sheet shows them side by side for frames spread over
a clip, so the picture says which one draws it. Per frame, around the face:

    input | model input (its crop, nearest-upscaled) | model face (raw, nearest) | model mask (raw) |
    model face pasted (the upscale the blend uses) | alpha (where the blend shows it) | output

``--closeup`` first crops and scales the clip so the face fills 60% of the frame (``benchmarks.closeup``): the
upscale from the model's resolution is largest there.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.quality_metrics import side_by_side

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def _window(image: np.ndarray, window: Any) -> np.ndarray:
    ys, xs = window.slices
    return image[ys, xs]


def frame_panels(image_in: np.ndarray, image_out: np.ndarray, ctx: Any) -> np.ndarray:
    """The row of panels for one face (``ctx``: the processor's FaceContext as the blend saw it)."""
    from engines.swap.align import align_mesh

    geometry, learned = ctx.geometry, ctx.learned
    alignment = align_mesh(ctx.face.landmarks, learned.size, learned.coverage)
    crop = alignment.crop(image_in)
    face, mask = learned.run_crop(crop, 0.0)
    big = geometry.window.height
    up = max(1, big // learned.size)
    nearest = lambda a: cv2.resize(a, None, fx=up, fy=up, interpolation=cv2.INTER_NEAREST)  # noqa: E731
    pasted = geometry.to_window(ctx.swapped.image)
    alpha = np.asarray(ctx.alpha, np.float32)
    panels = [
        _window(image_in, geometry.window),
        nearest(crop),
        nearest(face),
        nearest((mask * 255).astype(np.uint8)),
        pasted,
        (np.clip(alpha, 0, 1) * 255).astype(np.uint8),
        _window(image_out, geometry.window),
    ]
    labels = ["input", "model in", "model out (raw)", "model mask", "pasted (upscaled)", "alpha", "output"]
    return side_by_side(panels, height=256, labels=labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--swap-model", required=True, help="a swap model registered in --data-dir")
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--clip", default="d3.mp4", help="a clip file, or a name in the shared data/clips")
    ap.add_argument("--frames", type=int, default=6, help="frames on the sheet, spread over the clip")
    ap.add_argument("--max-frames", type=int, default=None, help="frames of the clip to run (default: all)")
    ap.add_argument("--closeup", action="store_true", help="crop the clip so the face fills 60%% of the frame")
    ap.add_argument("--closeup-size", type=int, default=720, help="the close-up's side in pixels")
    ap.add_argument("--models", default=str(SHARED / "models"))
    ap.add_argument("--opening-grow-px", type=float, default=0.0, help="LearnedConfig.opening_grow_px (default 0)")
    ap.add_argument("--opening-feather-px", type=float, default=0.0, help="... opening_feather_px (default 0)")
    ap.add_argument("--out", type=Path, default=Path("out/learned-sheet.png"))
    args = ap.parse_args()

    from engines.processor import FaceProcessor, ProcessorConfig
    from engines.settings import ProcessSettings
    from engines.swap.learned import LearnedConfig
    from engines.swap.user_models import UserModelStore
    from streamer.record.media import VideoReader

    clip = Path(args.clip) if Path(args.clip).is_file() else SHARED / "data" / "clips" / args.clip
    store = UserModelStore(args.data_dir)
    store.get(args.swap_model)
    learned = LearnedConfig(opening_grow_px=args.opening_grow_px, opening_feather_px=args.opening_feather_px)
    processor = FaceProcessor.from_models(args.models, ProcessorConfig(learned=learned), user_models=store)
    settings = ProcessSettings(swap=True, swap_model=args.swap_model)
    seen: dict[str, Any] = {}
    blend_run = processor.blend.run

    def spy(face: Any) -> None:
        seen["ctx"] = face
        blend_run(face)

    processor.blend.run = spy  # type: ignore[method-assign]
    with VideoReader(clip) as reader:
        frames = [f.image for f in reader.frames()]
    if args.max_frames:
        frames = frames[: args.max_frames]
    if args.closeup:
        from benchmarks.closeup import closeup_crop, face_boxes

        h0, w0 = frames[0].shape[:2]
        crop = closeup_crop((w0, h0), face_boxes(frames[:: max(1, len(frames) // 15)], Path(args.models)), 1.0)
        frames = [crop.apply(f, (args.closeup_size, args.closeup_size)) for f in frames]
    n = len(frames)
    wanted = {round((k + 0.5) * n / args.frames) for k in range(args.frames)}
    rows = []
    for i, image in enumerate(frames):
        seen.pop("ctx", None)
        result = processor.process(image, i / 25.0, settings)
        ctx = seen.get("ctx")
        if i in wanted and ctx is not None and ctx.swapped is not None:
            rows.append(frame_panels(image, result.image, ctx))
    if not rows:
        raise SystemExit("no swapped face on the chosen frames")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.vstack(rows))
    print(f"wrote {args.out} ({len(rows)} frames of {clip.name}{', close-up' if args.closeup else ''})")


if __name__ == "__main__":
    main()
