"""The actor's glasses under the swap (issue 21): detection on every shared clip, "glasses kept", pictures, cost.

    python -m benchmarks.eval_glasses [--clips d13.mp4 ...] [--identities s1.jpg ...] [--max-frames N]
                                      [--swap-clips d13.mp4 d13-closeup d3.mp4] [--out out/glasses]

1. **Detection** on every clip (``--clips``, default: every shared clip): the tracker and ``GlassesFinder`` alone,
   every face; frames each face was found wearing glasses, and the bridge score's range. On a clip without
   glasses every detection is a false one.
2. **Kept**: each ``--swap-clips`` clip (``d13-closeup``: d13 framed as a close-up by ``benchmarks.closeup``,
   1920x1080, the face about 80% of the height) swapped to each identity with ``keep_glasses`` off (before) and
   on (after), judged by ``benchmarks.glasses_kept`` (the evaluation's measure): frames with glasses found, the
   share of them whose glasses' lines are in the output, and in how many frames the two outputs differ at all
   (both unmarked; on a clip without glasses none may).
3. **Pictures**: ``OUT/<clip>_<identity>.png``: input | before | after around the face, at ``--sheet-frames``.
4. **Cost**: ``GlassesFinder.update`` per face (ms, p50 and mean: a measuring frame and a following one
   alternate, ``every`` 2) and the blend's paste of the glasses (the ``blend`` stage with the option on and off).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from benchmarks.glasses_kept import ACCEPT_KEPT_FRAMES, GlassesMeter
from benchmarks.quality_metrics import side_by_side

SHARED = Path(os.environ.get("STAGESWAP_SHARED") or Path(__file__).resolve().parents[2] / "shared")
CLOSEUP = "d13-closeup"
"""The name of d13 framed as a close-up (``benchmarks.closeup``)."""


def _frames(clip: str, max_frames: int | None, models: Path) -> list[tuple[np.ndarray, float]]:
    from benchmarks.closeup import closeup_crop, face_boxes
    from streamer.record.media import VideoReader

    path = SHARED / "data" / "clips" / ("d13.mp4" if clip == CLOSEUP else clip)
    out: list[tuple[np.ndarray, float]] = []
    with VideoReader(Path(clip) if Path(clip).is_file() else path) as reader:
        for frame in reader.frames():
            if max_frames is not None and len(out) >= max_frames:
                break
            out.append((frame.image, frame.time_s))
    if clip == CLOSEUP:
        images = [image for image, _ in out]
        h, w = images[0].shape[:2]
        crop = closeup_crop((w, h), face_boxes(images[:30], models), 16 / 9)
        out = [(crop.apply(image, (1920, 1080)), t) for image, t in out]
    return out


def detect(clip: str, frames: list[tuple[np.ndarray, float]], models: Path) -> dict[str, object]:
    """Glasses found per face on a clip, with the finder's cost per face."""
    from engines.face.glasses import GlassesFinder
    from engines.processor import FaceProcessor

    tracker = FaceProcessor.from_models(models).tracker
    finder = GlassesFinder()
    faces: dict[int, list[int]] = {}
    scores: list[float] = []
    cost_ms: list[float] = []
    for image, t in frames:
        for face in tracker.update(image, t):
            t0 = time.perf_counter()
            found = finder.update(image, face.id, face.landmarks)
            cost_ms.append((time.perf_counter() - t0) * 1000.0)
            seen = faces.setdefault(face.id, [0, 0])
            seen[0] += 1
            seen[1] += int(found.present)
            if np.isfinite(found.score):
                scores.append(found.score)
    return {
        "clip": clip,
        "frames": len(frames),
        "faces": len(faces),
        "face_frames": sum(v[0] for v in faces.values()),
        "glasses_frames": sum(v[1] for v in faces.values()),
        "faces_with_glasses": sum(v[1] > 0 for v in faces.values()),
        "score_p50": round(float(np.median(scores)), 3) if scores else None,
        "score_max": round(float(np.max(scores)), 3) if scores else None,
        "update_ms_p50": round(float(np.median(cost_ms)), 3) if cost_ms else None,
        "update_ms_mean": round(float(np.mean(cost_ms)), 3) if cost_ms else None,
    }


