"""Blending a rendered face back into the frame: the mask, colour matching and the paste.

The mask comes from the mesh drawn for the swap (``FaceGeometry``): the covered face, minus the eye and
mouth openings the actor keeps. Its edges are ramps measured with a distance transform in the face's
own units — an inset and a wide ramp at the outline, so the swapped face fades into the actor's jaw,
temples and forehead without a line, and a short ramp around the kept openings, so the actor's eyes
sit in the identity's eyelids. Being a distance *inside* the mesh, the ramp never paints a pixel the
face does not cover: a face half out of the frame is blended only where it is.

Colour is matched on skin only (triangles away from brows, lips and eyelids, well inside the mask): the
rendered face's mean colour there is moved to the actor's by per-channel gains in linear light, which
removes any step in tone at the mask's edge and keeps the identity's own contrast (brows, freckles,
beard shadow).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.shlight import linear_to_srgb, srgb_to_linear
from engines.swap.mesh import FaceGeometry
from engines.topology import EYE_OPENING, LIPS, MOUTH_OPENING, SKIN, face_topology


@dataclass(frozen=True)
class BlendConfig:
    edge_inset: float = 0.0
    """The mask starts this far inside the face outline (eye-corner distances)."""
    edge_feather: float = 0.08
    """Width of the ramp from the actor to the swapped face at the outline (eye-corner distances): narrow
    at the jaw and cheeks, where the face ends anyway and the identity's outline matters most ..."""
    forehead_feather: float = 0.25
    """... and wide across the forehead, where the mesh stops in the middle of the skin."""
    hole_grow: float = 0.02
    """Kept eye openings are enlarged by this much (about one geometry pixel: the mask is upsampled from
    there, and no identity pixel may reach into the actor's eye) ..."""
    hole_feather: float = 0.03
    """... with a ramp this wide around them: narrow, so the gaze and blinks are the actor's but the lids
    and lash line around them the identity's (the actor's lids barely show through)."""
    mouth_grow: float = -0.02
    """The kept mouth opening is enlarged by this much (negative: shrunk, the identity's lips cover its
    rim) ..."""
    mouth_feather: float = 0.03
    """... with a ramp this wide around it."""
    keep_lips: bool = False
    """With ``keep_mouth``, keep the actor's lips too (speech looks natural with any identity photo, at
    some cost in likeness)."""
    seen_low: float = 0.1
    seen_high: float = 0.9
    """Photo coverage ramp: below ``seen_low`` the actor shows, above ``seen_high`` the identity."""
    colour_match: bool = True
    max_gain: float = 3.0
    """Largest per-channel colour correction (and smallest, as its inverse)."""


_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0)
_U8_TO_LINEAR.setflags(write=False)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@functools.cache
def _vertex_feather(edge: float, forehead: float) -> np.ndarray:
    """Per-vertex feather width: ``forehead`` above the brows (canonical y < -0.9), ``edge`` below them."""
    y = face_topology().canonical[:, 1].astype(np.float64)
    upper = _smoothstep((-y - 0.55) / 0.35)
    out = (edge + (forehead - edge) * upper).astype(np.float32)
    out.setflags(write=False)
    return out


def face_alpha(
    geometry: FaceGeometry,
    keep_eyes: bool,
    keep_mouth: bool,
    config: BlendConfig | None = None,
    seen: np.ndarray | None = None,
) -> np.ndarray:
    """(h, w) float32 0..1: how much of the rendered face replaces the actor at each window pixel
    (``face_alpha_small`` scaled to the window)."""
    return geometry.to_window(face_alpha_small(geometry, keep_eyes, keep_mouth, config, seen))


