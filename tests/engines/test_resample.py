"""``shrink``: the per-face downscale, as close to INTER_AREA as a viewer can tell and without a shift."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.resample import shrink, shrink_box_first
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


def _centroid(image: np.ndarray) -> tuple[float, float]:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float64)
    ys, xs = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    return float((grey * xs).sum() / grey.sum()), float((grey * ys).sum() / grey.sum())


@pytest.mark.parametrize("target_px", [256, 200, 160, 128, 64])
def test_shrink_box_first_has_no_shift_and_stays_near_inter_area(face_window: np.ndarray, target_px: int) -> None:
    """The average first, then the bilinear step at the whole image's positions: no shift although the blocks drop
    a remainder (cropping it and resizing the blocks as they are moves the far side by up to k - 1 pixels), and
    within a few levels of INTER_AREA on this sharp window (softer: the bilinear step after the average)."""
    window = face_window[:, :-1]  # 520 x 479: a remainder at every factor
    h0, w0 = window.shape[:2]
    size = (round(w0 * target_px / h0), target_px)
    out = shrink_box_first(window, size)
    area = cv2.resize(window, size, interpolation=cv2.INTER_AREA)
    assert out.shape == area.shape and out.dtype == np.uint8
    diff = np.abs(out.astype(np.float32) - area.astype(np.float32))
    assert diff.mean() <= 3.0, f"mean difference {diff.mean():.2f} grey levels"
    offset = np.subtract(_centroid(out), _centroid(area))
    assert np.abs(offset).max() <= 0.1  # as ``shrink``: the replicated edge stands in for the remainder
    k = int(min(w0 / size[0], h0 / size[1]))
    blocks = cv2.resize(window[: h0 // k * k, : w0 // k * k], (w0 // k, h0 // k), interpolation=cv2.INTER_AREA)
    naive = cv2.resize(blocks, size, interpolation=cv2.INTER_LINEAR)
    assert np.abs(np.subtract(_centroid(naive), _centroid(area))).max() > 2 * np.abs(offset).max()


def test_shrink_box_first_keeps_channels_and_is_bilinear_below_a_factor_of_2(face_window: np.ndarray) -> None:
    mask = (face_window[..., 1] > 100).astype(np.float32)
    small = shrink_box_first(mask, (60, 65))
    assert small.shape == (65, 60) and small.dtype == np.float32 and 0.0 <= small.min() <= small.max() <= 1.0
    assert shrink_box_first(np.dstack([mask, 1.0 - mask]), (60, 65)).shape == (65, 60, 2)
    same = shrink_box_first(face_window, (face_window.shape[1], face_window.shape[0]))
    assert np.array_equal(same, face_window) and same is not face_window
    near = shrink_box_first(face_window, (300, 325))  # a factor of 1.6: bilinear, as ``shrink``
    assert np.array_equal(near, shrink(face_window, (300, 325)))
