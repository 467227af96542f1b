"""The mesh rasteriser as torch ops: the same code on CPU tensors and on CUDA ones.

``rasterize`` mirrors ``engines.swap.raster.rasterize`` step for step — every triangle's bounding box
expanded into candidate pixels at once, the edge functions as affine functions of the pixel offset
(float32, as there), and a z-buffer that keeps, per pixel, the candidate with the smallest quantised depth
(ties to the earliest), here by ``scatter_reduce(amin)`` on the same packed key. ``TorchRaster.interpolate``
mirrors ``Raster.interpolate``. The suite holds both equal to the numpy ones on faces of shared clips
(``tests/engines/test_torch_ops.py``). ``sample_bilinear`` mirrors the texture lookup, ``engines.swap.mesh._remap``
(``cv2.remap``, bilinear, replicated border), as ``MeshSwapper.render`` and ``coverage_small`` use it.

Written for the GPU path (issue 20, item 3): the vertices, triangles and outputs are tensors on one device.
The candidate counts are data-dependent, so the expansion reads two sizes on the host (the candidates'
total and the covered count): two small synchronisations per face, not per pixel.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from engines.swap.raster import _DEPTH_LEVELS, _EDGE_EPS, _INDEX_BITS, Window


@dataclass(frozen=True, eq=False)
class TorchRaster:
    """``engines.swap.raster.Raster`` with tensors: ``pixels`` (N,) int64 flat indices of covered pixels,
    ``tri`` (N,) int64 the visible triangle there, ``weights`` (N, 3) float32 barycentric weights."""

    window: Window
    pixels: torch.Tensor
    tri: torch.Tensor
    weights: torch.Tensor
    triangles: torch.Tensor

    @property
    def shape(self) -> tuple[int, int]:
        return max(self.window.height, 0), max(self.window.width, 0)

    @functools.cached_property
    def triangle(self) -> torch.Tensor:
        """(H, W) int64: the visible triangle's index per pixel, -1 where none."""
        h, w = self.shape
        out = torch.full((h * w,), -1, dtype=torch.int64, device=self.pixels.device)
        out[self.pixels] = self.tri
        return out.reshape(h, w)

    @functools.cached_property
    def mask(self) -> torch.Tensor:
        """(H, W) bool: pixels covered by some triangle."""
        return self.triangle >= 0

    def interpolate(self, values: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Per-vertex ``values`` (V,) or (V, C) interpolated to every pixel: (H, W) or (H, W, C) float32;
        mirrors ``Raster.interpolate``."""
        vals = values.to(device=self.pixels.device, dtype=torch.float32)
        squeeze = vals.ndim == 1
        if squeeze:
            vals = vals[:, None]
        h, w = self.shape
        out = torch.full((h * w, vals.shape[1]), fill, dtype=torch.float32, device=vals.device)
        corners = self.triangles[self.tri]  # (N, 3)
        wts = self.weights
        out[self.pixels] = (
            vals[corners[:, 0]] * wts[:, 0:1] + vals[corners[:, 1]] * wts[:, 1:2] + vals[corners[:, 2]] * wts[:, 2:3]
        )
        dense = out.reshape(h, w, vals.shape[1])
        return dense[..., 0] if squeeze else dense


def rasterize(
    vertices: torch.Tensor, triangles: torch.Tensor, window: Window, cull_back_faces: bool = False
) -> TorchRaster:
    """Rasterise a mesh into ``window``; mirrors ``engines.swap.raster.rasterize`` (same arguments, as
    tensors on one device: ``vertices`` (V, 2) or (V, 3) pixels, a third column depth, smaller nearer;
    ``triangles`` (T, 3) vertex indices)."""
    device = vertices.device
    tris = triangles.to(device=device, dtype=torch.int64).reshape(-1, 3)
    v = vertices.to(torch.float64)
    h, w = int(window.height), int(window.width)

    def empty() -> TorchRaster:
        none = torch.zeros(0, dtype=torch.int64, device=device)
        return TorchRaster(window, none, none, torch.zeros((0, 3), dtype=torch.float32, device=device), tris)

    if h <= 0 or w <= 0 or tris.numel() == 0:
        return empty()
    x = v[:, 0] - window.x0
    y = v[:, 1] - window.y0
    z = v[:, 2] if v.shape[1] > 2 else torch.zeros_like(x)
    ax, ay, az = x[tris[:, 0]], y[tris[:, 0]], z[tris[:, 0]]
    bx, by, bz = x[tris[:, 1]], y[tris[:, 1]], z[tris[:, 1]]
    cx, cy, cz = x[tris[:, 2]], y[tris[:, 2]], z[tris[:, 2]]
    area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)  # twice the signed area; positive: clockwise on screen
    keep = area.abs() > 1e-9
    if cull_back_faces:
        keep &= area > 0
    x_lo = torch.clamp(torch.ceil(torch.minimum(torch.minimum(ax, bx), cx) - _EDGE_EPS), min=0)
    x_hi = torch.clamp(torch.floor(torch.maximum(torch.maximum(ax, bx), cx) + _EDGE_EPS), max=w - 1)
    y_lo = torch.clamp(torch.ceil(torch.minimum(torch.minimum(ay, by), cy) - _EDGE_EPS), min=0)
    y_hi = torch.clamp(torch.floor(torch.maximum(torch.maximum(ay, by), cy) + _EDGE_EPS), max=h - 1)
    zero = torch.zeros_like(x_lo)
    nx = torch.where(keep, x_hi - x_lo + 1, zero).clamp(min=0).to(torch.int64)
    ny = torch.where(keep, y_hi - y_lo + 1, zero).clamp(min=0).to(torch.int64)
    counts = nx * ny
    live = torch.nonzero(counts).reshape(-1)
    if live.numel() == 0:
        return empty()

    # Barycentric weights and depth as affine functions of the offset from the bounding box corner.
    inv = 1.0 / area[live]
    ox, oy = x_lo[live], y_lo[live]
    lax, lay, lbx, lby = ax[live] - ox, ay[live] - oy, bx[live] - ox, by[live] - oy
    lcx, lcy = cx[live] - ox, cy[live] - oy
    wa = ((lby - lcy) * inv, (lcx - lbx) * inv, (lbx * lcy - lcx * lby) * inv)
    wb = ((lcy - lay) * inv, (lax - lcx) * inv, (lcx * lay - lax * lcy) * inv)
    za, zb, zc = az[live], bz[live], cz[live]
    dz = (
        wa[0] * (za - zc) + wb[0] * (zb - zc),
        wa[1] * (za - zc) + wb[1] * (zb - zc),
        wa[2] * (za - zc) + wb[2] * (zb - zc) + zc,
    )
    coef = torch.stack([*wa, *wb, *dz], dim=1).to(torch.float32)

    # Each live triangle's bounding box as candidate pixels.
    n = counts[live]
    total = int(n.sum())  # data-dependent size: one read on the host
    cand_tri = torch.repeat_interleave(torch.arange(live.numel(), device=device), n, output_size=total)
    starts = torch.cumsum(n, 0) - n
    local = torch.arange(total, device=device) - torch.repeat_interleave(starts, n, output_size=total)
    nx_c = torch.repeat_interleave(nx[live], n, output_size=total)
    dy_i = torch.div(local, nx_c, rounding_mode="floor")
    dx_i = local - dy_i * nx_c
    dx, dy = dx_i.to(torch.float32), dy_i.to(torch.float32)

    c = coef[cand_tri]
    w0 = c[:, 0] * dx + c[:, 1] * dy + c[:, 2]
    w1 = c[:, 3] * dx + c[:, 4] * dy + c[:, 5]
    w2 = 1.0 - w0 - w1
    inside = (w0 >= -_EDGE_EPS) & (w1 >= -_EDGE_EPS) & (w2 >= -_EDGE_EPS)
    idx = torch.nonzero(inside).reshape(-1)
    if idx.numel() == 0:
        return empty()
    cand_tri, w0, w1, w2, c = cand_tri[idx], w0[idx], w1[idx], w2[idx], c[idx]
    depth = c[:, 6] * dx[idx] + c[:, 7] * dy[idx] + c[:, 8]
    px = ox.to(torch.int64)[cand_tri] + dx_i[idx]
    py = oy.to(torch.int64)[cand_tri] + dy_i[idx]
    pix = py * w + px

    # Z-buffer: per pixel the smallest (quantised depth, candidate index) key, as the numpy stage packs it.
    # float32 arithmetic with the scale rounded to float32, as numpy does with a Python float and a float32
    # array: the same keys, so the same winner even where two triangles' depths nearly tie.
    z_lo, z_hi = depth.min(), depth.max()
    scale = (_DEPTH_LEVELS / torch.clamp(z_hi.to(torch.float64) - z_lo.to(torch.float64), min=1e-12)).to(torch.float32)
    zq = torch.round((depth - z_lo) * scale).to(torch.int64)
    key = (zq << _INDEX_BITS) | torch.arange(pix.numel(), device=device)
    none = torch.iinfo(torch.int64).max
    best = torch.full((h * w,), none, dtype=torch.int64, device=device)
    best.scatter_reduce_(0, pix, key, reduce="amin")
    hit = torch.nonzero(best != none).reshape(-1)
    winner = best[hit] & ((1 << _INDEX_BITS) - 1)

    weights = torch.stack([w0[winner], w1[winner], w2[winner]], dim=1).clamp(0.0, 1.0)
    weights = weights / weights.sum(dim=1, keepdim=True)
    return TorchRaster(window, hit, live[cand_tri[winner]], weights, tris)


def sample_bilinear(src: torch.Tensor, xy: torch.Tensor) -> torch.Tensor:
    """``src`` (H, W) or (H, W, C) sampled bilinearly at ``xy`` (h, w, 2) float pixel positions (x, y; pixel
    centres at whole numbers), the border replicated; mirrors ``engines.swap.mesh._remap``
    (``cv2.remap(src, xy, None, INTER_LINEAR, borderMode=BORDER_REPLICATE)`` with a float map, which the
    OpenCV we pin interpolates at the positions as given). uint8 sources are rounded half up."""
    h, w = int(src.shape[0]), int(src.shape[1])
    pos = xy.to(torch.float32)
    whole = torch.floor(pos)
    frac = pos - whole
    x0, y0 = whole[..., 0].to(torch.int64), whole[..., 1].to(torch.int64)
    fx, fy = frac[..., 0], frac[..., 1]
    xa, xb = x0.clamp(0, w - 1), (x0 + 1).clamp(0, w - 1)
    ya, yb = y0.clamp(0, h - 1), (y0 + 1).clamp(0, h - 1)
    values = src.to(torch.float32)
    if values.ndim == 3:
        fx, fy = fx[..., None], fy[..., None]
    top = values[ya, xa] * (1.0 - fx) + values[ya, xb] * fx
    bottom = values[yb, xa] * (1.0 - fx) + values[yb, xb] * fx
    out = top * (1.0 - fy) + bottom * fy
    if src.dtype.is_floating_point:
        return out.to(src.dtype)
    info = torch.iinfo(src.dtype)
    return torch.floor(out + 0.5).clamp(info.min, info.max).to(src.dtype)