def face_alpha_small(
    geometry: FaceGeometry,
    keep_eyes: bool,
    keep_mouth: bool,
    config: BlendConfig | None = None,
    seen: np.ndarray | None = None,
) -> np.ndarray:
    """(hs, ws) float32 0..1 at geometry resolution: how much of the rendered face replaces the actor.

    ``seen``: the identity photos' coverage at geometry resolution (``MeshSwapper.coverage_small``, 0..1);
    where the photos did not see the face (its far side, or hair over it in the photo) the actor shows."""
    cfg = config or BlendConfig()
    labels = geometry.labels_small
    hs, ws = geometry.small_size
    unit = geometry.face_scale_px * ws / geometry.window.width  # eye-corner distance in small pixels
    covered = (labels >= 0).astype(np.uint8)
    # Pixels on the window border count as outside when the face continues past it (out of frame):
    # the ramp then starts at the frame edge, which is fine, but only where the face really is.
    inside_dist = cv2.distanceTransform(np.pad(covered, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    feather = geometry.raster.interpolate(_vertex_feather(cfg.edge_feather, cfg.forehead_feather), fill=1.0)
    # At least 1.5 small pixels of inset: the bilinear upsampling then cannot carry alpha past the face.
    inset = max(cfg.edge_inset * unit, 1.5)
    alpha = _smoothstep((inside_dist - inset) / np.maximum(feather * unit, 1e-3))
    if keep_eyes:
        alpha = alpha * _hole_ramp(labels == EYE_OPENING, cfg.hole_grow * unit, cfg.hole_feather * unit)
    if keep_mouth:
        mouth = (labels == MOUTH_OPENING) | ((labels == LIPS) if cfg.keep_lips else False)
        alpha = alpha * _hole_ramp(mouth, cfg.mouth_grow * unit, cfg.mouth_feather * unit)
    if seen is not None:
        alpha = alpha * _smoothstep((seen - cfg.seen_low) / (cfg.seen_high - cfg.seen_low))
    return alpha.astype(np.float32)


def _hole_ramp(holes: np.ndarray, grow_px: float, feather_px: float) -> np.ndarray:
    """0 in ``holes`` grown by ``grow_px`` (negative: shrunk), rising to 1 over ``feather_px`` beyond: a
    ramp on the signed distance to the hole's edge."""
    if not holes.any():
        return np.ones(holes.shape, np.float32)
    outside = cv2.distanceTransform((~holes).astype(np.uint8), cv2.DIST_L2, 3)
    inside = cv2.distanceTransform(np.pad(holes.astype(np.uint8), 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    return _smoothstep((outside - inside - grow_px) / max(feather_px, 1e-3)).astype(np.float32)


def skin_mask(geometry: FaceGeometry, alpha_small: np.ndarray) -> np.ndarray:
    """(hs, ws) bool at geometry resolution: skin well inside the mask, where light and colour are measured."""
    return (geometry.labels_small == SKIN) & (alpha_small > 0.6)


def colour_gains(
    face_bgr: np.ndarray, actor_bgr: np.ndarray, skin: np.ndarray, config: BlendConfig | None = None
) -> np.ndarray | None:
    """Per-channel gains (3,) in linear light that move ``face_bgr``'s mean colour on ``skin`` to
    ``actor_bgr``'s there; None when too little skin shows (or colour matching is off)."""
    cfg = config or BlendConfig()
    if not cfg.colour_match:
        return None
    idx = np.flatnonzero(skin)
    if idx.size < 50:
        return None
    if idx.size > 4000:
        idx = idx[:: idx.size // 4000]
    face_lin = _U8_TO_LINEAR[face_bgr.reshape(-1, 3)[idx]].mean(axis=0)
    actor_lin = _U8_TO_LINEAR[actor_bgr.reshape(-1, 3)[idx]].mean(axis=0)
    return np.clip(actor_lin / np.maximum(face_lin, 1e-4), 1.0 / cfg.max_gain, cfg.max_gain)


def apply_gains(face_bgr: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``face_bgr`` (uint8) with per-channel linear-light ``gains``: one lookup table per channel, one pass.

    Gains scale dark and bright alike, so brows and beard stay dark instead of taking on the tint an
    additive (Lab) shift would give them."""
    lut = linear_to_srgb(np.clip(_U8_TO_LINEAR[:, None] * np.asarray(gains)[None, :], 0.0, 1.0)) * 255.0 + 0.5
    return cv2.LUT(face_bgr, lut.astype(np.uint8).reshape(256, 1, 3))


def match_colour(
    face_bgr: np.ndarray, actor_bgr: np.ndarray, skin: np.ndarray, config: BlendConfig | None = None
) -> np.ndarray:
    """``face_bgr`` (uint8) with its mean colour on ``skin`` moved to ``actor_bgr``'s there (``colour_gains``
    then ``apply_gains``); unchanged when that cannot be measured."""
    gains = colour_gains(face_bgr, actor_bgr, skin, config)
    return face_bgr if gains is None else apply_gains(face_bgr, gains)


def composite(frame: np.ndarray, geometry: FaceGeometry, face_bgr: np.ndarray, alpha: np.ndarray) -> None:
    """Write ``actor + alpha * (face - actor)`` into the frame's window, in place.

    The actor is the frame's window as it is (the morph's warped copy, when there is one, is part of
    ``face_bgr``'s caller's business: pass it blended already)."""
    ys, xs = geometry.window.slices
    a = np.ascontiguousarray(alpha, dtype=np.float32)
    frame[ys, xs] = cv2.blendLinear(face_bgr, np.ascontiguousarray(frame[ys, xs]), a, 1.0 - a)
