"""Face tracking on real footage: coverage, stable ids, jitter and lag."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.face.geometry import box_iou
from engines.face.landmarks import interocular
from engines.face.tracker import FaceTracker, TrackerConfig
from streamer.record.media import VideoReader
from tests.conftest import SINGLE_FACE_CLIPS


@pytest.mark.parametrize("clip", SINGLE_FACE_CLIPS)
def test_single_face_clip_tracked_in_99_percent_of_frames(tracker: FaceTracker, clips: Path, clip: str) -> None:
    frames = tracked = 0
    ids: set[int] = set()
    with VideoReader(clips / clip) as reader:
        for frame in reader.frames():
            faces = tracker.update(frame.image, frame.time_s)
            frames += 1
            tracked += len(faces) >= 1
            ids.update(f.id for f in faces)
            for f in faces:
                assert np.isfinite(f.landmarks).all()
    assert frames > 20
    assert tracked / frames >= 0.99, f"{clip}: face in {tracked}/{frames} frames"
    assert len(ids) == 1, f"{clip}: one person should keep one id, got {sorted(ids)}"


def test_faces_come_and_go_with_stable_ids(tracker: FaceTracker, clips: Path) -> None:
    """short_hamilton_clip: 1-6 faces, scene cuts. No face may change id while it stays in view: a track
    that ends must not be replaced by a new id at the same place in the next frame."""
    previous: dict[int, np.ndarray] = {}
    switches = []
    seen_counts = set()
    with VideoReader(clips / "short_hamilton_clip.mp4") as reader:
        for i, frame in enumerate(reader.frames()):
            faces = tracker.update(frame.image, frame.time_s)
            current = {f.id: f.box for f in faces}
            assert len(current) == len(faces) <= tracker.config.max_faces
            seen_counts.add(len(faces))
            for new_id in current.keys() - previous.keys():
                for old_id in previous.keys() - current.keys():
                    if box_iou(previous[old_id], current[new_id]) > 0.2:
                        switches.append((i, old_id, new_id))
            # Two tracks never sit on the same face.
            boxes = list(current.values())
            for a in range(len(boxes)):
                for b in range(a + 1, len(boxes)):
                    assert box_iou(boxes[a], boxes[b]) < tracker.config.duplicate_iou
            previous = current
    assert switches == []
    assert 0 in seen_counts and max(seen_counts) >= 2  # faces really came and went


def _photo(faces: Path, name: str = "obama.jpg", longest: int = 640) -> np.ndarray:
    image = cv2.imread(str(faces / name))
    h, w = image.shape[:2]
    s = longest / max(h, w)
    return cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _track(tracker: FaceTracker, frames: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    raw, smooth = [], []
    for i, f in enumerate(frames):
        faces = tracker.update(f, i / 30.0)
        assert len(faces) == 1
        raw.append(faces[0].raw_landmarks[:, :2])
        smooth.append(faces[0].landmarks[:, :2])
    return np.array(raw), np.array(smooth)


def _rms_step(track: np.ndarray) -> float:
    step = np.diff(track, axis=0)
    return float(np.sqrt((step**2).sum(axis=-1).mean()))


@pytest.mark.parametrize("name", ["obama.jpg", "s1.jpg"])
def test_jitter_on_still_photo_with_sensor_noise(tracker: FaceTracker, faces: Path, name: str) -> None:
    photo = _photo(faces, name)
    rng = np.random.default_rng(0)
    frames = [np.clip(photo + rng.normal(0, 3, photo.shape), 0, 255).astype(np.uint8) for _ in range(90)]
    raw, smooth = _track(tracker, frames)
    iod = interocular(np.pad(raw[0], ((0, 0), (0, 1))))
    raw_pct = _rms_step(raw[5:]) / iod * 100
    smooth_pct = _rms_step(smooth[5:]) / iod * 100
    print(f"{name}: jitter raw {raw_pct:.3f}% of IOD, smoothed {smooth_pct:.3f}%")
    assert smooth_pct <= 0.3
    assert smooth_pct < raw_pct / 2  # the filter does real work


def test_lag_on_moving_photo(tracker: FaceTracker, faces: Path) -> None:
    photo = _photo(faces)
    step_px, n = 8, 45
    canvas = cv2.copyMakeBorder(photo, 0, 0, 0, step_px * n, cv2.BORDER_REPLICATE)
    frames = [
        cv2.warpAffine(
            canvas,
            np.float32([[1, 0, step_px * i], [0, 1, 0]]),
            canvas.shape[1::-1],
            borderMode=cv2.BORDER_REPLICATE,
        )
        for i in range(n)
    ]
    raw, smooth = _track(tracker, frames)
    truth = raw[0][None] + np.array([step_px, 0.0])[None, None] * np.arange(n)[:, None, None]
    trail_px = (truth - smooth)[3:, :, 0].mean(axis=1)
    print(f"lag: smoothed landmarks trail by {trail_px.mean():.2f}px mean, {trail_px.max():.2f}px max")
    assert trail_px.max() <= step_px  # at most one frame of motion
    # Vertical position is unaffected by horizontal motion.
    assert np.abs((truth - smooth)[3:, :, 1].mean(axis=1)).max() < 2.0


def test_max_faces_is_respected(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    group = cv2.imread(str(faces / "t1.jpg"))
    tracker = FaceTracker(detector, mesh, TrackerConfig(max_faces=2))
    assert len(tracker.update(group, 0.0)) == 2
    tracker = FaceTracker(detector, mesh, TrackerConfig(max_faces=8))
    from engines.face.detect import FaceDetector

    tracker.detector = FaceDetector(detector.session, input_width=640)
    assert len(tracker.update(group, 0.0)) == 6


def test_pose_and_five_points_are_consistent(tracker: FaceTracker, faces: Path) -> None:
    photo = _photo(faces, "obama.jpg")
    face = tracker.update(photo, 0.0)[0]
    yaw, pitch, roll = face.pose_deg
    assert abs(yaw) < 20 and abs(roll) < 10  # a frontal portrait
    rotated = cv2.warpAffine(
        photo, cv2.getRotationMatrix2D((photo.shape[1] / 2, photo.shape[0] / 2), 20, 1.0), photo.shape[1::-1]
    )
    tracker.reset()
    face_r = tracker.update(rotated, 0.0)[0]
    # OpenCV's positive angle turns the image counter-clockwise: the face's roll reads about -20 degrees.
    assert abs(face_r.pose_deg[2] - (roll - 20)) < 5
    p = face.points5
    assert p[0, 0] < p[1, 0] and p[3, 0] < p[4, 0] and p[0, 1] < p[2, 1] < p[3, 1]
