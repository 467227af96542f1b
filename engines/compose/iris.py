"""The identity's eye colour in the actor's kept eyes (issue 21).

The mesh swap keeps the actor's own eyes (``ProcessSettings.keep_eyes``: the gaze, the blinks and the catch
lights are the actor's), so until now a green-eyed identity swapped onto a brown-eyed actor kept brown eyes —
and the iris is one of the few features a face shows at any size. This recolours the actor's iris, inside the
kept eye opening, to the identity's: the identity's iris colour is read once from its texture (the photo's eye
openings), the actor's iris is found in each frame as the opening's darker part, and in CIE L*a*b* its chroma
is moved to the identity's and its lightness scaled to the identity's iris-to-white ratio. The pupil, the
white of the eye, the catch lights and the lashes along the lids are left alone: they are the actor's light and
the actor's gaze.

What is changed is the colour of pixels the actor's camera saw: the iris's texture, its ring and its light are
the actor's. A black-and-white identity has no iris colour: only the lightness ratio is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import LEFT_EYE, RIGHT_EYE, face_topology

_MIN_RANGE_L = 8.0
"""An opening whose white and dark parts are closer than this (L*, 0..100) shows no iris to read (a blink, a
squint, a dark or overexposed eye): left alone."""
_IRIS_LO, _IRIS_HI = 0.45, 0.65
"""A pixel is iris, fully, below ``dark + _IRIS_LO x range`` of its opening's L*, not at all above ``dark +
_IRIS_HI x range`` (the white of the eye), where dark and white are the opening's 5th and 90th percentiles."""
_IRIS_RADIUS = 0.2
"""The iris's radius as a share of the eye opening's width, corner to corner (about 5.9 of 30 mm)."""
_IRIS_TONE = 0.3
"""Inside the iris's circle a pixel is iris fully when it is this share of the opening's range below its white."""
_DISC_IN, _DISC_OUT = 0.85, 1.0
"""The recolouring ramps out from ``_DISC_IN`` to ``_DISC_OUT`` iris radii from the iris's centre (lashes and
eyeliner beyond it are left alone)."""
_PUPIL_IN, _PUPIL_OUT = 0.3, 0.5
"""The pupil: kept as it is within ``_PUPIL_IN`` iris radii of the centre, ramping to the iris's colour at
``_PUPIL_OUT`` (a dark brown iris is as dark as its pupil: only its place tells them apart)."""
_MIN_PIXELS = 6
"""Fewer iris pixels than this in an opening: nothing is read there (too small a face, or a closed eye)."""
_L_RATIO_LIMITS = (0.5, 2.0)
"""The iris's lightness moves by at most this factor (a measurement gone wrong cannot blacken an eye)."""
IRIS_LIMITS = (
    _MIN_RANGE_L, _IRIS_LO, _IRIS_HI, _IRIS_RADIUS, _IRIS_TONE, _DISC_IN, _DISC_OUT, _PUPIL_IN, _PUPIL_OUT,
    float(_MIN_PIXELS), *_L_RATIO_LIMITS,
)  # fmt: skip
"""The constants above in the order the compiled kernel takes them (``engines.fused.iris_shift``)."""


@dataclass(frozen=True)
class IrisColour:
    """An identity's iris as the recolouring takes it: a*, b* over the white of the eye's (so the photo's white
    balance cancels: the white of an eye is near grey under any light; None for a black-and-white identity) and
    the iris's L* over the white of the eye's."""

    a: float | None
    b: float | None
    lightness: float


@dataclass(frozen=True)
class IrisConfig:
    strength: float = 1.0
    """How far the actor's iris moves to the identity's colour (0: the actor's eyes as they are)."""
    inset: float = 0.02
    """The part of the opening next to the lids left alone (lashes, the lid's shadow), in eye-corner distances;
    the recolouring then ramps in over as much again."""


def _lab(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr.astype(np.float32) * np.float32(1 / 255), cv2.COLOR_BGR2Lab)


def _white_ab(lab: np.ndarray, inside: np.ndarray, white: float, dark: float) -> tuple[float, float]:
    """The white of the eye's a*, b*: the opening's pixels within the top fifth of its lightness range."""
    sclera = inside & (lab[..., 0] >= white - 0.2 * (white - dark))
    a, b = np.median(lab[sclera][:, 1:], axis=0)
    return float(a), float(b)


