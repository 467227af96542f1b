"""The face's texture space: unwrapping a photographed face into it, and filling what no photo saw.

Every identity is stored as a square texture over ``engines.face.topology``'s layout (``Topology.uv``): texel
``(row, col)`` has its centre at ``uv = ((col + 0.5) / size, (row + 0.5) / size)``. Unwrapping a photo
rasterises the layout once per texture size (cached) and, through the barycentric weights, looks every
texel up in the photo where the photo's mesh puts it (one ``cv2.remap``). A texel's weight says how well
the photo saw it: the cosine between its surface normal and the view direction, zero where another part
of the face hides it (a z-buffer of the photo's mesh) — several photos merge by these weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.topology import face_scale_px, face_topology, vertex_normals
from engines.swap.raster import Raster, Window, rasterize

TEXTURE_SIZE = 512
"""Texels on a side: about the detail of a face 400 px wide, more than a live face usually has."""
VISIBILITY_POWER = 2.0
"""Weight = cos(normal, view) ** this: oblique views of a surface count much less than frontal ones."""
_DEPTH_TOLERANCE = 0.04
"""A texel is hidden when the photo's z-buffer is nearer than it by more than this many eye distances."""


@dataclass(frozen=True)
class Unwrapped:
    """One photo's face in texture space."""

    texture: np.ndarray
    """(size, size, 3) uint8 BGR, the photo's pixels (0 where the layout has no face)."""
    weight: np.ndarray
    """(size, size) float32 0..1: how well the photo saw each texel (0: not at all)."""
    normals: np.ndarray
    """(size, size, 3) float32 unit normals in the mesh frame (x right, y down, z away from the camera)."""


def uv_to_texel(uv: np.ndarray, size: int) -> np.ndarray:
    """Texture coordinates (0..1) to texel coordinates (pixel-centre convention of ``cv2.remap``)."""
    return np.asarray(uv, dtype=np.float32) * size - 0.5


@functools.cache
def texture_raster(size: int = TEXTURE_SIZE) -> Raster:
    """The layout rasterised at ``size`` (all triangles: face, eye and mouth fills). Cached, read-only."""
    topo = face_topology()
    raster = rasterize(uv_to_texel(topo.uv, size), topo.all_triangles, Window(0, 0, size, size))
    for arr in (raster.triangle, raster.bary):
        arr.setflags(write=False)
    return raster


@functools.cache
def texture_regions(size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) int8 per texel: 0 face, 1 eye opening, 2 mouth opening, -1 outside the layout."""
    region = face_topology().region_of(texture_raster(size).triangle)
    region.setflags(write=False)
    return region


@functools.cache
def texture_labels(size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) int8 per texel: the topology's triangle labels (``SKIN``, ``FEATURE``, openings), -1 outside."""
    raster = texture_raster(size)
    labels = np.where(raster.mask, face_topology().labels[np.maximum(raster.triangle, 0)], -1).astype(np.int8)
    labels.setflags(write=False)
    return labels


@functools.cache
def texture_canonical_y(size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) float32: each texel's height on the canonical face (eye-corner distances, y down)."""
    y = texture_raster(size).interpolate(face_topology().canonical[:, 1], fill=np.inf)
    y.setflags(write=False)
    return y


@functools.cache
def texture_canonical_x(size: int = TEXTURE_SIZE) -> np.ndarray:
    """(size, size) float32: each texel's side-to-side position on the canonical face (eye-corner distances,
    the subject's right negative), inf outside the layout."""
    x = texture_raster(size).interpolate(face_topology().canonical[:, 0], fill=np.inf)
    x.setflags(write=False)
    return x


