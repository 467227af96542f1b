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

import functools
from dataclasses import dataclass

import numpy as np

from engines.face.geometry import Window

_EDGE_EPS = 1e-4
"""Barycentric slack so pixels exactly on a shared edge are never missed by both triangles."""
_DEPTH_LEVELS = (1 << 30) - 1
_INDEX_BITS = 32


@dataclass(frozen=True, eq=False)
class Raster:
    """The result of rasterising a mesh into a window, kept sparse: the covered pixels only.

    ``pixels`` (N,) are flat indices (``row * width + col``) of covered pixels, ``tri`` (N,) the visible
    triangle at each and ``weights`` (N, 3) float32 the pixel centre's barycentric weights in it. The dense
    views ``triangle`` (H, W) int32 (-1 where none), ``bary`` (H, W, 3) and ``mask`` are built on demand.
    """

    window: Window
    pixels: np.ndarray
    tri: np.ndarray
    weights: np.ndarray
    triangles: np.ndarray
    """The (T, 3) triangle list the indices refer to."""

    @classmethod
    def from_dense(
        cls,
        window: Window,
        triangle: np.ndarray,
        bary: np.ndarray,
        triangles: np.ndarray,
        sparse: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    ) -> Raster:
        """The raster of a dense ``triangle`` (H, W) int32 (-1 where none) and ``bary`` (H, W, 3) float32 (what the
        compiled rasteriser ``engines.swap.fused.geometry_raster`` returns), its dense views kept; ``sparse``: its
        ``pixels``, ``tri`` and ``weights`` when they are made already."""
        if sparse is None:
            flat = triangle.reshape(-1)
            pixels = np.flatnonzero(flat >= 0)
            sparse = pixels, flat[pixels], bary.reshape(-1, 3)[pixels]
        raster = cls(window, sparse[0], sparse[1], sparse[2], triangles)
        # The dense views are already made: cached as ``functools.cached_property`` would cache them.
        raster.__dict__.update(triangle=triangle, bary=bary, mask=triangle >= 0)
        return raster

    @property
    def shape(self) -> tuple[int, int]:
        return max(self.window.height, 0), max(self.window.width, 0)

    @functools.cached_property
    def triangle(self) -> np.ndarray:
        """(H, W) int32: the visible triangle's index per pixel, -1 where none."""
        out = np.full(self.shape[0] * self.shape[1], -1, dtype=np.int32)
        out[self.pixels] = self.tri
        return out.reshape(self.shape)

    @functools.cached_property
    def bary(self) -> np.ndarray:
        """(H, W, 3) float32: barycentric weights per pixel, 0 where no triangle."""
        out = np.zeros((self.shape[0] * self.shape[1], 3), dtype=np.float32)
        out[self.pixels] = self.weights
        return out.reshape(*self.shape, 3)

    @functools.cached_property
    def mask(self) -> np.ndarray:
        """(H, W) bool: pixels covered by some triangle."""
        out = np.zeros(self.shape[0] * self.shape[1], dtype=bool)
        out[self.pixels] = True
        return out.reshape(self.shape)

    @property
    def coverage(self) -> float:
        """Fraction of the window's pixels covered."""
        n = self.shape[0] * self.shape[1]
        return float(self.pixels.size / n) if n else 0.0

    @functools.cached_property
    def _corners(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The visible triangle's three vertex indices per covered pixel, as three contiguous arrays
        (``np.take`` on a contiguous 1-D index is several times faster than 2-D fancy indexing)."""
        corners = np.take(self.triangles, self.tri, axis=0)
        return tuple(np.ascontiguousarray(corners[:, k]) for k in range(3))  # type: ignore[return-value]

    def interpolate(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Per-vertex ``values`` (V,) or (V, C) interpolated to every pixel: (H, W) or (H, W, C) float32."""
        vals = np.asarray(values, dtype=np.float32)
        squeeze = vals.ndim == 1
        if squeeze:
            vals = vals[:, None]
        h, w = self.shape
        out = np.full((h * w, vals.shape[1]), fill, dtype=np.float32)
        if self.pixels.size:
            a, b, c = self._corners
            wts = self.weights
            # a * w_a + b * w_b + c * w_c, in place (the same sums, half the temporaries)
            acc = np.take(vals, a, axis=0)
            acc *= wts[:, 0:1]
            for corner, k in ((b, 1), (c, 2)):
                term = np.take(vals, corner, axis=0)
                term *= wts[:, k : k + 1]
                acc += term
            out[self.pixels] = acc
        dense: np.ndarray = out.reshape(h, w, vals.shape[1])
        return dense[..., 0] if squeeze else dense


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
    ``engines.face.topology``) are drawn.
    """
    tris = np.asarray(triangles, dtype=np.int64).reshape(-1, 3)
    v = np.asarray(vertices, dtype=np.float64)
    h, w = int(window.height), int(window.width)
    empty = Raster(window, np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros((0, 3), np.float32), tris)
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

    # Per live triangle, barycentric weights and depth as affine functions of the pixel position, relative
    # to the bounding box corner (small numbers: float32 is exact enough):
    # w_a = c0 * dx + c1 * dy + c2, w_b = c3 * dx + c4 * dy + c5, depth = c6 * dx + c7 * dy + c8.
    inv = 1.0 / area[live]
    ox, oy = x_lo[live], y_lo[live]
    lax, lay, lbx, lby, lcx, lcy = (
        ax[live] - ox,
        ay[live] - oy,
        bx[live] - ox,
        by[live] - oy,
        cx[live] - ox,
        cy[live] - oy,
    )
    wa = ((lby - lcy) * inv, (lcx - lbx) * inv, (lbx * lcy - lcx * lby) * inv)
    wb = ((lcy - lay) * inv, (lax - lcx) * inv, (lcx * lay - lax * lcy) * inv)
    za, zb, zc = az[live], bz[live], cz[live]
    # depth = wa*za + wb*zb + (1-wa-wb)*zc, expanded into the same affine form.
    dz = (
        wa[0] * (za - zc) + wb[0] * (zb - zc),
        wa[1] * (za - zc) + wb[1] * (zb - zc),
        wa[2] * (za - zc) + wb[2] * (zb - zc) + zc,
    )
    coef = np.stack([*wa, *wb, *dz], axis=1).astype(np.float32)

    # Expand each live triangle's bounding box into candidate pixels.
    n = counts[live]
    total = int(n.sum())
    cand_tri = np.repeat(np.arange(live.size, dtype=np.int32), n)
    starts = np.cumsum(n) - n
    local = np.arange(total, dtype=np.int32) - np.repeat(starts.astype(np.int32), n)
    nx_c = np.repeat(nx[live].astype(np.int32), n)
    dy_i = local // nx_c
    dx_i = local - dy_i * nx_c
    dx, dy = dx_i.astype(np.float32), dy_i.astype(np.float32)

    c = np.take(coef[:, :6], cand_tri, axis=0)  # (N, 6), one gather: the weights' coefficients
    w0 = c[:, 0] * dx + c[:, 1] * dy + c[:, 2]
    w1 = c[:, 3] * dx + c[:, 4] * dy + c[:, 5]
    w2 = 1.0 - w0 - w1
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    idx = np.flatnonzero(inside)
    if idx.size == 0:
        return empty
    cand_tri, w0, w1, w2 = cand_tri[idx], w0[idx], w1[idx], w2[idx]
    c = np.take(coef[:, 6:9], cand_tri, axis=0)  # the depth's coefficients, for the candidates that hit only
    depth = c[:, 0] * dx[idx] + c[:, 1] * dy[idx] + c[:, 2]
    px = np.take(ox.astype(np.int64), cand_tri) + dx_i[idx]
    py = np.take(oy.astype(np.int64), cand_tri) + dy_i[idx]
    pix = py * w + px

    # Z-buffer: per pixel, the candidate with the smallest (quantised) depth, ties to the earliest triangle.
    z_lo, z_hi = float(depth.min()), float(depth.max())
    zq = np.round((depth - z_lo) * (_DEPTH_LEVELS / max(z_hi - z_lo, 1e-12))).astype(np.int64)
    key = (zq << _INDEX_BITS) | np.arange(pix.size, dtype=np.int64)
    best = np.full(h * w, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(best, pix, key)
    hit = np.flatnonzero(best != np.iinfo(np.int64).max)
    winner = best[hit] & ((1 << _INDEX_BITS) - 1)

    # Clipped and renormalised per weight (a sum over a 3-wide axis is slow in numpy; the same numbers).
    wa_, wb_, wc_ = (np.clip(v[winner], 0.0, 1.0) for v in (w0, w1, w2))
    total_w = wa_ + wb_ + wc_
    weights = np.stack([wa_ / total_w, wb_ / total_w, wc_ / total_w], axis=1)
    return Raster(window, hit, live[cand_tri[winner]].astype(np.int32), weights.astype(np.float32), tris)
