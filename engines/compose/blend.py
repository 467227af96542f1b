"""Blending a rendered face back into the frame: the mask, colour matching and the paste.

The mask comes from the mesh drawn for the swap (``FaceGeometry``): the covered face, minus the eye and
mouth openings the actor keeps. Its edges are ramps measured with a distance transform in the face's
own units — an inset and a wide ramp at the outline, so the swapped face fades into the actor's jaw,
temples and forehead without a line, and a short ramp around the kept openings, so the actor's eyes
sit in the identity's eyelids. Being a distance *inside* the mesh, the ramp never paints a pixel the
face does not cover: a face half out of the frame is blended only where it is.

The outline's ramp is wide and is made at the mesh's geometry resolution; the kept openings' ramps are
a few pixels wide and are cut at full resolution from the eye and lip contours themselves
(``cut_openings``), so the lash line and the lips' rim follow the contour without steps, however far
the geometry raster was upsampled.

Colour is matched on skin only (triangles away from brows, lips and eyelids, well inside the mask): the
rendered face's mean colour there is moved to the actor's by per-channel gains in linear light, which
removes any step in tone at the mask's edge and keeps the identity's own contrast (brows, freckles,
beard shadow).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import cv2
import numpy as np

from engines.compose.chroma import ChromaConfig
from engines.compose.relief import ReliefConfig
from engines.compose.seam import SeamConfig
from engines.face.topology import (
    EYE_OPENING,
    LEFT_EYE,
    LIPS,
    LIPS_INNER,
    LIPS_OUTER,
    MOUTH_OPENING,
    RIGHT_EYE,
    SKIN,
    face_topology,
)
from engines.light.sh import linear_to_srgb, srgb_to_linear
from engines.swap.mesh import FaceGeometry, padded_mask


@dataclass(frozen=True)
class BlendConfig:
    edge_inset: float = 0.0
    """The mask starts this far inside the face outline (eye-corner distances)."""
    edge_feather: float = 0.08
    """Width of the ramp from the actor to the swapped face at the outline (eye-corner distances): narrow
    at the jaw and cheeks, where the face ends anyway and the identity's outline matters most ..."""
    forehead_feather: float = 0.25
    """... and wide across the forehead, where the mesh stops in the middle of the skin."""
    hole_grow: float = -0.01
    """Kept eye openings are enlarged by this much (negative: shrunk, so the identity's lash line just
    overlaps the rim of the actor's eye and frames it; at 0 or more a rim of the actor's own lids shows
    between them, pale against the identity's lashes, and the face looks less like the identity: measured
    with ``benchmarks/eval_quality.py``, BENCHMARKS.md) ..."""
    hole_feather: float = 0.03
    """... with a ramp this wide around them: narrow, so the gaze and blinks are the actor's but the lids
    and lash line around them the identity's (the actor's lids barely show through)."""
    mouth_grow: float = 0.0
    """The kept mouth opening is enlarged by this much (negative: shrunk, the identity's lips cover its rim). 0: the
    actor's opening to its tracked inner-lip contour, the identity's lips from there out. Shrunk by 0.02 (1.9 px on
    Obama_speaking's face), the identity's lips and the texture inside the photo's closed mouth were drawn over the top
    of the actor's teeth and gap, on a gap of 8-15 px: the output's mouth read less open than the actor's while he
    spoke: mouth r 0.78 -> 0.83 with biden.jpg at 0 (0.84 -> 0.88 without the watermark; BENCHMARKS.md, issue 21) ..."""
    mouth_feather: float = 0.03
    """... with a ramp this wide around it."""
    keep_lips: bool = False
    """With ``keep_mouth``, keep the actor's lips too (speech looks natural with any identity photo, at
    some cost in likeness)."""
    iris: float = 1.0
    """How far the actor's kept irises take the identity's iris colour (``engines.compose.iris``; 0: the actor's
    eyes as they are)."""
    seen_low: float = 0.1
    seen_high: float = 0.9
    """Photo coverage ramp: below ``seen_low`` the actor shows, above ``seen_high`` the identity."""
    colour_match: bool = True
    max_gain: float = 3.0
    """Largest per-channel colour correction (and smallest, as its inverse)."""
    seam: SeamConfig = SeamConfig()
    """Near the outline the face takes the actor's local tone, not only its mean (``engines.compose.seam``)."""
    chroma: ChromaConfig = ChromaConfig()
    """A black-and-white identity's colour: the actor's skin's, filled over the face (``engines.compose.chroma``)."""
    relief: ReliefConfig = ReliefConfig()
    """Under the nose and on it the face takes the actor's relative brightness: the actor's nostrils and the
    shadows the actor's nose casts, not the photo's (``engines.compose.relief``)."""


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
    small: np.ndarray | None = None,
) -> np.ndarray:
    """(h, w) float32 0..1: how much of the rendered face replaces the actor at each window pixel: the
    outline's ramp (``face_alpha_small``, or ``small`` when it is made already; left unchanged) scaled to the
    window, the kept openings cut at window resolution (``cut_openings``)."""
    small = face_alpha_small(geometry, config, seen) if small is None else small
    alpha = geometry.to_window(small)
    alpha = alpha.copy() if alpha is small else alpha
    cut_openings(alpha, geometry, keep_eyes, keep_mouth, config)
    return alpha


