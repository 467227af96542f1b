"""The moving watermark's per-pixel passes fused into compiled kernels (numba; issue 24's ``hush``, issue 20's budget).

``engines.compose.watermark`` draws the moving marks at half resolution and adds them to the frame. In OpenCV that
was a bilinear resize of the offset to the frame (float32), two thresholds, two conversions to uint8, two 3-channel
merges and a saturating add and subtract: nine full-resolution passes and ~13 MB of fresh arrays a 720p frame, whose
first touch (the kernel zeroing pages: ~3,300 page faults a frame) cost as much as the arithmetic on the AMD EPYC VM.
``add_upsampled`` is one pass writing only the output frame.

The kernels follow OpenCV's arithmetic (the bilinear taps of ``cv2.resize``, low + w (high - low) in a fused
multiply-add as OpenCV 5 does it for float data, across then down; round half to even as ``cvRound``), so they draw
what the OpenCV passes drew, to the bit on the bench's frames (``tests/engines/compose/test_watermark_fused.py``; an
OpenCV without fused multiply-adds may differ from it by a level in a pixel where a value lies on a half level).
Compiled once per machine (``cache=True``), IEEE arithmetic (``fastmath`` off), the GIL released while they run.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, fastmath=False, nogil=True)
def _taps(dst: int, src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover
    """``cv2.resize``'s bilinear taps (INTER_LINEAR, float data) from ``src`` samples to ``dst``: each output
    sample's two source indices and their weights (pixel centres aligned, clamped at the edges as OpenCV clamps)."""
    lo = np.empty(dst, np.int64)
    hi = np.empty(dst, np.int64)
    w0 = np.empty(dst, np.float32)
    w1 = np.empty(dst, np.float32)
    scale = src / dst
    for i in range(dst):
        f = np.float32((i + 0.5) * scale - 0.5)
        j = int(math.floor(f))
        f = np.float32(f - j)
        if j < 0:
            j, f = 0, np.float32(0.0)
        if j >= src - 1:
            j, f = src - 1, np.float32(0.0)
        lo[i], hi[i] = j, min(j + 1, src - 1)
        w0[i], w1[i] = np.float32(1.0) - f, f
    return lo, hi, w0, w1


@njit(cache=True, fastmath=False, nogil=True)
def _across(row: np.ndarray, lo: np.ndarray, hi: np.ndarray, w1: np.ndarray, out: np.ndarray) -> None:
    """One source row interpolated at the columns' taps into ``out`` (float32): low + w1 (high - low) in one fused
    multiply-add, as OpenCV 5's resize does it for float data (``_lerp``)."""
    for x in range(lo.shape[0]):  # pragma: no cover - compiled
        low = row[lo[x]]
        out[x] = _lerp(low, row[hi[x]], w1[x])


@njit(cache=True, fastmath=False, nogil=True)
def _lerp(low: np.float32, high: np.float32, w: np.float32) -> np.float32:  # pragma: no cover - compiled
    """low + w (high - low) rounded once to float32 (a fused multiply-add: the float32 product is exact in float64,
    the float64 sum rounded to float32 is the fused one but in the rarest double-rounding case)."""
    return np.float32(np.float64(w) * np.float64(high - low) + np.float64(low))


