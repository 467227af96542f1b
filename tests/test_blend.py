"""Blending: the mask's shape and ramps, colour matching on skin, a paste that touches nothing else."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.blend import BlendConfig, composite, face_alpha, face_alpha_small, match_colour, skin_mask
from engines.swap.mesh import MeshSwapper
from engines.topology import EYE_OPENING, LIPS, MOUTH_OPENING
from tests.face_helpers import photo_mesh


def _geometry(detector, mesh, faces: Path, name: str = "obama.jpg", scale: float = 1.0):  # type: ignore[no-untyped-def]
    image, lm = photo_mesh(detector, mesh, faces / name)
    if scale != 1.0:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        lm = lm * scale
    geometry = MeshSwapper().geometry(image, lm)
    assert geometry is not None
    return image, lm, geometry


def test_mask_covers_the_face_not_the_kept_openings(detector, mesh, faces: Path) -> None:  # type: ignore[no-untyped-def]
    _, lm, g = _geometry(detector, mesh, faces)
    labels = g.labels()
    alpha = face_alpha(g, keep_eyes=True, keep_mouth=True)
    assert alpha.shape == labels.shape and alpha.dtype == np.float32
    assert alpha.min() >= 0.0 and alpha.max() <= 1.0
    assert (alpha[labels < 0] == 0).all()  # nothing outside the face
    assert (alpha[labels == EYE_OPENING] < 0.05).all()
    # ... but only the eye: a short way out of the opening the lids and lash line are the identity's.
    eyes = labels == EYE_OPENING
    from_eye = cv2.distanceTransform((~eyes).astype(np.uint8), cv2.DIST_L2, 3) / g.face_scale_px
    lids = (from_eye > 0.05) & (from_eye < 0.07) & (labels >= 0)
    assert lids.sum() > 50 and alpha[lids].mean() > 0.95
    # The mouth opening is kept but for its rim, which the identity's lips cover (``mouth_grow`` < 0).
    mouth = labels == MOUTH_OPENING
    centre = np.round(lm[[13, 14], :2].mean(axis=0)).astype(int) - (g.window.x0, g.window.y0)
    assert alpha[centre[1], centre[0]] == 0.0 and alpha[mouth].mean() < 0.4
    unit = g.face_scale_px
    rim = cv2.distanceTransform(mouth.astype(np.uint8), cv2.DIST_L2, 3) < 0.01 * unit
    assert alpha[mouth & rim].mean() > alpha[mouth & ~rim].mean() + 0.2
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
    out = match_colour(face, actor, skin)
    mean_out = out[10:].reshape(-1, 3).mean(axis=0)
    assert np.abs(mean_out - actor[10:].reshape(-1, 3).mean(axis=0)).max() < 6
    assert out[:10].max() < 60  # gains, not offsets: the brow stays dark and is not tinted
    assert match_colour(face, actor, skin, BlendConfig(colour_match=False)) is face
    assert match_colour(face, actor, np.zeros_like(skin)) is face  # too little skin: unchanged


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
    small = face_alpha_small(g, True, True)
    assert skin_mask(g, small).sum() > 0.2 * (small > 0).sum()