@functools.cache
def canonical_sides(size: int = TEXTURE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(|x|, y) of each texel on the canonical face (``texture_canonical_x`` made absolute: both sides alike, and
    ``texture_canonical_y``), 9.0 outside the layout — far from every zone drawn in these units (cached,
    read-only)."""
    x = np.abs(texture_canonical_x(size))
    y = texture_canonical_y(size)
    inside = np.isfinite(x) & np.isfinite(y)
    x, y = np.where(inside, x, 9.0).astype(np.float32), np.where(inside, y, 9.0).astype(np.float32)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def soft_zone(zone: np.ndarray, sigma: float) -> np.ndarray:
    """A boolean zone on the layout made soft-edged: blurred over ``sigma`` texels, float32 0..1, read-only (what
    the cached zone maps return)."""
    out = np.clip(cv2.GaussianBlur(zone.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
    out.setflags(write=False)
    return out


@dataclass(frozen=True)
class ShadowZones:
    """Where a face's relief casts shadows that a light model of the skin has no terms for, per texel 0..1
    (soft-edged): the enrollment lifts a photo's shadows there when asked (``engines.identity.cleanup``). The swap's
    exchange of the photo's shading for the actor's around the nose (``engines.compose.relief``) has zones of its
    own: it reaches the nose's sidewalls too and stops short of the lips."""

    nostrils: np.ndarray
    """The nostrils and the shadow under the nose."""
    under_nose: np.ndarray
    """The skin between the nostrils and the upper lip, where a photo's nostril shadow is stretched into a
    dark "moustache" (the nostrils themselves are a feature a recogniser, and a viewer, knows a face by)."""
    folds: np.ndarray
    """The folds beside the nose and the mouth (a smile deepens them)."""
    sockets: np.ndarray
    """The eye sockets around each eye."""


NOSTRIL_ZONE = (0.32, -0.05, 0.17)
"""|x| under, and y between (canonical, eye-corner distances): the nostrils and their shadow."""
UNDER_NOSE_ZONE = (0.3, 0.11, 0.23)
"""|x| under, and y between: from just below the nose's base (subnasale at 0.10) to above the lip (0.26)."""
FOLD_ZONE = (0.12, 0.58, 0.0, 0.78)
"""|x| between the first two, y between the last two: the folds beside the nose and the mouth."""
SOCKET_CENTRE, SOCKET_RADII = (0.33, -0.36), (0.36, 0.24)
"""The eye sockets: ellipses around each eye (|x|, y) with these radii."""


@functools.cache
def shadow_zones(size: int = TEXTURE_SIZE) -> ShadowZones:
    """The ``ShadowZones`` of the layout at ``size`` (from the canonical face; cached, read-only)."""
    x, y = canonical_sides(size)
    nostrils = (x < NOSTRIL_ZONE[0]) & (y > NOSTRIL_ZONE[1]) & (y < NOSTRIL_ZONE[2])
    under_nose = (x < UNDER_NOSE_ZONE[0]) & (y > UNDER_NOSE_ZONE[1]) & (y < UNDER_NOSE_ZONE[2])
    folds = (x > FOLD_ZONE[0]) & (x < FOLD_ZONE[1]) & (y > FOLD_ZONE[2]) & (y < FOLD_ZONE[3]) & ~nostrils
    sockets = ((x - SOCKET_CENTRE[0]) / SOCKET_RADII[0]) ** 2 + ((y - SOCKET_CENTRE[1]) / SOCKET_RADII[1]) ** 2 < 1.0
    sigma = size / 128.0
    maps = [
        np.clip(cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma), 0.0, 1.0)
        for m in (nostrils, under_nose, folds, sockets)
    ]
    for arr in maps:
        arr.setflags(write=False)
    return ShadowZones(*maps)


