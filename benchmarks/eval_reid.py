"""Re-identification error rates: how often the product's recogniser takes one person for another (false accept)
or fails to recognise a performer (false reject), by distance threshold, on the shared clips and photos and on
material generated from them (darker, brighter, black and white, small, blurred, JPEG-damaged faces).

Performers are enrolled as ``stageswap performers add`` enrolls them (``select_descriptors``): from the first
third of each single-person clip (every 3rd frame), or from one photo. Test faces are the rest of each clip
(every ``--test-every`` frames) and their generated variants. A genuine pair is a test face against its own
clip's performer (the Obama clip also against the Obama photo); an impostor pair is a test face against every
other performer, plus the faces of the multi-person Hamilton clip against every performer except the two people
it shows (Lin-Manuel Miranda and Alex Lacamoire, whose photos are in the set). Distances are those selection uses
(the nearest enrollment descriptor), for a single frame's descriptor and for the mean of 4 consecutive test
descriptors (what a track holds, ``ReidConfig.mean_of``).

    python benchmarks/eval_reid.py [--test-every 10] [--json out/reid.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engines.face.detect import FaceDetector  # noqa: E402
from engines.face.landmarks import FaceMesh  # noqa: E402
from engines.face.tracker import FaceTracker, TrackedFace  # noqa: E402
from engines.identity.descriptor import FaceDescriber, descriptor_distance  # noqa: E402
from engines.identity.performers import select_descriptors  # noqa: E402
from engines.runtime import load_model, models  # noqa: E402
from streamer.record.media import VideoReader  # noqa: E402

SHARED = Path(os.environ.get("STAGESWAP_SHARED", Path(__file__).resolve().parents[2] / "shared"))
SINGLE = ["d0", "d3", "d10", "d13", "s18", "Obama_speaking"]
PHOTOS = {"obama": "Obama_speaking", "biden": None, "s1": None, "woman": None, "roop_source": None}
CROWD = "short_hamilton_clip"
THRESHOLDS = (0.4, 0.45, 0.5, 0.55, 0.6)

Variant = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _gamma(g: float) -> Variant:
    lut = np.clip(((np.arange(256) / 255.0) ** g) * 255.0, 0, 255).astype(np.uint8)
    return lambda img, lm: (cv2.LUT(img, lut), lm)


def _grey(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR), lm


def _small(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face about 48 px wide (a wide shot)."""
    width = float(lm[:, 0].max() - lm[:, 0].min())
    s = min(1.0, 48.0 / max(width, 1.0))
    out = cv2.resize(img, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
    return out, lm * np.array([s, s, s], np.float32)


def _blur(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return cv2.GaussianBlur(img, (0, 0), 2.5), lm


def _jpeg(img: np.ndarray, lm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok, data = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 20])
    return cv2.imdecode(data, cv2.IMREAD_COLOR), lm


VARIANTS: dict[str, Variant] = {
    "dark": _gamma(2.2),
    "bright": _gamma(0.5),
    "grey": _grey,
    "small": _small,
    "blur": _blur,
    "jpeg20": _jpeg,
}


def largest(faces: list[TrackedFace]) -> TrackedFace | None:
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) if faces else None


def clip_faces(path: Path, tracker: FaceTracker, every: int) -> Iterator[tuple[int, np.ndarray, TrackedFace]]:
    """(frame index, frame, face) every ``every`` frames with a face (the largest; all for ``every_face``)."""
    tracker.reset()
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader.frames()):
            faces = tracker.update(frame.image, frame.time_s)
            if i % every == 0 and faces:
                face = largest(faces)
                if face is not None and abs(face.pose_deg[0]) <= 50:
                    yield i, frame.image, face


