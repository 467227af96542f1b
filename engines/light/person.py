"""Relighting the whole person — head, hair, ears, neck and shoulders — in the light the face is relit to.

The face's own relight (``engines.light.relight.relight_face``) knows the face from its tracked mesh and
nothing else: relit alone, the face reads as a grey mask over ears, neck and hair still in the old light,
with an edge at the jaw and forehead. Here the relight covers the person around the face:

1. **Normals for the person** (``person_normals``): the mesh's normals where the face is; elsewhere normals
   estimated from the person's silhouette (the selfie segmentation model's person probability, which the
   caller gives: ``engines.compose.occlusion.PersonMasks``). The silhouette is *inflated* into a rounded
   surface — a circular profile of ``radius`` eye-corner distances from the outline inward, so the outline
   faces sideways (the sides of the head and neck, the tops of the shoulders) and the interior faces the
   camera — and blended into the mesh's normals over ``face_feather``, so there is no edge where the mesh
   ends.
2. **One light for all**: the light measured on the face's skin and the same target, as a shading ratio
   ``E_target(n) / E_source(n)`` per colour channel. A ratio per channel is the luminance's relight times
   the light's change of colour; the albedo's own chroma (skin, hair, shirt) is never touched.
3. **The grain kept** (``relight_window``): the ratio is applied to a smoothed base and the detail layer is
   carried as it is, in the picture's own (sRGB-encoded) values: ``out = E(D(base) * ratio) + (in - base)``
   with ``D``/``E`` the sRGB curves to and from linear light and ``base`` the picture blurred at the scale
   of the grain (``detail`` eye-corner distances). A ratio applied to every pixel scales the camera's noise
   and the skin's pores with it (+10-20% high-frequency energy where it brightens); carried, they stay at
   the input's level, and relighting to the measured light changes nothing.
4. **Only the person**: the ratio fades to 1 off the silhouette (the background keeps its exposure) and
   toward the sides of the segmented square that lie inside the frame (the body goes on below it: no line
   across the chest).

The shading is smooth, so normals and ratios live on a coarse grid (``grid_px`` on the long side) and the
per-pixel work is a blur, one multiply through two lookup tables at a reduced size and one add at full
size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engines.face.landmarks import CHIN, FOREHEAD_TOP
from engines.light.relight import MAX_GAIN, _shading_field, grid_size
from engines.light.sh import linear_to_srgb, srgb_to_linear

if TYPE_CHECKING:
    from engines.swap.raster import Window

_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_U8_TO_LINEAR.setflags(write=False)
_CODE_LUT_SIZE = 16384
_LINEAR_TO_CODE = (linear_to_srgb(np.arange(_CODE_LUT_SIZE + 1) / _CODE_LUT_SIZE) * 255.0).astype(np.float32)
"""sRGB code value (float, 0..255) of linear light in steps of 1/16384: a fifth of a level at worst (near black)."""
_LINEAR_TO_CODE.setflags(write=False)


CHANGE_SMOOTH_PX = 0.6
"""Gaussian sigma, in pixels of the reduced size ``relight_window`` works at, of the change before it is scaled
up (a sigma of ~0.6 detail-scales at full size): 0.6 takes the grain's growth on s18 from +5-8% to +2-5%
(1.0: +3% but the relit face's own shading weakens by a fifth)."""


@dataclass(frozen=True)
class PersonLightConfig:
    """How the person around a face is relit. Lengths in eye-corner distances (``face_scale_px``)."""

    grid_px: int = 64
    """Long side of the grid the normals and the shading ratio are computed on (the shading is smooth)."""
    radius: float = 1.1
    """Profile radius of the inflated silhouette: how far in from the outline the surface turns to face the
    camera (a head is about 1.3 eye-corner distances wide on each side of its centre, a neck about 0.7)."""
    smooth: float = 0.3
    """Smoothing of the inflated surface (Gaussian sigma): the ridge along a narrow part (the neck) rounded."""
    face_feather: float = 0.4
    """Width over which the mesh's normals blend into the silhouette's, inward from the mesh's outline."""
    person_low: float = 0.35
    person_high: float = 0.8
    """Person probability ramp: below ``person_low`` nothing is relit (background), above ``person_high`` fully."""
    detail: float = 0.04
    """Scale of the detail layer that is carried unchanged (Gaussian sigma of the base; at least 1 pixel)."""
    edge_fade: float = 0.2
    """Share of the segmented square, at each side inside the frame, over which the ratio fades to 1."""
    max_gain: float = 2.5
    """Largest brightening: the silhouette's normals are an estimate, so less than the face's ``MAX_GAIN``."""
    neck_radius: float = 0.62
    """Half width of the neck (``Neck``): an adult neck is 100-125 mm across, the outer eye corners ~90 mm apart."""
    neck_length: float = 0.4
    """How far below the chin the neck's cylinder holds fully before it fades (over as much again) into the
    silhouette's normals: the chin juts forward, so the collar is 0.4-0.6 eye-corner distances below it."""
    neck_tilt: float = 0.15
    """The neck leans forward from the shoulders, so its front faces slightly down (tangent of that angle)."""


@dataclass(frozen=True)
class Neck:
    """Where the neck is in the frame: a vertical cylinder under the head, in frame pixels.

    The silhouette says nothing about a neck seen from the front (it lies inside the outline, between the jaw
    and the collar: its inflated normals face the camera, so a side light would change it evenly), and a neck is
    round. ``top``: the axis's point at the jaw angles' level (the midpoint of the jaw's corners, under the
    head's centre whatever its yaw); ``down``: unit image direction of the axis (the face's own chin-ward axis:
    the head's roll); ``radius_px``: half the neck's width; ``chin_px``: distance along the axis from ``top`` to
    the chin's level."""

    top: tuple[float, float]
    down: tuple[float, float]
    radius_px: float
    chin_px: float


_JAW_CORNERS = (172, 397, 234, 454)
"""Mesh points at the jaw's corners and the face's outline at ear level, both sides: their mean lies on the
head's vertical axis (in 3D, so it does not follow the chin when the head turns)."""


def neck_from_landmarks(landmarks: np.ndarray, eye_px: float, config: PersonLightConfig | None = None) -> Neck:
    """The ``Neck`` of a tracked face: (468, 3) landmarks in frame pixels, ``eye_px`` its eye-corner distance."""
    cfg = config or PersonLightConfig()
    lm = np.asarray(landmarks, dtype=np.float64)
    top = lm[list(_JAW_CORNERS), :2].mean(axis=0)
    axis = lm[CHIN, :2] - lm[FOREHEAD_TOP, :2]
    length = float(np.hypot(*axis))
    down = axis / length if length > 1e-6 else np.array([0.0, 1.0])
    chin = float((lm[CHIN, :2] - top) @ down)
    return Neck((float(top[0]), float(top[1])), (float(down[0]), float(down[1])), cfg.neck_radius * eye_px, chin)


def neck_normals(
    neck: Neck, grid_to_frame: np.ndarray, size: tuple[int, int], eye_px: float, config: PersonLightConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Normals (h, w, 3) of the neck's cylinder on a (width, height) grid, and its weight there (h, w, 0..1).

    Across the axis the normal turns from facing the camera to facing sideways (``u`` = offset / radius:
    ``(u * side, sqrt(1 - u^2) * camera)``), tilted down by ``neck_tilt``; the weight is full within 0.8 radius
    of the axis, from the jaw's level to ``neck_length`` below the chin, and falls to 0 at 1.2 radii and over
    ``neck_length`` again past that (there the silhouette's normals hold: shoulders, chest)."""
    gw, gh = size
    xs = (grid_to_frame[0, 0] * np.arange(gw) + (grid_to_frame[0, 2] - neck.top[0])).astype(np.float32)
    ys = (grid_to_frame[1, 1] * np.arange(gh) + (grid_to_frame[1, 2] - neck.top[1])).astype(np.float32)
    dx, dy = neck.down
    along = xs[None, :] * dx + ys[:, None] * dy  # frame pixels down the axis from the jaw's level
    u = (xs[None, :] * dy - ys[:, None] * dx) * (1.0 / max(neck.radius_px, 1.0))  # across, toward image right
    uc = np.clip(u, -0.97, 0.97)
    front = np.sqrt(1.0 - uc * uc)
    # Camera frame (x right, y up, z toward the camera): the side (dy, dx) and the axis's down (dx, -dy) are
    # orthogonal unit vectors, so the tilted normal's length is sqrt(1 + tilt^2 front^2).
    k = config.neck_tilt
    inv = 1.0 / np.sqrt(1.0 + (k * k) * front * front)
    tilt = k * front
    n = np.empty((gh, gw, 3), np.float32)
    n[..., 0] = (uc * dy + tilt * dx) * inv
    n[..., 1] = (uc * dx - tilt * dy) * inv
    n[..., 2] = front * inv
    fade_px = max(config.neck_length * eye_px, 1.0)
    start = _smoothstep(along / max(0.15 * eye_px, 1.0) + 1.0)  # from just above the jaw's level
    end = _smoothstep((neck.chin_px + config.neck_length * eye_px + fade_px - along) / fade_px)
    width = _smoothstep((1.2 - np.abs(u)) / 0.4)
    return n, start * end * width


def silhouette_normals(person: np.ndarray, radius_px: float, smooth_px: float) -> np.ndarray:
    """(h, w, 3) float32 camera-frame unit normals of a silhouette inflated into a rounded surface.

    ``person``: (h, w) probability 0..1 on a grid; ``radius_px`` and ``smooth_px`` in grid pixels. Height is
    ``sqrt(r^2 - (r - d)^2)`` for a distance ``d < r`` inside the outline (a quarter circle: vertical at the
    outline, flat from ``r`` in), smoothed; normals are ``(-dh/dx, dh/dy, 1)`` normalised (image y points down,
    camera y up). Outside the silhouette the normals continue the outline's (facing sideways)."""
    inside = (np.asarray(person) >= 0.5).astype(np.uint8)
    r = max(float(radius_px), 1.0)
    # Pixels on the grid's border count as inside where the person goes on past it (cut by the frame/region).
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    t = np.minimum(d / r, 1.0)
    height = r * np.sqrt(np.maximum(1.0 - (1.0 - t) ** 2, 0.0))
    if smooth_px > 0:
        height = cv2.GaussianBlur(height, (0, 0), float(smooth_px), borderType=cv2.BORDER_REPLICATE)
    gx = cv2.Sobel(height, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    gy = cv2.Sobel(height, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REPLICATE) / 8.0
    n = np.dstack([-gx, gy, np.ones_like(gx)])
    n /= np.linalg.norm(n, axis=2, keepdims=True)
    return n.astype(np.float32)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    t = np.clip(x, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def person_normals(
    person: np.ndarray,
    face_normals: np.ndarray,
    face_cover: np.ndarray,
    unit_px: float,
    config: PersonLightConfig | None = None,
    neck: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Normals (h, w, 3) of the person on a grid, and how much of each cell is the face's mesh (0..1).

    ``person``: (h, w) probability; ``face_normals``: (h, w, 3) the mesh's normals resampled to the grid
    (zero off the mesh); ``face_cover``: (h, w) 0..1 the mesh's coverage there; ``unit_px``: the eye-corner
    distance in grid pixels; ``neck``: the neck's normals and weight on the grid (``neck_normals``), blended
    over the silhouette's. The mesh's normals count fully from ``face_feather`` inside its outline and fade
    into the others toward the outline."""
    cfg = config or PersonLightConfig()
    sil = silhouette_normals(person, cfg.radius * unit_px, cfg.smooth * unit_px)
    if neck is not None:  # (renormalised below, with the face's)
        n_neck, w_neck = neck
        sil = sil + w_neck[..., None] * (n_neck - sil)
    covered = (np.asarray(face_cover) > 0.5).astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(covered, 1), cv2.DIST_L2, 3)[1:-1, 1:-1]
    w_face = _smoothstep(depth / max(cfg.face_feather * unit_px, 1e-3))[..., None]
    # Off the mesh its normals are zero, and there the weight is too: no need to extend them.
    n = w_face * np.asarray(face_normals, dtype=np.float32) + (1.0 - w_face) * sil
    n /= np.maximum(np.linalg.norm(n, axis=2, keepdims=True), 1e-6)
    return n.astype(np.float32), w_face[..., 0]


def region_fade(size: tuple[int, int], open_sides: tuple[bool, bool, bool, bool], share: float) -> np.ndarray:
    """(h, w) 0..1 on a grid of ``size`` (width, height): 1 inside, falling to 0 over ``share`` of the grid
    toward each side where ``open_sides`` (left, top, right, bottom) is true: sides of the segmented square
    that lie inside the frame, where the person goes on past what was segmented."""
    w, h = size
    xs = (np.arange(w, dtype=np.float32) + 0.5) / w
    ys = (np.arange(h, dtype=np.float32) + 0.5) / h
    s = max(share, 1e-3)
    fx = np.ones(w, np.float32)
    fy = np.ones(h, np.float32)
    left, top, right, bottom = open_sides
    if left:
        fx *= _smoothstep(xs / s)
    if right:
        fx *= _smoothstep((1.0 - xs) / s)
    if top:
        fy *= _smoothstep(ys / s)
    if bottom:
        fy *= _smoothstep((1.0 - ys) / s)
    return fy[:, None] * fx[None, :]


def shading_ratio(
    normals: np.ndarray, sh_source: np.ndarray, sh_target: np.ndarray, max_gain: float | np.ndarray = MAX_GAIN
) -> np.ndarray:
    """(h, w, 3) BGR float32: ``E_target / E_source`` per channel (floored and its colour bounded like
    ``relight_face``'s: ``relight.bound_colour``), with the brightening limit ``max_gain`` (a number, or (h, w) per
    cell) on the ratio's luminance, not on each channel.

    Per channel, because the measured light's colour varies with direction (s18: a warm window on one side, a
    cooler fill on the other) and only a ratio per channel takes that colour off where the target has none
    (a ratio of luminances times one colour change moved s18's skin chroma by 10.7% under a white key).
    The limit on the luminance, because where it bites (the side a light missed: 3-4x brighter) a limit per
    channel clips the channels that needed more and keeps the old light's colour there."""
    src = np.asarray(sh_source, dtype=np.float64)
    tgt = np.asarray(sh_target, dtype=np.float64)
    ratio = _shading_field(normals, src, tgt, True, np.inf)  # its colour bounded (``relight.bound_colour``)
    lum = np.maximum(ratio @ _LUMA_BGR, 1e-6)
    limit = np.asarray(max_gain, dtype=np.float32)
    return (ratio * (np.minimum(lum, limit) / lum)[..., None]).astype(np.float32)


_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], dtype=np.float32)


def relight_window(
    window_bgr: np.ndarray,
    ratio: np.ndarray,
    detail_px: float,
    weight: Callable[[tuple[int, int]], np.ndarray] | None = None,
) -> np.ndarray:
    """The BGR uint8 ``window_bgr`` with its smoothed base multiplied by ``ratio`` in linear light and its detail
    layer carried: ``E(D(base) * ratio) + (in - base)`` (module docstring, step 3). A new array.

    ``ratio``: (h, w, 3) BGR on any grid over the window (upsampled; it is smooth); ``detail_px``: sigma of the
    base in window pixels; ``weight``: given a (width, height), how much of the ratio applies there (0..1, the
    person's outline kept sharper than the ratio's grid). The base and the change are computed at a reduced
    size (the base is smooth at that scale too) and the change is added at full size."""
    img = np.asarray(window_bgr)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR window, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    sigma = max(float(detail_px), 1.0)
    scale = min(0.5, 1.0 / sigma)  # the base at sigma 1 px of the reduced size (never finer than half size)
    ws, hs = max(2, round(w * scale)), max(2, round(h * scale))
    small = cv2.resize(img, (ws, hs), interpolation=cv2.INTER_AREA)
    base = cv2.GaussianBlur(small, (0, 0), max(sigma * ws / w, 0.5), borderType=cv2.BORDER_REPLICATE)
    lin = np.asarray(cv2.LUT(base, _U8_TO_LINEAR), dtype=np.float32)
    gain = cv2.resize(np.asarray(ratio, dtype=np.float32), (ws, hs), interpolation=cv2.INTER_LINEAR)
    if weight is not None:
        gain = 1.0 + weight((ws, hs))[..., None] * (gain - 1.0)
    lin *= gain
    np.clip(lin, 0.0, 1.0, out=lin)
    lin *= _CODE_LUT_SIZE
    lin += 0.5
    change = _LINEAR_TO_CODE[lin.astype(np.uint16)]
    change -= base
    # Smoothed a little before it is scaled up: the change follows the base, whose finest structure at this size
    # would come back as edges of the linear interpolation's cells and add to the grain (s18: +5-8% at 1.5 px).
    change = np.asarray(cv2.GaussianBlur(change, (0, 0), CHANGE_SMOOTH_PX, borderType=cv2.BORDER_REPLICATE), np.float32)
    # Brighter and darker parts as two uint8 layers: scaled up and added with saturation (uint8 work is the
    # fastest there is at full size; the change is whole levels in the end anyway).
    up = np.clip(np.rint(change), 0, 255).astype(np.uint8)
    down = np.clip(np.rint(-change), 0, 255).astype(np.uint8)
    size = (w, h)
    out = cv2.add(img, cv2.resize(up, size, interpolation=cv2.INTER_LINEAR))
    return cv2.subtract(out, cv2.resize(down, size, interpolation=cv2.INTER_LINEAR))


def relight_person(
    frame: np.ndarray,
    region: Window,
    person: Callable[[tuple[int, int]], np.ndarray],
    open_sides: tuple[bool, bool, bool, bool],
    face_window: Window,
    face_normals: np.ndarray,
    face_cover: np.ndarray,
    eye_px: float,
    sh_source: np.ndarray,
    sh_target: np.ndarray,
    config: PersonLightConfig | None = None,
    neck: Neck | None = None,
) -> None:
    """Relight the person in ``region`` of the BGR uint8 ``frame``, in place (the module docstring's steps).

    ``person``: given a (width, height), the person probability on that grid over ``region``;
    ``open_sides``: which sides of ``region`` (left, top, right, bottom) cut the person (``region_fade``);
    ``face_normals`` (hs, ws, 3) and ``face_cover`` (hs, ws) the mesh's normals and coverage on a grid over
    ``face_window``; ``eye_px``: the eye-corner distance in frame pixels; ``sh_source``/``sh_target``: (9, 3)
    RGB shading SH, the light measured on the face and the one it is relit to; ``neck``: where the neck is
    (``neck_from_landmarks``; None: the silhouette's normals there too)."""
    cfg = config or PersonLightConfig()
    n, w_face, _ = person_grid(region, person, face_window, face_normals, face_cover, eye_px, cfg, neck)
    gh, gw = n.shape[:2]
    fade = region_fade((gw, gh), open_sides, cfg.edge_fade)
    # The face's mesh normals are exact enough for the face's own limit; the estimated ones get less.
    ratio = shading_ratio(n, sh_source, sh_target, cfg.max_gain + w_face * (MAX_GAIN - cfg.max_gain))
    face_fade = w_face * fade

    def weight(size: tuple[int, int]) -> np.ndarray:
        extra = cv2.resize(face_fade, size, interpolation=cv2.INTER_LINEAR)
        edge = cv2.resize(fade, size, interpolation=cv2.INTER_LINEAR)
        ramp = _smoothstep((person(size) - cfg.person_low) / max(cfg.person_high - cfg.person_low, 1e-6))
        return np.maximum(ramp * edge, extra)

    ys, xs = region.slices
    frame[ys, xs] = relight_window(frame[ys, xs], ratio, cfg.detail * eye_px, weight)


def person_grid(
    region: Window,
    person: Callable[[tuple[int, int]], np.ndarray],
    face_window: Window,
    face_normals: np.ndarray,
    face_cover: np.ndarray,
    eye_px: float,
    config: PersonLightConfig | None = None,
    neck: Neck | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The person's normals (h, w, 3), the mesh's share (h, w) and the person probability (h, w) on the coarse
    grid over ``region`` (``config.grid_px`` on its long side); arguments as ``relight_person``'s."""
    cfg = config or PersonLightConfig()
    gw, gh = grid_size(region.width, region.height, cfg.grid_px)
    grid_to_frame = _grid_to_frame(region, (gw, gh))
    hs, ws = face_normals.shape[:2]
    to_face = (np.linalg.inv(_grid_to_frame(face_window, (ws, hs))) @ grid_to_frame)[:2]
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    normals = cv2.warpAffine(np.asarray(face_normals, np.float32), to_face, (gw, gh), flags=flags)
    cover = cv2.warpAffine(np.asarray(face_cover, np.float32), to_face, (gw, gh), flags=flags)
    grid_person = person((gw, gh))
    unit = eye_px * 0.5 * (gw / region.width + gh / region.height)
    neck_grid = None if neck is None else neck_normals(neck, grid_to_frame, (gw, gh), eye_px, cfg)
    n, w_face = person_normals(grid_person, normals, cover, unit, cfg, neck_grid)
    return n, w_face, grid_person


def _grid_to_frame(window: Window, size: tuple[int, int]) -> np.ndarray:
    """(3, 3) affine: a (width, height) grid over ``window`` (``cv2.resize``'s cell centres) -> frame pixels."""
    gw, gh = size
    kx, ky = window.width / gw, window.height / gh
    return np.array([[kx, 0.0, 0.5 * kx - 0.5 + window.x0], [0.0, ky, 0.5 * ky - 0.5 + window.y0], [0.0, 0.0, 1.0]])


__all__ = [
    "Neck",
    "PersonLightConfig",
    "neck_from_landmarks",
    "neck_normals",
    "relight_person",
    "person_grid",
    "person_normals",
    "region_fade",
    "relight_window",
    "shading_ratio",
    "silhouette_normals",
]
