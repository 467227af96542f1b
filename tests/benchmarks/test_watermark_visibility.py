"""The colour visibility map of issue 24's watermark bound (``benchmarks.watermark_visibility.scielab_map``): plain
CIE L*a*b* on uniform patches, the eye's blur of fine colour detail, and the verdict on a real wall."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np

from benchmarks.watermark_visibility import (
    SCIELAB_JND,
    added_blocks,
    pick_crops,
    scielab_blocks,
    scielab_map,
)
from engines.compose.watermark import COARSE, Watermarker

WID = 0x5EC0DE42


def _lab(bgr: tuple[int, int, int]) -> np.ndarray:
    """OpenCV's own sRGB (D65) -> L*a*b* of one colour: an independent reference for the map's conversion."""
    patch = np.array([[bgr]], np.float32) / 255.0
    return cv2.cvtColor(patch, cv2.COLOR_BGR2Lab)[0, 0].astype(np.float64)


def test_uniform_patches_read_their_cie76_difference() -> None:
    """On uniform patches the spatial filters change nothing (each channel's weights sum to 1): the map is the
    ordinary Delta E*ab, as OpenCV computes it; with the contrast raised 3x about the first patch, three times the
    difference in levels (here a small one, where L*a*b* is close to linear)."""
    for a, b in (
        ((128, 128, 128), (131, 128, 128)),
        ((40, 70, 110), (40, 72, 110)),
        ((200, 180, 160), (200, 180, 163)),
    ):
        pa, pb = np.full((48, 48, 3), a, np.uint8), np.full((48, 48, 3), b, np.uint8)
        delta = scielab_map(pa, pb, gain=1.0)
        expected = float(np.linalg.norm(_lab(a) - _lab(b)))
        assert np.allclose(delta, expected, rtol=0.02, atol=0.02), (a, b, float(delta.mean()), expected)
        tripled = np.clip(np.array(a) + 3 * (np.array(b) - np.array(a)), 0, 255)
        assert abs(float(scielab_map(pa, pb).mean()) - np.linalg.norm(_lab(a) - _lab(tuple(tripled)))) < 0.05


def test_fine_colour_detail_is_blurred_and_fine_luma_detail_is_not() -> None:
    """The same +-2-level checkerboard of 4-px squares (~5 cycles a degree at 3 picture heights) on mid grey: in blue
    only it is seen far less than in B, G and R alike (luma: measured 0.015 against 0.21 Delta E); a blue-only tint
    over the whole patch is seen in full."""
    grey = np.full((64, 64, 3), 128, np.uint8)
    check = ((np.indices((64, 64)) // 4).sum(axis=0) % 2 * 4 - 2).astype(np.int16)
    blue, luma = grey.astype(np.int16), grey.astype(np.int16)
    blue[..., 0] += check
    luma += check[..., None]
    blue_seen = float(scielab_map(grey, blue.astype(np.uint8), gain=1.0)[16:48, 16:48].mean())
    luma_seen = float(scielab_map(grey, luma.astype(np.uint8), gain=1.0)[16:48, 16:48].mean())
    tint = grey.copy()
    tint[..., 0] += 2
    assert blue_seen < 0.3 * luma_seen, (blue_seen, luma_seen)
    assert float(scielab_map(grey, tint, gain=1.0).mean()) > 1.0  # 2 levels of blue: ~1.15 Delta E


def test_the_map_on_a_real_wall_and_through_a_codec(clips: Path) -> None:
    """On s18's flat office wall (the issue's report) today's mark is seen at 3x in most blocks and ``COARSE`` in
    at most 5%; what a codec does alike to both pictures adds nothing."""
    with av.open(str(clips / "s18.mp4")) as container:
        frames = [f.to_ndarray(format="bgr24") for _, f in zip(range(10), container.decode(video=0), strict=False)]
    flat = pick_crops(frames)[0]
    plain = flat.of(frames[5])
    seen = {
        name: float(np.mean(scielab_blocks(plain, flat.of(marker.apply(frames[5], WID))) >= SCIELAB_JND))
        for name, marker in (("standard", Watermarker()), ("coarse", Watermarker(COARSE)))
    }
    assert seen["standard"] > 0.5 and seen["coarse"] <= 0.05, seen
    blurred = cv2.GaussianBlur(plain, (0, 0), 1.0)  # a "codec" that softens both pictures the same way
    assert np.allclose(added_blocks(plain, blurred, blurred), 0.0)