def _iris_weights(
    lightness: np.ndarray, inside: np.ndarray, corners: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float] | None:
    """Where the iris is in one eye opening: (weight 0..1 per pixel, how much of the iris it is — darker than the
    white of the eye and within the iris's circle; the pupil's weight 0..1, its centre 0; the iris's ring, a
    bool mask of the pixels its colour is read on; the opening's dark and white levels). ``corners`` are the
    opening's two corners (pixels of the same array): the iris's radius is a share of the eye's width, its
    centre where the opening's dark pixels are. None if the opening shows no iris."""
    values = lightness[inside]
    if values.size < 4 * _MIN_PIXELS:
        return None
    dark, white = (float(v) for v in np.percentile(values, (5, 90)))
    span = white - dark
    if span < _MIN_RANGE_L:
        return None
    lo, hi = dark + _IRIS_LO * span, dark + _IRIS_HI * span
    darkness = np.clip((hi - lightness) / (hi - lo), 0.0, 1.0) * inside
    total = float(darkness.sum())
    if total < _MIN_PIXELS:
        return None
    h, w = lightness.shape
    cy = float(darkness.sum(axis=1) @ np.arange(h, dtype=np.float32)) / total
    cx = float(darkness.sum(axis=0) @ np.arange(w, dtype=np.float32)) / total
    radius = _IRIS_RADIUS * float(np.linalg.norm(corners[1] - corners[0]))
    if radius < 1.5:
        return None
    dy = (np.arange(h, dtype=np.float32)[:, None] - np.float32(cy)) / np.float32(radius)
    dx = (np.arange(w, dtype=np.float32)[None, :] - np.float32(cx)) / np.float32(radius)
    r = np.sqrt(dy * dy + dx * dx)
    disc = np.clip((_DISC_OUT - r) / (_DISC_OUT - _DISC_IN), 0.0, 1.0)
    pupil = np.clip((r - _PUPIL_IN) / (_PUPIL_OUT - _PUPIL_IN), 0.0, 1.0)
    # Within the iris's circle, anything clearly darker than the white of the eye is iris (a pale grey iris is only
    # a little darker than its white: weighting by darkness alone left it patchy); catch lights are not.
    tone = np.clip((white - lightness) / (_IRIS_TONE * span), 0.0, 1.0)
    weight = tone * tone * (3 - 2 * tone) * disc * inside
    ring = (weight > 0.5) & (pupil > 0.99) & inside
    return weight.astype(np.float32), pupil.astype(np.float32), ring, dark, white


