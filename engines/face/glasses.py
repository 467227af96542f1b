"""Eyeglasses on the actor's face: whether a face wears them, and where their frame is in each frame.

The swap paints the identity's skin over the whole face inside the mesh, so an actor's glasses vanished between
the temples (only the arms outside the face stayed). Nothing the tracker gives says where glasses are, and no
permissively licensed glasses model is at hand, so they are found classically, from what makes a frame a frame:

- **thin and high-contrast**: a rim is a line a few pixels wide, darker or (metal, catching the light) brighter
  than the skin around it — the Hessian's principal curvature at a small scale answers both;
- **rigid with the head**: the frame sits on the nose and the ears and moves with the skull, not with the
  expression. Each face's eye band is resampled, every ``every`` frames, into the face's own frontal coordinates
  (a 3D similarity fitted to the mesh's rigid points, and the plane of the nose bridge in front of the eyes,
  which a weak-perspective camera maps by an affine), and the line response is averaged there over time: the
  frame's lines add up in the same grid pixels, while noise, a blink or a raised brow blur away;
- **a bridge across the nose**: the one part of a frame no face has without glasses is a horizontal line over
  the nose between the eyes. Its strength, relative to the brows' (the same kind of horizontal line on every
  face, under the same light and focus), decides whether a face wears glasses — with hysteresis and only after
  a few looks, so the decision does not flicker. Measured on the shared clips (``benchmarks/eval_glasses.py``):
  1.6-3.0 with glasses (d13, and d13 framed as a close-up), at most 0.45 without (d3; the others under 0.35).

Where the face wears glasses, the frame's *band* is the averaged line response's strong lines in the zone where
a frame can be (an ellipse around each eye, the bridge over the nose), off the actor's brows and eye openings,
with the weaker lines connected to them (hysteresis: a faint lens edge hangs on the rim that holds it), grown
and feathered. The band is a few pixels wider than the rims — the fit moves by a pixel or two between frames —
so ``Glasses.keep`` keeps, inside it, only the pixels this very frame shows as thin lines (a grey top-hat or
black-hat: a rim goes, the skin's shading stays) that belong to long ones (pores and brow hairs dropped), mapped
through the current frame's fit, so it follows the head between measurements. The lenses' interior is not part
of it: the swapped face shows through them.

Cost per face (``benchmarks/bench_glasses.py``): a fit of 22 points every frame and, every ``every`` frames, one
resampled grid of about 180 x 90 pixels with a blur and three Sobel passes; where glasses are found, the band's
box at no more than ``keep_px`` pixels per eye-corner distance (two morphology passes, a labelling), and the
blend, scaled up to full size only in the tiles of the box the rims reach (``kept_runs``): about a third of a
close-up's box, the lenses' interior skipped.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Set
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.geometry import Window, similarity_fit
from engines.face.landmarks import LEFT_EYE_INNER, LEFT_EYE_OUTER, RIGHT_EYE_INNER, RIGHT_EYE_OUTER
from engines.face.topology import LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE, face_topology

RIGID_POINTS: tuple[int, ...] = (
    33, 133, 362, 263, 168, 6, 197, 195, 8, 9, 116, 345, 117, 346, 118, 347, 123, 352, 127, 356, 234, 454,
)  # fmt: skip
"""Mesh points that move with the skull, not with the expression: eye corners, the nose bridge and the brow ridge
between the brows, cheekbones and temples (the jaw, lips and brows left out; the forehead's top too: a close-up
cuts it off, and the mesh guesses points outside the frame). The glasses' coordinates are fitted to these."""
BRIDGE_POINT = 168
"""The nose bridge between the eyes: the glasses' plane is taken at its depth."""
HALF_WIDTH = 1.15
HALF_HEIGHT = 0.55
"""The grid spans the eye line +-``HALF_WIDTH`` across and +-``HALF_HEIGHT`` down and up, in eye-corner distances:
temple to temple, brows to the cheekbones — where a frame in front of the eyes can be."""
EYE_X = 0.35
"""Each eye's centre, across from the middle, in eye-corner distances (the canonical face's: 0.35)."""


