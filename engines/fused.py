"""The CPU path's per-pixel passes fused into compiled kernels (numba): one loop over the face where numpy and
OpenCV made several full-size passes.

At a close-up the per-face working size is nearly the face's window (BENCHMARKS.md, issue 20), so each full-size
pass costs about the same whatever it does (~10 ns a pixel on the development machine): a resize, a multiply, a
table lookup, a masked copy. Here each chain of them is one pass, every intermediate kept in registers:

- ``paste_face``: the seam's gains upsampled and applied (``engines.compose.seam.apply_field``), the face scaled
  up to the window (``FaceGeometry.to_window``) and blended into the frame (``engines.compose.blend.composite``);
- ``relight_masked``: the shading field upsampled from its grid, multiplied into the face's linear light and
  encoded to sRGB where the face's mask is set (``engines.light.relight.relight_face``'s binary-mask path);
- ``seam_weights``/``seam_gains`` and ``relief_weights``/``relief_gains``: the seam's and the relief's gain fields'
  per-pixel arithmetic at geometry resolution, around OpenCV's resizes and blurs (``engines.compose.seam``,
  ``engines.compose.relief``).

The numpy/cv2 functions stay the reference (``NumpyOps(fused=False)``; the torch twins follow them): the kernels
sample bilinearly with OpenCV's pixel-centre convention in float, where OpenCV rounds each pass to uint8 and
uses fixed-point weights, so a pixel differs by a level or two at most (tests/engines/test_fused.py holds them to
that on frames of three shared clips).

Compiled once per machine (``cache=True``: the machine code is kept beside this file in ``__pycache__``, or in
numba's user cache where that is not writable); a process loads it on the first face it draws.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

_GAMMA = 2.2  # as ``engines.compose.seam.apply_field``: a linear-light gain is the gain ** (1 / 2.2) on sRGB codes


# Every kernel is compiled once and kept on disk (``cache``), in IEEE arithmetic (``fastmath`` off: the same numbers
# on every machine), and releases the GIL (the worker's other threads run meanwhile).
#
# Each kernel works a row at a time, its inner loops over one contiguous run of a row's channels (``k`` = column
# x 3 + channel) with nothing but arithmetic in them: LLVM vectorises those (measured 3x faster than a loop over
# (column, channel) pairs); the bilinear resampling is separable, each source row interpolated across once per
# call and kept while the output rows need it.


@njit(cache=True, fastmath=False, nogil=True)
def _taps(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``cv2.resize``'s bilinear taps from ``src`` samples to ``dst``: for each output sample the two source
    indices and the second one's weight (pixel centres aligned; clamped at the edges as OpenCV clamps)."""
    lo = np.empty(dst, np.int64)
    hi = np.empty(dst, np.int64)
    frac = np.empty(dst, np.float32)
    scale = src / dst
    for i in range(dst):
        f = (i + 0.5) * scale - 0.5
        j = int(math.floor(f))
        w = f - j
        if j < 0:
            j, w = 0, 0.0
        if j >= src - 1:
            j, w = src - 1, 0.0
        lo[i], hi[i], frac[i] = j, min(j + 1, src - 1), w
    return lo, hi, frac