def unwrap(image: np.ndarray, landmarks: np.ndarray, size: int = TEXTURE_SIZE) -> Unwrapped:
    """The face of ``image`` (BGR uint8) described by ``landmarks`` (468, 3), in texture space."""
    topo = face_topology()
    tris = topo.all_triangles
    uv_raster = texture_raster(size)
    covered = uv_raster.mask
    lm = np.asarray(landmarks, dtype=np.float32)

    # Where each texel is in the photo, and how deep.
    pos = uv_raster.interpolate(lm)  # (size, size, 3): x, y, z in photo pixels
    texture = cv2.remap(
        image, pos[..., 0], pos[..., 1], interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    texture[~covered] = 0

    # Normals and the visibility weight.
    normals = uv_raster.interpolate(vertex_normals(lm, tris))
    length = np.linalg.norm(normals, axis=2, keepdims=True)
    normals = np.where(length > 1e-6, normals / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    facing = np.clip(-normals[..., 2], 0.0, 1.0) ** VISIBILITY_POWER

    # Z-buffer of the photo's mesh over the face's box: hidden texels (the far side of the nose) get 0.
    x0, y0 = int(np.floor(lm[:, 0].min())) - 1, int(np.floor(lm[:, 1].min())) - 1
    win = Window(x0, y0, int(np.ceil(lm[:, 0].max())) - x0 + 2, int(np.ceil(lm[:, 1].max())) - y0 + 2)
    photo_raster = rasterize(lm, tris, win)
    depth = photo_raster.interpolate(lm[:, 2], fill=np.inf)
    # Compared with the farthest of the four photo pixels around the texel, not the nearest pixel's: near
    # the outline the surface is seen edge-on and its depth changes by more than the tolerance from one
    # pixel to the next, so a nearest-pixel test flips from texel to texel (stripes of "hidden" skin at the
    # face's sides that painted a serrated, flickering edge). A texel truly hidden (behind the nose) is
    # farther than all four.
    fx = np.floor(pos[..., 0]).astype(np.int64) - x0
    fy = np.floor(pos[..., 1]).astype(np.int64) - y0
    farthest = np.full(fx.shape, -np.inf, dtype=np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            r = np.clip(fy + dy, 0, win.height - 1)
            c = np.clip(fx + dx, 0, win.width - 1)
            farthest = np.maximum(farthest, depth[r, c])
    tolerance = _DEPTH_TOLERANCE * face_scale_px(lm)
    visible = pos[..., 2] <= farthest + tolerance
    h, w = image.shape[:2]
    inside = (pos[..., 0] >= 0) & (pos[..., 0] <= w - 1) & (pos[..., 1] >= 0) & (pos[..., 1] <= h - 1)
    weight = np.where(covered & visible & inside, facing, 0.0).astype(np.float32)
    return Unwrapped(texture, weight, normals)


def fill_holes(values: np.ndarray, weight: np.ndarray, min_weight: float = 1e-3) -> np.ndarray:
    """Fill texels with (near) zero ``weight`` from their weighted neighbourhood (push-pull pyramid).

    Texels no photo saw, and the empty border around the layout, get a smooth continuation of what is
    around them, so a texture lookup near a chart edge or on the far side of a face never returns black.
    ``values`` (H, W, C) float32, ``weight`` (H, W); texels with weight keep their values.
    """
    vals = np.asarray(values, dtype=np.float32)
    wts = np.asarray(weight, dtype=np.float32)
    known = wts > min_weight
    # Push: a pyramid of weighted averages down to one texel.
    levels: list[tuple[np.ndarray, np.ndarray]] = []
    v: np.ndarray = np.where(known[..., None], vals, 0.0).astype(np.float32)
    k: np.ndarray = known.astype(np.float32)
    while True:
        levels.append((v, k))
        if min(v.shape[:2]) <= 1:
            break
        hh, ww = (v.shape[0] + 1) // 2, (v.shape[1] + 1) // 2
        v = cv2.resize(v, (ww, hh), interpolation=cv2.INTER_AREA).reshape(hh, ww, -1)
        k = cv2.resize(k, (ww, hh), interpolation=cv2.INTER_AREA).reshape(hh, ww)
    # Pull: from the coarsest level up, fill each level's empty texels from the one below.
    sv, sk = levels[-1]
    filled = sv / np.maximum(sk, 1e-6)[..., None]
    for v, k in reversed(levels[:-1]):
        up = cv2.resize(filled, (v.shape[1], v.shape[0]), interpolation=cv2.INTER_LINEAR).reshape(v.shape)
        own = v / np.maximum(k, 1e-6)[..., None]
        blend = np.clip(k, 0.0, 1.0)[..., None]
        filled = own * blend + up * (1.0 - blend)
    out = np.where(known[..., None], vals, filled)
    return out.astype(np.float32)
