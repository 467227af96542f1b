"""A black-and-white identity's colour and skin level: the actor's skin's, filled smoothly over the whole face.

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
- **filled smoothly** (normalised convolutions at geometry resolution): each pixel takes the colour (CIE a*, b*)
  of the skin around it — a narrow kernel keeps the face's own variation (a redder nose, a cooler side), a wide
  one fills what the narrow one does not reach (brows, a beard, hair over the forehead), the face's mean the rest;
- **the lips** take the actor's lips' median tint (their lit part, not the mouth's inside);
- **faded on dark pixels** (``transfer_chroma``): the identity's pixels much darker than the skin there take the
  colour in proportion to their lightness: from the brows up, below 0.75 of it (``ChromaConfig.knee_hair``) —
  brows and a fringe are hair, dark and of the skin's hue, not skin-coloured at full strength; below them only
  under 0.2 (``knee``) — the identity's shading there (nostrils, folds) is skin in shadow, which keeps its
  colour.

The skin's *lightness* is the actor's too (``level``): a grey photo's lightness is its film's and its light's, not
the person's skin under the stage's light — biden.jpg's lower face, lit from above and ruddy in life, came out a
dark, muddy brown over d10's pale, evenly lit skin, its forehead matched (the colour match moves one mean). The
identity's skin level (its lightness smoothed over ``level_sigma``, on its skin only: brows, eyes, lips and
creases left out) is moved to the actor's there by a smooth gain in linear light, so the identity's own shading
within the face — brows, lids, lips, nostrils, creases, relative to its skin around them — stays, and its level
is the actor's.

Each pixel of the result has the identity's luminance times the level's gain (linear light) as its CIE L*, and
the actor's skin's a*, b* there: skin in shadow keeps its a* and b* (on the actors, from the skin's brightest fifth
to its darkest: d10 29 -> 30 units of chroma over 17 L*, Obama_speaking 45 -> 38 over 20, d3 40 -> 32 over 23),
where a colour of fixed linear chromaticity loses chroma with its L* + 16 (to 0.6-0.8 of it over those ranges:
the identity's shading went greyish olive when tried that way). Before, the luma was kept and the skin's Cr, Cb
added: the colour was close, but the photo's own lightness stayed.

The field is measured on the host (cv2) once per face and frame, for monochrome identities only; the colour is put
in at the working size by ``transfer_chroma`` (its torch twin: ``engines.compose.torch_ops.transfer_chroma``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import LIPS, SKIN, face_topology
from engines.light.sh import linear_to_srgb, srgb_to_linear
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
    """The identity's pixels at least this fraction of the skin's lightness (CIE L*) there take the skin's colour in
    full; darker ones take it in proportion to their lightness (near-black stays near-neutral). Skin in shadow keeps
    its colour (on six shared clips the actors' skin keeps its Cr and Cb within ~4 levels from its darkest quarter
    to its brightest; its a* and b* within a fifth), so the identity's shading — nostrils, folds, the mouth's
    corners — is skin-coloured down to here. The artifact measure's under-nose darkest tenth on d3.mp4 x a grey
    biden (36 frames, median): 10.5 with the actor's colour taken pixel by pixel, 11.2 at 0.35, 8.7 at 0.2; at 0.75
    on Obama_speaking Biden's nostril shadow was a grey patch (15 against 11) ..."""
    knee_hair: float = 0.75
    """... and this fraction from the brows up (``HAIR_FROM_Y``), where the identity's dark pixels are hair — brows,
    a fringe: dark and of the skin's hue, not skin-coloured (a grey s1's fringe on Obama_speaking was bright
    orange at full strength)."""
    lip_tint: bool = True
    """The lips take the actor's lips' tint (off: the skin's)."""
    lip_feather: float = 0.02
    """Width of the ramp from skin to lip tint at the lips' outline (eye-corner distances)."""
    level: bool = True
    """The identity's skin lightness is moved to the actor's (off: the colour match's one mean only)."""
    level_sigma: float = 0.3
    """The scale over which the skin's level is the actor's (standard deviation, eye-corner distances): the
    photo's light and its skin's broad lightness go, what is smaller stays — brows, lids, lips, nostrils, creases
    and, in part, the nose's and the cheekbones' relief. Smaller takes more of biden.jpg's shaded jowls and mouth
    corners on d10.mp4 and flattens the face at 0.08 (the recogniser's cosine to the photo on 24 frames of d10 x
    a grey biden 0.402 / 0.407 / 0.410 / 0.389 at 0.3 / 0.2 / 0.15 / 0.08, of d3 x a grey s1 0.604 / 0.603 /
    0.589 at 0.3 / 0.2 / 0.15; 0.402 and 0.605 with no level), and the identity's nose sides, which keep their
    darkness, stand out more against the lighter skin around them (d10 x a grey s1's nose regions' worst statistic,
    median of 12 frames: 8.1 with no level, 9.5 at 0.3, 10-11 at 0.2, against
    ``test_the_photos_nose_shadows_give_way_to_the_actors``'s 10)."""
    max_level_gain: float = 3.0
    """The level's gain is held within 1 / this .. this (linear light)."""