@njit(cache=True, fastmath=False, nogil=True)
def _across(src: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """One source row of three-channel pixels (flattened) interpolated at the columns' taps (``_taps``, for the
    output columns wanted) into ``out`` (flattened, float32). A pixel at a time, its three channels together: a
    gather per element cost three times as much.

    Each source element's value and its step to the next pixel's are made once for the row (float32, in vector
    loops), and each output element gathers the two: ``low + f (high - low)`` in the same float32 operations as
    reading ``hi``'s pixel (``_taps``' ``hi`` is ``lo``'s next pixel, or ``lo`` itself at the clamped edge, where
    the weight is 0 and the step is taken as 0) — a fifth off the paste (BENCHMARKS.md, issue 20)."""
    m = src.shape[0]
    value = np.empty(m, np.float32)
    step = np.empty(m, np.float32)
    for k in range(m):  # pragma: no cover - compiled
        value[k] = np.float32(src[k])
    for k in range(m - 3):  # pragma: no cover - compiled
        step[k] = value[k + 3] - value[k]
    for k in range(max(m - 3, 0), m):  # pragma: no cover - compiled
        step[k] = np.float32(0.0)
    for x in range(lo.shape[0]):  # pragma: no cover - compiled
        i, f = lo[x] * 3, w[x]
        out[3 * x] = value[i] + f * step[i]
        out[3 * x + 1] = value[i + 1] + f * step[i + 1]
        out[3 * x + 2] = value[i + 2] + f * step[i + 2]


@njit(cache=True, fastmath=False, nogil=True)
def _rows(
    src: np.ndarray, r0: int, r1: int, a: np.ndarray, b: np.ndarray, w: np.ndarray, cache: np.ndarray, keys: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Source rows ``r0`` and ``r1`` of the flattened ``src`` (rows, elements), each interpolated at the columns'
    taps ``a``, ``b``, ``w`` (``_across``): what one output row of a separable bilinear resize blends. The two are
    kept in ``cache`` (2, n) (``keys``: their source rows), so each source row is interpolated once however many
    output rows read it."""
    for r in (r0, r1):
        if keys[0] != r and keys[1] != r:
            slot = 0 if keys[0] != r0 and keys[0] != r1 else 1
            _across(src[r], a, b, w, cache[slot])
            keys[slot] = r
    return (cache[0], cache[1]) if keys[0] == r0 else (cache[1], cache[0])


@njit(cache=True, fastmath=False, nogil=True)
def _blend(
    dst: np.ndarray,
    face: tuple[np.ndarray, np.ndarray],
    fy: np.float32,
    gain: tuple[np.ndarray, np.ndarray],
    gy: np.float32,
    alpha: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``dst`` (uint8) = dst + alpha (face x gain - dst), the face and the gain each two rows blended by ``fy`` and
    ``gy``, the gained face saturated at 255, the result rounded."""
    ft, fb = face
    gt, gb = gain
    top = np.float32(255.0)
    for k in range(dst.shape[0]):
        f = ft[k] + fy * (fb[k] - ft[k])
        g = gt[k] + gy * (gb[k] - gt[k])
        v = min(f * g, top)
        o = np.float32(dst[k])
        dst[k] = np.uint8(o + alpha[k] * (v - o) + np.float32(0.5))


@njit(cache=True, fastmath=False, nogil=True)
def _across1(src: np.ndarray, lo: np.ndarray, hi: np.ndarray, w: np.ndarray, out: np.ndarray) -> None:
    """``_across`` for one channel: a source row interpolated at the columns' taps into ``out``."""
    for x in range(lo.shape[0]):  # pragma: no cover - compiled
        low = src[lo[x]]
        out[x] = low + w[x] * (src[hi[x]] - low)


@njit(cache=True, fastmath=False, nogil=True)
def _spread_rows(top: np.ndarray, bottom: np.ndarray, fy: np.float32, out: np.ndarray) -> None:
    """Two rows of one-channel values blended by ``fy``, each result three times into ``out`` (``_spread``)."""
    for x in range(top.shape[0]):  # pragma: no cover - compiled
        v = top[x] + fy * (bottom[x] - top[x])
        out[3 * x] = v
        out[3 * x + 1] = v
        out[3 * x + 2] = v


@njit(cache=True, fastmath=False, nogil=True)
def _spread(values: np.ndarray, out: np.ndarray) -> None:
    """Each of ``values`` three times into ``out``: a per-pixel weight for each channel."""
    for x in range(values.shape[0]):  # pragma: no cover - compiled
        v = values[x]
        out[3 * x] = v
        out[3 * x + 1] = v
        out[3 * x + 2] = v


@njit(cache=True, fastmath=False, nogil=True)
def _paste(
    frame: np.ndarray,
    origin: tuple[int, int],
    window: tuple[int, int],
    box: tuple[int, int, int, int],
    face: np.ndarray,
    gain: np.ndarray,
    has_gain: bool,
    alpha: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``frame``'s window at ``origin`` (y, x), of size ``window`` (h, w), blended in place with ``face`` (any size,
    uint8, bilinearly scaled to the window) times ``gain`` (any size, float32, bilinearly scaled; ignored without
    ``has_gain``) by ``alpha`` (any size, float32, bilinearly scaled: 1 where its taps are all 1), inside ``box`` =
    (y0, y1, x0, x1) of the window."""
    wh, ww = window
    y0, y1, x0, x1 = box
    oy, ox = origin
    n = (x1 - x0) * 3
    width = frame.shape[1] * 3
    pixels = frame.reshape(-1)
    face_rows = face.reshape(face.shape[0], face.shape[1] * 3)
    gain_rows = gain.reshape(gain.shape[0], gain.shape[1] * 3)
    fy_lo, fy_hi, fy_w = _taps(wh, face.shape[0])
    gy_lo, gy_hi, gy_w = _taps(wh, gain.shape[0])
    fa, fb, fw = _taps(ww, face.shape[1])
    ga, gb, gw = _taps(ww, gain.shape[1])
    fa, fb, fw, ga, gb, gw = fa[x0:x1], fb[x0:x1], fw[x0:x1], ga[x0:x1], gb[x0:x1], gw[x0:x1]
    face_cache, gain_cache = np.empty((2, n), np.float32), np.ones((2, n), np.float32)
    face_keys, gain_keys = np.full(2, -1, np.int64), np.full(2, -1, np.int64)
    gain_pair, gy = (gain_cache[0], gain_cache[1]), np.float32(0.0)
    alpha_row = np.empty(n, np.float32)
    scaled = alpha.shape[0] != wh or alpha.shape[1] != ww
    ay_lo, ay_hi, ay_w = _taps(wh, alpha.shape[0])
    aa, ab, aw = _taps(ww, alpha.shape[1])
    aa, ab, aw = aa[x0:x1], ab[x0:x1], aw[x0:x1]
    alpha_cache, alpha_keys = np.empty((2, x1 - x0), np.float32), np.full(2, -1, np.int64)
    for y in range(y0, y1):
        face_pair = _rows(face_rows, fy_lo[y], fy_hi[y], fa, fb, fw, face_cache, face_keys)
        if has_gain:
            gain_pair, gy = _rows(gain_rows, gy_lo[y], gy_hi[y], ga, gb, gw, gain_cache, gain_keys), gy_w[y]
        if scaled:
            for r in (ay_lo[y], ay_hi[y]):
                if alpha_keys[0] != r and alpha_keys[1] != r:
                    slot = 0 if alpha_keys[0] != ay_lo[y] and alpha_keys[0] != ay_hi[y] else 1
                    _across1(alpha[r], aa, ab, aw, alpha_cache[slot])
                    alpha_keys[slot] = r
            top, bottom = (0, 1) if alpha_keys[0] == ay_lo[y] else (1, 0)
            _spread_rows(alpha_cache[top], alpha_cache[bottom], ay_w[y], alpha_row)
        else:
            _spread(alpha[y, x0:x1], alpha_row)
        start = (oy + y) * width + (ox + x0) * 3
        _blend(pixels[start : start + n], face_pair, fy_w[y], gain_pair, gy, alpha_row)


@njit(cache=True, fastmath=False, nogil=True)
def _encode(
    dst: np.ndarray,
    linear: np.ndarray,
    shading: tuple[np.ndarray, np.ndarray],
    sy: np.float32,
    keep: np.ndarray,
    scale: np.float32,
    to_srgb: np.ndarray,
    index: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``dst`` (uint8) = sRGB of ``linear`` x the shading (two rows blended by ``sy``) where ``keep`` (uint8 per
    element) is set: the product in multiples of 1 / ``scale`` rounded to a uint16 index (saturated) into
    ``to_srgb``."""
    st, sb = shading
    top = np.float32(65535.0)
    for k in range(dst.shape[0]):
        v = min(max(linear[k] * (st[k] + sy * (sb[k] - st[k])) * scale, np.float32(0.0)), top)
        index[k] = np.int32(v + np.float32(0.5))
    for k in range(dst.shape[0]):
        if keep[k]:
            dst[k] = to_srgb[index[k]]


@njit(cache=True, fastmath=False, nogil=True)
def _relight(
    out: np.ndarray,
    albedo: np.ndarray,
    has_albedo: bool,
    mask: np.ndarray,
    field: np.ndarray,
    box: tuple[int, int, int, int],
    to_linear: np.ndarray,
    to_srgb: np.ndarray,
    lut_size: float,
) -> None:  # pragma: no cover - compiled
    """``out`` (uint8 BGR) relit in place inside ``box`` = (y0, y1, x0, x1) where ``mask`` is set: the linear light
    (``albedo``, or ``out`` through ``to_linear``) times ``field`` (the shading on its grid, bilinearly scaled to
    the image's size), encoded by ``to_srgb`` indexed in multiples of 1 / ``lut_size`` (uint16, saturated)."""
    h, w = out.shape[:2]
    y0, y1, x0, x1 = box
    n = (x1 - x0) * 3
    width = w * 3
    pixels = out.reshape(-1)
    lit = albedo.reshape(-1)
    rows = field.reshape(field.shape[0], field.shape[1] * 3)
    sy_lo, sy_hi, sy_w = _taps(h, field.shape[0])
    sa, sb, sw = _taps(w, field.shape[1])
    sa, sb, sw = sa[x0:x1], sb[x0:x1], sw[x0:x1]
    cache, keys = np.empty((2, n), np.float32), np.full(2, -1, np.int64)
    linear, keep, index = np.empty(n, np.float32), np.empty(n, np.uint8), np.empty(n, np.int32)
    scale = np.float32(lut_size)
    for y in range(y0, y1):
        shading = _rows(rows, sy_lo[y], sy_hi[y], sa, sb, sw, cache, keys)
        start = y * width + x0 * 3
        dst = pixels[start : start + n]
        if not has_albedo:
            for k in range(n):
                linear[k] = to_linear[dst[k]]
        _spread(mask[y, x0:x1].view(np.uint8), keep)
        _encode(dst, lit[start : start + n] if has_albedo else linear, shading, sy_w[y], keep, scale, to_srgb, index)


@njit(cache=True, fastmath=False, nogil=True)
def _shading(
    normals: np.ndarray,
    constants: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    floors: np.ndarray,
    bounds: np.ndarray,
    luma: np.ndarray,
    ratio: bool,
    max_gain: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``out`` (n, 3) float32: the target light's shading at each of ``normals`` (n, 3), floored by ``floors[1]``;
    where ``ratio``, divided by the source light's (floored by ``floors[0]``), each channel held within ``bounds``
    (2, 3) of the ratio's luminance (``luma``: its weights; the luminance kept, as ``relight.bound_colour``) and
    clipped to 0..``max_gain``. ``constants``: the SH basis's Y00, C1, C2, C20, C22; the lights (9, 3) float32,
    columns in the output's channel order."""
    y00, c1, c2, c20, c22 = constants[0], constants[1], constants[2], constants[3], constants[4]
    basis = np.empty(9, np.float32)
    gain = np.empty(3, np.float32)
    top = np.float32(max_gain)
    for i in range(normals.shape[0]):
        x, y, z = normals[i, 0], normals[i, 1], normals[i, 2]
        basis[0] = y00
        basis[1] = c1 * y
        basis[2] = c1 * z
        basis[3] = c1 * x
        basis[4] = c2 * x * y
        basis[5] = c2 * y * z
        basis[6] = c20 * (np.float32(3.0) * z * z - np.float32(1.0))
        basis[7] = c2 * x * z
        basis[8] = c22 * (x * x - y * y)
        for c in range(3):
            e_t = np.float32(0.0)
            e_s = np.float32(0.0)
            for j in range(9):
                e_t += basis[j] * target[j, c]
                e_s += basis[j] * source[j, c]
            e_t = max(e_t, floors[1, c])
            gain[c] = e_t / max(e_s, floors[0, c]) if ratio else e_t
        if not ratio:
            out[i, 0], out[i, 1], out[i, 2] = gain[0], gain[1], gain[2]
            continue
        lum = max(gain[0] * luma[0] + gain[1] * luma[1] + gain[2] * luma[2], np.float32(1e-6))
        for c in range(3):
            gain[c] = min(max(gain[c] / lum, bounds[0, c]), bounds[1, c])
        kept = lum / max(gain[0] * luma[0] + gain[1] * luma[1] + gain[2] * luma[2], np.float32(1e-6))
        for c in range(3):
            out[i, c] = min(max(gain[c] * kept, np.float32(0.0)), top)


_NO_GAIN = np.ones((1, 1, 3), np.float32)
_NO_ALBEDO = np.zeros((1, 1, 3), np.float32)


def paste_face(
    frame: np.ndarray,
    origin: tuple[int, int],
    window: tuple[int, int],
    box: tuple[int, int, int, int],
    face_bgr: np.ndarray,
    field_small: np.ndarray | None,
    alpha: np.ndarray,
) -> None:
    """``frame`` (uint8 BGR, C-contiguous) with the face pasted in place: in its window at ``origin`` (y, x) of size
    ``window`` (h, w), inside ``box`` = (y0, y1, x0, x1) of the window, ``frame + alpha (face - frame)`` where the
    face is ``face_bgr`` (uint8 BGR at its work size) times the seam's linear-light gains ``field_small``
    (``seam_field``; None: none), both scaled to the window; ``alpha`` float32, the window's size or any other
    (the work size: scaled to the window bilinearly here too). ``engines.compose.blend.paste_face`` finds the box."""
    if not frame.flags.c_contiguous or frame.dtype != np.uint8:
        raise ValueError("the frame must be a C-contiguous uint8 image")
    if alpha.ndim != 2:
        raise ValueError(f"alpha {alpha.shape} is not one channel")
    gain = _NO_GAIN if field_small is None else np.power(field_small, 1.0 / _GAMMA, dtype=np.float32)
    _paste(
        frame,
        origin,
        window,
        box,
        np.ascontiguousarray(face_bgr),
        np.ascontiguousarray(gain),
        field_small is not None,
        np.ascontiguousarray(alpha, dtype=np.float32),
    )


@njit(cache=True, fastmath=False, nogil=True)
def _outline_alpha(
    inside: np.ndarray,
    inset: np.float32,
    feather: np.ndarray,
    unit: np.float32,
    seen: np.ndarray,
    has_seen: bool,
    seen_low: np.float32,
    seen_span: np.float32,
) -> np.ndarray:  # pragma: no cover - compiled
    """``engines.compose.blend.face_alpha_small``'s arithmetic after its distance transform, in one pass and in its
    float32 operations, to the bit: the smoothstep of (``inside`` - ``inset``) / max(``feather`` x ``unit``, 1e-3),
    times (``has_seen``) the smoothstep of (``seen`` - ``seen_low``) / ``seen_span``."""
    h, w = inside.shape
    out = np.empty((h, w), np.float32)
    zero, one, two, three = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(3.0)
    floor = np.float32(1e-3)
    for y in range(h):
        for x in range(w):
            t = min(max((inside[y, x] - inset) / max(feather[y, x] * unit, floor), zero), one)
            a = t * t * (three - two * t)
            if has_seen:
                s = min(max((seen[y, x] - seen_low) / seen_span, zero), one)
                a = a * (s * s * (three - two * s))
            out[y, x] = a
    return out


def outline_alpha(
    inside: np.ndarray,
    inset: float,
    feather: np.ndarray,
    unit: float,
    seen: np.ndarray | None,
    seen_ramp: tuple[float, float],
) -> np.ndarray:
    """(h, w) float32: ``face_alpha_small``'s outline ramp from the distance inside the face (``inside``, float32) and
    the ramp's widths (``feather``, eye-corner distances; ``unit`` px each), times the photos' coverage ramp
    (``seen``, float32, from ``seen_ramp`` = (low, high); None: none) — numpy's passes in one (``_outline_alpha``):
    the Python numbers taken as float32, as numpy takes them against float32 arrays."""
    low, high = seen_ramp
    return _outline_alpha(
        np.ascontiguousarray(inside, dtype=np.float32),
        np.float32(inset),
        np.ascontiguousarray(feather, dtype=np.float32),
        np.float32(unit),
        _NO_SEEN if seen is None else np.ascontiguousarray(seen, dtype=np.float32),
        seen is not None,
        np.float32(low),
        np.float32(high - low),
    )


_NO_SEEN = np.ones((1, 1), np.float32)


@njit(cache=True, fastmath=False, nogil=True)
def _cut_opening(
    dist: np.ndarray,
    inside: np.ndarray,
    shown: np.ndarray,
    window: tuple[int, int],
    box: tuple[int, int, int, int],
    ramp: tuple[np.float32, np.float32],
    alpha: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """``alpha`` (the window's (h, w), float32) times an opening's ramp inside ``box`` = (y0, y1, x0, x1), in place:
    ``engines.compose.blend.cut_openings``' passes after the distance transform, to the bit. The signed distance
    on the grid twice as fine (``dist`` to the contour, negative where ``inside``, halved) averaged over each 2 x 2
    as ``cv2.resize``'s ``INTER_AREA`` averages at a factor of 2 (in fours of columns ``(a + b) + (c + d)``, the
    columns past the last four ``((a + b) + c) + d``, then x 0.25); where the geometry raster's ``shown`` (hs, ws)
    sampled as ``cv2.resize``'s nearest neighbour is 0, nothing; elsewhere the smoothstep of (distance - grow) /
    feather (``ramp``), each in float32 as numpy computes it."""
    h, w = window
    y0, y1, x0, x1 = box
    hs, ws = shown.shape
    grow, feather = ramp
    bw = x1 - x0
    vector = (bw // 4) * 4
    half = np.float32(0.5)
    quarter = np.float32(0.25)
    zero, one, two, three = np.float32(0.0), np.float32(1.0), np.float32(2.0), np.float32(3.0)
    fy, fx = hs / h, ws / w
    cols = np.empty(bw, np.int64)
    for j in range(bw):
        cols[j] = min(int((x0 + j) * fx), ws - 1)
    for i in range(y1 - y0):
        r = min(int((y0 + i) * fy), hs - 1)
        d0, d1, in0, in1 = dist[2 * i], dist[2 * i + 1], inside[2 * i], inside[2 * i + 1]
        for j in range(bw):
            if shown[r, cols[j]] == 0:
                continue
            a, b, c, d = d0[2 * j], d0[2 * j + 1], d1[2 * j], d1[2 * j + 1]
            a = (-a if in0[2 * j] > 0 else a) * half
            b = (-b if in0[2 * j + 1] > 0 else b) * half
            c = (-c if in1[2 * j] > 0 else c) * half
            d = (-d if in1[2 * j + 1] > 0 else d) * half
            # OpenCV's SIMD sums pairs of pairs; past the last four columns its scalar loop sums left to right.
            signed = ((a + b) + (c + d)) * quarter if j < vector else (((a + b) + c) + d) * quarter
            t = min(max((signed - grow) / feather, zero), one)
            alpha[y0 + i, x0 + j] *= t * t * (three - two * t)


def cut_opening(
    alpha: np.ndarray,
    dist: np.ndarray,
    inside: np.ndarray,
    shown: np.ndarray,
    box: tuple[int, int, int, int],
    grow_px: float,
    feather_px: float,
) -> None:
    """``alpha`` (h, w) float32, C-contiguous, times the ramp around one kept opening inside ``box`` = (y0, y1, x0,
    x1), in place (``_cut_opening``): ``dist`` and ``inside`` (2 (y1 - y0), 2 (x1 - x0)) the distance transform to
    the opening's contour and its fill on the grid twice as fine, ``shown`` (hs, ws) uint8 where the geometry raster
    shows the opening."""
    y0, y1, x0, x1 = box
    if dist.shape != (2 * (y1 - y0), 2 * (x1 - x0)) or inside.shape != dist.shape:
        raise ValueError(f"the fine grid {dist.shape} is not twice the box {box}")
    if alpha.dtype != np.float32 or not alpha.flags.c_contiguous:
        raise ValueError("alpha must be C-contiguous float32")
    ramp = (np.float32(grow_px), np.float32(feather_px))
    _cut_opening(dist, inside, shown, (alpha.shape[0], alpha.shape[1]), box, ramp, alpha)


@njit(cache=True, fastmath=False, nogil=True)
def _skin_means(
    face: np.ndarray, actor: np.ndarray, skin: np.ndarray, most: int, to_linear: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``engines.compose.blend.colour_gains``' means: the skin pixels in raster order (every ``n // most``-th of the
    ``n`` when there are more than ``most``), each image's linear light (``to_linear``, float64) summed in that
    order — as numpy sums a column — and divided by their count. Returns (n, face mean, actor mean)."""
    flat = skin.reshape(-1)
    n = 0
    for i in range(flat.shape[0]):
        if flat[i]:
            n += 1
    step = n // most if n > most else 1
    face_sum, actor_sum = np.zeros(3), np.zeros(3)
    f, a = face.reshape(-1), actor.reshape(-1)
    taken, seen = 0, 0
    for i in range(flat.shape[0]):
        if not flat[i]:
            continue
        if seen % step == 0:
            for c in range(3):
                face_sum[c] += to_linear[f[3 * i + c]]
                actor_sum[c] += to_linear[a[3 * i + c]]
            taken += 1
        seen += 1
    if taken:
        face_sum /= taken
        actor_sum /= taken
    return n, face_sum, actor_sum


def skin_means(
    face: np.ndarray, actor: np.ndarray, skin: np.ndarray, most: int, to_linear: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray]:
    """(the skin's pixel count, the face's and the actor's mean linear light on it (3,) float64) as
    ``engines.compose.blend.colour_gains`` takes them (``_skin_means``): uint8 BGR images and a bool mask of one
    size, at most ``most`` of the pixels (evenly in raster order), ``to_linear`` the uint8-to-linear table."""
    if face.shape != actor.shape or face.shape[:2] != skin.shape or face.dtype != np.uint8 or actor.dtype != np.uint8:
        raise ValueError("face and actor must be uint8 BGR images of the skin mask's size")
    return _skin_means(
        np.ascontiguousarray(face), np.ascontiguousarray(actor), np.ascontiguousarray(skin), most, to_linear
    )


@njit(cache=True, fastmath=False, nogil=True)
def _zone_weights(
    uv: np.ndarray, texture: np.ndarray, labels: np.ndarray, texels: np.float32, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """``out`` (hs, ws, C) float32: ``texture`` (S, S, C) float32 looked up at the texture coordinates ``uv`` (hs,
    ws, 2, 0..1) times ``texels`` less half a texel, as ``cv2.remap`` looks a float image up through a float map
    (the position rounded to 1/32 texel, ties to even; the four texels' weights products of 32nds, exact; summed
    left to right; texels past the edge 0), and 0 where ``labels`` < 0 (``engines.compose.relief.zone_weight``'s
    remap and masked copy)."""
    hs, ws = labels.shape
    th, tw, nc = texture.shape
    half = np.float32(0.5)
    scale = np.float32(32.0)
    step = np.float32(1.0 / 32.0)
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for y in range(hs):
        for x in range(ws):
            if labels[y, x] < 0:
                for c in range(nc):
                    out[y, x, c] = zero
                continue
            u = uv[y, x, 0] * texels - half
            v = uv[y, x, 1] * texels - half
            ix = int(np.rint(u * scale))
            iy = int(np.rint(v * scale))
            sx, sy = ix >> 5, iy >> 5
            ax, ay = np.float32(ix & 31) * step, np.float32(iy & 31) * step
            w0, w1, w2, w3 = (one - ay) * (one - ax), (one - ay) * ax, ay * (one - ax), ay * ax
            if 0 <= sx < tw - 1 and 0 <= sy < th - 1:  # all four texels inside (nearly every pixel)
                top, bottom = texture[sy], texture[sy + 1]
                for c in range(nc):
                    out[y, x, c] = top[sx, c] * w0 + top[sx + 1, c] * w1 + bottom[sx, c] * w2 + bottom[sx + 1, c] * w3
                continue
            in_x0, in_x1 = 0 <= sx < tw, 0 <= sx + 1 < tw
            in_y0, in_y1 = 0 <= sy < th, 0 <= sy + 1 < th
            for c in range(nc):
                t0 = texture[sy, sx, c] if in_y0 and in_x0 else zero
                t1 = texture[sy, sx + 1, c] if in_y0 and in_x1 else zero
                t2 = texture[sy + 1, sx, c] if in_y1 and in_x0 else zero
                t3 = texture[sy + 1, sx + 1, c] if in_y1 and in_x1 else zero
                out[y, x, c] = t0 * w0 + t1 * w1 + t2 * w2 + t3 * w3


def zone_weights(uv_small: np.ndarray, texture: np.ndarray, labels: np.ndarray, texels: int) -> np.ndarray:
    """(hs, ws, C) float32: ``texture`` (S, S, C) float32 at ``uv_small`` (hs, ws, 2) float32 texture coordinates
    scaled to ``texels``, zero where ``labels`` (hs, ws) < 0, in one pass (``_zone_weights``: ``cv2.remap`` with
    ``BORDER_CONSTANT`` and ``cv2.copyTo``'s numbers, to the bit)."""
    out = np.empty((*labels.shape, texture.shape[2]), np.float32)
    _zone_weights(
        np.ascontiguousarray(uv_small, dtype=np.float32),
        np.ascontiguousarray(texture, dtype=np.float32),
        np.ascontiguousarray(labels),
        np.float32(texels),
        out,
    )
    return out


def shading_field(
    normals: np.ndarray,
    constants: np.ndarray,
    source: np.ndarray,
    target: np.ndarray,
    floors: np.ndarray,
    bounds: tuple[np.ndarray, np.ndarray],
    ratio: bool,
    max_gain: float,
) -> np.ndarray:
    """(h, w, 3) float32 at ``normals``' (h, w, 3) grid: ``engines.light.relight._shading_field`` in one compiled
    loop (its numpy builds the (n, 9) basis and two products: a dozen passes over the grid). ``source``,
    ``target`` (9, 3) lights with their columns in BGR order, ``floors`` (2, 3) their shading floors (BGR),
    ``bounds`` the ratio's colour bounds (2, 3) and the luminance's weights (3,) (BGR), ``constants`` the SH
    basis's (``_shading`` says which)."""
    h, w = normals.shape[:2]
    out = np.empty((h * w, 3), np.float32)
    _shading(
        np.ascontiguousarray(normals, dtype=np.float32).reshape(h * w, 3),
        constants,
        np.ascontiguousarray(source, dtype=np.float32),
        np.ascontiguousarray(target, dtype=np.float32),
        np.ascontiguousarray(floors, dtype=np.float32),
        np.ascontiguousarray(bounds[0], dtype=np.float32),
        np.ascontiguousarray(bounds[1], dtype=np.float32),
        ratio,
        float(max_gain),
        out,
    )
    return out.reshape(h, w, 3)


def relight_masked(
    out: np.ndarray,
    field: np.ndarray,
    mask: np.ndarray,
    box: tuple[int, int, int, int],
    albedo: np.ndarray | None,
    tables: tuple[np.ndarray, np.ndarray, int],
) -> np.ndarray:
    """``relight_face``'s per-pixel work for a binary mask, in place: ``out`` (uint8 BGR, C-contiguous: a copy of
    the image) inside ``box`` = (y0, y1, x0, x1) where ``mask`` (bool, the image's size) is set becomes the linear
    light (``albedo`` float32, else ``out``'s own) times the shading ``field`` (float32 (gh, gw, 3) BGR, scaled to
    the image's size as ``cv2.resize`` scales it) encoded to sRGB. ``tables``: uint8 to linear (256,), uint16 to
    sRGB uint8 (65536,), and how many uint16 steps make 1.0 of linear light (``engines.light.relight``'s)."""
    to_linear, to_srgb, lut_size = tables
    _relight(
        out,
        _NO_ALBEDO if albedo is None else np.ascontiguousarray(albedo, dtype=np.float32),
        albedo is not None,
        np.ascontiguousarray(mask),
        np.ascontiguousarray(field, dtype=np.float32),
        box,
        to_linear,
        to_srgb,
        float(lut_size),
    )
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _near_median(
    luma: np.ndarray, skin: np.ndarray, factor: float
) -> tuple[np.float32, np.float32]:  # pragma: no cover - compiled
    """The bounds ``engines.compose.seam._near_median`` compares with: the float32 median of ``luma`` over
    ``skin`` (``np.median``: the mean of the two middle values, in float32) divided and times ``factor``, rounded
    to float32 as numpy compares a float32 array with a Python float."""
    n = int(skin.sum())
    half = n // 2
    values = np.partition(luma.ravel()[skin.ravel()], half)  # values[half] the upper middle, the lower half below
    # An odd count's middle value, or the float32 mean of the two middle values.
    median = values[half] if n % 2 else np.float32(values[:half].max() + values[half]) / np.float32(2.0)
    m = np.float64(median)
    return np.float32(m / factor), np.float32(m * factor)


@njit(cache=True, fastmath=False, nogil=True)
def _linear_pair(
    face: np.ndarray, actor: np.ndarray, labels: np.ndarray, skin_label: int, to_linear: np.ndarray, luma: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``face`` and ``actor`` (h, w, 3) uint8 BGR to linear light through ``to_linear`` (256 float32), their
    luminances (``luma``: BGR weights) and where ``labels == skin_label``: the seam's and the relief's samples."""
    h, w = labels.shape
    face_lin = np.empty((h, w, 3), np.float32)
    actor_lin = np.empty((h, w, 3), np.float32)
    face_l = np.empty((h, w), np.float32)
    actor_l = np.empty((h, w), np.float32)
    skin = np.empty((h, w), np.bool_)
    for i in range(h):
        for j in range(w):
            sf = np.float32(0.0)
            sa = np.float32(0.0)
            for c in range(3):
                f = to_linear[face[i, j, c]]
                a = to_linear[actor[i, j, c]]
                face_lin[i, j, c] = f
                actor_lin[i, j, c] = a
                sf += f * luma[c]
                sa += a * luma[c]
            face_l[i, j] = sf
            actor_l[i, j] = sa
            skin[i, j] = labels[i, j] == skin_label
    return face_lin, actor_lin, face_l, actor_l, skin


@njit(cache=True, fastmath=False, nogil=True)
def seam_weights(
    face: np.ndarray,
    actor: np.ndarray,
    labels: np.ndarray,
    skin_label: int,
    to_linear: np.ndarray,
    luma: np.ndarray,
    skin_range: float,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``engines.compose.seam.seam_field``'s samples at half the geometry resolution, one call: ``face`` and
    ``actor`` (h, w, 3) uint8 BGR to linear light, the pixels that are skin (``labels == skin_label``) on both
    sides within ``skin_range`` of their side's median skin luminance (``luma``: BGR weights), and the blurs'
    inputs. Returns (how many such pixels, their weight (h, w) 0/1, the face's and the actor's linear light
    times it (h, w, 3)), float32."""
    h, w = labels.shape
    lin_face, lin_actor, luma_face, luma_actor, skin = _linear_pair(face, actor, labels, skin_label, to_linear, luma)
    face_lo, face_hi = _near_median(luma_face, skin, skin_range)
    actor_lo, actor_hi = _near_median(luma_actor, skin, skin_range)
    weight = np.zeros((h, w), np.float32)
    count = 0
    for i in range(h):
        for j in range(w):
            if not skin[i, j]:
                lin_face[i, j] = 0.0
                lin_actor[i, j] = 0.0
                continue
            lf, la = luma_face[i, j], luma_actor[i, j]
            if face_lo < lf < face_hi and actor_lo < la < actor_hi:
                weight[i, j] = 1.0
                count += 1
            else:
                lin_face[i, j] = 0.0
                lin_actor[i, j] = 0.0
    return count, weight, lin_face, lin_actor


@njit(cache=True, fastmath=False, nogil=True)
def seam_gains(
    blurred_w: np.ndarray,
    face_mean: np.ndarray,
    actor_mean: np.ndarray,
    inside: np.ndarray,
    feather: np.ndarray,
    labels: np.ndarray,
    unit: float,
    reach: float,
    max_ratio: float,
) -> np.ndarray:  # pragma: no cover - compiled
    """``seam_field``'s gains from its blurs and its distance inside the outline, one pass (h, w, 3) float32: the
    ratio of the actor's to the face's blurred skin (within ``max_ratio``) to the power of how sure it is (the
    blurred weight, 5% to 20%) and of the fade from the outline (``inside`` over the ramp's width
    ``(feather + reach) x unit``, a smoothstep; none outside the face: ``labels`` < 0). The same float32
    expressions as numpy's passes."""
    h, w = labels.shape
    out = np.empty((h, w, 3), np.float32)
    zero, one = np.float32(0.0), np.float32(1.0)
    lo, hi = np.float32(0.05), np.float32(0.15)
    low_ratio, high_ratio = np.float32(1.0 / max_ratio), np.float32(max_ratio)
    floor, width_floor = np.float32(1e-4), np.float32(1e-3)
    reach32, unit32 = np.float32(reach), np.float32(unit)
    for i in range(h):
        for j in range(w):
            known = min(max((blurred_w[i, j] - lo) / hi, zero), one)
            t = inside[i, j] / max((feather[i, j] + reach32) * unit32, width_floor)
            t = min(max(t, zero), one)
            fade = (one - t * t * (np.float32(3.0) - np.float32(2.0) * t)) * (one if labels[i, j] >= 0 else zero)
            for c in range(3):
                if known == zero or fade == zero:  # the gain to the power 0: exactly 1, as numpy makes it
                    out[i, j, c] = one
                    continue
                ratio = actor_mean[i, j, c] / max(face_mean[i, j, c], floor)
                ratio = min(max(ratio, low_ratio), high_ratio)
                out[i, j, c] = np.exp(np.log(ratio) * known * fade)
    return out


@njit(cache=True, fastmath=False, nogil=True)
def relief_weights(
    face: np.ndarray,
    actor: np.ndarray,
    labels: np.ndarray,
    zone: np.ndarray,
    skin_label: int,
    to_linear: np.ndarray,
    luma: np.ndarray,
    skin_range: float,
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """``engines.compose.relief.relief_field``'s samples, one call: ``face`` and ``actor`` (h, w, 3) uint8 BGR at
    geometry resolution to linear light and luminance (``luma``: BGR weights), the reference skin around the zones
    (``labels == skin_label``, ``zone`` under 0.05, within ``skin_range`` of each side's median skin luminance) and
    the blurs' inputs. Returns (how many reference pixels, the face's linear light, the actor's, the two
    luminances (h, w), the face's linear light times the reference's weight with the weight as a fourth channel
    (h, w, 4), the actor's linear light times the weight (h, w, 3)), float32."""
    h, w = labels.shape
    face_lin, actor_lin, face_l, actor_l, skin = _linear_pair(face, actor, labels, skin_label, to_linear, luma)
    face_lo, face_hi = _near_median(face_l, skin, skin_range)
    actor_lo, actor_hi = _near_median(actor_l, skin, skin_range)
    face_w = np.zeros((h, w, 4), np.float32)
    actor_w = np.zeros((h, w, 3), np.float32)
    count = 0
    edge = np.float32(0.05)
    for i in range(h):
        for j in range(w):
            if not skin[i, j] or not zone[i, j] < edge:
                continue
            lf, la = face_l[i, j], actor_l[i, j]
            if face_lo < lf < face_hi and actor_lo < la < actor_hi:
                count += 1
                for c in range(3):
                    face_w[i, j, c] = face_lin[i, j, c]
                    actor_w[i, j, c] = actor_lin[i, j, c]
                face_w[i, j, 3] = 1.0
    return count, face_lin, actor_lin, face_l, actor_l, face_w, actor_w


@njit(cache=True, fastmath=False, nogil=True)
def relief_gains(
    face_around: np.ndarray,
    actor_around: np.ndarray,
    face_lin: np.ndarray,
    actor_lin: np.ndarray,
    face_l: np.ndarray,
    actor_l: np.ndarray,
    zones: np.ndarray,
    luma: np.ndarray,
    known: tuple[float, float],
    max_ratio: float,
    shares: tuple[float, float, float, float],
) -> np.ndarray:  # pragma: no cover - compiled
    """``relief_field``'s gains from its blurs, one pass (h, w, 3) float32: each image's level around (the blurred
    linear light over the blurred weight, ``face_around``'s fourth channel), the actor's relative brightness over
    the face's (within ``max_ratio``) taken by the zone's weight (``zones`` (h, w, 2 or 3): the brightness's, the
    colour's and, when given, each pixel's share of a darkening) times how well the level around is known
    (``known``: from, ramp), a brightening by ``shares[0]`` (lift), a darkening by ``shares[1]`` (deepen; by the
    third channel of ``zones`` where it has one: the eye sockets' own share), each channel's departure from the
    brightness by the colour's weight times the share of the brightness's way taken (where the actor is darker: from
    lift down to deepen over ``shares[3]``, one over the log of ``colour_dark``; ``relief.colour_share``), and the
    face's own relative brightness, as that left it, brought up to ``shares[2]`` (the log of ``shadow_floor``; > 0:
    none) by the zone's weight; a darkening takes the face no lower than its own skin around. The same float32
    expressions as numpy's passes (``luma``: BGR weights of the luminance)."""
    h, w = face_l.shape
    out = np.empty((h, w, 3), np.float32)
    zero, one, floor = np.float32(0.0), np.float32(1.0), np.float32(1e-4)
    lo, hi = np.float32(1.0 / max_ratio), np.float32(max_ratio)
    known_from, known_ramp = np.float32(known[0]), np.float32(known[1])
    lift, deepen = np.float32(shares[0]), np.float32(shares[1])
    log_floor, inv_dark = np.float32(shares[2]), np.float32(shares[3])
    tiny = np.float32(1e-6)
    per_pixel = zones.shape[2] > 2  # a third channel: each pixel's share of a darkening (``shares[1]`` otherwise)
    face_level = np.empty(3, np.float32)
    actor_level = np.empty(3, np.float32)
    for i in range(h):
        for j in range(w):
            reach_zone, colour_zone = zones[i, j, 0], zones[i, j, 1]
            if reach_zone == zero and colour_zone == zero:  # exp(0): exactly numpy's 1
                out[i, j, 0], out[i, j, 1], out[i, j, 2] = one, one, one
                continue
            weight = max(face_around[i, j, 3], floor)
            face_sum = np.float32(0.0)
            actor_sum = np.float32(0.0)
            for c in range(3):
                face_level[c] = face_around[i, j, c] / weight
                actor_level[c] = actor_around[i, j, c] / weight
                face_sum += face_level[c] * luma[c]
                actor_sum += actor_level[c] * luma[c]
            sure = min(max((face_around[i, j, 3] - known_from) / known_ramp, zero), one)
            face_rel = face_l[i, j] / max(face_sum, floor)
            luma_ratio = (actor_l[i, j] / max(actor_sum, floor)) / max(face_rel, floor)
            log_luma = np.log(min(max(luma_ratio, lo), hi))
            dark = zones[i, j, 2] if per_pixel else deepen
            share = lift if log_luma > zero else dark
            # a darkening takes the face no lower than its own skin around (``relief_field``)
            taken = max(share * log_luma, -max(np.log(max(face_rel, floor)), zero))
            if log_luma > zero:
                follow = taken / max(log_luma, tiny)
            else:
                follow = dark + (lift - dark) * min(max(one + log_luma * inv_dark, zero), one)
            reach, colour_reach = reach_zone * sure, colour_zone * sure * follow
            raise_to = zero
            if log_floor <= zero:  # the face's own shadow, as the exchange left it, brought up to the floor
                raise_to = reach * max(log_floor - (np.log(max(face_rel, floor)) + reach * taken), zero)
            for c in range(3):
                actor_rel = actor_lin[i, j, c] / max(actor_level[c], floor)
                face_rel_c = face_lin[i, j, c] / max(face_level[c], floor)
                ratio = min(max(actor_rel / max(face_rel_c, floor), lo), hi)
                log_gain = reach * taken + colour_reach * (np.log(ratio) - log_luma)
                if log_floor <= zero:
                    log_gain = log_gain + raise_to
                out[i, j, c] = np.exp(log_gain)
    return out


@njit(cache=True, fastmath=False, nogil=True)
def _percentile(values: np.ndarray, q: float) -> float:  # pragma: no cover - compiled
    """``np.percentile(values, q)`` of sorted ``values`` (its default, linear interpolation between neighbours)."""
    position = q / 100.0 * (values.shape[0] - 1)
    below = int(math.floor(position))
    above = min(below + 1, values.shape[0] - 1)
    fraction = position - below
    low, high = np.float64(values[below]), np.float64(values[above])
    return low + (high - low) * fraction


@njit(cache=True, fastmath=False, nogil=True)
def iris_shift(
    lab: np.ndarray,
    depth: np.ndarray,
    inset: float,
    corners: np.ndarray,
    colour: tuple[float, float, float, bool],
    strength: float,
    limits: tuple[float, float, float, float, float, float, float, float, float, float, float, float],
) -> np.ndarray:  # pragma: no cover - compiled
    """``engines.compose.iris.tint_irises``' arithmetic for one eye opening, from the distance transform of its
    polygon (``depth``) to the recoloured L*a*b* (``lab``, float32, edited in place): the ramp in from the lids, the
    iris's weights (``_iris_weights``), the ring's and the white's medians, the lightness gain and the shift of
    each pixel by its share. Returns the share (float32 per pixel; all zero: nothing to change — no iris found).
    ``colour``: the identity's iris (a*, b* over its white, L* ratio, whether it has a colour); ``limits``:
    ``engines.compose.iris``'s constants (min range, iris lo/hi, radius, tone, disc in/out, pupil in/out,
    min pixels, the L* ratio's limits)."""
    min_range, iris_lo, iris_hi, radius_share, tone_share, disc_in, disc_out, pupil_in, pupil_out, min_pixels = (
        limits[0],
        limits[1],
        limits[2],
        limits[3],
        limits[4],
        limits[5],
        limits[6],
        limits[7],
        limits[8],
        limits[9],
    )
    h, w = depth.shape
    share = np.zeros((h, w), np.float32)
    ramp = np.empty((h, w), np.float32)
    count = 0
    for y in range(h):
        for x in range(w):
            v = min(max((np.float64(depth[y, x]) - inset) / inset, 0.0), 1.0)
            ramp[y, x] = v
            if v > 0.0:
                count += 1
    if count < 4 * min_pixels:
        return share
    values = np.empty(count, np.float32)
    k = 0
    for y in range(h):
        for x in range(w):
            if ramp[y, x] > 0.0:
                values[k] = lab[y, x, 0]
                k += 1
    values.sort()
    dark, white = _percentile(values, 5.0), _percentile(values, 90.0)
    span = white - dark
    if span < min_range:
        return share
    lo, hi = dark + iris_lo * span, dark + iris_hi * span
    total, sum_y, sum_x = 0.0, 0.0, 0.0
    for y in range(h):
        for x in range(w):
            if ramp[y, x] > 0.0:
                d = min(max((hi - lab[y, x, 0]) / (hi - lo), 0.0), 1.0)
                total += d
                sum_y += d * y
                sum_x += d * x
    if total < min_pixels:
        return share
    cy, cx = sum_y / total, sum_x / total
    radius = radius_share * math.hypot(corners[1, 0] - corners[0, 0], corners[1, 1] - corners[0, 1])
    if radius < 1.5:
        return share
    ring_l = np.empty(count, np.float32)
    ring_a = np.empty(count, np.float32)
    ring_b = np.empty(count, np.float32)
    rings = 0
    for y in range(h):
        for x in range(w):
            if ramp[y, x] <= 0.0:
                continue
            lightness = lab[y, x, 0]
            r = math.hypot((y - cy) / radius, (x - cx) / radius)
            disc = min(max((disc_out - r) / (disc_out - disc_in), 0.0), 1.0)
            pupil = min(max((r - pupil_in) / (pupil_out - pupil_in), 0.0), 1.0)
            tone = min(max((white - lightness) / (tone_share * span), 0.0), 1.0)
            weight = tone * tone * (3.0 - 2.0 * tone) * disc
            if weight > 0.5 and pupil > 0.99:
                ring_l[rings], ring_a[rings], ring_b[rings] = lightness, lab[y, x, 1], lab[y, x, 2]
                rings += 1
            share[y, x] = weight * pupil * ramp[y, x] * min(strength, 1.0)
    if rings < min_pixels:
        share[:, :] = 0.0
        return share
    ring_lightness = float(np.median(ring_l[:rings]))
    gain = colour[2] / max(ring_lightness / max(white, 1e-3), 1e-3)
    gain = min(max(gain, limits[10]), limits[11])
    shift_a = shift_b = 0.0
    if colour[3]:
        whites = 0
        for y in range(h):
            for x in range(w):
                if ramp[y, x] > 0.0 and lab[y, x, 0] >= white - 0.2 * span:
                    ring_l[whites], values[whites] = lab[y, x, 1], lab[y, x, 2]
                    whites += 1
        white_a, white_b = float(np.median(ring_l[:whites])), float(np.median(values[:whites]))
        shift_a = white_a + colour[0] - float(np.median(ring_a[:rings]))
        shift_b = white_b + colour[1] - float(np.median(ring_b[:rings]))
    for y in range(h):
        for x in range(w):
            part = np.float64(share[y, x])
            if part > 0.0:
                lab[y, x, 1] += part * shift_a
                lab[y, x, 2] += part * shift_b
                lab[y, x, 0] = lab[y, x, 0] * (1.0 + part * (gain - 1.0))
    return share


@njit(cache=True, fastmath=False, nogil=True)
def iris_write(box: np.ndarray, bgr: np.ndarray, share: np.ndarray) -> None:  # pragma: no cover - compiled
    """``box`` (uint8 BGR, edited in place) takes ``bgr`` (float32 0..1) x 255, rounded half to even and saturated,
    where ``share`` > 0 (``tint_irises``' last step)."""
    h, w = share.shape
    for y in range(h):
        for x in range(w):
            if share[y, x] > 0.0:
                for c in range(3):
                    v = np.float32(bgr[y, x, c] * np.float32(255.0))
                    box[y, x, c] = np.uint8(min(max(np.rint(v), 0.0), 255.0))


def warm_up() -> float:
    """Compile every kernel for the argument types the stages pass (or load them from the disk cache), on a few
    pixels; returns the seconds it took. ``make setup`` runs it once, so neither the suite nor a server's first
    face pays the compilation (BENCHMARKS.md, issue 20: seconds of CPU cold, a fraction of one cached)."""
    start = time.perf_counter()
    frame = np.zeros((6, 6, 3), np.uint8)
    face = np.full((4, 4, 3), 200, np.uint8)
    alpha = np.ones((4, 4), np.float32)
    for gain, has_gain in ((_NO_GAIN, False), (np.ones((2, 2, 3), np.float32), True)):  # with and without gains
        paste_face(frame, (1, 1), (4, 4), (0, 4, 0, 4), face, None if not has_gain else gain, alpha)
    mask = np.ones((4, 4), bool)
    field = np.ones((2, 2, 3), np.float32)
    to_linear, to_srgb = np.linspace(0.0, 1.0, 256, dtype=np.float32), np.zeros(65536, np.uint8)
    for table in (to_linear, to_srgb):  # read-only, as ``engines.light.relight``'s (another type to numba)
        table.setflags(write=False)
    tables = (to_linear, to_srgb, 16384)
    constants, light = np.ones(5, np.float32), np.ones((9, 3), np.float32)
    constants.setflags(write=False)  # read-only, as ``engines.light.relight``'s
    for ratio in (False, True):
        bounds = (np.ones((2, 3), np.float32), np.ones(3, np.float32))
        shading_field(field, constants, light, light, np.ones((2, 3), np.float32), bounds, ratio, 4.0)
    for albedo in (None, np.ones((4, 4, 3), np.float32)):
        relight_masked(face.copy(), field, mask, (0, 4, 0, 4), albedo, tables)
    labels = np.zeros((4, 4), np.int8)
    luma = np.ones(3, np.float32)
    luma.setflags(write=False)  # read-only, as ``engines.compose.seam``'s
    _, weight, face_w, actor_w = seam_weights(face, face, labels, 0, to_linear, luma, 1.6)
    seam_gains(weight, face_w, actor_w, weight, weight, labels, 1.0, 0.1, 2.0)
    zones = np.zeros((4, 4, 2), np.float32)
    count, face_lin, actor_lin, face_l, actor_l, face_w4, actor_w3 = relief_weights(
        face, face, labels, zones[..., 0].copy(), 0, to_linear, luma, 1.8
    )
    relief_gains(
        face_w4, actor_w3, face_lin, actor_lin, face_l, actor_l, zones, luma, (0.002, 0.01), 4.0, (0.6, 0.0, -0.9, 2.5)
    )
    zone_texture = np.zeros((8, 8, 2), np.float32)
    zone_texture.setflags(write=False)  # read-only, as ``engines.compose.relief._zone_texture``'s
    zone_weights(np.zeros((4, 4, 2), np.float32), zone_texture, labels, 8)
    to_linear64 = np.linspace(0.0, 1.0, 256)  # float64, read-only: ``engines.compose.blend``'s
    to_linear64.setflags(write=False)
    skin_means(face, face, mask, 4000, to_linear64)
    fine = np.zeros((8, 8), np.float32)
    cut_opening(alpha.copy(), fine, np.zeros((8, 8), np.uint8), np.ones((2, 2), np.uint8), (0, 4, 0, 4), -1.0, 2.0)
    # The iris's kernels: their constants are ``engines.compose.iris.IRIS_LIMITS``, twelve floats; any twelve compile
    # the same signature (importing them here would make an import circle with the module that calls these kernels).
    limits = (1.0,) * 12
    lab, depth = np.zeros((6, 6, 3), np.float32), np.zeros((6, 6), np.float32)
    corners = np.zeros((2, 2), np.float32)
    for colour in ((0.0, 0.0, 1.0, True), (0.0, 0.0, 1.0, False)):
        iris_shift(lab, depth, 0.5, corners, colour, 1.0, limits)
    iris_write(frame[:2, :2], lab, depth)  # the box a view of the frame, the rest whole arrays
    for seen in (None, depth):
        outline_alpha(depth, 1.5, depth, 2.0, seen, (0.1, 0.9))
    return time.perf_counter() - start