def identity_iris(texture: np.ndarray, coverage: np.ndarray, monochrome: bool) -> IrisColour | None:
    """The iris colour of an identity's ``texture`` (T, T, 3) uint8 BGR, read in its eye openings where the photos
    saw them (``coverage`` > 0.5); None where its eyes show no iris (closed, squinting, too small)."""
    size = texture.shape[0]
    uv = face_topology().uv * size - 0.5
    lab = _lab(texture)
    rings, whites, darks, blanks = [], [], [], []
    for contour in (RIGHT_EYE, LEFT_EYE):
        drawn = np.zeros(texture.shape[:2], np.uint8)
        cv2.fillPoly(drawn, [np.round(uv[list(contour)] * 16).astype(np.int32)], 1, shift=4)
        opening = cv2.erode(drawn, np.ones((3, 3), np.uint8), iterations=max(1, size // 256))
        inside = (opening > 0) & (coverage > 0.5)
        found = _iris_weights(lab[..., 0], inside, uv[[contour[0], contour[8]]])
        if found is not None:
            rings.append(found[2])
            darks.append(found[3])
            whites.append(found[4])
            blanks.append(inside & (lab[..., 0] >= found[4] - 0.2 * (found[4] - found[3])))
    if not rings:
        return None
    ring = np.logical_or.reduce(rings)
    if int(ring.sum()) < _MIN_PIXELS:
        return None
    white = float(np.mean(whites))
    lightness = float(np.median(lab[..., 0][ring])) / max(white, 1e-3)
    if monochrome:
        return IrisColour(None, None, lightness)
    sclera = np.logical_or.reduce(blanks)
    wa, wb = float(np.median(lab[..., 1][sclera])), float(np.median(lab[..., 2][sclera]))
    return IrisColour(float(np.median(lab[..., 1][ring])) - wa, float(np.median(lab[..., 2][ring])) - wb, lightness)


def tint_irises(
    image: np.ndarray,
    landmarks: np.ndarray,
    unit_px: float,
    iris: IrisColour,
    config: IrisConfig | None = None,
    fused: bool = False,
) -> None:
    """Recolour, in place, the iris inside each eye opening of ``image`` (BGR uint8, frame-sized) that
    ``landmarks`` (468, >=2, frame pixels) outline, to ``iris``; ``unit_px`` the face's eye-corner distance.

    ``fused``: the arithmetic between OpenCV's calls (the ramp, the iris's weights, the medians, the shift and the
    write-back) in two compiled loops per eye (``engines.fused.iris_shift``, ``iris_write``): an eye's box is a few
    thousand pixels, and the ~45 numpy calls on it cost ~0.4 ms an eye in calls alone (BENCHMARKS.md, issue 20);
    within a level of these passes, which stay the reference."""
    cfg = config or IrisConfig()
    if cfg.strength <= 0:
        return
    h, w = image.shape[:2]
    inset = max(cfg.inset * unit_px, 0.5)
    for contour in (RIGHT_EYE, LEFT_EYE):
        polygon = landmarks[list(contour), :2]
        x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 4 or y1 - y0 < 3:
            continue
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 1, shift=4)
        depth = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
        if fused:
            _tint_compiled(image[y0:y1, x0:x1], depth, inset, polygon[[0, 8]] - (x0, y0), iris, cfg.strength)
            continue
        ramp = np.clip((depth - inset) / inset, 0.0, 1.0)
        inside = ramp > 0
        box = image[y0:y1, x0:x1]
        lab = _lab(box)
        lightness = lab[..., 0]
        found = _iris_weights(lightness, inside, polygon[[0, 8]] - (x0, y0))
        if found is None:
            continue
        weight, pupil, ring, dark, white = found
        if int(ring.sum()) < _MIN_PIXELS:
            continue
        ring_l, ring_a, ring_b = (float(v) for v in np.median(lab[ring], axis=0))
        gain = float(np.clip(iris.lightness / max(ring_l / max(white, 1e-3), 1e-3), *_L_RATIO_LIMITS))
        share = weight * pupil * ramp * np.float32(min(cfg.strength, 1.0))
        if iris.a is not None and iris.b is not None:
            wa, wb = _white_ab(lab, inside, white, dark)
            lab[..., 1] += share * (wa + iris.a - ring_a)
            lab[..., 2] += share * (wb + iris.b - ring_b)
        lab[..., 0] = lightness * (1 + share * (gain - 1))
        out = cv2.cvtColor(lab, cv2.COLOR_Lab2BGR) * 255.0
        changed = share > 0
        box[changed] = np.clip(np.rint(out[changed]), 0, 255).astype(np.uint8)


def _tint_compiled(
    box: np.ndarray, depth: np.ndarray, inset: float, corners: np.ndarray, iris: IrisColour, strength: float
) -> None:
    """``tint_irises``' work on one eye's ``box`` (a view of the image, edited in place) in compiled loops: OpenCV's
    two colour conversions around ``engines.fused.iris_shift`` and ``iris_write``."""
    from engines import fused as kernels  # numba's import on the first face, not at start-up

    lab = _lab(box)
    has_colour = iris.a is not None and iris.b is not None
    colour = (float(iris.a or 0.0), float(iris.b or 0.0), float(iris.lightness), has_colour)
    corners = np.ascontiguousarray(corners, dtype=np.float32)
    share = kernels.iris_shift(lab, depth, float(inset), corners, colour, float(strength), IRIS_LIMITS)
    if not share.any():
        return
    kernels.iris_write(box, cv2.cvtColor(lab, cv2.COLOR_Lab2BGR), share)


def gaze_aside(image: np.ndarray, landmarks: np.ndarray) -> float | None:
    """How far the eyes look aside in ``image`` (BGR uint8) whose face ``landmarks`` (468, >=2, pixels) outline:
    the irises' shift across their eye openings, the same way in the image for both eyes, in eye widths (corner to
    corner; 0: each iris midway between its corners, ~0.1: a glance aside), the two eyes' mean. Each iris's centre is
    where the opening's dark pixels are (``_iris_weights``, as the recolouring finds it). None when an eye shows no
    iris (closed, too small). A face's own asymmetry and the mesh's error read as a few hundredths."""
    h, w = image.shape[:2]
    shifts = []
    for contour in (RIGHT_EYE, LEFT_EYE):
        polygon = np.asarray(landmarks, np.float64)[list(contour), :2]
        x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 1
        x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 2
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 4 or y1 - y0 < 3:
            return None
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(mask, [np.round((polygon - (x0, y0)) * 16).astype(np.int32)], 1, shift=4)
        corners = polygon[[0, 8]] - (x0, y0)
        found = _iris_weights(_lab(image[y0:y1, x0:x1])[..., 0], mask > 0, corners)
        if found is None:
            return None
        weight = found[0]
        total = float(weight.sum())
        if total <= 0:
            return None
        centre = (
            np.array([weight.sum(axis=0) @ np.arange(weight.shape[1]), weight.sum(axis=1) @ np.arange(weight.shape[0])])
            / total
        )
        width = float(np.linalg.norm(corners[1] - corners[0]))
        # Along the opening's own axis, outer corner to inner: toward the nose for both eyes; looking aside moves
        # one iris toward its nose side and the other away from it.
        shifts.append(float((centre - corners.mean(axis=0)) @ (corners[1] - corners[0])) / (width * width))
    return abs(shifts[0] - shifts[1]) / 2.0
