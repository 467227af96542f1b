"""The moving watermark's compiled passes (``engines.compose.watermark_fused``) against the OpenCV passes they replace,
on real frames (issue 24's ``hush``; issue 20's budget)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.compose.watermark import HUSH, WatermarkConfig, Watermarker, _half_mask_gain, _half_size
from tests.clip_helpers import frames_720p

WID = 0x2B7E1516


def _half_offsets(frames: list[np.ndarray], marker: Watermarker) -> list[np.ndarray]:
    """The half-resolution offsets the moving mark draws on ``frames`` (its layout at the picture's motion, times the
    texture mask), as ``_apply_moving`` makes them before adding them to the frame."""
    motion = marker.motion()
    assert motion is not None
    out = []
    for image in frames:
        h, w = image.shape[:2]
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        offset = marker._moving_offset(w, h, WID, motion.update(grey))
        out.append(cv2.multiply(offset, _half_mask_gain(grey, marker.config)))
    return out


@pytest.mark.parametrize("config", [HUSH, replace(HUSH, carrier="luma")], ids=["hush (blue)", "luma"])
def test_the_compiled_add_draws_what_opencv_drew(clips: Path, config: WatermarkConfig) -> None:
    """s18 and short_hamilton (4 frames each), the offset scaled x3 so that many values sit near the one-level
    threshold and half levels: the compiled pass (one loop, no full-resolution temporaries) and the OpenCV passes
    (``cv2.resize`` to the frame, then ``_add_rounded``) agree in all but a few pixels in a million (float32 rounding on
    the other side of a half level, by one level), with either threshold, on the channels the carrier uses."""
    marker = Watermarker(config)
    frames = frames_720p(clips / "s18.mp4", 4) + frames_720p(clips / "short_hamilton_clip.mp4", 4)
    differ = total = 0
    for image, offset in zip(frames, _half_offsets(frames, marker), strict=True):
        offset = offset * np.float32(3.0)
        for min_level in (1.0, 0.0):
            want = marker._add_rounded(
                image, cv2.resize(offset, (1280, 720), interpolation=cv2.INTER_LINEAR), min_level
            )
            got = marker._add_upsampled(image, offset, min_level)
            assert got.shape == want.shape and got.dtype == np.uint8
            gap = np.abs(got.astype(np.int16) - want.astype(np.int16))
            assert gap.max() <= 1
            differ += int(np.count_nonzero(gap.max(axis=2)))
            total += image.shape[0] * image.shape[1]
            if config is HUSH:  # the chroma carrier: green and red as they were
                assert np.array_equal(got[:, :, 1:], image[:, :, 1:])
            assert np.count_nonzero(want != image) > 0.05 * image.size // 3
    assert differ <= 5e-6 * total


def test_the_compiled_add_scales_any_size(clips: Path) -> None:
    """A frame whose half size is not half of it (1279 x 719: ``_half_size`` rounds up) and an offset of another size
    altogether: the compiled pass's taps are ``cv2.resize``'s (at the edges too), to one level in a few pixels."""
    image = np.ascontiguousarray(frames_720p(clips / "s18.mp4", 1)[0][:719, :1279])
    marker = Watermarker(HUSH)
    rng = np.random.default_rng(5)
    for size in (_half_size(1279, 719), (333, 201), (1279, 719)):
        offset = (rng.standard_normal((size[1], size[0])) * 4.0).astype(np.float32)
        want = marker._add_rounded(image, cv2.resize(offset, (1279, 719), interpolation=cv2.INTER_LINEAR), 1.0)
        got = marker._add_upsampled(image, offset, 1.0)
        gap = np.abs(got.astype(np.int16) - want.astype(np.int16))
        assert gap.max() <= 1 and np.count_nonzero(gap) <= 30
