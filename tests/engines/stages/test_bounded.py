"""The mask made at the work size (``SwapConfig.bounded``, issue 20) against the mask made at the window's size.

With ``bounded`` the mask stage makes a close-up's alpha — the outline's ramp, the kept eyes' and mouth's cut,
occlusion — at the face's work size, and the paste scales it up to the window with the face, in the same pass
(``engines.fused.paste_face``); without it, the ramp is scaled to the window first and the openings are cut there.
Both are the same ramps over the same contours, so the frames differ only where the alpha's slope is: a cut's ramp
a few window pixels wide drawn on a grid 1.7-2.6 times coarser and scaled up (its smoothstep then a few straight
segments), the outline's ramp through one bilinear resize more.

Tolerance, on whole output frames (uint8, the watermark off) and in the face's window (the box of every pixel the
swap changed), measured on three frames each of the shared clips with the faces' work size under their windows
(``work_px`` 160 on d3/d10/s18: a reduction by ~2; the default 288 on 720p and 1080p close-ups of s18, framed as
``bench_swap --closeup`` frames them): **in the window at least 98.5% of the pixels within 3 levels (measured
99.1-99.7%) and under 0.25 levels on average (0.06-0.15); over the frame under 0.1 on average (0.01-0.06); at
most 64 anywhere (22-44)**. The largest differences, tens of levels at a few pixels, are where a lash line or the
lips' rim meets a kept opening: the ramp there moves by a fraction of a work pixel. A cut at the wrong place (a
scale or an offset wrong: the openings a work pixel off) moves hundreds of pixels along each contour by tens of
levels; an alpha scaled up wrongly in the paste, the whole face.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks.closeup import closeup_crop, face_boxes
from engines.compose.blend import BlendConfig, alpha_box, composite, cut_openings, paste_face, window_box
from engines.compose.watermark import WatermarkConfig
from engines.identity.store import IdentityStore
from engines.processor import FaceProcessor, ProcessorConfig
from engines.settings import ProcessSettings
from engines.swap.mesh import SwapConfig
from tests.face_helpers import clip_frames, processed_frames

FRAMES = 3
SWAP = ProcessSettings(identity="s1")
NEAR_LEVELS, NEAR_SHARE, WINDOW_MEAN_LEVELS, MEAN_LEVELS, MAX_LEVELS = 3, 0.985, 0.25, 0.1, 64


def _closeup(frames: list[tuple[np.ndarray, float]], height: int, models_dir: Path) -> list[tuple[np.ndarray, float]]:
    """``frames`` framed as ``bench_swap --closeup`` frames them: the face 60% of a 16:9 frame ``height`` px high."""
    h0, w0 = frames[0][0].shape[:2]
    width = round(height * 16 / 9) // 2 * 2
    crop = closeup_crop((w0, h0), face_boxes([f for f, _ in frames], models_dir), width / height)
    return [(crop.apply(image, (width, height)), t) for image, t in frames]


@pytest.fixture(scope="module")
def cases(clips: Path, models_dir: Path) -> list[tuple[str, list[tuple[np.ndarray, float]], int]]:
    """(name, frames, work_px): three shared clips with a small work size, and two close-ups at the default."""
    out = [(clip, clip_frames(clips / clip, FRAMES), 160) for clip in ("d3.mp4", "d10.mp4", "s18.mp4")]
    s18 = clip_frames(clips / "s18.mp4", FRAMES)
    out += [(f"s18 close-up {h}p", _closeup(s18, h, models_dir), SwapConfig().work_px) for h in (720, 1080)]
    return out


def test_the_work_size_mask_stays_near_the_window_size_mask_on_shared_clips(
    store: IdentityStore, cases: list[tuple[str, list[tuple[np.ndarray, float]], int]], models_dir: Path
) -> None:
    measured: list[str] = []
    for name, frames, work_px in cases:
        configs = [
            ProcessorConfig(swap=SwapConfig(work_px=work_px, bounded=b), watermark=WatermarkConfig(enabled=False))
            for b in (False, True)
        ]
        processors = [FaceProcessor.from_models(models_dir, c, store) for c in configs]
        expected, got = (processed_frames(p, frames, SWAP) for p in processors)
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16)).max(axis=-1)
        changed = np.abs(expected.astype(np.int16) - np.stack([f for f, _ in frames])).max(axis=-1) > 8
        # The face's window: every pixel the swap changed, and around them.
        rows, cols = np.nonzero(changed.any(axis=0))
        window = diff[:, rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        near = float((window <= NEAR_LEVELS).mean())
        measured.append(
            f"{name}: max {diff.max()}, in the window <= {NEAR_LEVELS}: {near:.4f}, mean {window.mean():.3f}; "
            f"mean over the frame {diff.mean():.4f}"
        )
        assert changed.mean() > 0.005, f"{name}: the swap drew (almost) nothing: nothing compared"
        assert diff.max() > 0, f"{name}: the two masks are the same: the work size was not under the window"
        assert diff.max() <= MAX_LEVELS and near >= NEAR_SHARE, measured[-1]
        assert diff.mean() < MEAN_LEVELS and window.mean() < WINDOW_MEAN_LEVELS, measured[-1]
    print("\n".join(measured))


def test_the_paste_scales_a_work_size_alpha_up_as_the_reference_does(clips: Path, detector, mesh, store) -> None:  # type: ignore[no-untyped-def]
    """``paste_face`` with the alpha at the work size (the kept openings cut there, ``cut_openings`` on a work-size
    grid) against the reference, ``composite`` of the face and the alpha each scaled to the window by
    ``cv2.resize``: within a level (bilinear weights in float against cv2's; one rounding against two), and no pixel
    changed outside the window box ``window_box`` gives (the scaled-up alpha is zero there)."""
    from engines.compose.blend import face_alpha_small
    from engines.face.tracker import FaceTracker
    from engines.swap.mesh import MeshSwapper

    identity = store.load("s1")
    tracker, swapper = FaceTracker(detector, mesh), MeshSwapper(SwapConfig(work_px=160, bounded=True), fused=True)
    rng = np.random.default_rng(3)
    for image, t_s in clip_frames(clips / "s18.mp4", 2):
        face = tracker.update(image, t_s)[0]
        geometry = swapper.geometry(image, face.landmarks, face.id, t_s, identity, 1.0)
        assert geometry is not None and geometry.reduced and geometry.mask_size == geometry.work_size
        alpha = geometry.to_mask(face_alpha_small(geometry, BlendConfig()))
        cut_openings(alpha, geometry, True, True, BlendConfig(), fused=True)
        assert alpha.shape == geometry.work_size and 0.0 < alpha.mean() < 1.0
        work_face = rng.integers(0, 256, (*geometry.work_size, 3), dtype=np.uint8)
        expected, got = image.copy(), image.copy()
        composite(expected, geometry, geometry.to_window(work_face), alpha)
        paste_face(got, geometry, work_face, None, alpha)
        diff = np.abs(got.astype(np.int16) - expected.astype(np.int16))
        assert diff.max() <= 1 and diff.mean() < 0.05, (diff.max(), diff.mean())
        assert np.abs(got.astype(np.int16) - image).max(axis=-1).mean() > 0.5  # pasted: something to compare
        box = alpha_box(geometry, alpha)
        assert box is not None
        ys, xs = window_box(box, alpha.shape, geometry)
        inside = np.zeros(image.shape[:2], bool)
        wy, wx = geometry.window.slices
        inside[wy, wx][ys, xs] = True
        assert np.array_equal(got[~inside], image[~inside])
