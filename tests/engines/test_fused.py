"""The compiled kernels of the CPU path (``engines.fused``) equal the numpy/cv2 passes they fuse.

``ProcessorConfig(fused=True)`` (the default) relights each face and pastes it (the seam's gains, the scale to the
window, the composite) in one compiled pass each; ``fused=False`` runs the numpy/cv2 functions pass by pass, the
reference. Tolerance, on whole output frames of three shared clips (uint8, the watermark off): **at most 2 levels
at 99.9% of the pixels, at most 8 anywhere, under 0.15 levels on average**. The kernels sample bilinearly in
float and round once, where OpenCV rounds each pass to uint8 and its uint8 bilinear resize truncates on the way
(a face scaled up to its window comes out 0-1 level darker there: 12% of a random image's pixels one level
lower, none higher); so a level where the face is scaled up (d3's face is, its work size 400 px: 10% of its
frame one level brighter, mean 0.10 over the frame) and a level here and there elsewhere (s18: 0.0005). The few
pixels that could pass 2 are the seam's, whose field is measured on the relit face: a pixel a level apart can
cross its skin test at the skin's edge and move the local gain there (``tests/engines/stages/test_torch_stages``
saw up to 20 levels so between torch and numpy). A wrong kernel (a channel or an axis swapped, the gain applied
twice or not at all, the face pasted a pixel off) moves most of a face by many levels and fails the first two
bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.compose.watermark import WatermarkConfig
from engines.identity.store import IdentityStore
from engines.light.relight import relight_face
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings, RelightTarget
from engines.swap.mesh import SwapConfig
from tests.face_helpers import clip_frames, processed_frames

CLIPS = ("d3.mp4", "d10.mp4", "s18.mp4")
FRAMES = 3
SWAP = ProcessSettings(identity="s1")
KEY_LIGHT = RelightTarget("direction", direction=(1, 0, 0.3))
CASES = [  # (clip, settings, config): every clip swapped and relit, each other path on one clip
    *((clip, "swap", SWAP, {}) for clip in CLIPS),
    # A chosen light: the actor's own relit face pasted under the swap (its own paste, no seam gains).
    ("d3.mp4", "key light", ProcessSettings(identity="s1", relight_target=KEY_LIGHT), {}),
    ("d10.mp4", "unrelit", ProcessSettings(identity="s1", relight=False), {}),  # the texture, gains in a pass
    # A work size under the window (as at a close-up): the paste scales the face up.
    # The mask at that work size too (``bounded``, the default): the paste scales the alpha up with the face.
    ("s18.mp4", "work 160 px", SWAP, {"swap": SwapConfig(work_px=160)}),
    ("d10.mp4", "work 160 px", SWAP, {"swap": SwapConfig(work_px=160)}),
    ("s18.mp4", "work 160 px, window-size mask", SWAP, {"swap": SwapConfig(work_px=160, bounded=False)}),
]
NEAR_LEVELS, NEAR_SHARE, MAX_LEVELS, MEAN_LEVELS = 2, 0.999, 8, 0.15


@pytest.fixture(scope="module")
def frames(clips: Path) -> dict[str, list[tuple[np.ndarray, float]]]:
    return {clip: clip_frames(clips / clip, FRAMES) for clip in CLIPS}


def test_fused_processor_equals_the_numpy_passes_on_shared_clips(
    store: IdentityStore, frames: dict[str, list[tuple[np.ndarray, float]]], models_dir: Path
) -> None:
    measured: list[str] = []
    for clip, name, settings, extra in CASES:
        configs = [ProcessorConfig(fused=f, watermark=WatermarkConfig(enabled=False), **extra) for f in (False, True)]
        processors = [FaceProcessor.from_models(models_dir, c, store) for c in configs]
        expected, got = (processed_frames(p, frames[clip], settings) for p in processors)
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max(axis=-1)
        changed = np.abs(expected.astype(np.int16) - np.stack([f for f, _ in frames[clip]])).max(axis=-1) > 8
        near = float((diff <= NEAR_LEVELS).mean())
        measured.append(f"{clip}/{name}: max {diff.max()}, <= {NEAR_LEVELS}: {near:.6f}, mean {diff.mean():.5f}")
        assert changed.mean() > 0.005, f"{clip}/{name}: the swap drew (almost) nothing: nothing compared"
        assert diff.max() <= MAX_LEVELS and near >= NEAR_SHARE and diff.mean() < MEAN_LEVELS, measured[-1]
    print("\n".join(measured))


@pytest.mark.parametrize("albedo", [False, True], ids=["ratio", "albedo"])
def test_fused_relight_equals_relight_face(albedo: bool) -> None:
    """``relight_face(fused=True)`` against its own passes, on a random window, mask, light and coarse normal grid
    (the relight stage's case): within a level (the field's bilinear weights in float against cv2's; the product
    rounded at the same place), equal outside the mask."""
    rng = np.random.default_rng(7)
    h, w = 90, 70
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    normals = rng.normal(size=(23, 18, 3)).astype(np.float32)
    normals[:3] = 0.0  # no face there: filled from the neighbours as the stage's grid is
    normals /= np.maximum(np.linalg.norm(normals, axis=-1, keepdims=True), 1e-6)
    mask = np.zeros((h, w), bool)
    mask[10:80, 8:60] = rng.random((70, 52)) > 0.2
    source, target = rng.uniform(0.1, 0.5, (9, 3)), rng.uniform(0.1, 0.5, (9, 3))
    source[0] = target[0] = 1.0  # enough ambient light that the ratio is not the floor everywhere
    lit = rng.uniform(0.0, 1.2, (h, w, 3)).astype(np.float32) if albedo else None
    expected = relight_face(image, normals, mask, source, target, lit)
    got = relight_face(image, normals, mask, source, target, lit, fused=True)
    diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
    assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
    assert np.array_equal(got[~mask], image[~mask])
    assert np.abs(got[mask].astype(np.int16) - image[mask]).mean() > 5  # relit: something to compare


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_across_is_the_two_tap_blend_to_the_bit(dtype: type) -> None:
    """``engines.fused._across`` (every source element's value and step to the next pixel made once a row, then
    gathered) gives exactly ``low + f (high - low)`` in float32 at ``_taps``' taps, the form every kernel that
    scales a row across (the paste, the relight) was written and tested in: scaling up, down, by one, and at the
    clamped edges (where ``hi`` is ``lo`` and the weight 0)."""
    from engines import fused

    rng = np.random.default_rng(20)
    for src_w, dst_w in ((249, 650), (650, 249), (7, 7), (2, 31), (31, 2)):
        row = (rng.random(src_w * 3) * 255).astype(dtype)
        lo, hi, w = fused._taps(dst_w, src_w)
        out = np.empty(dst_w * 3, np.float32)
        fused._across(row, lo, hi, w, out)
        low = row.astype(np.float32).reshape(src_w, 3)[lo]
        high = row.astype(np.float32).reshape(src_w, 3)[hi]
        expected = low + w[:, None] * (high - low)
        assert np.array_equal(out.reshape(dst_w, 3), expected), (src_w, dst_w, dtype)
