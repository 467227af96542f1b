"""The quality evaluation's measures (benchmarks/quality_metrics.py) on real clips: each must be able to fail.

The evaluation-only models (mobilefacenet, pfld) are loaded by path from the shared models folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest

from benchmarks.quality_metrics import (
    FaceEmbedder,
    FlickerMeter,
    Landmarks68,
    QualityMeter,
    correlation,
    face_square,
    masked_dssim,
    masked_mse,
    mouth_opening,
    photo_embedding,
    side_by_side,
)
from tests.eval_helpers import RememberingLandmarks68

CLIP_FRAMES = 90


@dataclass(frozen=True)
class Clip:
    frames: list[np.ndarray]
    landmarks: list[np.ndarray | None]


@pytest.fixture(scope="module")
def embedder(models_dir: Path) -> FaceEmbedder:
    return FaceEmbedder(models_dir / "mobilefacenet.onnx")


@pytest.fixture(scope="module")
def lm68(models_dir: Path) -> Landmarks68:
    """Each d10 frame is measured by up to six tests (and twice where the clip is its own output): once here."""
    return RememberingLandmarks68(models_dir / "pfld.onnx")


def _largest(faces):  # type: ignore[no-untyped-def]
    return max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1])) if faces else None


@pytest.fixture(scope="module")
def d10(clips: Path, detector, mesh) -> Clip:  # type: ignore[no-untyped-def]
    from engines.face.tracker import FaceTracker
    from streamer.record.media import VideoReader

    tracker = FaceTracker(detector, mesh)
    frames, landmarks = [], []
    with VideoReader(clips / "d10.mp4") as reader:
        for i, frame in enumerate(reader.frames()):
            if i >= CLIP_FRAMES:
                break
            face = _largest(tracker.update(frame.image, frame.time_s))
            frames.append(frame.image)
            landmarks.append(None if face is None else face.landmarks)
    assert sum(lm is not None for lm in landmarks) == len(frames)
    return Clip(frames, landmarks)


def _photo_embedding(path: Path, detector, mesh, embedder: FaceEmbedder) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    from engines.face.tracker import FaceTracker

    img = cv2.imread(str(path))
    face = _largest(FaceTracker(detector, mesh).update(img, 0.0))
    return embedder.embed(img, face.points5), face.points5


def _run(meter: QualityMeter, clip: Clip, outputs: list[np.ndarray]):  # type: ignore[no-untyped-def]
    for image_in, image_out, lm in zip(clip.frames, outputs, clip.landmarks, strict=True):
        meter.add(image_in, image_out, lm)
    return meter.report()


def test_recogniser_tells_people_apart(faces: Path, clips: Path, detector, mesh, embedder) -> None:  # type: ignore[no-untyped-def]
    from engines.face.tracker import FaceTracker
    from streamer.record.media import VideoReader

    obama, _ = _photo_embedding(faces / "obama.jpg", detector, mesh, embedder)
    biden, _ = _photo_embedding(faces / "biden.jpg", detector, mesh, embedder)
    s1, _ = _photo_embedding(faces / "s1.jpg", detector, mesh, embedder)
    tracker = FaceTracker(detector, mesh)
    with VideoReader(clips / "Obama_speaking.mp4") as reader:
        for i, frame in enumerate(reader.frames()):
            face = _largest(tracker.update(frame.image, frame.time_s))
            if i == 20:
                break
    clip_face = embedder.embed(frame.image, face.points5)
    assert np.linalg.norm(clip_face) == pytest.approx(1.0, abs=1e-5)
    assert clip_face @ obama > 0.6  # the same person: 0.65-0.77 with this model
    assert max(clip_face @ biden, clip_face @ s1, obama @ biden) < 0.3


def test_unprocessed_clip_is_closer_to_the_actor(d10: Clip, faces: Path, detector, mesh, embedder, lm68) -> None:  # type: ignore[no-untyped-def]
    identity, _ = _photo_embedding(faces / "s1.jpg", detector, mesh, embedder)
    report = _run(QualityMeter(embedder, lm68, identity), d10, d10.frames)
    assert report.frames == report.frames_with_face == CLIP_FRAMES
    assert report.identity_frames == CLIP_FRAMES // 3
    assert report.closer_to_identity == 0.0
    assert report.cos_actor > 0.999
    assert report.cos_identity < 0.3
    assert report.mouth_corr > 0.999 and report.eye_corr > 0.999
    assert report.flicker == pytest.approx(1.0)
    assert report.mouth_range_in > 0.02  # the clip talks: there is a curve to correlate


def paste_face(photo: np.ndarray, photo_points: np.ndarray, frame: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A crude swap for the test: the photo's face warped onto the frame's 5 points, pasted inside the mesh."""
    from engines.face.landmarks import five_points

    m, _ = cv2.estimateAffinePartial2D(photo_points, five_points(landmarks), method=cv2.LMEDS)
    warped = cv2.warpAffine(photo, m, (frame.shape[1], frame.shape[0]))
    hull = cv2.convexHull(landmarks[:, :2].astype(np.int32))
    mask = np.zeros(frame.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    mask = cv2.GaussianBlur(cv2.erode(mask, np.ones((9, 9), np.uint8)), (0, 0), 3)[..., None] / 255.0
    return (frame * (1 - mask) + warped * mask).astype(np.uint8)


def test_a_pasted_face_is_closer_to_its_identity(d10: Clip, faces: Path, detector, mesh, embedder, lm68) -> None:  # type: ignore[no-untyped-def]
    """The same measure says "closer to the identity" when the identity's face is what the output shows."""
    identity, points = _photo_embedding(faces / "obama.jpg", detector, mesh, embedder)
    photo = cv2.imread(str(faces / "obama.jpg"))
    subset = Clip(d10.frames[:30], d10.landmarks[:30])
    outputs = [paste_face(photo, points, f, lm) for f, lm in zip(subset.frames, subset.landmarks, strict=True)]  # type: ignore[arg-type]
    report = _run(QualityMeter(embedder, lm68, identity), subset, outputs)
    assert report.closer_to_identity == 1.0
    assert report.cos_identity > 0.45
    assert report.cos_actor < 0.45


def test_a_face_drawn_with_other_proportions_is_judged_where_it_is_drawn(  # type: ignore[no-untyped-def]
    d10: Clip, faces: Path, detector, mesh, embedder, lm68
) -> None:
    """A morphing swap draws the identity's eyes and mouth where its proportions put them, not on the
    actor's points. The recogniser's crop of the output is aligned on the points found in the output, so
    such a face is recognised; aligned on the actor's points (the earlier measure) it is not."""
    from engines.face.tracker import FaceTracker

    photo = cv2.imread(str(faces / "obama.jpg"))
    face = _largest(FaceTracker(detector, mesh).update(photo, 0.0))
    identity = photo_embedding(photo, face.landmarks, embedder, lm68)
    subset = Clip(d10.frames[:30], d10.landmarks[:30])
    outputs = []
    for frame, lm in zip(subset.frames, subset.landmarks, strict=True):
        assert lm is not None
        drawn = lm.copy()  # the same face, taller and lower: features 15% of the face height off the actor's
        centre = lm[:, :2].mean(axis=0)
        drawn[:, :2] = (lm[:, :2] - centre) * np.array([1.0, 1.15]) + centre + np.array([0.0, 0.08]) * np.ptp(lm[:, 1])
        outputs.append(paste_face(photo, face.points5, frame, drawn))
    report = _run(QualityMeter(embedder, lm68, identity), subset, outputs)
    assert report.cos_identity > 0.45 and report.closer_to_identity == 1.0, report
    assert report.cos_identity > report.cos_identity_actor_points + 0.1, report


def test_frozen_mouth_breaks_the_expression_correlation(d10: Clip, embedder, lm68) -> None:  # type: ignore[no-untyped-def]
    """An output whose lower face never moves does not follow the actor's speech."""
    first, lm0 = d10.frames[0], d10.landmarks[0]
    assert lm0 is not None
    nose_y = int(lm0[1, 1])
    outputs = []
    for frame in d10.frames:
        out = frame.copy()
        out[nose_y:] = first[nose_y:]
        outputs.append(out)
    report = _run(QualityMeter(embedder, lm68, None, identity_every=30), d10, outputs)
    assert report.mouth_corr < 0.5
    assert report.eye_corr > 0.8  # the eyes were left alone


def test_shimmering_face_raises_the_flicker_ratio(d10: Clip) -> None:
    rng = np.random.default_rng(0)
    meter, same = FlickerMeter(), FlickerMeter()
    for frame, lm in zip(d10.frames, d10.landmarks, strict=True):
        assert lm is not None
        box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()])
        x1, y1, x2, y2 = box.astype(int)
        out = frame.copy()
        noise = rng.normal(0, 4, out[y1:y2, x1:x2].shape)
        out[y1:y2, x1:x2] = np.clip(out[y1:y2, x1:x2] + noise, 0, 255).astype(np.uint8)
        meter.add(frame, out, box)
        same.add(frame, frame, box)
    assert meter.pairs == len(d10.frames) - 1
    assert meter.ratio > 1.15
    assert same.ratio == pytest.approx(1.0)
    # A frame without a face breaks the chain: no pair across it.
    gap = FlickerMeter()
    gap.add(d10.frames[0], d10.frames[0], np.array([0, 0, 10, 10]))
    gap.add(d10.frames[1], d10.frames[1], None)
    gap.add(d10.frames[2], d10.frames[2], np.array([0, 0, 10, 10]))
    assert gap.pairs == 0 and math.isnan(gap.ratio)


