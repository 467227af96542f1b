"""Blending: the mask's shape and ramps, colour matching on skin, a paste that touches nothing else."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.compose.blend import (
    BlendConfig,
    apply_gains,
    colour_gains,
    composite,
    face_alpha,
    face_alpha_small,
    skin_mask,
)
from engines.face.topology import EYE_OPENING, LEFT_EYE, LIPS, MOUTH_OPENING, RIGHT_EYE
from engines.swap.mesh import MeshSwapper, SwapConfig
from tests.face_helpers import photo_mesh

_WINDOW_SIZE = SwapConfig(work_px=1024)
"""The mask is made at the window's size and compared with the labels there: a work size the photos' faces fit in."""


def _geometry(detector, mesh, faces: Path, name: str = "obama.jpg", scale: float = 1.0):  # type: ignore[no-untyped-def]
    image, lm = photo_mesh(detector, mesh, faces / name)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        lm = lm * scale
    geometry = MeshSwapper(_WINDOW_SIZE).geometry(image, lm)
    assert geometry is not None
    return image, lm, geometry


def test_mask_covers_the_face_not_the_kept_openings(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    _, lm, g = _geometry(detector, mesh, faces)
    labels = g.labels()
    alpha = face_alpha(g, keep_eyes=True, keep_mouth=True)
    assert alpha.shape == labels.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert (alpha[labels < 0] == 0).all()  # nothing outside the face
    # The actor's eye, but for its rim (``hole_grow`` < 0: the identity's lash line overlaps it).
    rim_px = -BlendConfig().hole_grow * g.face_scale_px
    for contour in (RIGHT_EYE, LEFT_EYE):
        inside = _polygon_distance(lm[list(contour), :2] - (g.window.x0, g.window.y0), alpha.shape)
        assert (inside > rim_px + 0.5).sum() > 50 and (alpha[inside > rim_px + 0.5] == 0).all()
        assert alpha[(inside > 0) & (inside < rim_px)].mean() > 0.05
    # ... but only the eye: a short way out of the opening the lids and lash line are the identity's.
    eyes = labels == EYE_OPENING
    from_eye = cv2.distanceTransform((~eyes).astype(np.uint8), cv2.DIST_L2, 3) / g.face_scale_px
    lids = (from_eye > 0.05) & (from_eye < 0.07) & (labels >= 0)
    assert lids.sum() > 50 and alpha[lids].mean() > 0.95
    # The mouth opening is the actor's to its tracked contour (``mouth_grow`` 0), the identity's lips from there out.
    mouth = labels == MOUTH_OPENING
    centre = np.round(lm[[13, 14], :2].mean(axis=0)).astype(int) - (g.window.x0, g.window.y0)
    assert alpha[centre[1], centre[0]] == 0.0 and alpha[mouth].mean() < 0.05
    unit = g.face_scale_px
    from_mouth = cv2.distanceTransform((~mouth).astype(np.uint8), cv2.DIST_L2, 3) / unit
    inner_lips = (from_mouth > 0.04) & (from_mouth < 0.06) & (labels == LIPS)
    assert inner_lips.sum() > 20 and alpha[inner_lips].mean() > 0.9
    # Shrunk (negative), the identity's lips cover the opening's rim.
    shrunk = face_alpha(g, True, True, BlendConfig(mouth_grow=-0.02))
    rim = cv2.distanceTransform(mouth.astype(np.uint8), cv2.DIST_L2, 3) < 0.01 * unit
    assert shrunk[mouth & rim].mean() > shrunk[mouth & ~rim].mean() + 0.2
    grown = face_alpha(g, True, True, BlendConfig(mouth_grow=0.02, mouth_feather=0.06))
    assert (grown[mouth] < 0.05).all()
    cheek = np.round(lm[50, :2]).astype(int) - (g.window.x0, g.window.y0)
    assert alpha[cheek[1], cheek[0]] == 1.0
    # Not keeping them: the openings are painted too; keeping the lips leaves them to the actor.
    open_alpha = face_alpha(g, keep_eyes=False, keep_mouth=False)
    assert open_alpha[labels == EYE_OPENING].mean() > 0.9
    lips_kept = face_alpha(g, True, True, BlendConfig(keep_lips=True))
    assert lips_kept[labels == LIPS].mean() < 0.2 < alpha[labels == LIPS].mean()


def test_feathering_scales_with_the_face(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    def ramp_px(scale: float) -> float:
        _, _, g = _geometry(detector, mesh, faces, scale=scale)
        alpha = face_alpha(g, True, True)
        ramp = (alpha > 0.02) & (alpha < 0.98) & (g.labels() >= 0)
        return float(ramp.sum()) / float((g.labels() >= 0).sum())

    # The ramp covers the same share of the face at any size (it is measured in face units).
    assert abs(ramp_px(1.0) - ramp_px(0.5)) < 0.04


def test_colour_match_moves_skin_to_the_actor_and_keeps_dark_features_dark() -> None:
    rng = np.random.default_rng(3)
    face = np.clip(rng.normal((120, 150, 200), 6, (60, 80, 3)), 0, 255).astype(np.uint8)  # warm skin
    face[:10] = 30  # a dark brow band
    actor = np.clip(rng.normal((150, 150, 150), 6, (60, 80, 3)), 0, 255).astype(np.uint8)  # grey-ish skin
    skin = np.ones((60, 80), bool)
    skin[:10] = False
    gains = colour_gains(face, actor, skin)
    assert gains is not None
    out = apply_gains(face, gains)
    mean_out = out[10:].reshape(-1, 3).mean(axis=0)
    assert np.abs(mean_out - actor[10:].reshape(-1, 3).mean(axis=0)).max() < 6
    assert out[:10].max() < 60  # gains, not offsets: the brow stays dark and is not tinted
    assert colour_gains(face, actor, skin, BlendConfig(colour_match=False)) is None
    assert colour_gains(face, actor, np.zeros_like(skin)) is None  # too little skin: nothing to match


def test_composite_changes_only_where_alpha_is_positive(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    image, _, g = _geometry(detector, mesh, faces)
    frame = image.copy()
    alpha = face_alpha(g, True, True)
    red = np.zeros((g.window.height, g.window.width, 3), np.uint8)
    red[..., 2] = 255
    composite(frame, g, red, alpha)
    changed = np.abs(frame.astype(int) - image.astype(int)).max(axis=2) > 0
    ys, xs = g.window.slices
    assert not changed[: g.window.y0].any() and not changed[g.window.y0 + g.window.height :].any()
    inside = changed[ys, xs]
    assert not inside[alpha == 0].any()
    assert inside[alpha > 0.01].mean() > 0.99
    small = face_alpha_small(g)
    assert skin_mask(g, small).sum() > 0.2 * (small > 0).sum()


def test_composite_blends_an_alpha_that_reaches_past_the_mesh(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    """The paste is limited to the mesh's box only when alpha is zero outside it: any other alpha (here half
    everywhere, the window's corners included) is blended wherever it is positive."""
    image, _, g = _geometry(detector, mesh, faces)
    frame = image.copy()
    alpha = np.full((g.window.height, g.window.width), 0.5, np.float32)
    white = np.full((g.window.height, g.window.width, 3), 255, np.uint8)
    composite(frame, g, white, alpha)
    ys, xs = g.window.slices
    expected = (image[ys, xs].astype(np.float32) + 255.0) / 2.0
    assert np.abs(frame[ys, xs].astype(np.float32) - expected).max() <= 1.0
    assert (frame[ys, xs][0, 0] > image[ys, xs][0, 0]).all() and (frame[ys, xs][-1, -1] > image[ys, xs][-1, -1]).all()