def rates(genuine: np.ndarray, impostor: np.ndarray) -> list[dict[str, float]]:
    return [
        {
            "threshold": t,
            "far": float((impostor <= t).mean()) if impostor.size else 0.0,
            "frr": float((genuine > t).mean()) if genuine.size else 0.0,
        }
        for t in THRESHOLDS
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--test-every", type=int, default=10, help="test frames: every N-th of the last two thirds")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args()
    mdir = SHARED / "models"
    tracker = FaceTracker(
        FaceDetector(load_model(models.resolve("yunet", mdir))), FaceMesh(load_model(models.resolve("facemesh", mdir)))
    )
    describer = FaceDescriber(models.resolve("face_descriptor", mdir))
    t_start, cpu_start = time.perf_counter(), time.process_time()
    performers: dict[str, np.ndarray] = {}
    tests: dict[str, list[np.ndarray]] = {}
    variant_tests: dict[str, dict[str, list[np.ndarray]]] = {v: {} for v in VARIANTS}
    n_desc = 0
    for clip in SINGLE:
        path = SHARED / "data" / "clips" / f"{clip}.mp4"
        with VideoReader(path) as reader:
            total = reader.info.frames
        enroll, test = [], []
        for i, image, face in clip_faces(path, tracker, 3):
            if i < total // 3:
                enroll.append(describer.describe(image, face.landmarks))
            elif i % args.test_every == 0:
                test.append(describer.describe(image, face.landmarks))
                for name, variant in VARIANTS.items():
                    img2, lm2 = variant(image, face.landmarks)
                    variant_tests[name].setdefault(clip, []).append(describer.describe(img2, lm2))
        n_desc += len(enroll) + len(test) * (1 + len(VARIANTS))
        performers[clip], outliers = select_descriptors(np.stack(enroll))
        tests[clip] = test
        print(f"{clip}: enrolled from {len(enroll)} faces ({outliers} outliers), {len(test)} test faces", flush=True)
    from engines.identity.photos import load_photo

    for photo in PHOTOS:
        image = load_photo(SHARED / "data" / "faces" / f"{photo}.jpg"
                           if (SHARED / "data" / "faces" / f"{photo}.jpg").exists()
                           else SHARED / "data" / "faces" / f"{photo}.png", photo).image  # fmt: skip
        tracker.reset()
        face = largest(tracker.update(image, 0.0))
        assert face is not None, photo
        performers[f"photo:{photo}"] = describer.describe(image, face.landmarks)[None]
        n_desc += 1
    crowd: list[np.ndarray] = []
    tracker.reset()
    with VideoReader(SHARED / "data" / "clips" / f"{CROWD}.mp4") as reader:
        for i, frame in enumerate(reader.frames()):
            faces = tracker.update(frame.image, frame.time_s)
            if i % (args.test_every * 2) == 0 and faces:
                usable = [f for f in faces if abs(f.pose_deg[0]) <= 50]
                if usable:
                    crowd.extend(describer.describe_many(frame.image, [f.landmarks for f in usable]))
    n_desc += len(crowd)

    def owner(performer: str) -> str | None:
        if performer.startswith("photo:"):
            return PHOTOS[performer[6:]]
        return performer

    def pairs(faces_by_clip: dict[str, list[np.ndarray]], mean_of: int) -> tuple[np.ndarray, np.ndarray]:
        genuine, impostor = [], []
        for clip, descs in faces_by_clip.items():
            if not descs:
                continue
            d = np.stack(descs)
            if mean_of > 1:
                d = np.stack([d[max(0, k - mean_of + 1) : k + 1].mean(axis=0) for k in range(len(d))])
            for name, refs in performers.items():
                dist = descriptor_distance(d, refs).min(axis=1)
                (genuine if owner(name) == clip else impostor).extend(dist.tolist())
        return np.asarray(genuine), np.asarray(impostor)

    crowd_imp = np.asarray(
        [
            float(descriptor_distance(c, refs).min())
            for c in crowd
            for name, refs in performers.items()
            if name not in ("photo:lin-manuel-miranda", "photo:alex-lacamoire")
        ]
    )
    result: dict[str, object] = {"descriptors": n_desc}
    for label, faces_by_clip in [("shared", tests), *((f"generated:{v}", t) for v, t in variant_tests.items())]:
        for mean_of in (1, 4):
            g, imp = pairs(faces_by_clip, mean_of)
            if label == "shared":
                imp = np.concatenate([imp, crowd_imp])
            key = f"{label} mean_of={mean_of}"
            result[key] = {
                "genuine": int(g.size),
                "impostor": int(imp.size),
                "genuine_max": round(float(g.max()), 3) if g.size else None,
                "genuine_p95": round(float(np.percentile(g, 95)), 3) if g.size else None,
                "impostor_min": round(float(imp.min()), 3) if imp.size else None,
                "rates": rates(g, imp),
            }
            row = " ".join(f"T={r['threshold']:.2f} FAR {r['far']:.4f} FRR {r['frr']:.4f}" for r in rates(g, imp))
            print(f"{key:<32} genuine {g.size:>4} impostor {imp.size:>5} | {row}", flush=True)
    cpu_s = time.process_time() - cpu_start
    result["descriptor_cpu_ms"] = round(cpu_s * 1000 / max(n_desc, 1), 1)
    result["wall_s"] = round(time.perf_counter() - t_start, 1)
    print(f"{n_desc} descriptors (tracking included) {result['descriptor_cpu_ms']} ms CPU each, {result['wall_s']} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