def swap(
    clip: str,
    frames: list[tuple[np.ndarray, float]],
    identity: str,
    store: object,
    models: Path,
    sheet_frames: list[int],
    png: Path,
) -> dict[str, object]:
    """Before (``keep_glasses`` off) and after (on): the measure on each, whether they differ, the blend's cost,
    and the contact sheet."""
    from engines.processor import FaceProcessor
    from engines.settings import ProcessSettings

    row: dict[str, object] = {"clip": clip, "identity": identity}
    outputs: dict[bool, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
    differ = 0
    last: list[np.ndarray] = []
    for keep in (False, True):
        processor = FaceProcessor.from_models(models, identities=store)  # type: ignore[arg-type]
        # Unmarked: each processor marks with its own id, which would make every frame of the two runs differ.
        settings = ProcessSettings(identity=identity, keep_glasses=keep, watermark=False)
        meter = GlassesMeter()
        blend_ms: list[float] = []
        picked: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for i, (image, t) in enumerate(frames):
            result = processor.process(image, t, settings)
            face = max(result.faces, key=lambda f: f.box[2] - f.box[0]) if result.faces else None
            meter.add(image, result.image, None if face is None else face.landmarks, 0 if face is None else face.id)
            blend_ms.append(result.stage_ms.get("blend", 0.0))
            if keep:
                differ += int(not np.array_equal(result.image, last[i]))
            else:
                last.append(result.image)
            if i in sheet_frames and face is not None:
                picked[i] = (result.image, face.landmarks)
        report = meter.report()
        tag = "after" if keep else "before"
        row[f"{tag}_detected"] = report.detected
        row[f"{tag}_kept_frames"] = None if not report.detected else round(report.kept_frames, 4)
        row[f"{tag}_share_p50"] = None if not report.detected else round(report.share_p50, 4)
        row[f"{tag}_blend_ms_p50"] = round(float(np.median(blend_ms)), 2)
        outputs[keep] = picked
    row["frames"] = len(frames)
    row["frames_differ"] = differ
    panels = []
    for i in sorted(outputs[True]):
        if i not in outputs[False]:
            continue
        after, landmarks = outputs[True][i]
        before = outputs[False][i][0]
        xy = landmarks[:, :2]
        (x1, y1), (x2, y2) = xy.min(axis=0), xy.max(axis=0)
        pad = 0.15 * max(x2 - x1, y2 - y1)
        h, w = after.shape[:2]
        ys = slice(int(max(0, y1 - pad)), int(min(h, y2 + pad)))
        xs = slice(int(max(0, x1 - pad)), int(min(w, x2 + pad)))
        image = frames[i][0]
        labels = [f"{clip} frame {i}: input", f"before ({identity}, keep_glasses off)", "after (keep_glasses on)"]
        panels.append(side_by_side([image[ys, xs], before[ys, xs], after[ys, xs]], height=420, labels=labels))
    if panels:
        width = max(p.shape[1] for p in panels)
        panels = [np.pad(p, ((0, 4), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in panels]
        cv2.imwrite(str(png), np.vstack(panels))
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    clips = sorted(p.name for p in (SHARED / "data" / "clips").glob("*.mp4"))
    ap.add_argument("--clips", nargs="+", default=clips, help="clips whose detections are counted (default: all)")
    ap.add_argument("--swap-clips", nargs="+", default=["d13.mp4", CLOSEUP, "d3.mp4"])
    ap.add_argument("--identities", nargs="+", default=["s1.jpg", "roop_source.jpg", "obama.jpg"])
    ap.add_argument("--max-frames", type=int, default=None)
    ap.add_argument("--sheet-frames", default="10,25,39,200", help="frames in the sheets (default 10,25,39,200)")
    ap.add_argument("--out", type=Path, default=Path("out/glasses"))
    ap.add_argument("--models", type=Path, default=SHARED / "models")
    args = ap.parse_args()

    from engines.identity.store import IdentityStore

    args.out.mkdir(parents=True, exist_ok=True)
    sheet_frames = [int(v) for v in args.sheet_frames.split(",") if v]
    detections = []
    print(f"{'clip':<26} {'frames':>6} {'faces':>5} {'face frames':>11} {'glasses':>7} {'score p50':>9} {'max':>5} "
          f"{'update ms p50':>13} {'mean':>5}")  # fmt: skip
    for clip in args.clips:
        row = detect(clip, _frames(clip, args.max_frames, args.models), args.models)
        detections.append(row)
        print(
            f"{clip:<26} {row['frames']:>6} {row['faces']:>5} {row['face_frames']:>11} {row['glasses_frames']:>7} "
            f"{row['score_p50']!s:>9} {row['score_max']!s:>5} {row['update_ms_p50']!s:>13} {row['update_ms_mean']!s:>5}"
        )
    swaps = []
    print(
        f"\n{'clip':<14} {'identity':<14} {'frames':>6} {'found':>5} {'kept before':>11} {'kept after':>10} "
        f"{'differ':>6} {'blend ms before':>15} {'after':>6}"
    )
    with tempfile.TemporaryDirectory(prefix="stageswap-glasses-") as data:
        store = IdentityStore(Path(data) / "identities", args.models)
        names = []
        for photo in args.identities:
            name = Path(photo).stem.lower().replace("_", "-")
            path = Path(photo) if Path(photo).is_file() else SHARED / "data" / "faces" / photo
            store.enroll(name, [path], face="largest")
            names.append(name)
        for clip in args.swap_clips:
            frames = _frames(clip, args.max_frames, args.models)
            for name in names:
                png = args.out / f"{Path(clip).stem}_{name}.png"
                row = swap(clip, frames, name, store, args.models, sheet_frames, png)
                swaps.append(row)
                ok = row["after_kept_frames"] is None or row["after_kept_frames"] >= ACCEPT_KEPT_FRAMES  # type: ignore[operator]
                print(
                    f"{clip:<14} {name:<14} {row['frames']:>6} {row['after_detected']:>5} "
                    f"{row['before_kept_frames']!s:>11} {row['after_kept_frames']!s:>10} {row['frames_differ']:>6} "
                    f"{row['before_blend_ms_p50']:>15} {row['after_blend_ms_p50']:>6}  {'ok' if ok else 'FAIL'}"
                )
    (args.out / "glasses.json").write_text(json.dumps({"detections": detections, "swaps": swaps}, indent=1))
    print(f"\nresults: {(args.out / 'glasses.json').resolve()}")


if __name__ == "__main__":
    main()
