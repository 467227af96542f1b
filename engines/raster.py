"""A vectorised triangle rasteriser: which triangle covers each pixel of a window, and where in it.

The mesh swap, the relighting normals and the enrollment unwrap all need the same thing — for every
pixel of a face-sized window, the triangle of the mesh that is visible there and the barycentric
weights of the pixel centre inside it — so any per-vertex attribute (texture coordinates, normals,
depth) can be interpolated per pixel. There is no Python loop over triangles: every triangle's
bounding box is expanded into candidate pixels at once (``np.repeat``), each candidate is tested with
the triangle's edge functions, and a z-buffer keeps the nearest candidate per pixel
(``np.minimum.at`` on a key that packs quantised depth with the candidate's index).

Conventions: vertices are in pixels, pixel ``(row, col)`` of a window at ``(x0, y0)`` has its centre at
``(x0 + col, y0 + row)`` (the convention of ``cv2.remap`` and ``cv2.warpAffine``); depth is the mesh's
``z``, smaller is nearer the camera.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EDGE_EPS = 1e-4
"""Barycentric slack so pixels exactly on a shared edge are never missed by both triangles."""
_DEPTH_LEVELS = (1 << 30) - 1
_INDEX_BITS = 32


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: origin ``(x0, y0)`` and size ``width`` x ``height``."""

    x0: int
    y0: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of this window in the image it was taken from."""
        return slice(self.y0, self.y0 + self.height), slice(self.x0, self.x0 + self.width)


@dataclass(frozen=True)
class Raster:
    """The result of rasterising a mesh into a window.

    ``triangle`` (H, W) int32 is the visible triangle's index per pixel (-1 where none), ``bary`` (H, W, 3)
    float32 the pixel centre's barycentric weights in it (0 where none).
    """

    window: Window
    triangle: np.ndarray
    bary: np.ndarray
    triangles: np.ndarray
    """The (T, 3) triangle list the indices refer to."""

    @property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels covered by some triangle."""
        return self.triangle >= 0

    @property
    def coverage(self) -> float:
        """Fraction of the window's pixels covered."""
        return float(self.mask.mean()) if self.triangle.size else 0.0

    def interpolate(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Per-vertex ``values`` (V,) or (V, C) interpolated to every pixel: (H, W) or (H, W, C) float32."""
        vals = np.asarray(values, dtype=np.float32)
        squeeze = vals.ndim == 1
        if squeeze:
            vals = vals[:, None]
        h, w = self.triangle.shape
        out = np.full((h, w, vals.shape[1]), fill, dtype=np.float32)
        covered = self.triangle >= 0
        if covered.any():
            tri = self.triangle[covered]
            weights = self.bary[covered]
            corners = self.triangles[tri]  # (N, 3) vertex indices
            out[covered] = np.einsum("nk,nkc->nc", weights, vals[corners])
        return out[..., 0] if squeeze else out


def rasterize(
    vertices: np.ndarray,
    triangles: np.ndarray,
    window: Window,
    cull_back_faces: bool = False,
) -> Raster:
    """Rasterise a mesh into ``window``.

    ``vertices`` (V, 2) or (V, 3) in pixels (a third column is depth, smaller nearer; without it the first
    triangle in the list wins where triangles overlap); ``triangles`` (T, 3) vertex indices. With
    ``cull_back_faces`` only triangles wound clockwise on screen (the winding of front faces in
    ``engines.topology``) are drawn.
    """
    tris = np.asarray(triangles, dtype=np.int64)
    v = np.asarray(vertices, dtype=np.float64)
    h, w = int(window.height), int(window.width)
    triangle = np.full((max(h, 0), max(w, 0)), -1, dtype=np.int32)
    bary = np.zeros((max(h, 0), max(w, 0), 3), dtype=np.float32)
    empty = Raster(window, triangle, bary, tris)
    if h <= 0 or w <= 0 or tris.size == 0:
        return empty

    x = v[:, 0] - window.x0
    y = v[:, 1] - window.y0
    z = v[:, 2] if v.shape[1] > 2 else np.zeros(len(v))
    ax, ay, az = x[tris[:, 0]], y[tris[:, 0]], z[tris[:, 0]]
    bx, by, bz = x[tris[:, 1]], y[tris[:, 1]], z[tris[:, 1]]
    cx, cy, cz = x[tris[:, 2]], y[tris[:, 2]], z[tris[:, 2]]
    # Twice the signed area; positive is clockwise on screen (y points down).
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
    keep = np.abs(area) > 1e-9
    if cull_back_faces:
        keep &= area > 0
    x_lo = np.maximum(np.ceil(np.minimum(np.minimum(ax, bx), cx) - _EDGE_EPS), 0)
    x_hi = np.minimum(np.floor(np.maximum(np.maximum(ax, bx), cx) + _EDGE_EPS), w - 1)
    y_lo = np.maximum(np.ceil(np.minimum(np.minimum(ay, by), cy) - _EDGE_EPS), 0)
    y_hi = np.minimum(np.floor(np.maximum(np.maximum(ay, by), cy) + _EDGE_EPS), h - 1)
    nx = np.where(keep, x_hi - x_lo + 1, 0).clip(min=0).astype(np.int64)
    ny = np.where(keep, y_hi - y_lo + 1, 0).clip(min=0).astype(np.int64)
    counts = nx * ny
    live = np.nonzero(counts)[0]
    if live.size == 0:
        return empty

    # Barycentric weights as affine functions of the pixel position: w_a = pa_x*px + pa_y*py + pa_c, etc.
    inv = 1.0 / area[live]
    lax, lay, lbx, lby, lcx, lcy = ax[live], ay[live], bx[live], by[live], cx[live], cy[live]
    wa = np.stack([(lby - lcy) * inv, (lcx - lbx) * inv, (lbx * lcy - lcx * lby) * inv], axis=1)
    wb = np.stack([(lcy - lay) * inv, (lax - lcx) * inv, (lcx * lay - lax * lcy) * inv], axis=1)

    # Expand each live triangle's bounding box into candidate pixels.
    n = counts[live]
    cand_tri = np.repeat(np.arange(live.size), n)
    starts = np.cumsum(n) - n
    local = np.arange(int(n.sum()), dtype=np.int64) - np.repeat(starts, n)
    nx_c = nx[live][cand_tri]
    px = x_lo[live][cand_tri] + (local % nx_c)
    py = y_lo[live][cand_tri] + (local // nx_c)

    ca, cb = wa[cand_tri], wb[cand_tri]
    w0 = ca[:, 0] * px + ca[:, 1] * py + ca[:, 2]
    w1 = cb[:, 0] * px + cb[:, 1] * py + cb[:, 2]
    w2 = 1.0 - w0 - w1
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    if not inside.any():
        return empty
    cand_tri, px, py = cand_tri[inside], px[inside], py[inside]
    w0, w1, w2 = w0[inside], w1[inside], w2[inside]
    tri_live = live[cand_tri]
    depth = w0 * az[tri_live] + w1 * bz[tri_live] + w2 * cz[tri_live]

    # Z-buffer: per pixel, the candidate with the smallest (quantised) depth, ties to the earliest triangle.
    pix = (py * w + px).astype(np.int64)
    z_lo, z_hi = float(depth.min()), float(depth.max())
    zq = np.round((depth - z_lo) * (_DEPTH_LEVELS / max(z_hi - z_lo, 1e-12))).astype(np.int64)
    key = (zq << _INDEX_BITS) | np.arange(pix.size, dtype=np.int64)
    best = np.full(h * w, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, pix, key)
    hit = np.nonzero(best != np.iinfo(np.int64).max)[0]
    winner = best[hit] & ((1 << _INDEX_BITS) - 1)

    flat_tri = triangle.reshape(-1)
    flat_bary = bary.reshape(-1, 3)
    flat_tri[hit] = tri_live[winner]
    weights = np.stack([w0[winner], w1[winner], w2[winner]], axis=1).clip(0.0, 1.0)
    flat_bary[hit] = weights / weights.sum(axis=1, keepdims=True)
    return Raster(window, triangle, bary, tris)
