"""The light's compiled measure (``engines.light.fused``) equals ``skin_samples`` + ``estimate_sh``.

``FaceRelighter(fused=True)`` (what ``ProcessorConfig(fused=True)``, the default, builds) takes the skin samples and
the fit's sums in two compiled loops; ``skin_samples`` and ``estimate_sh`` are the reference. Tolerance, on the
faces of three shared clips measured as the relight stage measures them (the actor at geometry resolution, its skin
well inside the mask): **the same samples** (count, linear colours, SH basis to 1e-12) and the fitted light within
1e-7 of its largest coefficient (the sums' order differs from numpy's matrix products; measured ~2e-9). A sample
taken or left wrongly (a stride, the clipped or dark test, the colour order) moves the fit by 1e-3 or more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engines.compose.blend import face_alpha_small, skin_mask
from engines.face.tracker import FaceTracker
from engines.identity.store import IdentityStore
from engines.light import fused
from engines.light.relight import (
    _U8_TO_LINEAR,
    DEFAULT_REG,
    FACE_BAND_PENALTY,
    FaceRelighter,
    estimate_sh,
    estimate_skin_sh,
    skin_samples,
)
from engines.light.sh import BASIS_CONSTANTS64, sh_basis
from engines.resample import shrink
from engines.swap.mesh import MeshSwapper
from tests.face_helpers import clip_frames

CLIPS = ("d3.mp4", "d10.mp4", "s18.mp4")
FRAMES = 3


@pytest.fixture(scope="module")
def skin(clips: Path, detector, mesh, store: IdentityStore) -> list[tuple[str, np.ndarray, np.ndarray, np.ndarray]]:  # type: ignore[no-untyped-def]
    """Per clip and frame: (name, the actor at geometry resolution, its normals, its skin mask), as the mask stage
    makes them for the relight's measure."""
    identity = store.load("s1")
    out = []
    for clip in CLIPS:
        tracker, swapper = FaceTracker(detector, mesh), MeshSwapper(fused=True)
        for i, (image, t_s) in enumerate(clip_frames(clips / clip, FRAMES)):
            faces = tracker.update(image, t_s)
            assert faces, f"{clip} frame {i}: no face"
            geometry = swapper.geometry(image, faces[0].landmarks, faces[0].id, t_s, identity, 1.0)
            assert geometry is not None
            hs, ws = geometry.small_size
            actor = shrink(geometry.to_work(swapper.actor_window(image, geometry)), (ws, hs))
            mask = skin_mask(geometry, face_alpha_small(geometry))
            out.append((f"{clip}#{i}", actor, geometry.normals_small, mask))
    return out


def test_the_kernel_takes_the_samples_skin_samples_takes(skin) -> None:  # type: ignore[no-untyped-def]
    for name, actor, normals, mask in skin:
        colours, nrm = skin_samples(actor, normals, mask)
        assert colours.shape[0] > 500, f"{name}: little skin: nothing compared"
        basis, got, used, _, _ = fused.skin_system(actor, normals, mask, _U8_TO_LINEAR, BASIS_CONSTANTS64, 3000)
        assert got.shape == colours.shape and used.all(), name
        np.testing.assert_array_equal(got, colours, err_msg=name)
        np.testing.assert_allclose(basis, sh_basis(nrm), rtol=0, atol=1e-12, err_msg=name)


def test_the_fused_fit_equals_estimate_sh_on_shared_clips(skin) -> None:  # type: ignore[no-untyped-def]
    for name, actor, normals, mask in skin:
        colours, nrm = skin_samples(actor, normals, mask)
        ref = estimate_sh(colours, nrm, reg=DEFAULT_REG, penalty=FACE_BAND_PENALTY)
        got = estimate_skin_sh(actor, normals, mask, DEFAULT_REG, FACE_BAND_PENALTY, 64)
        assert got is not None, name
        assert np.abs(got - ref).max() <= 1e-7 * np.abs(ref).max(), name
        # Without the trim the fit differs (the kernel's trim is not a no-op on real faces).
        untrimmed = estimate_sh(colours, nrm, reg=DEFAULT_REG, penalty=FACE_BAND_PENALTY, trim=None)
        assert np.abs(untrimmed - ref).max() > 1e-5 * np.abs(ref).max(), name


def test_the_relighters_measure_is_the_same_fused_or_not(skin) -> None:  # type: ignore[no-untyped-def]
    relighters = [FaceRelighter(fused=False), FaceRelighter(fused=True)]
    for k, (name, actor, normals, mask) in enumerate(skin):
        lights = [r.measure_skin(0, k / 30.0, actor, normals, mask) for r in relighters]
        assert lights[0] is not None and lights[1] is not None, name
        assert np.abs(lights[1] - lights[0]).max() <= 1e-7 * np.abs(lights[0]).max(), name


def test_the_kernel_leaves_out_clipped_dark_and_weightless_samples(skin) -> None:  # type: ignore[no-untyped-def]
    _, actor, normals, mask = skin[0]
    actor, normals = actor.copy(), normals.copy()
    rows, cols = np.nonzero(mask)
    actor[rows[::7], cols[::7]] = (255, 250, 10)  # clipped in one channel
    actor[rows[3::11], cols[3::11]] = 2  # far under a tenth of the median's luminance
    normals[rows[5::13], cols[5::13], 0] = np.nan  # a non-finite normal: no weight, as in estimate_sh
    colours, nrm = skin_samples(actor, normals, mask)
    basis, got, used, _, _ = fused.skin_system(actor, normals, mask, _U8_TO_LINEAR, BASIS_CONSTANTS64, 3000)
    assert got.shape[0] == colours.shape[0] and not used.all() and used.sum() > 100
    assert not (got[used] == _U8_TO_LINEAR[2]).all(axis=1).any()  # no dark sample left
    assert not (got[used] == _U8_TO_LINEAR[[10, 250, 255]]).all(axis=1).any()  # nor a clipped one (RGB)
    assert (got[~used] == 0).all()  # the weightless rows count for nothing in the sums, as in estimate_sh
    ref = estimate_sh(colours, nrm, reg=DEFAULT_REG, penalty=FACE_BAND_PENALTY)
    fit = estimate_skin_sh(actor, normals, mask, DEFAULT_REG, FACE_BAND_PENALTY, 64)
    assert fit is not None and np.abs(fit - ref).max() <= 1e-7 * np.abs(ref).max()
    # Too little skin: no light (the relighter keeps its last one), as ``FaceRelighter.measure`` does.
    few = np.zeros_like(mask)
    few[rows[:40], cols[:40]] = True
    assert estimate_skin_sh(actor, normals, few, DEFAULT_REG, FACE_BAND_PENALTY, 64) is None
