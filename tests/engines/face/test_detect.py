"""Detection: YuNet decoded by us agrees with OpenCV's reference decoder on real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.face.detect import FaceDetector, held_boxes


@pytest.mark.parametrize("name, expected", [("obama.jpg", 1), ("s1.jpg", 1), ("t1.jpg", 6)])
def test_face_counts_on_photos(detector: FaceDetector, faces: Path, name: str, expected: int) -> None:
    image = cv2.imread(str(faces / name))
    found = FaceDetector(detector.session, input_width=640).detect(image)
    assert len(found) == expected
    for d in found:
        assert 0 <= d.box[0] < d.box[2] <= image.shape[1] + 5 and 0 <= d.box[1] < d.box[3] <= image.shape[0] + 5
        eye_r, eye_l, nose = d.points[0], d.points[1], d.points[2]
        assert eye_r[0] < eye_l[0]  # subject's right eye is on the image's left
        assert min(eye_r[1], eye_l[1]) < nose[1]  # the nose is below the eyes


def test_decoder_matches_opencv_reference(detector: FaceDetector, faces: Path, models_dir: Path) -> None:
    """Same boxes and keypoints as cv2.FaceDetectorYN running the fixed-size twin of the model."""
    image = cv2.imread(str(faces / "t1.jpg"))
    h, w = image.shape[:2]
    small = cv2.resize(image, (640, round(h * 640 / w)))
    ref = cv2.FaceDetectorYN.create(
        str(models_dir / "yunet_s_640_640.onnx"), "", (small.shape[1], small.shape[0]), 0.6, 0.3, 50
    )
    _, rows = ref.detect(small)
    ours = FaceDetector(detector.session, input_width=640).detect(image)
    assert rows is not None and len(rows) == len(ours)
    scale = w / 640
    for d in ours:
        ref_boxes = np.column_stack([rows[:, 0], rows[:, 1], rows[:, 0] + rows[:, 2], rows[:, 1] + rows[:, 3]]) * scale
        j = int(np.argmin(np.abs(ref_boxes - d.box).sum(axis=1)))
        assert np.abs(ref_boxes[j] - d.box).max() < 3.0
        assert np.abs(rows[j, 4:14].reshape(5, 2) * scale - d.points).max() < 3.0


def test_no_face_in_blank_and_noise(detector: FaceDetector) -> None:
    rng = np.random.default_rng(1)
    assert detector.detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert detector.detect(rng.integers(0, 255, (480, 640, 3), dtype=np.uint8)) == []


def test_held_boxes_hold_the_last_faces_found_where_none_is(detector: FaceDetector, faces: Path) -> None:
    """A photo's face, then a blank frame: the blank frame gives the photo's boxes (as the tracker holds a face for
    the mark stage); before any face is found, none."""
    photo = cv2.imread(str(faces / "obama.jpg"))
    blank = np.full_like(photo, 128)
    find = held_boxes(detector)
    assert find(blank).shape == (0, 4)
    found = find(photo)
    assert found.shape == (1, 4) and found.dtype == np.float32 and found[0, 2] > found[0, 0]
    np.testing.assert_array_equal(find(blank), found)
