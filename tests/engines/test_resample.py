"""``shrink``: the per-face downscale, as close to INTER_AREA as a viewer can tell and without a shift."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.resample import shrink
from streamer.record.media import VideoReader


@pytest.fixture(scope="module")
def face_window(clips: Path) -> np.ndarray:
    with VideoReader(clips / "d13.mp4") as reader:
        image = next(iter(reader.frames())).image
    return np.ascontiguousarray(image[200:720, 100:580])  # 520 x 480 around the face


@pytest.mark.parametrize("target_px", [400, 320, 256, 160, 128, 64])
def test_shrink_looks_like_inter_area_at_every_ratio(face_window: np.ndarray, target_px: int) -> None:
    h0, w0 = face_window.shape[:2]
    size = (round(w0 * target_px / h0), target_px)
    out = shrink(face_window, size)
    area = cv2.resize(face_window, size, interpolation=cv2.INTER_AREA)
    assert out.shape == area.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.float32) - area.astype(np.float32))
    assert diff.mean() <= 1.0, f"mean difference {diff.mean():.2f} grey levels"
    # No shift: the centroid of a bright feature lands where INTER_AREA puts it (within a tenth of a pixel).
    grey_out = cv2.cvtColor(out, cv2.COLOR_BGR2GRAY).astype(np.float64)
    grey_area = cv2.cvtColor(area, cv2.COLOR_BGR2GRAY).astype(np.float64)
    ys, xs = np.mgrid[0 : size[1], 0 : size[0]]
    centroid = (float((grey_out * xs).sum() / grey_out.sum()), float((grey_out * ys).sum() / grey_out.sum()))
    expected = (float((grey_area * xs).sum() / grey_area.sum()), float((grey_area * ys).sum() / grey_area.sum()))
    assert centroid == pytest.approx(expected, abs=0.1)


def test_shrink_keeps_channels_and_dtype_and_copies_at_the_same_size(face_window: np.ndarray) -> None:
    mask = (face_window[..., 1] > 100).astype(np.float32)
    small = shrink(mask, (60, 65))
    assert small.shape == (65, 60) and small.dtype == np.float32 and 0.0 <= small.min() <= small.max() <= 1.0
    two = np.dstack([mask, 1.0 - mask])
    assert shrink(two, (60, 65)).shape == (65, 60, 2)
    same = shrink(face_window, (face_window.shape[1], face_window.shape[0]))
    assert np.array_equal(same, face_window) and same is not face_window
    big = shrink(face_window[:100, :100], (150, 150))  # an enlargement is bilinear
    assert big.shape == (150, 150, 3)