def cut_openings(
    alpha: np.ndarray,
    geometry: FaceGeometry,
    keep_eyes: bool,
    keep_mouth: bool,
    config: BlendConfig | None = None,
    fused: bool = False,
) -> None:
    """Multiply ``alpha`` in place by a ramp around each kept opening, at ``alpha``'s resolution: the window's, or any
    other grid over the window (the work size, ``FaceGeometry.mask_size``; ``cv2.resize``'s pixel centres).

    Each ramp is a signed distance to the opening's contour polygon (the tracked eye or lip points, morphed
    if the mesh was), so its edge is smooth to the pixel however thin the opening (a blink). The cut is
    confined to where the mesh shows the opening or a triangle touching its contour (a geometry pixel's
    slack): the far eye of a turned head, hidden behind the nose, leaves the nose alone.

    ``fused`` (a C-contiguous ``alpha``): what follows each distance transform — the signed distance, its average
    down to the window's pixels, the mask of where the mesh shows the opening, the ramp and the product — in one
    compiled pass (``engines.fused.cut_opening``; the same float32 numbers as these passes, which stay the
    reference)."""
    cfg = config or BlendConfig()
    openings: list[tuple[tuple[int, ...], float, float]] = []
    if keep_eyes:
        openings += [(contour, cfg.hole_grow, cfg.hole_feather) for contour in (RIGHT_EYE, LEFT_EYE)]
    if keep_mouth:
        openings.append((LIPS_OUTER if cfg.keep_lips else LIPS_INNER, cfg.mouth_grow, cfg.mouth_feather))
    if not openings:
        return
    h, w = alpha.shape
    window = geometry.window
    unit = geometry.face_scale_px
    points = geometry.landmarks[:, :2] - np.array([window.x0, window.y0], np.float32)
    if (h, w) != (window.height, window.width):  # another grid over the window: its pixels, its units
        scale = np.array([w / window.width, h / window.height], np.float32)
        points = (points + np.float32(0.5)) * scale - np.float32(0.5)
        unit *= math.sqrt(float(scale[0] * scale[1]))
    triangle = geometry.raster.triangle
    hs, ws = triangle.shape
    for contour, grow, feather in openings:
        grow_px, feather_px = grow * unit, max(feather * unit, 1e-3)
        polygon = points[list(contour)]
        reach = max(grow_px, 0.0) + feather_px + 2.0
        x0, y0 = np.floor(polygon.min(axis=0) - reach).astype(int)
        x1, y1 = np.ceil(polygon.max(axis=0) + reach).astype(int) + 1
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        fine = _fine_distance(polygon - (x0, y0), (y1 - y0, x1 - x0))
        # The geometry pixels the box samples (``_nearest``), with two more each side (the 3 x 3 dilation's one, and
        # one for the float rounding of ``_nearest``'s index): dilated there, the same as the whole raster dilated.
        sy0, sy1 = max(y0 * hs // h - 2, 0), min((y1 - 1) * hs // h + 3, hs)
        sx0, sx1 = max(x0 * ws // w - 2, 0), min((x1 - 1) * ws // w + 3, ws)
        part = _touching(contour)[triangle[sy0:sy1, sx0:sx1]].astype(np.uint8)
        shown = np.zeros((hs, ws), np.uint8)
        shown[sy0:sy1, sx0:sx1] = cv2.dilate(part, np.ones((3, 3), np.uint8))
        if fused and _SUBPIXEL == 2 and alpha.flags.c_contiguous and alpha.dtype == np.float32:
            from engines import fused as kernels  # numba's import on the first face, not at start-up

            kernels.cut_opening(alpha, *fine, shown, (y0, y1, x0, x1), grow_px, feather_px)
            continue
        signed = _signed_from_fine(*fine, (y1 - y0, x1 - x0))
        signed[_nearest(shown, (h, w), (y0, y1, x0, x1)) == 0] = np.inf
        alpha[y0:y1, x0:x1] *= _smoothstep((signed - grow_px) / feather_px)


def _nearest(small: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """The part ``box`` = (y0, y1, x0, x1) of ``small`` resized to ``size`` (h, w) by nearest neighbour, as
    ``cv2.resize(..., INTER_NEAREST)`` samples it (source index floor(i * src / dst)) — without resizing the
    whole window for a small box."""
    (h, w), (hs, ws) = size, small.shape[:2]
    y0, y1, x0, x1 = box
    rows = np.minimum((np.arange(y0, y1) * (hs / h)).astype(np.intp), hs - 1)
    cols = np.minimum((np.arange(x0, x1) * (ws / w)).astype(np.intp), ws - 1)
    return small[rows[:, None], cols[None, :]]


_SUBPIXEL = 2
"""The openings' signed distance is measured on a grid this many times finer than the window's."""


def _signed_distance(polygon: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) float32: each pixel's distance to the closed ``polygon`` (S, 2) (pixel coordinates), negative
    inside. Measured on a grid ``_SUBPIXEL`` times finer (the distance transform to the drawn contour) and
    averaged over each pixel — the average of a straight edge's distance over a pixel is its distance at
    the centre — so a ramp on it is smooth to a fraction of a pixel along any edge."""
    return _signed_from_fine(*_fine_distance(polygon, shape), shape)


def _fine_distance(polygon: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``_signed_distance``'s grid ``_SUBPIXEL`` times finer than ``shape`` (h, w): the distance to the drawn contour
    of ``polygon`` (float32) and its fill (uint8, 1 inside)."""
    h, w = shape
    k = _SUBPIXEL
    # Fine sample j sits at window coordinate (j + 0.5) / k - 0.5; vertices to 1/16 of a fine sample.
    vertices = [np.round(((polygon + 0.5) * k - 0.5) * 16.0).astype(np.int32)]
    inside = np.zeros((h * k, w * k), np.uint8)
    cv2.fillPoly(inside, vertices, 1, lineType=cv2.LINE_8, shift=4)
    contour = np.ones_like(inside)
    cv2.polylines(contour, vertices, True, 0, thickness=1, lineType=cv2.LINE_8, shift=4)
    return cv2.distanceTransform(contour, cv2.DIST_L2, cv2.DIST_MASK_5), inside


def _signed_from_fine(dist: np.ndarray, inside: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The fine grid's distance signed (negative inside), in window pixels, averaged down to ``shape`` (h, w)."""
    h, w = shape
    signed = np.where(inside > 0, -dist, dist)
    signed *= 1.0 / _SUBPIXEL
    return cv2.resize(signed, (w, h), interpolation=cv2.INTER_AREA)


@functools.cache
def _touching(contour: tuple[int, ...]) -> np.ndarray:
    """(T + 1,) bool per triangle of ``all_triangles`` (the last entry: no triangle, -1): inside the contour
    or touching it with a vertex."""
    topo = face_topology()
    tris = topo.all_triangles
    on = np.zeros(len(topo.canonical), dtype=bool)
    on[list(contour)] = True
    inside = (
        np.isin(topo.labels, (EYE_OPENING,))
        if contour in (RIGHT_EYE, LEFT_EYE)
        else np.isin(topo.labels, (MOUTH_OPENING, LIPS))
    )
    out = np.append(on[tris].any(axis=1) | inside, False)
    out.setflags(write=False)
    return out


def face_alpha_small(
    geometry: FaceGeometry, config: BlendConfig | None = None, seen: np.ndarray | None = None, fused: bool = False
) -> np.ndarray:
    """(hs, ws) float32 0..1 at geometry resolution: how much of the rendered face replaces the actor, but
    for the kept openings (cut at full size by ``cut_openings``; they are not skin, where this is used to
    measure light and colour, anyway).

    ``seen``: the identity photos' coverage at geometry resolution (``MeshSwapper.coverage_small``, 0..1);
    where the photos did not see the face (its far side, or hair over it in the photo) the actor shows.

    ``fused``: the ramps after the distance transform in one compiled pass (``engines.fused.outline_alpha``: the same
    float32 numbers as these numpy passes, which stay the reference)."""
    cfg = config or BlendConfig()
    labels = geometry.labels_small
    hs, ws = geometry.small_size
    unit = geometry.face_scale_px * ws / geometry.window.width  # eye-corner distance in small pixels
    # Pixels on the window border count as outside when the face continues past it (out of frame):
    # the ramp then starts at the frame edge, which is fine, but only where the face really is.
    inside_dist = cv2.distanceTransform(padded_mask(labels >= 0), cv2.DIST_L2, 3)[1:-1, 1:-1]
    feather = outline_feather(geometry, cfg)
    # At least 1.5 small pixels of inset: the bilinear upsampling then cannot carry alpha past the face.
    inset = max(cfg.edge_inset * unit, 1.5)
    if fused:
        from engines import fused as kernels  # numba's import on the first face, not at start-up

        return kernels.outline_alpha(inside_dist, inset, feather, unit, seen, (cfg.seen_low, cfg.seen_high))
    alpha = _smoothstep((inside_dist - inset) / np.maximum(feather * unit, 1e-3))
    if seen is not None:
        alpha = alpha * _smoothstep((seen - cfg.seen_low) / (cfg.seen_high - cfg.seen_low))
    return alpha.astype(np.float32)


def outline_feather(geometry: FaceGeometry, config: BlendConfig | None = None) -> np.ndarray:
    """(hs, ws) float32: the outline ramp's width at each geometry pixel (eye-corner distances): narrow at the
    jaw, wide across the forehead (``BlendConfig.edge_feather``, ``forehead_feather``)."""
    cfg = config or BlendConfig()
    widths = _vertex_feather(cfg.edge_feather, cfg.forehead_feather)
    # The mask's ramp and the seam's reach both read it: interpolated once per face and frame.
    key = ("outline_feather", cfg.edge_feather, cfg.forehead_feather)
    return geometry.memo(key, lambda: geometry.raster.interpolate(widths, fill=1.0))


def skin_mask(geometry: FaceGeometry, alpha_small: np.ndarray) -> np.ndarray:
    """(hs, ws) bool at geometry resolution: skin well inside the mask, where light and colour are measured."""
    return (geometry.labels_small == SKIN) & (alpha_small > 0.6)


def colour_gains(
    face_bgr: np.ndarray,
    actor_bgr: np.ndarray,
    skin: np.ndarray,
    config: BlendConfig | None = None,
    fused: bool = False,
) -> np.ndarray | None:
    """Per-channel gains (3,) in linear light that move ``face_bgr``'s mean colour on ``skin`` to
    ``actor_bgr``'s there; None when too little skin shows (or colour matching is off). ``fused``: the means in
    one compiled loop (``engines.fused.skin_means``: the same pixels summed in the same order, the same gains;
    numpy's gathers and means were ~0.2 ms a face)."""
    cfg = config or BlendConfig()
    if not cfg.colour_match:
        return None
    if fused:
        from engines import fused as kernels  # numba's import on the first face, not at start-up

        count, face_mean, actor_mean = kernels.skin_means(face_bgr, actor_bgr, skin, 4000, _U8_TO_LINEAR)
        if count < 50:
            return None
        return np.clip(actor_mean / np.maximum(face_mean, 1e-4), 1.0 / cfg.max_gain, cfg.max_gain)
    idx = np.flatnonzero(skin)
    if idx.size < 50:
        return None
    if idx.size > 4000:
        idx = idx[:: idx.size // 4000]
    face_lin = _U8_TO_LINEAR[face_bgr.reshape(-1, 3)[idx]].mean(axis=0)
    actor_lin = _U8_TO_LINEAR[actor_bgr.reshape(-1, 3)[idx]].mean(axis=0)
    return np.clip(actor_lin / np.maximum(face_lin, 1e-4), 1.0 / cfg.max_gain, cfg.max_gain)


class ColourGains:
    """Each face's colour-match gains (``colour_gains``), averaged over a time constant like its light: a
    per-frame estimate would flicker with the mesh. The blend stage's per-face state, forgotten with the face."""

    def __init__(self, time_constant_s: float) -> None:
        self.time_constant_s = time_constant_s
        self._gains: dict[int, tuple[np.ndarray, float]] = {}

    def __contains__(self, face_id: int) -> bool:
        return face_id in self._gains

    def current(self, face_id: int) -> np.ndarray | None:
        """The face's gains now (BGR), None before its first measurement."""
        held = self._gains.get(face_id)
        return None if held is None else held[0]

    def smooth(self, face_id: int, t: float, gains: np.ndarray | None) -> np.ndarray | None:
        """The face's gains after ``gains`` measured at ``t`` seconds (None: nothing measured this frame, the
        last ones are kept)."""
        previous = self._gains.get(face_id)
        if gains is None:
            return None if previous is None else previous[0]
        if previous is not None and 0.0 <= t - previous[1] <= 1.0:
            weight = 1.0 - math.exp(-(t - previous[1]) / max(self.time_constant_s, 1e-3))
            gains = previous[0] + weight * (gains - previous[0])
        self._gains[face_id] = (gains, t)
        return gains

    def forget(self, active: set[int]) -> None:
        """Drop the faces that are gone."""
        for face_id in [i for i in self._gains if i not in active]:
            del self._gains[face_id]


def apply_gains(face_bgr: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """``face_bgr`` (uint8) with per-channel linear-light ``gains``: one lookup table per channel, one pass.

    Gains scale dark and bright alike, so brows and beard stay dark instead of taking on the tint an
    additive (Lab) shift would give them."""
    lut = linear_to_srgb(np.clip(_U8_TO_LINEAR[:, None] * np.asarray(gains)[None, :], 0.0, 1.0)) * 255.0 + 0.5
    return cv2.LUT(face_bgr, lut.astype(np.uint8).reshape(256, 1, 3))


def composite(frame: np.ndarray, geometry: FaceGeometry, face_bgr: np.ndarray, alpha: np.ndarray) -> None:
    """Write ``actor + alpha * (face - actor)`` into the frame's window, in place.

    The actor is the frame's window as it is (the morph's warped copy, when there is one, is part of
    ``face_bgr``'s caller's business: pass it blended already)."""
    ys, xs = geometry.window.slices
    a = np.asarray(geometry.to_window(alpha), dtype=np.float32)  # a work-size alpha (``mask_size``) scaled up
    # Only the box where the face shows: the window's margin (the morph's falloff, the feather's reach) is the
    # actor's already, and blending it cost a third of the paste on a close-up.
    box = alpha_box(geometry, a)
    if box is None:
        return
    by, bx = box
    part = frame[ys, xs][by, bx]
    a = a[by, bx]
    # Element by element, so in place is safe; OpenCV writes into the frame's view (rows need not be adjacent).
    cv2.blendLinear(face_bgr[by, bx], part, a, 1.0 - a, dst=part)


def paste_face(
    frame: np.ndarray, geometry: FaceGeometry, face_bgr: np.ndarray, field_small: np.ndarray | None, alpha: np.ndarray
) -> None:
    """``composite(frame, geometry, geometry.to_window(apply_field(face_bgr, field_small)), alpha)`` in one compiled
    pass over the box where ``alpha`` shows (``engines.fused.paste_face``; within a level of those passes, which
    stay the reference): the face at its work size with the seam's gains (None: none) scaled up and blended into
    ``frame`` (uint8, C-contiguous) in place. ``alpha``: the window's size, or the work size (``mask_size``:
    scaled up in the same pass)."""
    # Imported on the first face pasted, not at start-up: numba's import costs ~0.4 s of CPU (issue 17).
    from engines import fused

    a = np.ascontiguousarray(alpha, dtype=np.float32)
    box = alpha_box(geometry, a)
    if box is None:
        return
    (by, bx), window = window_box(box, a.shape, geometry), geometry.window
    fused.paste_face(
        frame,
        (window.y0, window.x0),
        (window.height, window.width),
        (by.start, by.stop, bx.start, bx.stop),
        face_bgr,
        field_small,
        a,
    )


def window_box(box: tuple[slice, slice], size: tuple[int, ...], geometry: FaceGeometry) -> tuple[slice, slice]:
    """``box`` (row and column slices of an alpha of ``size`` (h, w) over the window, outside which it is zero) as the
    window's rows and columns outside which that alpha scaled up bilinearly (``cv2.resize``'s pixel centres) is
    zero: a window pixel reads the two rows and columns around its centre. ``box`` itself for a window-size alpha."""
    (h, w), window = size[:2], geometry.window
    if (h, w) == (window.height, window.width):
        return box
    ys, xs = box

    def scaled(part: slice, small: int, large: int) -> slice:
        k = large / small
        return slice(
            max(math.floor((part.start - 0.5) * k - 0.5), 0), min(math.ceil((part.stop + 0.5) * k - 0.5) + 1, large)
        )

    return scaled(ys, h, window.height), scaled(xs, w, window.width)


def alpha_box(geometry: FaceGeometry, alpha: np.ndarray) -> tuple[slice, slice] | None:
    """Row and column slices of ``alpha`` (the window's size or another grid over it: the work size) outside which
    it is zero; None when it is zero everywhere.

    The mesh's box (``FaceGeometry.face_box``, scaled to the window with a pixel for the upsampling) holds
    every alpha the mask stage makes; the four strips around it are checked (cheap), and any other alpha
    falls back to the rows and columns measured."""
    h, w = alpha.shape
    wy, wx = geometry.face_box()
    fy, fx = h / geometry.work_size[0], w / geometry.work_size[1]
    y0, y1 = max(math.floor(wy.start * fy) - 1, 0), min(math.ceil(wy.stop * fy) + 1, h)
    x0, x1 = max(math.floor(wx.start * fx) - 1, 0), min(math.ceil(wx.stop * fx) + 1, w)
    strips = (alpha[:y0], alpha[y1:], alpha[y0:y1, :x0], alpha[y0:y1, x1:])
    if y1 > y0 and x1 > x0 and not any(s.size and cv2.countNonZero(s) for s in strips):
        return slice(y0, y1), slice(x0, x1)
    rows = np.flatnonzero(alpha.max(axis=1) > 0.0)
    cols = np.flatnonzero(alpha.max(axis=0) > 0.0)
    if rows.size == 0:
        return None
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)