@dataclass(frozen=True)
class GlassesConfig:
    every: int = 2
    """Measure the line response every this many frames per face, once decided (the fit follows the head every
    frame)."""
    px_per_unit: int = 80
    """Grid pixels per eye-corner distance: a 3-4 px rim on a 170 px eye-corner distance is about 1.5 of them."""
    line_sigma: float = 1.2
    """Scale of the lines looked for, in grid pixels (a Gaussian's sigma)."""
    weight: float = 0.15
    """How much one measurement moves the running average (about a third of a second at 30 fps, ``every`` 2)."""
    min_looks: int = 6
    """Measurements before a face is first said to wear glasses (or not)."""
    on: float = 0.8
    off: float = 0.55
    """The bridge's line strength over the brows' above which glasses are found, and below which they are lost."""
    min_unit_px: float = 40.0
    """A face whose eye-corner distance is under this many frame pixels is not measured: its rims are a pixel or
    less, and a laughing face's creases, blurred, read as a bridge (short_hamilton's audience)."""
    max_yaw_deg: float = 35.0
    """A face turned further is not measured (its far side is foreshortened in the grid): the last average holds."""
    frame_level: float = 0.35
    """A grid pixel is the frame's where its averaged line response is at least this share of the bridge's."""
    low_level: float = 0.1
    skin_contrast: float = 2.0
    """Weaker lines connected to those are the frame's too, down to ``low_level`` of the bridge's and no lower than
    ``skin_contrast`` times the cheeks' own texture (hysteresis)."""
    feature_grow_px: int = 3
    """The actor's brows and eye openings, grown by this many grid pixels, are never the frame's ..."""
    under_eye: float = 0.06
    """... nor, under each eye, this many eye-corner distances below its grown opening: the lower lid's crease and
    the eye bag's line, laid back as a dark line inside the lens (a frame's lower rim is 0.15-0.3 below the lid)."""
    grow_px: int = 2
    """The frame's mask grown by this many grid pixels (the fit's error between updates) ..."""
    feather_px: float = 0.8
    """... and feathered by this sigma (grid pixels)."""
    line_low: float = 8.0
    line_high: float = 16.0
    """Within that band, a pixel is the frame's as it stands out as a thin line by ``line_low`` (not at all) to
    ``line_high`` (fully) 8-bit levels in this frame (``Glasses.keep``) ..."""
    rim_width: float = 0.015
    """... thinner than about twice this (eye-corner distances: 0.015 is about 1.5 mm) ..."""
    min_line: float = 0.06
    """... and belongs to a line at least this long (eye-corner distances)."""
    keep_px: float = 160.0
    """``Glasses.keep`` works at no more than this many pixels per eye-corner distance (a close-up's box is
    shrunk to it, and its result scaled back up)."""


@dataclass(frozen=True)
class Glasses:
    """One face's glasses this frame."""

    present: bool
    """Whether the face wears glasses (hysteresis over the running average)."""
    score: float
    """The bridge's line strength over the brows' (NaN before the first measurement)."""
    grid_mask: np.ndarray | None
    """(H, W) float32 0..1 the frame in the grid (None: no glasses)."""
    grid_to_frame: np.ndarray | None
    """(2, 3) affine: grid pixels -> frame pixels this frame (None: the face could not be fitted)."""
    grid_box: tuple[int, int, int, int] | None
    """Rows and columns (r0, r1, c0, c1) of ``grid_mask`` outside which it is zero."""

    def keep(self, image: np.ndarray, window: Window, config: GlassesConfig | None = None) -> GlassesKeep | None:
        """The actor's pixels to keep over a swapped face inside ``window`` (frame pixels) of ``image`` (the frame as
        it came in); None when there is nothing to keep.

        The band where the frame is (the running average's, mapped through this frame's fit) is a few pixels wider
        than the rims: it must be, the fit moves by a pixel or two between frames. Kept whole, it showed the actor's
        skin as a halo around every rim. So within it only the pixels this very frame shows as thin lines are kept
        (``thin_lines``: a rim is narrower than the disc, the skin's shading wider), those of long lines only (a
        pore, a brow hair or the camera's noise is a speck), plus a pixel for their antialiased edge: the swapped
        skin reaches up to the rim."""
        if not self.present or self.grid_mask is None or self.grid_to_frame is None or self.grid_box is None:
            return None
        cfg = config or GlassesConfig()
        view = work_view(image, self.grid_to_frame, self.grid_box, window, cfg)
        if view is None:
            return None
        band = cv2.warpAffine(self.grid_mask, view.grid_to_work, view.size, flags=cv2.INTER_LINEAR)
        thin = thin_lines(view.gray, view.rim_px)
        line: np.ndarray = np.clip((thin - cfg.line_low) / (cfg.line_high - cfg.line_low), 0.0, 1.0) * band
        box, unit = view.box, view.unit
        # A rim is long; a pore, a brow hair or the camera's noise that stands out as much is a speck: dropped.
        _, labels, stats, _ = cv2.connectedComponentsWithStats((line >= 0.5).astype(np.uint8), connectivity=8)
        reach = np.maximum(stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT])
        long = reach >= cfg.min_line * unit * cfg.px_per_unit
        long[0] = False
        cross = np.ones((3, 3), np.uint8)
        line *= cv2.dilate(long[labels].astype(np.uint8), cross)
        line = cv2.dilate(line, cross)  # the rim's antialiased edge
        # Quantised to 8 bits as before, but kept at work size: only the runs of the box the rims reach are scaled
        # up and blended (``GlassesKeep.lay``), not the lenses' interior.
        alpha = np.asarray(line * 255.0 + 0.5, dtype=np.uint8).astype(np.float32) * np.float32(1.0 / 255.0)
        sx, sy = view.size[0] / box.width, view.size[1] / box.height
        to_work = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])
        runs = kept_runs(alpha > 0.0, (box.width, box.height), to_work)
        if not runs:
            return None
        return GlassesKeep(box, alpha, to_work, runs)


