"""A black-and-white identity's colour: the actor's skin chroma, filled smoothly over the whole face.

A monochrome identity (enrolled from black-and-white or toned photos, issue 21) has lightness only; its colour
is the actor's. Taken pixel by pixel, as it was first, the actor's hair, brows, beard and eyes lent their own
colour to whatever the identity draws over them: the identity's pale brows over Obama's dark ones came out
as two blue-grey bars, its light forehead over d10's black hair a grey-white haze, a grey photo's dark fringe
bright orange on the actor's forehead. A colour photo's swap draws skin there in the identity's skin colour, so
the monochrome face takes the actor's *skin* colour everywhere the identity draws (``chroma_field``):

- **which pixels are skin** (``skin_pixels``): of the mesh's skin well inside the mask, those not much darker than
  the face's skin, of its hue and not near-neutral (black, grey or white hair and beard), and locally not darker
  than the skin around them nor of another colour (brows, a moustache, folds, nostrils, a glasses' frame). Every
  test is relative to the actor's own skin: any skin tone, bald or bearded, glasses, a face lit by two lights of
  different colour (both sides are skin);
- **filled smoothly** (normalised convolutions at geometry resolution): each pixel takes the chroma of the skin
  around it — a narrow kernel keeps the face's own variation (a redder nose, a cooler side), a wide one fills what
  the narrow one does not reach (brows, a beard, hair over the forehead), the face's mean the rest;
- **the lips** take the actor's lips' median tint (their lit part, not the mouth's inside);
- **faded on dark pixels** (``transfer_chroma``): the identity's pixels much darker than the skin there take the
  colour in proportion to their lightness: from the brows up, below 0.75 of it (``ChromaConfig.knee_hair``) —
  brows and a fringe are hair, dark and of the skin's hue, not skin-coloured at full strength; below them only
  under 0.2 (``knee``) — the identity's shading there (nostrils, folds) is skin in shadow, which keeps its
  colour (measured on the actors: Cr and Cb hold from the skin's darkest quarter to its brightest).

The field is measured on the host (cv2) once per face and frame, for monochrome identities only; the colour is put
in at the working size by ``transfer_chroma`` (its torch twin: ``engines.compose.torch_ops.transfer_chroma``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import LIPS, SKIN, face_topology
from engines.swap.mesh import FaceGeometry


@dataclass(frozen=True)
class ChromaConfig:
    dark: float = 0.5
    """Skin is at least this fraction of the face's skin lightness (its 75th percentile): black hair, a dark beard
    and the nostrils are darker ..."""
    saturation: float = 0.5
    """... and at least this fraction of its saturation (the chroma's length): grey or white hair and beard, black
    hair, are near-neutral (a face lit by two lights of different colour is not: its cooler side on d13.mp4 is
    0.7 of its warmer side's, a highlight's side on s18.mp4 0.6) ..."""
    hue_deg: float = 40.0
    """... and of a hue within this angle of the skin's (Cr, Cb): a blue reflection, dyed hair (d13's two sides
    are 10 degrees apart)."""
    local_dark: float = 0.75
    """Locally, skin is at least this fraction of the skin's lightness around it (``local_sigma``): brows, a
    moustache and folds are darker (Obama's brows: 0.70) ..."""
    local_colour: float = 12.0
    """... and its chroma within this distance of the chroma of the skin around it (Obama's brows lie ~18 levels
    from his cheeks' chroma; a face's own variation under one light within ~6)."""
    local_sigma: float = 0.2
    """How far "around" reaches (standard deviation, eye-corner distances)."""
    near_sigma: float = 0.08
    """The fill's narrow kernel (standard deviation, eye-corner distances): wider than a brow is tall ..."""
    far_sigma: float = 0.4
    """... its wide kernel, for what the narrow one does not reach (a beard, hair over the forehead) ..."""
    far_weight: float = 0.02
    """... with this weight against the narrow one's (it fills, it does not blur the face's own variation)."""
    knee: float = 0.2
    """The identity's pixels at least this fraction of the skin's lightness there take the skin's chroma in full;
    darker ones take it in proportion to their lightness (near-black stays near-neutral). Skin in shadow keeps its
    colour (on six shared clips the actors' skin keeps its Cr and Cb within ~4 levels from its darkest quarter to
    its brightest), so the identity's shading — nostrils, folds, the mouth's corners — is skin-coloured down to
    here. The artifact measure's under-nose darkest tenth on d3.mp4 x a grey biden (36 frames, median): 10.5
    with the actor's colour taken pixel by pixel, 11.2 at 0.35, 8.7 at 0.2; at 0.75 on Obama_speaking Biden's
    nostril shadow was a grey patch (15 against 11) ..."""
    knee_hair: float = 0.75
    """... and this fraction from the brows up (``HAIR_FROM_Y``), where the identity's dark pixels are hair — brows,
    a fringe: dark and of the skin's hue, not skin-coloured (a grey s1's fringe on Obama_speaking was bright
    orange at full strength)."""
    lip_tint: bool = True
    """The lips take the actor's lips' tint (off: the skin's)."""
    lip_feather: float = 0.02
    """Width of the ramp from skin to lip tint at the lips' outline (eye-corner distances)."""


MIN_SKIN = 30
"""Fewest skin pixels the skin's colour is measured on; with fewer, every pixel the face covers counts."""
MIN_LIPS = 8
"""Fewest lip pixels the lips' tint is measured on; with fewer, the lips take the skin's."""
HAIR_FROM_Y = (-0.47, -0.57)
"""Canonical mesh heights (``face_topology().canonical``, y down) over which ``knee`` ramps to ``knee_hair``: from
above the eyes (their top at -0.45) to the brows' lower edge (-0.55; their top -0.71)."""
HALF_MIN_PX = 24
"""The field is made at half the geometry resolution when that leaves at least this many pixels a side."""


def _smooth(values: np.ndarray, weight: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Normalised convolution: ``values`` ((h, w) or (h, w, C) float32) averaged over ``weight`` ((h, w) float32)
    by a Gaussian of ``sigma`` pixels (where no weight is near, the weighted mean of all), and the blurred weight
    (how much of it is near)."""
    w = weight[..., None] if values.ndim == 3 else weight
    num = cv2.GaussianBlur(values * w, (0, 0), sigma)
    den = cv2.GaussianBlur(weight, (0, 0), sigma)
    total = float(weight.sum())
    mean = (values * w).reshape(-1, *values.shape[2:]).sum(axis=0) / max(total, 1e-6)
    eps = np.float32(1e-4)
    near = den[..., None] if values.ndim == 3 else den
    return ((num + eps * mean) / (near + eps)).astype(np.float32), den


def skin_pixels(
    ycc: np.ndarray, candidates: np.ndarray, unit_px: float, config: ChromaConfig | None = None
) -> np.ndarray:
    """Which of ``candidates`` ((hs, ws) bool) are skin in ``ycc`` ((hs, ws, 3) float32 Y, Cr, Cb): globally not
    much darker than the face's skin nor far from its colour (hair, beard), locally not darker than the skin
    around them nor of another colour (brows, moustache, folds, a glasses' frame). ``unit_px``: the eye-corner
    distance in pixels."""
    cfg = config or ChromaConfig()
    y, c = ycc[..., 0], ycc[..., 1:]
    if not candidates.any():
        return candidates
    lightness = float(np.percentile(y[candidates], 75))
    lit = candidates & (y >= cfg.dark * lightness)
    centre = np.median(c[lit if lit.any() else candidates], axis=0)
    length = max(float(np.hypot(*centre)), 1e-3)
    along = (c @ (centre / length)).astype(np.float32)  # the chroma's part along the skin's hue
    size = np.linalg.norm(c, axis=2)
    keep = lit & (size >= cfg.saturation * length) & (along >= np.cos(np.radians(cfg.hue_deg)) * size)
    if not keep.any():
        return candidates
    sigma = max(cfg.local_sigma * unit_px, 1.0)
    for _ in range(2):  # the second time without the dark features in their own surroundings
        around, _ = _smooth(y, keep.astype(np.float32), sigma)
        keep = keep & (y >= cfg.local_dark * around)
    around_c, _ = _smooth(c, keep.astype(np.float32), sigma)
    return keep & (np.linalg.norm(c - around_c, axis=2) <= cfg.local_colour)


def chroma_field(
    actor_small: np.ndarray, geometry: FaceGeometry, skin_small: np.ndarray, config: ChromaConfig | None = None
) -> np.ndarray:
    """(hs / 2, ws / 2, 3) float32 at half the geometry resolution (the colour is smooth, and a quarter of the pixels
    costs a quarter of the time): per pixel the colour a monochrome face takes there — the skin's chroma
    (Cr - 128, Cb - 128) and the lightness below which it fades (``ChromaConfig.knee`` of the skin's lightness
    there; ``transfer_chroma``): the actor's skin's, filled smoothly over brows, eyes, hair and beard; the actor's
    lips' tint on the lips.

    ``actor_small``: the actor (warped by the morph) at geometry resolution, uint8 BGR; ``skin_small``: the mesh's
    skin well inside the mask (``blend.skin_mask``), where the skin is looked for."""
    cfg = config or ChromaConfig()
    labels = geometry.labels_small
    hs, ws = labels.shape
    step = 2 if min(hs, ws) >= 2 * HALF_MIN_PX else 1
    labels = labels[::step, ::step]
    candidates = skin_small[::step, ::step]
    if int(np.count_nonzero(candidates)) < MIN_SKIN:
        candidates = labels == SKIN
    if int(np.count_nonzero(candidates)) < MIN_SKIN:
        candidates = labels >= 0
    small = (
        actor_small
        if step == 1
        else cv2.resize(actor_small, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_AREA)
    )
    ycc = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    ycc[..., 1:] -= 128.0
    unit = geometry.face_scale_px * labels.shape[1] / geometry.window.width  # eye-corner distance, in pixels here
    skin = skin_pixels(ycc, candidates, unit, cfg)
    if int(np.count_nonzero(skin)) < MIN_SKIN:
        skin = candidates
    weight = skin.astype(np.float32)
    near, seen = _smooth(ycc, weight, max(cfg.near_sigma * unit, 0.5))
    far, _ = _smooth(ycc, weight, max(cfg.far_sigma * unit, 1.0))
    # How much the narrow kernel knows at each pixel: where it sees skin, its average; where not, the wide one's.
    filled = (seen[..., None] * near + cfg.far_weight * far) / (seen[..., None] + cfg.far_weight)
    field = np.empty(filled.shape, np.float32)
    field[..., :2] = filled[..., 1:]
    knee = cfg.knee + (cfg.knee_hair - cfg.knee) * _hair_zone(geometry)[::step, ::step]
    field[..., 2] = np.maximum(knee * filled[..., 0], 1.0)
    if cfg.lip_tint and skin.any():
        _tint_lips(field, ycc, labels, float(np.median(ycc[skin][:, 0])), max(cfg.lip_feather * unit, 0.5), cfg)
    return field


@functools.cache
def _hair_weights() -> np.ndarray:
    """Per mesh vertex, 0..1: how much it lies where the identity's dark pixels are hair (``HAIR_FROM_Y``)."""
    y = face_topology().canonical[:, 1].astype(np.float32)
    t = np.clip((y - HAIR_FROM_Y[0]) / (HAIR_FROM_Y[1] - HAIR_FROM_Y[0]), 0.0, 1.0)
    out = t * t * (3.0 - 2.0 * t)
    out.setflags(write=False)
    return out


def _hair_zone(geometry: FaceGeometry) -> np.ndarray:
    """(hs, ws) float32 at geometry resolution: ``_hair_weights`` over the face, 1 outside it (hair, if anything)."""
    return geometry.memo("chroma_hair_zone", lambda: geometry.raster.interpolate(_hair_weights(), fill=1.0))


def _tint_lips(
    field: np.ndarray, ycc: np.ndarray, labels: np.ndarray, skin_y: float, feather: float, cfg: ChromaConfig
) -> None:
    """The lips' median chroma (their lit part: the mouth's dark inside and the lips' shadowed rim left out) over
    the lips, ramped in at their outline; in place."""
    lips = labels == LIPS
    values = ycc[lips]
    values = values[values[:, 0] >= cfg.dark * skin_y]
    if len(values) < MIN_LIPS:
        return
    tint = np.array([*np.median(values[:, 1:], axis=0), max(cfg.knee * float(np.median(values[:, 0])), 1.0)])
    ramp = cv2.GaussianBlur(lips.astype(np.float32), (0, 0), feather)[..., None]
    field += ramp * (tint.astype(np.float32) - field)


def transfer_chroma(face_bgr: np.ndarray, field_small: np.ndarray) -> np.ndarray:
    """``face_bgr`` (uint8, the face's working size) with its lightness kept and the colour of ``field_small``
    (``chroma_field``, scaled up bilinearly): Cr = 128 + cr * min(1, Y / knee), Cb likewise, rounded half up.
    YCrCb: one conversion each way, cv2's."""
    h, w = face_bgr.shape[:2]
    field = cv2.resize(field_small, (w, h), interpolation=cv2.INTER_LINEAR)
    face = cv2.cvtColor(face_bgr, cv2.COLOR_BGR2YCrCb)
    fade = np.minimum(face[..., 0].astype(np.float32) / field[..., 2], np.float32(1.0))
    chroma = field[..., :2] * fade[..., None] + np.float32(128.5)
    face[..., 1:] = np.clip(np.floor(chroma), 0.0, 255.0).astype(np.uint8)
    return cv2.cvtColor(face, cv2.COLOR_YCrCb2BGR)