MIN_SKIN = 30
"""Fewest skin pixels the skin's colour is measured on; with fewer, every pixel the face covers counts."""
MIN_LIPS = 8
"""Fewest lip pixels the lips' tint is measured on; with fewer, the lips take the skin's."""
HAIR_FROM_Y = (-0.47, -0.57)
"""Canonical mesh heights (``face_topology().canonical``, y down) over which ``knee`` ramps to ``knee_hair``: from
above the eyes (their top at -0.45) to the brows' lower edge (-0.55; their top -0.71)."""
HALF_MIN_PX = 24
"""The field is made at half the geometry resolution when that leaves at least this many pixels a side."""
FIELD_CHANNELS = 4
"""``chroma_field``'s channels: the actor's skin colour (CIE a*, b*), the level's gain (linear light), the knee
(CIE L*)."""
LUMINANCE_BGR = np.array([0.0722, 0.7152, 0.2126], np.float32)
"""Linear-light luminance weights of sRGB's primaries (Rec. 709), in BGR order."""
XYZ_FROM_BGR = np.array([[0.1805, 0.3576, 0.4124], [0.0722, 0.7152, 0.2126], [0.9505, 0.1192, 0.0193]], np.float32)
"""sRGB's linear BGR to CIE XYZ (D65); its rows scaled by the white point's X and Z make ``_lab``'s ratios."""
WHITE_XZ = (0.9505, 1.0890)
"""D65's X and Z (Y = 1)."""
BGR_FROM_XYZ = np.linalg.inv(XYZ_FROM_BGR.astype(np.float64)).astype(np.float32)
U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
"""(256,) float32: an sRGB code value's linear light."""
_LINEAR_LUT = U8_TO_LINEAR.reshape(256, 1)
"""``U8_TO_LINEAR`` as ``cv2.LUT`` takes it (a float table: a float image; 8x faster than numpy's indexing)."""
ENCODE_STEPS = 16384
"""Linear light is encoded back to sRGB codes through a table of this many steps (within half a level)."""
LINEAR_TO_U8 = np.floor(linear_to_srgb(np.arange(ENCODE_STEPS) / (ENCODE_STEPS - 1)) * 255.0 + 0.5).astype(np.uint8)
"""(ENCODE_STEPS,) uint8: the sRGB code of linear light ``i / (ENCODE_STEPS - 1)``."""
EPS_LAB = np.float32((6.0 / 29.0) ** 3)
"""CIE's f is a cube root above this (relative luminance), linear below."""
SLOPE_LAB = np.float32(1.0 / (3.0 * (6.0 / 29.0) ** 2))


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
    keep = _not_darker(y, keep, unit_px, cfg)
    around_c, _ = _smooth(c, keep.astype(np.float32), max(cfg.local_sigma * unit_px, 1.0))
    return keep & (np.linalg.norm(c - around_c, axis=2) <= cfg.local_colour)


def grey_skin_pixels(
    luma: np.ndarray, candidates: np.ndarray, unit_px: float, config: ChromaConfig | None = None
) -> np.ndarray:
    """Which of ``candidates`` are skin in a grey face's ``luma`` ((hs, ws) float32, 0..255): not much darker than
    its skin (``ChromaConfig.dark`` of its 75th percentile) nor than the skin around it (brows, lids, lips,
    nostrils, creases) — its lightness alone says so, it has no colour."""
    cfg = config or ChromaConfig()
    if not candidates.any():
        return candidates
    keep = candidates & (luma >= cfg.dark * float(np.percentile(luma[candidates], 75)))
    return _not_darker(luma, keep, unit_px, cfg) if keep.any() else candidates


