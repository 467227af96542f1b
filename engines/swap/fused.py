"""The mesh swap's per-face geometry and texture lookup as compiled kernels (numba): one loop where numpy made
about a hundred small passes.

At the geometry resolution (``SwapConfig.geometry_px``, 104 px; 128 until issue 20's twelfth session) a face's raster
is ~7-10k pixels, so the numpy rasteriser (``engines.swap.raster.rasterize``: bounding boxes expanded into
candidates, edge tests, a z-buffer by ``np.minimum.at``, then ``Raster.interpolate``, the labels, the normals'
lengths, the texture coordinates' extension) spends its time in Python and in the setup of ~150 numpy calls, not
in arithmetic (BENCHMARKS.md, issue 20: ~3.9 ms a face whatever its size). Here:

- ``geometry_raster``: the mesh rasterised triangle by triangle (the same edge functions in the same float32
  arithmetic, a z-buffer kept per pixel), then every per-vertex attribute interpolated, the normals normalised,
  the labels looked up and the texture coordinates carried a pixel past the outline, in one call;
- ``vertex_normals_camera``: the mesh's area-weighted vertex normals in the camera frame, one loop over the
  triangles (numpy: cross products and twelve ``bincount``s);
- ``fade_and_band`` and ``field_blend``: the morph's displacement field's per-pixel arithmetic between OpenCV's
  blurs and distance transforms (``engines.swap.mesh._displacement_field``: ~20 numpy passes);
- ``warp_maps``: the morph's warp of the actor's window as ``cv2.remap``'s fixed-point maps, straight from the
  geometry resolution (``cv2.resize`` of the float map, its edges continued, and ``cv2.convertMaps``: the same
  maps, half the time, the window-size float map never written);
- ``render_texture``: the texel positions upsampled bilinearly from the geometry raster to the work size and the
  albedo (float32) sampled bilinearly there, in one pass over the face's box (``MeshSwapper.render``'s resize,
  copy and ``cv2.remap``). The uint8 texture (a face not relit) stays ``cv2.remap``'s: its fixed-point SIMD
  lookup was faster than this kernel's (1.0 against 1.2 ms at a 720p close-up), where the float32 one was not
  (1.05 against 0.9 ms).

The numpy functions stay the reference (``MeshSwapper(fused=False)``; the torch twins follow them):
tests/engines/swap/test_fused_swap.py holds the two together on frames of three shared clips. Like
``engines.fused`` (whose resampling taps they share), the kernels depend on nothing else of ours and are
compiled once per machine into numba's disk cache (``make setup`` runs ``warm_up``); ``engines.swap.mesh``
imports this module on the first face it draws.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import numpy as np
from numba import njit

from engines.fused import _encode, _rows, _spread, _taps  # the relight's encoding; cv2.resize's bilinear taps

# ``engines.swap.raster``'s constants, repeated (this module imports nothing of ours; test_fused_swap checks them).
_EDGE_EPS = 1e-4
_NO_DEPTH = np.float32(np.inf)


@njit(cache=True, fastmath=False, nogil=True)
def _rasterize(
    vertices: np.ndarray, triangles: np.ndarray, tri_out: np.ndarray, bary_out: np.ndarray, depth: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``tri_out`` (h, w) int32 (-1 on entry) and ``bary_out`` (h, w, 3) float32: per pixel the nearest triangle
    of ``triangles`` (T, 3) over ``vertices`` (V, 3: x, y in raster pixels, z depth, smaller nearer) and the pixel
    centre's barycentric weights in it, clipped to 0..1 and renormalised; ``depth`` (h, w) float32, +inf on entry.

    ``engines.swap.raster.rasterize``'s arithmetic step for step: the triangle's weights and depth as affine
    functions of the pixel's offset from its bounding box's corner (coefficients in float64, rounded to float32,
    evaluated in float32), the same edge slack; on equal depth the earlier triangle wins, as there."""
    h, w = tri_out.shape
    eps = np.float32(_EDGE_EPS)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for t in range(triangles.shape[0]):
        ia, ib, ic = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        ax, ay, az = float(vertices[ia, 0]), float(vertices[ia, 1]), float(vertices[ia, 2])
        bx, by, bz = float(vertices[ib, 0]), float(vertices[ib, 1]), float(vertices[ib, 2])
        cx, cy, cz = float(vertices[ic, 0]), float(vertices[ic, 1]), float(vertices[ic, 2])
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if abs(area) <= 1e-9:
            continue
        x_lo = max(math.ceil(min(ax, bx, cx) - _EDGE_EPS), 0.0)
        x_hi = min(math.floor(max(ax, bx, cx) + _EDGE_EPS), w - 1.0)
        y_lo = max(math.ceil(min(ay, by, cy) - _EDGE_EPS), 0.0)
        y_hi = min(math.floor(max(ay, by, cy) + _EDGE_EPS), h - 1.0)
        if x_hi < x_lo or y_hi < y_lo:
            continue
        inv = 1.0 / area
        lax, lay, lbx, lby, lcx, lcy = ax - x_lo, ay - y_lo, bx - x_lo, by - y_lo, cx - x_lo, cy - y_lo
        a0, a1, a2 = (lby - lcy) * inv, (lcx - lbx) * inv, (lbx * lcy - lcx * lby) * inv
        b0, b1, b2 = (lcy - lay) * inv, (lax - lcx) * inv, (lcx * lay - lax * lcy) * inv
        d0 = np.float32(a0 * (az - cz) + b0 * (bz - cz))
        d1 = np.float32(a1 * (az - cz) + b1 * (bz - cz))
        d2 = np.float32(a2 * (az - cz) + b2 * (bz - cz) + cz)
        c0, c1, c2 = np.float32(a0), np.float32(a1), np.float32(a2)
        c3, c4, c5 = np.float32(b0), np.float32(b1), np.float32(b2)
        x0, y0 = int(x_lo), int(y_lo)
        for py in range(y0, int(y_hi) + 1):
            dy = np.float32(py - y0)
            for px in range(x0, int(x_hi) + 1):
                dx = np.float32(px - x0)
                w0 = c0 * dx + c1 * dy + c2
                w1 = c3 * dx + c4 * dy + c5
                w2 = one - w0 - w1
                if w0 < -eps or w1 < -eps or w2 < -eps:
                    continue
                z = d0 * dx + d1 * dy + d2
                if z < depth[py, px]:
                    depth[py, px] = z
                    tri_out[py, px] = t
                    w0, w1, w2 = min(max(w0, zero), one), min(max(w1, zero), one), min(max(w2, zero), one)
                    total = w0 + w1 + w2
                    bary_out[py, px, 0] = w0 / total
                    bary_out[py, px, 1] = w1 / total
                    bary_out[py, px, 2] = w2 / total


