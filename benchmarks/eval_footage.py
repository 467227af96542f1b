"""Enrolling from footage against its best single frame (issue 21, item 6): is the clip's identity as like the person?

    python -m benchmarks.eval_footage --clip d3.mp4 --onto d10.mp4 [--frames 60] [--identity-every 3]
                                      [--reference 10] [--models DIR]

``stageswap identities add NAME CLIP`` picks frames of the clip (``engines.identity.footage.pick_frames``, as the
command calls it) and merges them into one identity, led by one frame. The acceptance line: the merged identity's
score at least its best single frame's. Here each picked frame is also enrolled alone, and every identity (the
merged one and each frame alone) is swapped by the real ``FaceProcessor`` onto ``--onto`` (another person's clip)
for ``--frames`` frames. Likeness is the evaluation's recogniser (``mobilefacenet.onnx``, aligned on the output's
own five points as ``eval_quality`` does) against the *person*, not against any enrolled frame: the mean
embedding of ``--reference`` frames of the source clip spread over it, each at least ``--gap`` seconds from every
picked frame (so no picked frame judges itself). Prints one row per identity (cos: mean cosine; the merged row
says by how much it is above or below the best single frame).

EVALUATION ONLY: the recogniser is the benchmarks' (the product picks frames without it).
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.eval_quality import evaluate, largest, shared_or_given
from benchmarks.quality_metrics import (
    FaceEmbedder,
    Landmarks68,
    PhotoEmbedding,
    QualityMeter,
    photo_embedding,
)

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def _unit(vectors: list[np.ndarray]) -> np.ndarray:
    mean = np.mean(np.stack(vectors), axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-12)


def reference_embedding(
    clip: Path, picked_s: list[float], count: int, gap_s: float, models: str, embedder: FaceEmbedder, lm68: Landmarks68
) -> tuple[PhotoEmbedding, list[int]]:
    """The person's mean embedding over ``count`` frames of ``clip`` spread evenly over the frames at least
    ``gap_s`` from every picked frame; (embedding, the frame indices used)."""
    from streamer.commands.faceset import build_tracker
    from streamer.record.media import VideoReader

    tracker = build_tracker(models)
    faces_by_frame: list[tuple[int, float]] = []
    with VideoReader(clip) as reader:
        frames = list(reader.frames())
    usable = [i for i, f in enumerate(frames) if all(abs(f.time_s - t) >= gap_s for t in picked_s)]
    if not usable:
        raise SystemExit(f"eval_footage: every frame of {clip.name} is within {gap_s} s of a picked frame")
    wanted = {usable[round((k + 0.5) * len(usable) / count)] for k in range(min(count, len(usable)))}
    own: list[np.ndarray] = []
    mesh: list[np.ndarray] = []
    below: list[np.ndarray] = []
    for i, frame in enumerate(frames):
        face = largest(tracker.update(frame.image, frame.time_s))  # every frame: the tracker follows the face
        if i in wanted and face is not None:
            e = photo_embedding(frame.image, face.landmarks, embedder, lm68)
            own.append(e.own)
            mesh.append(e.mesh)
            if e.below_brows is not None:
                below.append(e.below_brows)
            faces_by_frame.append((i, frame.time_s))
    if not own:
        raise SystemExit(f"eval_footage: no face found in the reference frames of {clip.name}")
    embedding = PhotoEmbedding(own=_unit(own), mesh=_unit(mesh), below_brows=_unit(below) if below else None)
    return embedding, [i for i, _ in faces_by_frame]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", required=True, help="the footage enrolled (a shared clip's name or a path)")
    ap.add_argument("--onto", required=True, help="the clip the identities are swapped onto (another person)")
    ap.add_argument("--frames", type=int, default=60, help="frames of --onto swapped per identity (default 60)")
    ap.add_argument("--identity-every", type=int, default=3, help="the recogniser on every N-th frame (default 3)")
    ap.add_argument("--reference", type=int, default=10, help="frames of --clip the person is judged by (default 10)")
    ap.add_argument("--gap", type=float, default=0.5, help="reference frames at least this far from a picked one (s)")
    ap.add_argument("--models", default=os.environ.get("STAGESWAP_MODELS") or str(SHARED / "models"))
    args = ap.parse_args()
    if args.frames < 3 or args.reference < 1 or args.identity_every < 1:
        ap.error("--frames must be at least 3, --reference and --identity-every at least 1")

    from engines.identity.footage import pick_frames
    from engines.identity.store import IdentityStore
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings
    from streamer.commands.faceset import build_tracker
    from streamer.record.media import VideoReader

    clip, onto = shared_or_given(args.clip, "clips"), shared_or_given(args.onto, "clips")
    for path in (clip, onto):
        if not path.is_file():
            raise SystemExit(f"eval_footage: {path} not found (set STAGESWAP_SHARED or pass a path)")
    models = Path(args.models)
    embedder = FaceEmbedder(models / "mobilefacenet.onnx")
    lm68 = Landmarks68(models / "pfld.onnx")

    tracker = build_tracker(args.models)
    with VideoReader(clip) as reader:
        picked = pick_frames(((f.image, f.time_s) for f in reader.frames()), tracker.update, label=clip.name)
    said = ", ".join(f"{p.index} ({p.kind}, sharpness {p.sharpness:.1f})" for p in picked)
    print(f"{clip.name}: picked {said} (the first leads the merge)", flush=True)
    reference, used = reference_embedding(
        clip, [p.time_s for p in picked], args.reference, args.gap, args.models, embedder, lm68
    )
    print(f"the person: the mean of frames {', '.join(map(str, used))}", flush=True)

    rows: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="stageswap-footage-") as tmp:
        store = IdentityStore(Path(tmp) / "identities", args.models)
        store.enroll("merged", [p.image for p in picked], lead_first=True)
        names = {"merged": "merged (as identities add)"}
        for p in picked:
            try:
                store.enroll(f"frame-{p.index}", [p.image])
            except Exception as exc:  # a frame the enrollment refuses alone: say so, judge the others
                print(f"frame {p.index} alone: not enrolled ({exc})")
                continue
            names[f"frame-{p.index}"] = f"frame {p.index} alone ({p.kind})"
        print(f"{'identity':<32} {'cos id':>7} {'cos bb':>7} {'closer':>7}", flush=True)
        for name, label in names.items():
            processor = FaceProcessor.from_models(args.models, identities=store)
            meter = QualityMeter(embedder, lm68, reference, args.identity_every)
            report, _, _ = evaluate(onto, processor, ProcessSettings(identity=name), meter, args.frames)
            rows[name] = report.cos_identity
            print(
                f"{label:<32} {report.cos_identity:7.3f} {report.cos_identity_below_brows:7.3f} "
                f"{report.closer_to_identity:7.0%}",
                flush=True,
            )
    singles = {k: v for k, v in rows.items() if k != "merged" and not math.isnan(v)}
    if singles:
        best = max(singles, key=singles.__getitem__)
        print(
            f"\nmerged {rows['merged']:.3f} against the best single frame ({best}) {singles[best]:.3f}: "
            f"{rows['merged'] - singles[best]:+.3f}"
        )


if __name__ == "__main__":
    main()