def _not_darker(y: np.ndarray, keep: np.ndarray, unit_px: float, cfg: ChromaConfig) -> np.ndarray:
    """``keep`` less its pixels darker than ``ChromaConfig.local_dark`` of the kept lightness around them."""
    sigma = max(cfg.local_sigma * unit_px, 1.0)
    for _ in range(2):  # the second time without the dark features in their own surroundings
        around, _ = _smooth(y, keep.astype(np.float32), sigma)
        keep = keep & (y >= cfg.local_dark * around)
    return keep


def chroma_field(
    actor_small: np.ndarray,
    face_small: np.ndarray,
    geometry: FaceGeometry,
    skin_small: np.ndarray,
    config: ChromaConfig | None = None,
) -> np.ndarray:
    """(hs / 2, ws / 2, ``FIELD_CHANNELS``) float32 at half the geometry resolution (the colour is smooth, and a
    quarter of the pixels costs a quarter of the time): per pixel what a monochrome face takes there
    (``transfer_chroma``) — the chromaticity of the actor's skin (its linear colour over its luminance, B, G, R;
    filled smoothly over brows, eyes, hair and beard; the actor's lips' tint on the lips), the gain that moves the
    identity's skin level to the actor's (``ChromaConfig.level``; 1 when off), and the lightness below which the
    colour fades (``ChromaConfig.knee`` of the skin's lightness there, an sRGB code value).

    ``actor_small``: the actor (warped by the morph) at geometry resolution, uint8 BGR; ``face_small``: the
    identity's face as it will be drawn, at geometry resolution (its lightness is what counts); ``skin_small``: the
    mesh's skin well inside the mask (``blend.skin_mask``), where the skin is looked for."""
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
    size = (labels.shape[1], labels.shape[0])
    small = actor_small if step == 1 else cv2.resize(actor_small, size, interpolation=cv2.INTER_AREA)
    ycc = cv2.cvtColor(small, cv2.COLOR_BGR2YCrCb).astype(np.float32)
    ycc[..., 1:] -= 128.0
    unit = geometry.face_scale_px * labels.shape[1] / geometry.window.width  # eye-corner distance, in pixels here
    skin = skin_pixels(ycc, candidates, unit, cfg)
    if int(np.count_nonzero(skin)) < MIN_SKIN:
        skin = candidates
    linear = U8_TO_LINEAR[small]
    lab = lab_from_linear(linear)
    weight = skin.astype(np.float32)
    near, seen = _smooth(lab[..., 1:], weight, max(cfg.near_sigma * unit, 0.5))
    far, _ = _smooth(lab[..., 1:], weight, max(cfg.far_sigma * unit, 1.0))
    # How much the narrow kernel knows at each pixel: where it sees skin, its average; where not, the wide one's.
    field = np.empty((*labels.shape, FIELD_CHANNELS), np.float32)
    field[..., :2] = (seen[..., None] * near + cfg.far_weight * far) / (seen[..., None] + cfg.far_weight)
    level_sigma = max(cfg.level_sigma * unit, 1.0)
    level = _smooth(linear @ LUMINANCE_BGR, weight, level_sigma)[0]
    field[..., 2] = 1.0
    if cfg.level:
        face = face_small if step == 1 else cv2.resize(face_small, size, interpolation=cv2.INTER_AREA)
        face_skin = grey_skin_pixels(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY).astype(np.float32), candidates, unit, cfg)
        if int(np.count_nonzero(face_skin)) >= MIN_SKIN:
            own = _smooth(U8_TO_LINEAR[face] @ LUMINANCE_BGR, face_skin.astype(np.float32), level_sigma)[0]
            gain = level / np.maximum(own, np.float32(1e-4))
            field[..., 2] = np.clip(gain, 1.0 / cfg.max_level_gain, cfg.max_level_gain)
    knee = cfg.knee + (cfg.knee_hair - cfg.knee) * _hair_zone(geometry)[::step, ::step]
    field[..., 3] = np.maximum(knee * _lightness(level), 0.5)
    if cfg.lip_tint and skin.any():
        lips_lit = (labels == LIPS) & (ycc[..., 0] >= cfg.dark * float(np.median(ycc[skin][:, 0])))
        _tint_lips(field, lab, labels == LIPS, lips_lit, max(cfg.lip_feather * unit, 0.5), cfg)
    return field