@njit(cache=True, fastmath=False, nogil=True)
def _attributes(
    triangles: np.ndarray,
    tri: np.ndarray,
    bary: np.ndarray,
    attrs: np.ndarray,
    tri_labels: np.ndarray,
    values: np.ndarray,
    normals: np.ndarray,
    labels: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per covered pixel, ``attrs`` (V, C) interpolated by the weights into ``values`` (h, w, C) (zero elsewhere,
    in ``Raster.interpolate``'s order of sums), channels 2..4 scaled to unit length into ``normals`` (h, w, 3)
    (zero where shorter than 1e-6, as ``MeshSwapper.geometry`` normalises them), and the triangle's label into
    ``labels`` (h, w) (-1 elsewhere)."""
    h, w = tri.shape
    n = attrs.shape[1]
    tiny = np.float32(1e-6)
    for y in range(h):
        for x in range(w):
            t = tri[y, x]
            if t < 0:
                labels[y, x] = -1
                for k in range(n):
                    values[y, x, k] = 0.0
                normals[y, x, 0], normals[y, x, 1], normals[y, x, 2] = 0.0, 0.0, 0.0
                continue
            labels[y, x] = tri_labels[t]
            ia, ib, ic = triangles[t, 0], triangles[t, 1], triangles[t, 2]
            wa, wb, wc = bary[y, x, 0], bary[y, x, 1], bary[y, x, 2]
            for k in range(n):
                values[y, x, k] = attrs[ia, k] * wa + attrs[ib, k] * wb + attrs[ic, k] * wc
            nx, ny, nz = values[y, x, 2], values[y, x, 3], values[y, x, 4]
            length = np.float32(math.sqrt(nx * nx + ny * ny + nz * nz))
            scale = np.float32(1.0) / max(length, tiny) if length > tiny else np.float32(0.0)
            normals[y, x, 0], normals[y, x, 1], normals[y, x, 2] = nx * scale, ny * scale, nz * scale


@njit(cache=True, fastmath=False, nogil=True)
def _reflect(i: int, n: int) -> int:  # pragma: no cover - compiled
    """``i`` reflected into 0..n-1 without repeating the edge (OpenCV's BORDER_REFLECT_101, one pixel out)."""
    if i < 0:
        return min(-i, n - 1)
    if i >= n:
        return max(2 * n - 2 - i, 0)
    return i


@njit(cache=True, fastmath=False, nogil=True)
def _extend(tri: np.ndarray, values: np.ndarray, uv: np.ndarray) -> None:  # pragma: no cover - compiled
    """``uv`` (h, w, 2) = ``values``' first two channels, and at each uncovered pixel next to a covered one the mean
    of its covered 3x3 neighbours' (``engines.swap.mesh._extend``: bilinear upsampling then never mixes in the
    empty fill)."""
    h, w = tri.shape
    for y in range(h):
        for x in range(w):
            if tri[y, x] >= 0:
                uv[y, x, 0], uv[y, x, 1] = values[y, x, 0], values[y, x, 1]
                continue
            su, sv, count = np.float32(0.0), np.float32(0.0), 0
            for dy in range(-1, 2):
                r = _reflect(y + dy, h)
                for dx in range(-1, 2):
                    c = _reflect(x + dx, w)
                    if tri[r, c] >= 0:
                        su += values[r, c, 0]
                        sv += values[r, c, 1]
                        count += 1
            if count:
                uv[y, x, 0], uv[y, x, 1] = su / np.float32(count), sv / np.float32(count)
            else:
                uv[y, x, 0], uv[y, x, 1] = 0.0, 0.0


@njit(cache=True, fastmath=False, nogil=True)
def _sparse(tri: np.ndarray, bary: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """The covered pixels of ``tri`` (h, w) as ``Raster`` keeps them: flat indices in raster order (int64), their
    triangles (int32) and weights (n, 3) float32."""
    flat, weights = tri.reshape(-1), bary.reshape(-1, 3)
    n = 0
    for i in range(flat.shape[0]):
        n += flat[i] >= 0
    pixels = np.empty(n, np.int64)
    which = np.empty(n, np.int32)
    kept = np.empty((n, 3), np.float32)
    j = 0
    for i in range(flat.shape[0]):
        if flat[i] >= 0:
            pixels[j], which[j] = i, flat[i]
            kept[j, 0], kept[j, 1], kept[j, 2] = weights[i, 0], weights[i, 1], weights[i, 2]
            j += 1
    return pixels, which, kept


@njit(cache=True, fastmath=False, nogil=True)
def _vertex_normals(vertices: np.ndarray, triangles: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    """``out`` (V, 3) float32: ``engines.face.topology.vertex_normals`` of ``vertices`` (V, 3) float64 (each
    triangle's cross product (c - a) x (b - a), area-weighted, summed at its corners, unit length; (0, 0, -1)
    where the sum vanishes) turned to the camera frame (``engines.light.sh.mesh_to_camera``: y and z negated)."""
    acc = np.zeros((vertices.shape[0], 3), np.float64)
    for t in range(triangles.shape[0]):
        a, b, c = triangles[t, 0], triangles[t, 1], triangles[t, 2]
        ux, uy, uz = vertices[c, 0] - vertices[a, 0], vertices[c, 1] - vertices[a, 1], vertices[c, 2] - vertices[a, 2]
        vx, vy, vz = vertices[b, 0] - vertices[a, 0], vertices[b, 1] - vertices[a, 1], vertices[b, 2] - vertices[a, 2]
        nx, ny, nz = uy * vz - uz * vy, uz * vx - ux * vz, ux * vy - uy * vx
        for corner in (a, b, c):
            acc[corner, 0] += nx
            acc[corner, 1] += ny
            acc[corner, 2] += nz
    for i in range(vertices.shape[0]):
        length = math.sqrt(acc[i, 0] ** 2 + acc[i, 1] ** 2 + acc[i, 2] ** 2)
        if length > 1e-12:
            out[i, 0] = np.float32(acc[i, 0] / length)
            out[i, 1] = -np.float32(acc[i, 1] / length)
            out[i, 2] = -np.float32(acc[i, 2] / length)
        else:
            out[i, 0], out[i, 1], out[i, 2] = 0.0, 0.0, 1.0


@njit(cache=True, fastmath=False, nogil=True)
def _geometry(
    vertices: np.ndarray,
    triangles: np.ndarray,
    attrs: np.ndarray,
    tri_labels: np.ndarray,
    tri: np.ndarray,
    bary: np.ndarray,
    values: np.ndarray,
    normals: np.ndarray,
    labels: np.ndarray,
    uv: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``_rasterize``, ``_attributes``, ``_extend`` and ``_sparse`` in one call (one dispatch from Python)."""
    depth = np.full(tri.shape, _NO_DEPTH, np.float32)
    _rasterize(vertices, triangles, tri, bary, depth)
    _attributes(triangles, tri, bary, attrs, tri_labels, values, normals, labels)
    _extend(tri, values, uv)
    return _sparse(tri, bary)


@njit(cache=True, fastmath=False, nogil=True)
def _slot(keys: np.ndarray, row: int) -> int:  # pragma: no cover - compiled
    """Which of the two cached rows holds source row ``row``: 0, 1, or -1 when neither."""
    return 0 if keys[0] == row else (1 if keys[1] == row else -1)


@njit(cache=True, fastmath=False, nogil=True)
def _fill(
    small: np.ndarray,
    row: int,
    lo: np.ndarray,
    hi: np.ndarray,
    frac: np.ndarray,
    rows: np.ndarray,
    keys: np.ndarray,
    keep: int,
) -> int:  # pragma: no cover - compiled
    """Source row ``row`` of ``small`` (hs, ws, 2) interpolated across at the taps into a free slot of ``rows`` (not
    slot ``keep``, the one the other row of the pair is in: -1 none); returns the slot."""
    slot = 1 if keep == 0 else 0
    keys[slot] = row
    out = rows[slot]
    for i in range(lo.shape[0]):
        a, b, f = lo[i], hi[i], frac[i]
        for k in range(2):
            low = small[row, a, k]
            out[2 * i + k] = low + f * (small[row, b, k] - low)
    return slot


@njit(cache=True, fastmath=False, nogil=True)
def _row_pair(
    small: np.ndarray,
    row_lo: int,
    row_hi: int,
    lo: np.ndarray,
    hi: np.ndarray,
    frac: np.ndarray,
    rows: np.ndarray,
    keys: np.ndarray,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The slots of ``rows`` holding source rows ``row_lo`` and ``row_hi`` of ``small`` interpolated across
    (``_fill``), each filled only when neither slot holds it yet (the lower one where the upper is not)."""
    s0 = _slot(keys, row_lo)
    if s0 < 0:
        s0 = _fill(small, row_lo, lo, hi, frac, rows, keys, _slot(keys, row_hi))
    s1 = _slot(keys, row_hi)
    if s1 < 0:
        s1 = _fill(small, row_hi, lo, hi, frac, rows, keys, s0)
    return s0, s1


@njit(cache=True, fastmath=False, nogil=True)
def _render(
    texel_small: np.ndarray, texture: np.ndarray, box: tuple[int, int, int, int], out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out`` (h, w, 3) float32 inside ``box`` = (y0, y1, x0, x1): ``texture`` (S, S, 3) sampled
    bilinearly (edges replicated) at ``texel_small`` (hs, ws, 2: x, y texel positions) scaled bilinearly to
    (h, w). Row by row: the row's texel positions blended from two small rows interpolated across (each small row
    once per call) and turned into a texel index and two fractions (a loop of arithmetic: vectorised), then one
    gather of four texels of three channels per pixel."""
    h, w = out.shape[:2]
    hs, ws = texel_small.shape[:2]
    y0, y1, x0, x1 = box
    th, tw = texture.shape[:2]
    tex = texture.reshape(-1)
    dst = out.reshape(h, w * 3)
    ry_lo, ry_hi, ry_w = _taps(h, hs)
    cx_lo, cx_hi, cx_w = _taps(w, ws)
    n = x1 - x0
    rows = np.empty((2, 2 * n), np.float32)
    keys = np.full(2, -1, np.int64)
    base, step_x, step_y = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.int64)
    fu, fv = np.empty(n, np.float32), np.empty(n, np.float32)
    top_x, top_y = np.float32(tw - 1), np.float32(th - 1)
    zero = np.float32(0.0)
    lo, hi, wx = cx_lo[x0:x1], cx_hi[x0:x1], cx_w[x0:x1]
    for y in range(y0, y1):
        s0, s1 = _row_pair(texel_small, ry_lo[y], ry_hi[y], lo, hi, wx, rows, keys)
        fy = ry_w[y]
        top, bottom = rows[s0], rows[s1]
        for i in range(n):
            px = top[2 * i] + fy * (bottom[2 * i] - top[2 * i])
            py = top[2 * i + 1] + fy * (bottom[2 * i + 1] - top[2 * i + 1])
            px = min(max(px, zero), top_x)
            py = min(max(py, zero), top_y)
            ix, iy = int(px), int(py)
            fu[i], fv[i] = px - np.float32(ix), py - np.float32(iy)
            base[i] = (iy * tw + ix) * 3
            step_x[i] = 3 if ix < tw - 1 else 0
            step_y[i] = tw * 3 if iy < th - 1 else 0
        row_out = dst[y]
        for i in range(n):
            p, sx, sy, u, v = base[i], step_x[i], step_y[i], fu[i], fv[i]
            o = 3 * (x0 + i)
            for c in range(3):
                t00, t01 = tex[p + c], tex[p + sx + c]
                t10, t11 = tex[p + sy + c], tex[p + sy + sx + c]
                upper = t00 + u * (t01 - t00)
                lower = t10 + u * (t11 - t10)
                row_out[o + c] = upper + v * (lower - upper)


@njit(cache=True, fastmath=False, nogil=True)
def _relight_rendered(
    out: np.ndarray,
    texel_small: np.ndarray,
    texture: np.ndarray,
    face_box: tuple[int, int, int, int],
    mask: np.ndarray,
    field: np.ndarray,
    box: tuple[int, int, int, int],
    to_srgb: np.ndarray,
    lut_size: float,
) -> None:  # pragma: no cover - compiled
    """``engines.fused._relight`` with the albedo rendered as it goes: inside ``box`` where ``mask`` is set, ``out``
    (uint8 BGR, the work size) becomes the sRGB of the albedo times ``field`` (the shading on its grid, scaled to
    the image), the albedo at each pixel being what ``_render`` writes there for ``texture`` (S, S, 3) float32 at
    ``texel_small`` inside ``face_box`` = (y0, y1, x0, x1) (0 outside it) — the same float32 numbers, without the
    work-size albedo written and read back. As ``_render``, a row's texel indices and fractions are made first in
    a loop of arithmetic alone (vectorised; for the row's columns in both boxes), then the masked pixels gather."""
    h, w = out.shape[:2]
    y0, y1, x0, x1 = box
    fy0, fy1, fx0, fx1 = face_box
    n = (x1 - x0) * 3
    width = w * 3
    pixels = out.reshape(-1)
    rows = field.reshape(field.shape[0], field.shape[1] * 3)
    sy_lo, sy_hi, sy_w = _taps(h, field.shape[0])
    sa, sb, sw = _taps(w, field.shape[1])
    sa, sb, sw = sa[x0:x1], sb[x0:x1], sw[x0:x1]
    cache, keys = np.empty((2, n), np.float32), np.full(2, -1, np.int64)
    linear, keep, index = np.empty(n, np.float32), np.empty(n, np.uint8), np.empty(n, np.int32)
    scale = np.float32(lut_size)
    # The texture lookup, as ``_render`` makes it (its taps over the work size; only the columns in both boxes).
    hs, ws = texel_small.shape[:2]
    th, tw = texture.shape[:2]
    tex = texture.reshape(-1)
    ry_lo, ry_hi, ry_w = _taps(h, hs)
    cx_lo, cx_hi, cx_w = _taps(w, ws)
    c0, c1 = max(x0, fx0), min(x1, fx1)
    m = max(c1 - c0, 0)
    lo, hi, wx = cx_lo[c0 : c0 + m], cx_hi[c0 : c0 + m], cx_w[c0 : c0 + m]
    texels = np.empty((2, 2 * m), np.float32)
    texel_keys = np.full(2, -1, np.int64)
    base, step_x, step_y = np.empty(m, np.int64), np.empty(m, np.int64), np.empty(m, np.int64)
    fu, fv = np.empty(m, np.float32), np.empty(m, np.float32)
    top_x, top_y = np.float32(tw - 1), np.float32(th - 1)
    zero = np.float32(0.0)
    skip = c0 - x0
    for y in range(y0, y1):
        shading = _rows(rows, sy_lo[y], sy_hi[y], sa, sb, sw, cache, keys)
        start = y * width + x0 * 3
        dst = pixels[start : start + n]
        _spread(mask[y, x0:x1].view(np.uint8), keep)
        linear[:] = zero
        if fy0 <= y < fy1 and m > 0:
            s0, s1 = _row_pair(texel_small, ry_lo[y], ry_hi[y], lo, hi, wx, texels, texel_keys)
            fy = ry_w[y]
            upper_row, lower_row = texels[s0], texels[s1]
            for i in range(m):
                px = upper_row[2 * i] + fy * (lower_row[2 * i] - upper_row[2 * i])
                py = upper_row[2 * i + 1] + fy * (lower_row[2 * i + 1] - upper_row[2 * i + 1])
                px = min(max(px, zero), top_x)
                py = min(max(py, zero), top_y)
                ix, iy = int(px), int(py)
                fu[i], fv[i] = px - np.float32(ix), py - np.float32(iy)
                base[i] = (iy * tw + ix) * 3
                step_x[i] = 3 if ix < tw - 1 else 0
                step_y[i] = tw * 3 if iy < th - 1 else 0
            for i in range(m):
                k = 3 * (skip + i)
                if not keep[k]:
                    continue
                p, sx, sy, u, v = base[i], step_x[i], step_y[i], fu[i], fv[i]
                for c in range(3):
                    t00, t01 = tex[p + c], tex[p + sx + c]
                    t10, t11 = tex[p + sy + c], tex[p + sy + sx + c]
                    upper = t00 + u * (t01 - t00)
                    lower = t10 + u * (t11 - t10)
                    linear[k + c] = upper + v * (lower - upper)
        _encode(dst, linear, shading, sy_w[y], keep, scale, to_srgb, index)


@njit(cache=True, fastmath=False, nogil=True)
def _fade_and_band(
    outside: np.ndarray, depth: np.ndarray, falloff: np.float32, edge_falloff: np.float32, band: np.float32
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``engines.swap.mesh._displacement_field``'s per-pixel maps from its two distance transforms, in its float32
    arithmetic: the fade (1 inside, smoothstep to 0 at ``falloff`` px outside the outline, times a ramp to 0 over
    ``edge_falloff`` px at the raster's edge) and the band's smoothstep (0 at the outline to 1 ``band`` px in)."""
    h, w = outside.shape
    fade = np.empty((h, w), np.float32)
    ramp = np.empty((h, w), np.float32)
    zero, one, two, three = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(3.0)
    for y in range(h):
        ey = min(np.float32(y), np.float32(h - 1) - np.float32(y))
        for x in range(w):
            t = min(max(outside[y, x] / falloff, zero), one)
            f = one - t * t * (three - two * t)
            edge = min(min(np.float32(x), np.float32(w - 1) - np.float32(x)), ey)
            fade[y, x] = f * min(max(edge / edge_falloff, zero), one)
            s = min(max((depth[y, x] - one) / band, zero), one)
            ramp[y, x] = s * s * (three - two * s)
    return fade, ramp


@njit(cache=True, fastmath=False, nogil=True)
def _field_blend(
    ramp: np.ndarray, depth: np.ndarray, inside: np.ndarray, extended: np.ndarray, fade: np.ndarray
) -> np.ndarray:  # pragma: no cover - compiled
    """(h, w, 2) float32: ``w * inside + (1 - w) * extended * fade``, ``w`` the blurred band's ``ramp`` where
    ``depth`` > 0 (inside the outline), else 0 (``_displacement_field``'s last line)."""
    h, w = ramp.shape
    out = np.empty((h, w, 2), np.float32)
    one = np.float32(1.0)
    for y in range(h):
        for x in range(w):
            k = ramp[y, x] if depth[y, x] > 0 else np.float32(0.0)
            for c in range(2):
                out[y, x, c] = k * inside[y, x, c] + (one - k) * (extended[y, x, c] * fade[y, x])
    return out


class DrawnRaster(NamedTuple):
    """What ``geometry_raster`` draws, per pixel of the raster (h, w)."""

    triangle: np.ndarray
    """(h, w) int32: the visible triangle, -1 where none."""
    bary: np.ndarray
    """(h, w, 3) float32: its barycentric weights (0 where none)."""
    values: np.ndarray
    """(h, w, C) float32: the per-vertex attributes interpolated (0 where none)."""
    normals: np.ndarray
    """(h, w, 3) float32: the attributes' channels 2..4 at unit length (0 where none or shorter than 1e-6)."""
    labels: np.ndarray
    """(h, w) int8: the triangle's label, -1 where none."""
    uv: np.ndarray
    """(h, w, 2) float32: the attributes' first two channels, carried a pixel past the outline."""
    pixels: np.ndarray
    """(n,) int64: the covered pixels' flat indices, in raster order (``Raster.pixels``) ..."""
    tri: np.ndarray
    """(n,) int32: ... their triangles (``Raster.tri``) ..."""
    weights: np.ndarray
    """(n, 3) float32: ... and their weights (``Raster.weights``)."""


@njit(cache=True, fastmath=False, nogil=True)
def _taps_float(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``cv2.resize``'s bilinear taps for a float image (``_taps`` as OpenCV computes them there: the source
    position rounded to float32 before its whole part is taken away)."""
    lo = np.empty(dst, np.int64)
    hi = np.empty(dst, np.int64)
    frac = np.empty(dst, np.float32)
    scale = 1.0 / (dst / src)
    for i in range(dst):
        f = np.float32((i + 0.5) * scale - 0.5)
        j = int(math.floor(f))
        w = f - np.float32(j)
        if j < 0:
            j, w = 0, np.float32(0.0)
        if j >= src - 1:
            j, w = src - 1, np.float32(0.0)
        lo[i], hi[i], frac[i] = j, min(j + 1, src - 1), w
    return lo, hi, frac


@njit(cache=True, fastmath=False, nogil=True)
def _warp_maps(
    small: np.ndarray, lead: np.ndarray, size: tuple[int, int], xy: np.ndarray, frac: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``cv2.convertMaps(engines.swap.mesh._warp_map(...), None, cv2.CV_16SC2)`` in one pass: ``small`` (hs, ws, 2)
    float32, each geometry pixel's position in the window minus the displacement, upsampled bilinearly to ``size``
    (h, w) as ``cv2.resize`` does (the source rows across, then the two rows blended, ``a (1 - f) + b f``), the
    rows and columns past the outermost small pixels' centres continued by ``lead`` (4,) (the first and the last
    small centre's x, then y: their distance added back, as ``_warp_map``), and each position in 1/32 px rounded
    to even (``cvRound``): ``xy`` (h, w, 2) int16 the whole pixel, ``frac`` (h, w) uint16 the fraction's index
    (32 y + x)."""
    h, w = size
    hs, ws = small.shape[0], small.shape[1]
    ylo, yhi, yw = _taps_float(h, hs)
    xlo, xhi, xw = _taps_float(w, ws)
    rows = np.empty((2, 2 * w), np.float32)
    keys = np.full(2, -1, np.int64)
    one, thirty2 = np.float32(1.0), np.float32(32.0)
    magic = np.float32(12582912.0)  # 1.5 x 2^23: adding and taking it away rounds a float32 to even
    x_lo, x_hi = int(math.ceil(lead[0])), int(math.floor(lead[1])) + 1
    y_lo, y_hi = int(math.ceil(lead[2])), int(math.floor(lead[3])) + 1
    fx = np.empty(w, np.float32)
    for x in range(w):
        fx[x] = np.float32(0.0)
        if x < x_lo:
            fx[x] = np.float32(x) - lead[0]
        elif x >= x_hi:
            fx[x] = np.float32(x) - lead[1]
    flat = small.reshape(hs, ws * 2)
    pair = xy.reshape(h, w * 2)
    whole = np.empty(2 * w, np.int32)
    for y in range(h):
        for r in (ylo[y], yhi[y]):
            if keys[0] != r and keys[1] != r:
                slot = 0 if keys[0] != ylo[y] and keys[0] != yhi[y] else 1
                _across_pairs(flat[r], xlo, xhi, xw, rows[slot])
                keys[slot] = r
        top, bottom = (rows[0], rows[1]) if keys[0] == ylo[y] else (rows[1], rows[0])
        f = yw[y]
        g = one - f
        fy = np.float32(0.0)
        if y < y_lo:
            fy = np.float32(y) - lead[2]
        elif y >= y_hi:
            fy = np.float32(y) - lead[3]
        for x in range(w):
            mx = top[2 * x] * g + bottom[2 * x] * f + fx[x]
            my = top[2 * x + 1] * g + bottom[2 * x + 1] * f + fy
            whole[2 * x] = np.int32((mx * thirty2 + magic) - magic)
            whole[2 * x + 1] = np.int32((my * thirty2 + magic) - magic)
        xy_row, frac_row = pair[y], frac[y]
        for k in range(2 * w):
            xy_row[k] = min(max(whole[k] >> 5, -32768), 32767)
        for x in range(w):
            frac_row[x] = (whole[2 * x + 1] & 31) * 32 + (whole[2 * x] & 31)


@njit(cache=True, fastmath=False, nogil=True)
def _across_pairs(src: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """One source row of two-channel values (flattened) at the columns' taps, as ``cv2.resize`` blends a float
    image's columns: ``a (1 - f) + b f``."""
    one = np.float32(1.0)
    for x in range(lo.shape[0]):  # pragma: no cover - compiled
        a, b, f = 2 * lo[x], 2 * hi[x], w[x]
        g = one - f
        out[2 * x] = src[a] * g + src[b] * f
        out[2 * x + 1] = src[a + 1] * g + src[b + 1] * f


def geometry_raster(
    vertices: np.ndarray, triangles: np.ndarray, tri_labels: np.ndarray, attrs: np.ndarray, size: tuple[int, int]
) -> DrawnRaster:
    """The mesh drawn into a raster of ``size`` (h, w) with its window at (0, 0): ``vertices`` (V, 3) float32 in
    raster pixels (z: depth, smaller nearer), ``triangles`` (T, 3), ``tri_labels`` (T,) int8 a label per triangle,
    ``attrs`` (V, C >= 5) float32 per-vertex attributes, texture coordinates in the first two channels and normals
    in the next three."""
    h, w = size
    if attrs.ndim != 2 or attrs.shape[1] < 5:
        raise ValueError(f"attrs must be (V, C >= 5): texture coordinates and normals first, not {attrs.shape}")
    tri = np.full((h, w), -1, np.int32)
    bary = np.zeros((h, w, 3), np.float32)
    values = np.empty((h, w, attrs.shape[1]), np.float32)
    normals = np.empty((h, w, 3), np.float32)
    labels = np.empty((h, w), np.int8)
    uv = np.empty((h, w, 2), np.float32)
    sparse = _geometry(
        np.ascontiguousarray(vertices, dtype=np.float32),
        np.require(triangles, np.int32, ("C", "W")),  # writable: a read-only array is another type to numba
        np.ascontiguousarray(attrs, dtype=np.float32),
        np.require(tri_labels, np.int8, ("C", "W")),
        tri,
        bary,
        values,
        normals,
        labels,
        uv,
    )
    return DrawnRaster(tri, bary, values, normals, labels, uv, *sparse)


def vertex_normals_camera(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """(V, 3) float32: ``engines.light.sh.mesh_to_camera(engines.face.topology.vertex_normals(vertices,
    triangles))`` in one compiled loop (numpy's cross products and twelve ``bincount``s)."""
    out = np.empty((len(vertices), 3), np.float32)
    _vertex_normals(np.ascontiguousarray(vertices, dtype=np.float64), np.require(triangles, np.int32, ("C", "W")), out)
    return out


def render_texture(
    texel_small: np.ndarray, texture: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]
) -> np.ndarray:
    """(h, w, 3) float32, zero outside ``box`` = (y0, y1, x0, x1): ``texture``
    (S, S, 3) looked up bilinearly (edges replicated) at the texel positions ``texel_small`` (hs, ws, 2) float32
    scaled bilinearly to ``size`` = (h, w) (``MeshSwapper.render``'s ``cv2.resize`` then ``cv2.remap``)."""
    if texture.dtype != np.float32 or texture.ndim != 3 or texture.shape[2] != 3:
        raise ValueError(f"texture must be (S, S, 3) float32, not {texture.shape} {texture.dtype}")
    out = np.zeros((*size, texture.shape[2]), texture.dtype)
    y0, y1, x0, x1 = box
    if y1 > y0 and x1 > x0:
        _render(
            np.ascontiguousarray(texel_small, dtype=np.float32),
            np.ascontiguousarray(texture),
            box,
            out,
        )
    return out


def relight_rendered(
    out: np.ndarray,
    field: np.ndarray,
    mask: np.ndarray,
    box: tuple[int, int, int, int],
    lookup: tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]],
    tables: tuple[np.ndarray, int],
) -> np.ndarray:
    """``engines.fused.relight_masked`` of the albedo ``render_texture`` would draw, in one pass (``_relight_rendered``,
    the same numbers): ``out`` (uint8 BGR, C-contiguous, the work size) relit in place inside ``box`` = (y0, y1, x0,
    x1) where ``mask`` (bool, the work size) is set; ``lookup`` = (texture (S, S, 3) float32, texel positions (hs,
    ws, 2) float32, the face's box); ``tables`` = (uint16 to sRGB uint8, the uint16 steps of 1.0)."""
    texture, texel_small, face_box = lookup
    if texture.dtype != np.float32 or texture.ndim != 3 or texture.shape[2] != 3:
        raise ValueError(f"texture must be (S, S, 3) float32, not {texture.shape} {texture.dtype}")
    if not out.flags.c_contiguous or out.dtype != np.uint8 or mask.shape != out.shape[:2]:
        raise ValueError("out must be C-contiguous uint8 and the mask its size")
    to_srgb, lut_size = tables
    _relight_rendered(
        out,
        np.ascontiguousarray(texel_small, dtype=np.float32),
        np.ascontiguousarray(texture),
        face_box,
        np.ascontiguousarray(mask),
        np.ascontiguousarray(field, dtype=np.float32),
        box,
        to_srgb,
        float(lut_size),
    )
    return out


def fade_and_band(
    outside: np.ndarray, depth: np.ndarray, falloff_px: float, edge_falloff_px: float, band_px: float
) -> tuple[np.ndarray, np.ndarray]:
    """The morph field's fade and band ramp ((h, w) float32 each, ``_fade_and_band``) from the distance transforms
    ``outside`` (to the face, outside it) and ``depth`` (to the outline, inside), float32."""
    return _fade_and_band(
        np.ascontiguousarray(outside, dtype=np.float32),
        np.ascontiguousarray(depth, dtype=np.float32),
        np.float32(falloff_px),
        np.float32(edge_falloff_px),
        np.float32(band_px),
    )


def field_blend(
    ramp: np.ndarray, depth: np.ndarray, inside: np.ndarray, extended: np.ndarray, fade: np.ndarray
) -> np.ndarray:
    """The morph's displacement field (h, w, 2) float32: the exact ``inside`` across the band's blurred ``ramp``
    where ``depth`` > 0, the faded continuation ``extended`` x ``fade`` elsewhere (``_field_blend``)."""
    arrays = (ramp, depth, inside, extended, fade)
    return _field_blend(*(np.ascontiguousarray(a, dtype=np.float32) for a in arrays))


def warp_maps(
    small: np.ndarray, lead: tuple[float, float, float, float], size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The morph's fixed-point remap maps of a window of ``size`` (h, w) — (h, w, 2) int16 whole pixels and (h, w)
    uint16 fractions, what ``cv2.convertMaps`` makes of ``engines.swap.mesh._warp_map``'s float map — straight from
    ``small`` (hs, ws, 2) float32, the geometry pixels' positions in the window minus the displacement, and ``lead``
    (the first and last small centre's x, then y) (``_warp_maps``): the window-size float map is never written."""
    h, w = size
    xy = np.empty((h, w, 2), np.int16)
    frac = np.empty((h, w), np.uint16)
    _warp_maps(np.ascontiguousarray(small, dtype=np.float32), np.asarray(lead, np.float32), (h, w), xy, frac)
    return xy, frac


def warm_up() -> float:
    """Compile the kernels for the argument types the swap passes (or load them from the disk cache); seconds."""
    start = time.perf_counter()
    vertices = np.array([[0.5, 0.5, 0.0], [6.5, 1.0, 0.0], [2.0, 6.0, 0.0]], np.float32)
    attrs = np.ones((3, 7), np.float32)
    drawn = geometry_raster(vertices, np.array([[0, 1, 2]]), np.zeros(1, np.int8), attrs, (8, 8))
    uv, values = drawn.uv, drawn.values
    vertex_normals_camera(vertices, np.array([[0, 1, 2]]))
    fade, ramp = fade_and_band(np.ones((8, 8), np.float32), np.ones((8, 8), np.float32), 4.0, 1.0, 3.0)
    field_blend(ramp, fade, values[..., 5:7], values[..., 5:7], fade)
    warp_maps(values[..., 5:7], (0.0, 7.0, 0.0, 7.0), (16, 16))
    for writable in (True, False):  # an identity's albedo may be read-only, its mip levels and blends are not
        texture = np.zeros((4, 4, 3), np.float32)
        texture.setflags(write=writable)
        render_texture(uv, texture, (16, 16), (0, 16, 0, 16))
        to_srgb = np.zeros(65536, np.uint8)
        to_srgb.setflags(write=False)  # read-only, as ``engines.light.relight``'s
        field = np.ones((4, 4, 3), np.float32)
        mask = np.ones((16, 16), bool)
        image = np.zeros((16, 16, 3), np.uint8)
        relight_rendered(image, field, mask, (0, 16, 0, 16), (texture, uv, (0, 16, 0, 16)), (to_srgb, 16384))
    return time.perf_counter() - start