LAY_TILE_PX = 24
"""``GlassesKeep.lay`` blends the box in tiles of this many frame pixels, only those the rims reach, merged along
rows: smaller tiles skip more of the lenses' interior but cost a call more each (24: about a third of a close-up's
box blended, in 30-40 calls)."""


def kept_runs(
    nonzero: np.ndarray, size: tuple[int, int], to_work: np.ndarray, tile_px: int = LAY_TILE_PX
) -> tuple[tuple[int, int, int, int], ...]:
    """Rectangles (y0, y1, x0, x1) of a box of ``size`` (width, height; frame pixels) that hold every pixel a linear
    scaling up of ``nonzero`` (work size, bool; ``to_work``: box pixels -> work pixels, as ``cv2.resize`` maps them)
    makes non-zero: ``tile_px`` tiles whose work pixels (and their neighbours the interpolation reads) hold any,
    merged along each row of tiles."""
    h, w = nonzero.shape
    width, height = size
    counts = cv2.integral(nonzero.astype(np.uint8))  # (h + 1, w + 1) int32

    def spans(n: int, scale: float, shift: float, limit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        starts = np.arange(0, n, tile_px)
        ends = np.minimum(starts + tile_px, n)
        lo = np.clip(np.floor(starts * scale + shift).astype(np.int64), 0, limit - 1)
        hi = np.clip(np.floor((ends - 1) * scale + shift).astype(np.int64) + 1, 0, limit - 1)
        return starts, ends, np.stack([lo, hi + 1])

    ys, ye, (r0, r1) = spans(height, float(to_work[1, 1]), float(to_work[1, 2]), h)
    xs, xe, (c0, c1) = spans(width, float(to_work[0, 0]), float(to_work[0, 2]), w)
    hits = counts[r1][:, c1] - counts[r0][:, c1] - counts[r1][:, c0] + counts[r0][:, c0]
    # Each row of tiles' runs of hit tiles: where the row, padded with a miss at each end, turns on and off again
    # (row-major, so each row's starts and ends alternate).
    padded = np.pad(hits > 0, ((0, 0), (1, 1)))
    rows, cols = np.nonzero(padded[:, 1:] != padded[:, :-1])
    return tuple(
        (int(ys[r]), int(ye[r]), int(xs[a]), int(xe[b - 1]))
        for r, a, b in zip(rows[::2].tolist(), cols[::2].tolist(), cols[1::2].tolist(), strict=True)
    )


@dataclass(frozen=True)
class GlassesKeep:
    """The actor's glasses to lay back over a swapped face: where, and how much of the actor's pixels."""

    box: Window
    """In frame pixels."""
    alpha: np.ndarray
    """(h, w) float32 0..1 at work size (in steps of 1/255): how much of the actor's pixel is kept."""
    to_work: np.ndarray
    """(2, 3) affine: box pixels -> ``alpha``'s pixels (as ``cv2.resize`` maps them)."""
    runs: tuple[tuple[int, int, int, int], ...]
    """Rectangles (y0, y1, x0, x1) of the box outside which nothing is kept (``kept_runs``)."""

    def levels(self) -> np.ndarray:
        """(box.height, box.width) float32 0..1: the kept share over the whole box (what ``lay`` blends with; for
        tests and pictures, not the frame path)."""
        out = np.zeros((self.box.height, self.box.width), np.float32)
        for y0, y1, x0, x1 in self.runs:
            out[y0:y1, x0:x1] = self._alpha(y0, y1, x0, x1)
        return out

    def lay(self, canvas: np.ndarray, image: np.ndarray) -> None:
        """Lay ``image``'s pixels (the frame as it came in) over ``canvas`` (host, the same size) where kept: the
        work-size share scaled up and blended run by run, so a close-up's cost follows its rims, not its box."""
        bx, by = self.box.x0, self.box.y0
        for y0, y1, x0, x1 in self.runs:
            a = self._alpha(y0, y1, x0, x1)
            ys, xs = slice(by + y0, by + y1), slice(bx + x0, bx + x1)
            part = canvas[ys, xs]
            cv2.blendLinear(image[ys, xs], part, a, 1.0 - a, dst=part)

    def _alpha(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """The kept share over box rows ``y0:y1`` and columns ``x0:x1``, scaled up linearly from work size."""
        m = self.to_work.copy()
        m[:, 2] += m[:, :2] @ (x0, y0)
        return np.asarray(
            cv2.warpAffine(
                self.alpha,
                m,
                (x1 - x0, y1 - y0),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
        )


@dataclass(frozen=True)
class WorkView:
    """A box of the frame around the glasses, grey, at no more than ``GlassesConfig.keep_px`` pixels per eye-corner
    distance: where this frame's own lines are looked at (a close-up costs what a medium shot does)."""

    box: Window
    """In frame pixels."""
    gray: np.ndarray
    """(h, w) uint8 the box at work size."""
    grid_to_work: np.ndarray
    """(2, 3) affine: grid pixels -> work pixels."""
    unit: float
    """Work pixels per grid pixel."""
    rim_px: int
    """The radius of the disc a rim is thinner than (work pixels)."""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the work size."""
        return self.gray.shape[1], self.gray.shape[0]


def work_view(
    image: np.ndarray,
    grid_to_frame: np.ndarray,
    grid_box: tuple[int, int, int, int],
    window: Window,
    config: GlassesConfig,
) -> WorkView | None:
    """The grid's rows and columns ``grid_box`` (r0, r1, c0, c1) as a box of ``image`` inside ``window``, at work
    size (``WorkView``); None when the box is (nearly) empty."""
    r0, r1, c0, c1 = grid_box
    corners = np.array([[c0 - 1, r0 - 1, 1.0], [c1, r0 - 1, 1.0], [c0 - 1, r1, 1.0], [c1, r1, 1.0]])
    xy = corners @ grid_to_frame.T
    x0 = max(int(np.floor(xy[:, 0].min())), window.x0)
    y0 = max(int(np.floor(xy[:, 1].min())), window.y0)
    x1 = min(int(np.ceil(xy[:, 0].max())) + 1, window.x0 + window.width)
    y1 = min(int(np.ceil(xy[:, 1].max())) + 1, window.y0 + window.height)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    box = Window(x0, y0, x1 - x0, y1 - y0)
    grid_px = math.sqrt(abs(float(np.linalg.det(grid_to_frame[:, :2]))))  # frame pixels per grid pixel
    k = min(1.0, config.keep_px / (grid_px * config.px_per_unit))
    size = (max(2, round(box.width * k)), max(2, round(box.height * k)))
    gray = cv2.cvtColor(image[box.slices], cv2.COLOR_BGR2GRAY)
    if size != (box.width, box.height):
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    sx, sy = size[0] / box.width, size[1] / box.height
    to_work = np.array([[sx, 0.0, 0.5 * sx - 0.5 - sx * x0], [0.0, sy, 0.5 * sy - 0.5 - sy * y0]])
    grid_to_work = to_work[:, :2] @ grid_to_frame
    grid_to_work[:, 2] += to_work[:, 2]
    unit = grid_px * sx
    rim_px = max(1, round(config.rim_width * unit * config.px_per_unit))
    return WorkView(box, gray, grid_to_work, unit, rim_px)


def thin_lines(gray: np.ndarray, radius: int) -> np.ndarray:
    """(h, w) float32: how far each pixel of ``gray`` (uint8) stands out as a line thinner than a disc of ``radius``,
    dark or bright — what a grey closing or opening by the disc takes away. The skin's shading, however steep, is
    wider than the disc and stays; a rim, an eyelash or a pore goes."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    bright = cv2.morphologyEx(gray, cv2.MORPH_TOPHAT, disc)
    dark = cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, disc)
    return np.maximum(bright, dark).astype(np.float32)


NO_GLASSES = Glasses(False, math.nan, None, None, None)


@dataclass
class _Track:
    """One face's running average and decision."""

    lines: np.ndarray
    """(H, W, 2) float32: averaged line response, all orientations and horizontal lines only."""
    looks: int = 1
    present: bool = False
    score: float = math.nan
    grid_mask: np.ndarray | None = None
    grid_box: tuple[int, int, int, int] | None = None
    since: int = 0
    """Frames since the last measurement."""


@functools.cache
def _canonical() -> tuple[np.ndarray, float, np.ndarray]:
    """The canonical face's rigid points (N, 3), its eye-corner distance, and the grid's origin (the eye line's
    middle at the bridge's depth) in canonical coordinates."""
    canon = face_topology().canonical.astype(np.float64)
    pts = canon[list(RIGID_POINTS)]
    unit = float(np.linalg.norm(canon[LEFT_EYE_OUTER] - canon[RIGHT_EYE_OUTER]))
    eyes = canon[[RIGHT_EYE_OUTER, RIGHT_EYE_INNER, LEFT_EYE_INNER, LEFT_EYE_OUTER]].mean(axis=0)
    origin = np.array([eyes[0], eyes[1], canon[BRIDGE_POINT, 2]])
    for arr in (pts, origin):
        arr.setflags(write=False)
    return pts, unit, origin


def rigid_fit(landmarks: np.ndarray) -> tuple[float, np.ndarray, np.ndarray] | None:
    """(scale, rotation (3, 3), translation (3,)) taking the canonical face's rigid points onto the mesh's, least
    squares in 3D (``similarity_fit``); None when the points are not finite or degenerate."""
    dst = np.asarray(landmarks, dtype=np.float64)[list(RIGID_POINTS)]
    if not np.isfinite(dst).all():
        return None
    scale, rot, shift = similarity_fit(_canonical()[0], dst)
    if not scale > 0.0:
        return None
    return scale, rot, shift


def grid_to_frame(scale: float, rot: np.ndarray, shift: np.ndarray, px_per_unit: int) -> np.ndarray:
    """(2, 3) affine from grid pixels to frame pixels: the grid lies in the canonical face's plane through the nose
    bridge, in front of the eyes, and a weak-perspective camera (the mesh's x, y are pixels) maps a plane by an
    affine."""
    _, unit, origin = _canonical()
    step = unit / px_per_unit
    # grid (gx, gy, 1) -> canonical (x, y, z): the grid's (0, 0) cell centre at the span's top-left corner
    to_canon = np.array(
        [
            [step, 0.0, origin[0] - HALF_WIDTH * unit + 0.5 * step],
            [0.0, step, origin[1] - HALF_HEIGHT * unit + 0.5 * step],
            [0.0, 0.0, origin[2]],
        ]
    )
    m = (scale * rot[:2]) @ to_canon
    m[:, 2] += shift[:2]
    return m


def grid_size(px_per_unit: int) -> tuple[int, int]:
    """(height, width) of the grid."""
    return round(2 * HALF_HEIGHT * px_per_unit), round(2 * HALF_WIDTH * px_per_unit)


def yaw_deg(rot: np.ndarray) -> float:
    """How far the fitted face is turned left or right (degrees, 0 frontal)."""
    return math.degrees(math.asin(max(-1.0, min(1.0, float(rot[2, 0])))))


def line_response(gray: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W, 2) float32: thin lines' strength, dark or bright — the Hessian's larger principal curvature — in any
    orientation, and the same for horizontal lines only (weighted by how vertical the curvature's direction is,
    to the fourth power: a nose's side or a face's outline barely counts)."""
    g = cv2.GaussianBlur(gray, (0, 0), sigma)
    dxx = cv2.Sobel(g, cv2.CV_32F, 2, 0, ksize=3)
    dyy = cv2.Sobel(g, cv2.CV_32F, 0, 2, ksize=3)
    dxy = cv2.Sobel(g, cv2.CV_32F, 1, 1, ksize=3)
    half_trace = 0.5 * (dxx + dyy)
    root = np.sqrt(0.25 * (dxx - dyy) ** 2 + dxy * dxy)
    big = np.where(half_trace >= 0.0, half_trace + root, half_trace - root)  # the curvature of larger magnitude
    vy = big - dxx  # its eigenvector is (dxy, big - dxx)
    vertical = vy * vy / (dxy * dxy + vy * vy + 1e-9)
    strength = np.abs(big)
    return np.stack([strength, strength * vertical * vertical], axis=-1)


def _region(px_per_unit: int, x0: float, x1: float, y0: float, y1: float) -> tuple[slice, slice]:
    """Grid rows and columns of a span in eye-corner distances from the eye line's middle."""
    h, w = grid_size(px_per_unit)
    cy, cx = h / 2, w / 2
    rows = slice(max(round(cy + y0 * px_per_unit), 0), min(round(cy + y1 * px_per_unit), h))
    cols = slice(max(round(cx + x0 * px_per_unit), 0), min(round(cx + x1 * px_per_unit), w))
    return rows, cols


def bridge_score(lines: np.ndarray, px_per_unit: int) -> tuple[float, int]:
    """The bridge's horizontal line strength over the brows', and the grid row of the bridge.

    Each is the strongest row of the mean across its span: a line crossing the whole span adds up, texture and
    lines at other angles average away. The bridge spans the nose between the eyes, from a little above the eye
    line to just below it; the brows, each eye's width above it."""
    horizontal = lines[..., 1]
    rows, cols = _region(px_per_unit, -0.1, 0.1, -0.25, 0.08)
    bridge_rows = horizontal[rows, cols].mean(axis=1)
    brows = [
        float(horizontal[r, c].mean(axis=1).max())
        for r, c in (
            _region(px_per_unit, -EYE_X - 0.2, -EYE_X + 0.2, -0.5, -0.15),
            _region(px_per_unit, EYE_X - 0.2, EYE_X + 0.2, -0.5, -0.15),
        )
    ]
    brow = max(float(np.mean(brows)), 1e-3)
    k = int(np.argmax(bridge_rows))
    return float(bridge_rows[k]) / brow, (rows.start or 0) + k


def bridge_strength(lines: np.ndarray, bridge_row: int, px_per_unit: int) -> float:
    """The bridge's mean line response (any orientation) along its row: the frame's own contrast, which the rims'
    lines are measured against."""
    _, cols = _region(px_per_unit, -0.1, 0.1, -0.25, 0.08)
    return float(lines[bridge_row, cols, 0].mean())


@functools.cache
def frame_zone(px_per_unit: int) -> np.ndarray:
    """(H, W) bool: where a frame's rims and bridge can be in the grid — an ellipse around each eye (half a
    corner distance across, a third up and down, centred a little below the eye line, where lenses sit) and the
    bridge over the nose. Brows above and cheeks below it are never the frame's."""
    h, w = grid_size(px_per_unit)
    zone = np.zeros((h, w), np.uint8)
    cy, cx = h / 2, w / 2
    for side in (-1.0, 1.0):
        centre = (round(cx + side * EYE_X * px_per_unit), round(cy + 0.05 * px_per_unit))
        axes = (round(0.52 * px_per_unit), round(0.3 * px_per_unit))
        cv2.ellipse(zone, centre, axes, 0.0, 0.0, 360.0, 1, -1)
    rows, cols = _region(px_per_unit, -0.15, 0.15, -0.25, 0.1)
    zone[rows, cols] = 1
    out = zone.astype(bool)
    out.setflags(write=False)
    return out


def face_features(landmarks: np.ndarray, to_frame: np.ndarray, shape: tuple[int, int], grow_px: int) -> np.ndarray:
    """(H, W) bool: the actor's brows and eye openings in the grid (from the mesh, grown by ``grow_px``): lines
    there are the face's own (the swap draws the identity's brows and lids), not the frame's."""
    xy = _to_grid(landmarks, to_frame)
    out = np.zeros(shape, np.uint8)
    for contour in (RIGHT_BROW, LEFT_BROW, RIGHT_EYE, LEFT_EYE):
        cv2.fillPoly(out, [np.round(xy[list(contour)] * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
    return _grow(out, grow_px).astype(bool)


def under_eyes(
    landmarks: np.ndarray, to_frame: np.ndarray, shape: tuple[int, int], grow_px: int, below_px: int
) -> np.ndarray:
    """(H, W) bool: under each of the actor's eyes in the grid, from its middle down to ``below_px`` below its
    opening grown by ``grow_px``: where the lower lid's crease and the eye bag's line are — lines of the face
    inside the lens, which the swap draws from the identity."""
    xy = _to_grid(landmarks, to_frame)
    out = np.zeros(shape, np.uint8)
    for contour in (RIGHT_EYE, LEFT_EYE):
        points = xy[list(contour)]
        eye = np.zeros(shape, np.uint8)
        cv2.fillPoly(eye, [np.round(points * 4).astype(np.int32)], 1, cv2.LINE_8, shift=2)
        eye = _grow(eye, grow_px)
        if below_px > 0:  # swept straight down (the anchor at the kernel's bottom)
            eye = np.asarray(cv2.dilate(eye, np.ones((below_px + 1, 1), np.uint8), anchor=(0, below_px)), np.uint8)
        eye[: max(0, math.ceil(float(points[:, 1].mean()))), :] = 0
        out |= eye
    return out.astype(bool)


def _to_grid(landmarks: np.ndarray, to_frame: np.ndarray) -> np.ndarray:
    """(N, 2) the mesh's points in grid pixels."""
    inverse = cv2.invertAffineTransform(to_frame)
    return np.asarray(landmarks, dtype=np.float64)[:, :2] @ inverse[:, :2].T + inverse[:, 2]


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    """A uint8 mask dilated by a disc of radius ``px`` (unchanged at 0)."""
    if px <= 0:
        return mask
    return np.asarray(cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))))


def frame_mask(
    lines: np.ndarray, bridge_row: int, features: np.ndarray, config: GlassesConfig, cut: np.ndarray | None = None
) -> np.ndarray | None:
    """(H, W) float32 0..1 the glasses' frame in the grid: inside the zone where a frame can be (``frame_zone``) and
    off the face's own brows and eyes (``features``), the lines at least ``frame_level`` as strong as the
    bridge's; specks smaller than a tenth of a corner distance dropped; grown and feathered; zero on ``cut``
    (under the eyes: the growing and feathering reached back into it). None: nothing."""
    strength = lines[..., 0].copy()
    bridge = bridge_strength(lines, bridge_row, config.px_per_unit)
    # Over the nose only the bridge's horizontal line: the nose's sides are lines too.
    rows, nose = _region(config.px_per_unit, -0.15, 0.15, -0.25, 0.1)
    strength[rows, nose] = lines[rows, nose, 1]
    # The cheeks under the lenses: the skin's own texture, under this light and focus.
    cheeks = [strength[_region(config.px_per_unit, x - 0.2, x + 0.2, 0.42, 0.55)] for x in (-EYE_X, EYE_X)]
    skin = float(np.median(np.concatenate([c.ravel() for c in cheeks])))
    # Hysteresis, as an edge detector links its edges: lines as strong as ``frame_level`` of the bridge's, and
    # the weaker lines connected to them that still stand ``skin_contrast`` times above the skin's texture
    # (a thin lens edge is faint, but continuous with the rim that holds it).
    high = config.frame_level * bridge
    low = min(max(config.skin_contrast * skin, config.low_level * bridge), high)
    allowed = frame_zone(config.px_per_unit) & ~features
    weak = ((strength >= low) & allowed).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak, connectivity=8)
    seeded = np.unique(labels[(strength >= high) & allowed])
    big = seeded[(seeded > 0) & (stats[seeded, cv2.CC_STAT_AREA] >= 0.1 * config.px_per_unit)]
    if big.size == 0:
        return None
    out = _grow(np.isin(labels, big).astype(np.uint8), config.grow_px).astype(np.float32)
    if config.feather_px > 0:
        # The line's own pixels stay fully kept; only its rim ramps.
        out = np.minimum(cv2.GaussianBlur(out, (0, 0), config.feather_px) * 1.5, 1.0).astype(np.float32)
    if cut is not None:
        out[cut] = 0.0
    return out


class GlassesFinder:
    """Per face: the running average of the line response in the face's own coordinates, whether the face wears
    glasses, and the frame's mask. One per stream (per-face state, forgotten with the face)."""

    def __init__(self, config: GlassesConfig | None = None) -> None:
        self.config = config or GlassesConfig()
        if self.config.every < 1:
            raise ValueError("GlassesConfig.every must be at least 1")
        self._tracks: dict[int, _Track] = {}

    def forget(self, active: Set[int]) -> None:
        """Drop the faces no longer tracked."""
        for face_id in [i for i in self._tracks if i not in active]:
            del self._tracks[face_id]

    def update(self, image: np.ndarray, face_id: int, landmarks: np.ndarray) -> Glasses:
        """The face's glasses in ``image`` (BGR uint8, the frame as it came in), its mesh ``landmarks`` (468, 3)
        in frame pixels."""
        cfg = self.config
        track = self._tracks.get(face_id)
        measure = track is None or track.since + 1 >= cfg.every or track.looks < cfg.min_looks
        if track is not None and not measure and not track.present:
            # Between two looks at a face without glasses nothing uses the fit (~0.05 ms of 22 points' SVD): the
            # answer is the last look's, as it would be.
            track.since += 1
            return Glasses(False, track.score, None, None, None)
        fit = rigid_fit(landmarks)
        if fit is None:
            return NO_GLASSES if track is None else Glasses(False, track.score, None, None, None)
        scale, rot, shift = fit
        to_frame = grid_to_frame(scale, rot, shift, cfg.px_per_unit)
        # Every frame until the first decision (a new face is painted over for as few frames as can be), then
        # every ``every``.
        if measure:
            if abs(yaw_deg(rot)) <= cfg.max_yaw_deg and scale * _canonical()[1] >= cfg.min_unit_px:
                track = self._measure(image, face_id, landmarks, to_frame, track)
            elif track is not None:
                track.since = 0
        elif track is not None:  # (always: a face with no track yet is measured)
            track.since += 1
        if track is None:
            return NO_GLASSES
        if not track.present or track.grid_mask is None:
            return Glasses(track.present, track.score, None, to_frame, None)
        return Glasses(True, track.score, track.grid_mask, to_frame, track.grid_box)

    def _measure(
        self, image: np.ndarray, face_id: int, landmarks: np.ndarray, to_frame: np.ndarray, track: _Track | None
    ) -> _Track:
        cfg = self.config
        h, w = grid_size(cfg.px_per_unit)
        # Replicated at the frame's edge: a close-up cuts the forehead off, and a black border would be a line.
        patch = cv2.warpAffine(
            image, to_frame, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
        gray = cv2.cvtColor(patch, cv2.COLOR_BGR2GRAY).astype(np.float32)
        lines = line_response(gray, cfg.line_sigma)
        if track is None:
            track = _Track(lines)
            self._tracks[face_id] = track
        else:
            track.lines += cfg.weight * (lines - track.lines)
            track.looks += 1
            track.since = 0
        score, row = bridge_score(track.lines, cfg.px_per_unit)
        track.score = score
        if track.looks >= cfg.min_looks:
            track.present = score >= cfg.on if not track.present else score > cfg.off
        if track.present:
            features = face_features(landmarks, to_frame, (h, w), cfg.feature_grow_px)
            below = round(cfg.under_eye * cfg.px_per_unit)
            under = under_eyes(landmarks, to_frame, (h, w), cfg.feature_grow_px, below)
            track.grid_mask = frame_mask(track.lines, row, features | under, cfg, under)
        else:
            track.grid_mask = None
        track.grid_box = None
        if track.grid_mask is not None:
            rows = np.flatnonzero(track.grid_mask.max(axis=1) > 0.0)
            cols = np.flatnonzero(track.grid_mask.max(axis=0) > 0.0)
            track.grid_box = (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)
        return track