def _f(t: np.ndarray) -> np.ndarray:
    """CIE's f: the cube root, linear below ``EPS_LAB`` (the two pieces meet there, so one is the other's
    continuation: no select)."""
    return np.cbrt(np.maximum(t, EPS_LAB)) + SLOPE_LAB * np.minimum(t - EPS_LAB, np.float32(0.0))


def _f_inverse(t: np.ndarray) -> np.ndarray:
    """The inverse of ``_f``."""
    edge = np.float32(6.0 / 29.0)
    top = np.maximum(t, edge)
    return top * top * top + np.minimum(t - edge, np.float32(0.0)) / SLOPE_LAB


def _lightness(luminance: np.ndarray) -> np.ndarray:
    """CIE L* (0..100) of relative luminance (linear light, 0..1)."""
    return (np.float32(116.0) * _f(luminance) - np.float32(16.0)).astype(np.float32)


def lab_from_linear(linear: np.ndarray) -> np.ndarray:
    """(..., 3) float32 CIE L*a*b* (D65) of (..., 3) linear-light BGR."""
    xyz = linear @ XYZ_FROM_BGR.T
    fx, fy, fz = _f(xyz[..., 0] / WHITE_XZ[0]), _f(xyz[..., 1]), _f(xyz[..., 2] / WHITE_XZ[1])
    return np.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1).astype(np.float32)


def _encode_index(linear: np.ndarray) -> np.ndarray:
    """``LINEAR_TO_U8``'s index of linear light: ``floor(v * (ENCODE_STEPS - 1) + 0.5)`` (below 0, truncated to
    0 or negative; the table's lookup clips)."""
    return (linear * np.float32(ENCODE_STEPS - 1) + np.float32(0.5)).astype(np.int32)


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
    field: np.ndarray, lab: np.ndarray, lips: np.ndarray, lit: np.ndarray, feather: float, cfg: ChromaConfig
) -> None:
    """The lips' median colour (a*, b*) and knee (their ``lit`` part: the mouth's dark inside and the lips' shadowed
    rim left out) over ``lips``, ramped in at their outline; the level's gain is the skin's there; in place."""
    values = lab[lit]
    if len(values) < MIN_LIPS:
        return
    median = np.median(values, axis=0)
    target = np.array([median[1], median[2], 0.0, max(cfg.knee * float(median[0]), 0.5)], np.float32)
    ramp = cv2.GaussianBlur(lips.astype(np.float32), (0, 0), feather)[..., None]
    keep = np.array([1, 1, 0, 1], np.float32)  # the gain is the skin's: the identity's lips keep their darkness
    field += keep * ramp * (target - field)


def transfer_chroma(face_bgr: np.ndarray, field_small: np.ndarray) -> np.ndarray:
    """``face_bgr`` (uint8, the face's working size) in the colour and level of ``field_small`` (``chroma_field``,
    scaled up bilinearly): its luminance (linear light) times the level's gain is the result's L*, and its a*, b*
    the actor's skin's there, faded toward grey below the knee (by ``min(1, L* / knee)``); encoded through
    ``LINEAR_TO_U8``. CIE L*a*b*, because that is how skin in shadow behaves: on the actors its a* and b* hold
    from its darkest quarter to its brightest, where its chromaticity in linear light does not (a grey photo's
    shading in the lit skin's linear chromaticity came out greyish olive)."""
    h, w = face_bgr.shape[:2]
    field = cv2.resize(field_small, (w, h), interpolation=cv2.INTER_LINEAR)
    luminance = cv2.transform(cv2.LUT(face_bgr, _LINEAR_LUT), LUMINANCE_BGR[None]) * field[..., 2]  # one channel
    fy = _f(luminance)
    fade = np.minimum((np.float32(116.0) * fy - np.float32(16.0)) / field[..., 3], np.float32(1.0))
    x = _f_inverse(fy + fade * field[..., 0] * np.float32(1.0 / 500.0)) * np.float32(WHITE_XZ[0])
    z = _f_inverse(fy - fade * field[..., 1] * np.float32(1.0 / 200.0)) * np.float32(WHITE_XZ[1])
    colour = cv2.transform(cv2.merge([x, luminance, z]), BGR_FROM_XYZ)
    return np.take(LINEAR_TO_U8, _encode_index(colour), mode="clip")