def test_pfld_finds_the_mouth_open_and_closed(d10: Clip, lm68: Landmarks68) -> None:
    openings = [mouth_opening(lm68(f, face_square(lm))) for f, lm in zip(d10.frames, d10.landmarks, strict=True)]  # type: ignore[arg-type]
    # The mesh's own lip gap (inner lips 13 and 14) over its eye distance agrees with PFLD's.
    mesh_gap = [float(lm[14, 1] - lm[13, 1]) / float(np.linalg.norm(lm[263, :2] - lm[33, :2])) for lm in d10.landmarks]  # type: ignore[index]
    assert correlation(openings, mesh_gap) > 0.8


def test_steady_reading_follows_the_face_not_its_crop(d10: Clip, lm68: Landmarks68) -> None:
    """PFLD's mouth opening of an unchanged frame moves with the square it is read in; the mean over the
    jittered squares (``Landmarks68.steady``, what the expression curves use) moves less than half as much
    when the square moves by 4% of a face (d10: 0.0032 against 0.0082 of an eye distance on these frames)."""
    single, steady = [], []
    for image, lm in list(zip(d10.frames, d10.landmarks, strict=True))[::15]:
        cx, cy, side = face_square(lm)  # type: ignore[arg-type]
        moved = (cx + 0.04 * side, cy + 0.02 * side, 0.97 * side)
        single.append(abs(mouth_opening(lm68(image, (cx, cy, side))) - mouth_opening(lm68(image, moved))))
        steady.append(abs(mouth_opening(lm68.steady(image, (cx, cy, side))) - mouth_opening(lm68.steady(image, moved))))
    assert np.mean(steady) < 0.6 * np.mean(single), (single, steady)