def _polygon_distance(polygon: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Reference signed distance of every pixel centre to a polygon (positive inside), by OpenCV."""
    contour = polygon.astype(np.float32).reshape(-1, 1, 2)
    h, w = shape[:2]
    return np.array(
        [[cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x in range(w)] for y in range(h)], np.float32
    )


def test_kept_eyes_are_cut_along_their_contour_at_full_resolution(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    # A close-up three times the photo's size: the geometry raster is then far coarser than the window,
    # and a cut taken from it would step along the lid. The ramp must follow the contour to the pixel.
    _, lm, g = _geometry(detector, mesh, faces, scale=3.0)
    assert g.window.width > 2.5 * g.small_size[1]
    cfg = BlendConfig(hole_grow=0.0)  # the ramp starts at the contour itself
    alpha = face_alpha(g, keep_eyes=True, keep_mouth=False, config=cfg)
    outline = face_alpha(g, keep_eyes=False, keep_mouth=False, config=cfg)
    feather = cfg.hole_feather * g.face_scale_px
    for contour in (RIGHT_EYE, LEFT_EYE):
        polygon = lm[list(contour), :2] - (g.window.x0, g.window.y0)
        x0, y0 = np.floor(polygon.min(axis=0) - feather - 3).astype(int)
        x1, y1 = np.ceil(polygon.max(axis=0) + feather + 3).astype(int)
        a, base = alpha[y0:y1, x0:x1], outline[y0:y1, x0:x1]
        outside = -_polygon_distance(polygon - (x0, y0), a.shape)
        assert (a[outside < -0.5] == 0).all()
        ring = (outside > 0) & (base > 0.99)
        # Half-way up the ramp exactly half-way out; one pixel (not one geometry pixel, ~3) of slack.
        half = ring & (np.abs(a - 0.5) < 0.05)
        assert half.sum() > 10
        assert np.abs(outside[half] - feather / 2).max() < 1.0
        assert (a[ring & (outside > feather + 0.5)] > 0.99).all()


def test_far_eye_behind_the_nose_leaves_the_nose_alone(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    image, lm, _ = _geometry(detector, mesh, faces)
    # Turn the head 70 degrees about its vertical axis (the landmarks' z is in pixels, like x and y): the
    # far eye's contour then lies partly behind the bridge of the nose.
    centre = lm.mean(axis=0)
    angle = np.radians(70.0)
    rot = np.array([[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]])
    turned = ((lm - centre) @ rot.T + centre).astype(np.float32)
    g = MeshSwapper(_WINDOW_SIZE).geometry(image, turned)
    assert g is not None
    alpha = face_alpha(g, keep_eyes=True, keep_mouth=False)
    outline = face_alpha(g, keep_eyes=False, keep_mouth=False)
    labels = g.labels()
    far = False
    for contour in (RIGHT_EYE, LEFT_EYE):
        inside = _polygon_distance(turned[list(contour), :2] - (g.window.x0, g.window.y0), alpha.shape) > 1.0
        seen = inside & (labels == EYE_OPENING)
        from_eye = cv2.distanceTransform((labels != EYE_OPENING).astype(np.uint8), cv2.DIST_L2, 3)
        hidden = inside & (labels >= 0) & (from_eye > 0.05 * g.face_scale_px)  # no eye shows near: hidden
        if hidden.sum() > 30:  # the far eye: the pixels in front of it keep the outline's alpha
            assert np.abs(alpha[hidden] - outline[hidden]).max() < 1e-6
            far = True
        assert (alpha[seen] < 0.05).all()
    assert far


def test_colour_gains_are_smoothed_per_face_kept_when_unmeasured_and_forgotten_with_the_face() -> None:
    from engines.compose.blend import ColourGains

    gains = ColourGains(time_constant_s=0.3)
    assert gains.current(1) is None and 1 not in gains and gains.smooth(1, 0.0, None) is None
    first = gains.smooth(1, 0.0, np.array([1.0, 1.0, 1.0]))
    assert first is not None and np.allclose(first, 1.0)  # a face's first gains are taken as measured
    moved = gains.smooth(1, 0.3, np.array([2.0, 1.0, 0.5]))
    assert moved is not None
    expected = 1.0 + (1.0 - np.exp(-1.0)) * (np.array([2.0, 1.0, 0.5]) - 1.0)  # one time constant later
    assert np.allclose(moved, expected)
    kept = gains.smooth(1, 0.4, None)  # nothing measured this frame: the last gains stand
    assert kept is not None and np.allclose(kept, moved)
    assert np.allclose(gains.smooth(1, 5.0, np.array([3.0, 3.0, 3.0])), 3.0)  # after a gap: taken as measured
    gains.smooth(2, 0.0, np.array([0.5, 0.5, 0.5]))
    gains.forget({2})
    assert 1 not in gains and 2 in gains


def test_the_compiled_openings_cut_equals_numpys_on_shared_clips(clips: Path, detector, mesh, store) -> None:  # type: ignore[no-untyped-def]
    """``cut_openings(fused=True)`` (the mask stage's default on the numpy backend: ``engines.fused.cut_opening``
    after each distance transform) leaves numpy's alpha to the bit — the same float32 signed distance, its
    ``INTER_AREA`` average in OpenCV's order of sums, the nearest-neighbour mask and the smoothstep — with the eyes
    and the mouth kept, the lips kept with them, and the eyes alone, on three frames each of d3, d10 and s18 (a
    ramp off by a pixel, or a sum in another order, changes the alpha in dozens of pixels)."""
    from engines.compose.blend import cut_openings
    from tests.face_helpers import swapped_faces

    identity = store.load("s1")
    compared = 0
    for clip, _, geometry, _ in swapped_faces(clips, detector, mesh, identity):
        outline = np.ascontiguousarray(geometry.to_window(face_alpha_small(geometry)))
        for keep_mouth, config in ((True, BlendConfig()), (True, BlendConfig(keep_lips=True)), (False, BlendConfig())):
            ref, got = outline.copy(), outline.copy()
            cut_openings(ref, geometry, True, keep_mouth, config)
            cut_openings(got, geometry, True, keep_mouth, config, fused=True)
            assert (ref < outline).sum() > 200, f"{clip}: the openings cut nothing: nothing compared"
            assert np.array_equal(got, ref), f"{clip}: {(got != ref).sum()} pixels, by {np.abs(got - ref).max()}"
            compared += 1
    assert compared == 27


def test_the_compiled_outline_alpha_equals_numpys_on_shared_clips(clips: Path, detector, mesh, store) -> None:  # type: ignore[no-untyped-def]
    """``face_alpha_small(fused=True)`` (the mask stage's default on the numpy backend: ``engines.fused.outline_alpha``
    after the distance transform) gives numpy's alpha to the bit — the outline's smoothstep over its per-pixel widths,
    times the photos' coverage ramp — with and without the coverage, on three frames each of d3, d10 and s18 (a
    Python number taken as float64, or the products in another order, moves the ramp's last bits in hundreds of
    pixels)."""
    from tests.face_helpers import swapped_faces

    identity = store.load("s1")
    compared = 0
    for clip, swapper, geometry, _ in swapped_faces(clips, detector, mesh, identity):
        seen = swapper.coverage_small(geometry, identity)
        for cover in (None, seen):
            ref, got = face_alpha_small(geometry, None, cover), face_alpha_small(geometry, None, cover, fused=True)
            ramp = (ref > 0.0) & (ref < 1.0)
            assert ramp.sum() > 100, f"{clip}: no ramp: nothing compared"
            assert got.dtype == np.float32 and got.shape == ref.shape
            assert np.array_equal(got, ref), f"{clip}: {(got != ref).sum()} pixels, by {np.abs(got - ref).max()}"
            compared += 1
        assert not np.array_equal(face_alpha_small(geometry, None, seen, fused=True), face_alpha_small(geometry))
    assert compared == 18


def test_the_compiled_colour_gains_equal_numpys_on_shared_clips(clips: Path, detector, mesh, store) -> None:  # type: ignore[no-untyped-def]
    """``colour_gains(fused=True)`` (numpy's backend's default: ``engines.fused.skin_means``) gives numpy's gains to
    the bit — the same skin pixels (every n // 4000-th past 4000) summed in the same order — on the identity's
    texture against the actor on three frames each of d3, d10 and s18, on those scaled up past 4000 skin pixels,
    and None on too little skin (a pixel more or less in the sample moves the gains by 1e-6 or more)."""
    from tests.face_helpers import swapped_faces

    identity = store.load("s1")
    compared = 0
    for clip, swapper, geometry, actor in swapped_faces(clips, detector, mesh, identity):
        hs, ws = geometry.small_size
        face = cv2.resize(swapper.render(geometry, identity, "texture"), (ws, hs), interpolation=cv2.INTER_AREA)
        skin = skin_mask(geometry, face_alpha_small(geometry))
        big = [cv2.resize(a, (4 * ws, 4 * hs), interpolation=cv2.INTER_NEAREST) for a in (face, actor)]
        big_skin = cv2.resize(skin.view(np.uint8), (4 * ws, 4 * hs), interpolation=cv2.INTER_NEAREST) > 0
        assert big_skin.sum() > 4000, f"{clip}: no subsample: nothing compared"
        for args in ((face, actor, skin), (*big, big_skin)):
            ref, got = colour_gains(*args), colour_gains(*args, None, True)
            assert ref is not None and got is not None and np.abs(ref - 1.0).max() > 1e-3, clip
            assert np.array_equal(got, ref), f"{clip}: {got} against {ref}"
            compared += 1
        few = np.zeros_like(skin)
        few.reshape(-1)[np.flatnonzero(skin)[:49]] = True
        assert colour_gains(face, actor, few, None, True) is None and colour_gains(face, actor, few) is None
    assert compared == 18