@njit(cache=True, fastmath=False, nogil=True)
def _levels(
    a: np.ndarray, b: np.ndarray, b1: np.float32, above: np.float32, below: np.float32, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """One output row's whole levels (int32): two interpolated source rows blended (the second's weight ``b1``,
    ``_lerp``), rounded half to even, kept where above ``above`` or at most ``below``, else 0. Branch-free."""
    zero, top, bottom = np.float32(0.0), np.float32(255.0), np.float32(-255.0)
    for x in range(out.shape[0]):
        v = _lerp(a[x], b[x], b1)
        r = min(max(np.rint(v), bottom), top)
        out[x] = np.int32(r if (v > above) | (v <= below) else zero)


@njit(cache=True, fastmath=False, nogil=True)
def add_upsampled(
    image: np.ndarray, offset: np.ndarray, above: float, below: float, channels: int
) -> np.ndarray:  # pragma: no cover - compiled
    """A copy of ``image`` (H x W x 3 uint8) with ``offset`` (any size, float32) scaled bilinearly to H x W
    (``cv2.resize``'s INTER_LINEAR), rounded half to even to whole levels and added, saturating, to the first
    ``channels`` channels (3: B, G and R alike, a luma mark; 1: blue only, the chroma carrier) where it is above
    ``above`` or at most ``below`` (elsewhere nothing is added): ``Watermarker._add_rounded`` of the resized offset."""
    h, w = image.shape[0], image.shape[1]
    out = np.empty_like(image)
    src_rows, dst_rows = image.reshape(h, w * 3), out.reshape(h, w * 3)
    ylo, yhi, _, yw1 = _taps(h, offset.shape[0])
    xlo, xhi, _, xw1 = _taps(w, offset.shape[1])
    cache = np.empty((2, w), np.float32)
    keys = np.full(2, -1, np.int64)
    level = np.empty(w, np.int32)
    spread = np.empty(w * 3, np.int32)
    hi_level, lo_level = np.float32(above), np.float32(below)
    luma = np.int32(1 if channels == 3 else 0)
    for y in range(h):
        for r in (ylo[y], yhi[y]):
            if keys[0] != r and keys[1] != r:
                slot = 0 if keys[0] != ylo[y] and keys[0] != yhi[y] else 1
                _across(offset[r], xlo, xhi, xw1, cache[slot])
                keys[slot] = r
        a, b = (cache[0], cache[1]) if keys[0] == ylo[y] else (cache[1], cache[0])
        _levels(a, b, yw1[y], hi_level, lo_level, level)
        src, dst = src_rows[y], dst_rows[y]
        for x in range(w):  # the level on the carrier's channels, none on the others
            spread[3 * x] = level[x]
            spread[3 * x + 1] = level[x] * luma
            spread[3 * x + 2] = level[x] * luma
        for k in range(w * 3):
            dst[k] = np.uint8(min(max(np.int32(src[k]) + spread[k], 0), 255))
    return out


@njit(cache=True, fastmath=False, nogil=True)
def face_energies(gain: np.ndarray, face: np.ndarray, fg: float, inv: float) -> tuple[float, float, float]:
    """The means over a frame's mask ``gain`` and faces' factor ``face`` (both H x W float32) that the hush mark's
    floor and faces' share are decided on, in one pass: of (gain x face)^2 (the mark drawn), of (gain x off)^2 (the
    picture off the faces) and of (gain x (1 - off))^2 (the faces), off = (face - ``fg``) x ``inv`` (1 off the faces,
    0 on them). Each product in float32 as the OpenCV passes made it, the sums in float64 (numpy's mean summed float32
    pairwise)."""
    fg32, inv32, one = np.float32(fg), np.float32(inv), np.float32(1.0)
    drawn = off_sum = on_sum = 0.0
    for y in range(gain.shape[0]):  # pragma: no cover - compiled
        g_row, f_row = gain[y], face[y]
        for x in range(gain.shape[1]):
            g, f = g_row[x], f_row[x]
            d = g * f
            off = (f - fg32) * inv32
            a = g * off
            b = g * (one - off)
            drawn += d * d
            off_sum += a * a
            on_sum += b * b
    n = max(gain.size, 1)
    return drawn / n, off_sum / n, on_sum / n


@njit(cache=True, fastmath=False, nogil=True)
def off_faces(
    gain: np.ndarray, face: np.ndarray, fg: float, inv: float, slope: float, share: float, top: float
) -> np.ndarray:  # pragma: no cover - compiled
    """min(gain x (off x ``slope`` + ``share``), ``top``), off = (face - ``fg``) x ``inv``: the hush mark's mask with
    the picture off the faces boosted (``slope`` = k - share) and the faces at ``share``, in float32 as the OpenCV
    passes (``_boosted_off_faces``)."""
    fg32, inv32, slope32, share32, top32 = (
        np.float32(fg),
        np.float32(inv),
        np.float32(slope),
        np.float32(share),
        np.float32(top),
    )
    out = np.empty_like(gain)
    for y in range(gain.shape[0]):
        g_row, f_row, o_row = gain[y], face[y], out[y]
        for x in range(gain.shape[1]):
            off = (f_row[x] - fg32) * inv32
            o_row[x] = min(g_row[x] * (off * slope32 + share32), top32)
    return out