def test_nearest_face_is_the_same_face_in_another_image() -> None:
    from types import SimpleNamespace

    from benchmarks.eval_quality import nearest

    left = SimpleNamespace(box=np.array([0.0, 0.0, 100.0, 100.0]))
    right = SimpleNamespace(box=np.array([400.0, 0.0, 600.0, 200.0]))  # the larger one
    assert nearest([right, left], np.array([10.0, 5.0, 105.0, 98.0])) is left  # type: ignore[list-item]
    assert nearest([], np.array([0.0, 0.0, 1.0, 1.0])) is None


def test_image_measures() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((64, 64, 3))
    mask = np.zeros((64, 64), bool)
    mask[8:56, 8:56] = True
    assert masked_mse(a, a, mask) == 0.0
    assert masked_dssim(a, a, mask) == pytest.approx(0.0, abs=1e-9)
    b = a.copy()
    b[~mask] = 0  # differences outside the mask do not count for the MSE
    assert masked_mse(a, b, mask) == 0.0
    blurred = cv2.GaussianBlur(a, (0, 0), 2)
    assert masked_dssim(a, blurred, mask) > 0.1
    assert masked_mse(a, a + 0.1, mask) == pytest.approx(0.01)
    with pytest.raises(ValueError):
        masked_mse(a, a, np.zeros((64, 64), bool))
    assert math.isnan(correlation([1, 1, 1, 1], [1, 2, 3, 4]))
    assert correlation([1, 2, 3, np.nan], [2, 4, 6, 0]) == pytest.approx(1.0)
    row = side_by_side([np.zeros((50, 40, 3), np.uint8), np.zeros((100, 100), np.uint8)], height=80, labels=["a", "b"])
    assert row.shape == (80, 64 + 4 + 80, 3)
