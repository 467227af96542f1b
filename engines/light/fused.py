"""The light measured on a face as compiled kernels (numba): the skin samples and the SH fit's sums in two loops
where numpy made ~45 calls.

At geometry resolution (128 px) a face gives at most 3000 samples, so ``engines.light.relight.skin_samples`` and
``estimate_sh`` spent their time in the setup of numpy's calls (the selection, the lookup to linear light, the
basis, the weighted Gram matrices twice, the residuals, two medians: ~0.65 ms of CPU a face at a 720p close-up,
BENCHMARKS.md, issue 20), not in arithmetic. Here:

- ``skin_system``: the samples ``skin_samples`` takes (inside the mask, facing the camera, a regular stride,
  neither clipped nor very dark), their linear RGB and SH basis, and the least-squares system's sums, one call;
- ``trimmed_system``: the fit's relative residuals, their median and MAD, and the sums again without the
  samples beyond the trim, one call.

The two 9 x 9 solves stay ``np.linalg.solve``'s (``engines.light.relight.estimate_skin_light``). The sums are
taken in a different order than numpy's matrix products, so the fit differs from ``estimate_sh``'s in the last
digits (tests/engines/light/test_fused_light.py: within 1e-9 relative on frames of three shared clips); the
numpy functions stay the reference and the torch twins follow them. Compiled once per machine into numba's disk
cache (``make setup`` runs ``warm_up``); imported on the first face measured.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

_SH = 9


@njit(cache=True, fastmath=False, nogil=True)
def _basis(x: float, y: float, z: float, c: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """``engines.light.sh.sh_basis`` of one unit normal, float64, in its order of operations (``c``: Y00, C1, C2,
    C20, C22)."""
    out[0] = c[0]
    out[1] = c[1] * y
    out[2] = c[1] * z
    out[3] = c[1] * x
    out[4] = c[2] * x * y
    out[5] = c[2] * y * z
    out[6] = c[3] * (3.0 * z * z - 1.0)
    out[7] = c[2] * x * z
    out[8] = c[4] * (x * x - y * y)


@njit(cache=True, fastmath=False, nogil=True)
def _sums(
    basis: np.ndarray, colours: np.ndarray, keep: np.ndarray, gram: np.ndarray, rhs: np.ndarray
) -> float:  # pragma: no cover - compiled
    """``gram`` (9, 9) and ``rhs`` (9, 3) of the rows ``keep`` (equal weights summing to one): ``estimate_sh``'s
    ``weighted.T @ basis`` and ``weighted.T @ y``; returns how many rows were kept."""
    gram[:] = 0.0
    rhs[:] = 0.0
    count = 0
    for r in range(basis.shape[0]):
        if not keep[r]:
            continue
        count += 1
        for i in range(_SH):
            bi = basis[r, i]
            for j in range(i, _SH):
                gram[i, j] += bi * basis[r, j]
            for c in range(3):
                rhs[i, c] += bi * colours[r, c]
    if count == 0:
        return 0.0
    inv = 1.0 / count
    for i in range(_SH):
        for j in range(i, _SH):
            gram[i, j] *= inv
            gram[j, i] = gram[i, j]
        for c in range(3):
            rhs[i, c] *= inv
    return float(count)


@njit(cache=True, fastmath=False, nogil=True)
def skin_system(
    image: np.ndarray,
    normals: np.ndarray,
    mask: np.ndarray,
    to_linear: np.ndarray,
    constants: np.ndarray,
    max_samples: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """``skin_samples(image, normals, mask, max_samples)`` and ``estimate_sh``'s first system over them.

    ``image`` (h, w, 3) uint8 BGR, ``normals`` (h, w, 3) float32 camera-frame unit normals, ``mask`` (h, w) bool
    (the skin), ``to_linear`` (256,) float32 sRGB code to linear light, ``constants`` (5,) float64 the SH basis'
    Y00, C1, C2, C20, C22. Returns the samples' (N, 9) SH basis and (N, 3) linear RGB, which of them count (finite
    normals), and the (9, 9) Gram matrix and (9, 3) right-hand side, each the mean over the counted samples."""
    h, w = mask.shape
    facing = np.float32(0.05)
    candidates = 0
    for i in range(h):
        for j in range(w):
            if mask[i, j] and normals[i, j, 2] > facing:
                candidates += 1
    stride = 1 if candidates <= max_samples else int(math.ceil(candidates / max_samples))
    taken = (candidates + stride - 1) // stride
    colours = np.empty((taken, 3), np.float64)
    basis = np.empty((taken, _SH), np.float64)
    lum = np.empty(taken, np.float64)
    bright = np.empty(taken, np.bool_)
    finite = np.empty(taken, np.bool_)
    rank = 0
    k = 0
    for i in range(h):
        for j in range(w):
            if not (mask[i, j] and normals[i, j, 2] > facing):
                continue
            if rank % stride == 0:
                b, g, r = image[i, j, 0], image[i, j, 1], image[i, j, 2]
                colours[k, 0] = to_linear[r]  # RGB
                colours[k, 1] = to_linear[g]
                colours[k, 2] = to_linear[b]
                lum[k] = colours[k, 0] * 0.2126 + colours[k, 1] * 0.7152 + colours[k, 2] * 0.0722
                bright[k] = max(max(b, g), r) >= 250
                x, y, z = np.float64(normals[i, j, 0]), np.float64(normals[i, j, 1]), np.float64(normals[i, j, 2])
                finite[k] = math.isfinite(x + y + z)
                _basis(x, y, z, constants, basis[k])
                k += 1
            rank += 1
    floor = 0.1 * np.median(lum) if taken else 0.0
    keep = np.empty(taken, np.bool_)
    n = 0
    for s in range(taken):
        keep[s] = (not bright[s]) and lum[s] > floor
        n += keep[s]
    out_basis = np.empty((n, _SH), np.float64)
    out_colours = np.empty((n, 3), np.float64)
    used = np.empty(n, np.bool_)
    k = 0
    for s in range(taken):
        if keep[s]:
            out_basis[k] = basis[s]
            out_colours[k] = colours[s]
            used[k] = finite[s]
            if not finite[s]:  # as ``estimate_sh``: no weight, and no NaN in the sums
                out_basis[k] = 0.0
                out_basis[k, 0] = constants[0]
                out_colours[k] = 0.0
            k += 1
    gram = np.empty((_SH, _SH), np.float64)
    rhs = np.empty((_SH, 3), np.float64)
    _sums(out_basis, out_colours, used, gram, rhs)
    return out_basis, out_colours, used, gram, rhs


@njit(cache=True, fastmath=False, nogil=True)
def _trimmed_system(
    basis: np.ndarray, colours: np.ndarray, used: np.ndarray, sh: np.ndarray, trim: float, min_kept: int
) -> tuple[bool, np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    n = basis.shape[0]
    dev = np.empty(n, np.float64)
    m = 0
    for r in range(n):
        total = 0.0
        for c in range(3):
            pred = 0.0
            for i in range(_SH):
                pred += basis[r, i] * sh[i, c]
            total += abs((colours[r, c] - pred) / max(abs(pred), 1e-4)) * (1.0 / 3.0)
        dev[r] = total
        m += used[r]
    gram = np.empty((_SH, _SH), np.float64)
    rhs = np.empty((_SH, 3), np.float64)
    if m <= min_kept:
        return False, gram, rhs
    values = np.empty(m, np.float64)
    k = 0
    for r in range(n):
        if used[r]:
            values[k] = dev[r]
            k += 1
    med = np.median(values)
    for r in range(m):
        values[r] = abs(values[r] - med)
    mad = np.median(values) * 1.4826
    limit = med + trim * max(mad, 1e-3)
    keep = np.empty(n, np.bool_)
    kept = 0
    for r in range(n):
        keep[r] = used[r] and dev[r] <= limit
        kept += keep[r]
    if kept < min_kept:
        return False, gram, rhs
    _sums(basis, colours, keep, gram, rhs)
    return True, gram, rhs


def trimmed_system(
    basis: np.ndarray, colours: np.ndarray, used: np.ndarray, sh: np.ndarray, trim: float, min_kept: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """``estimate_sh``'s second system: the samples whose mean relative residual under ``sh`` (9, 3) is within
    ``trim`` robust standard deviations (median + trim x MAD x 1.4826) of the median, their Gram matrix and
    right-hand side; None when no more than ``min_kept`` samples count, or fewer stay (no second pass)."""
    ok, gram, rhs = _trimmed_system(basis, colours, used, np.ascontiguousarray(sh, np.float64), float(trim), min_kept)
    return (gram, rhs) if ok else None


def warm_up() -> float:
    """Compile the kernels (or load them from the disk cache) on a few pixels; returns the seconds it took."""
    start = time.perf_counter()
    image = np.full((4, 4, 3), 120, np.uint8)
    normals = np.zeros((4, 4, 3), np.float32)
    normals[..., 2] = 1.0
    to_linear = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    to_linear.setflags(write=False)  # read-only, as ``engines.light.relight``'s table
    constants = np.ones(5, np.float64)
    constants.setflags(write=False)
    basis, colours, used, _, _ = skin_system(image, normals, np.ones((4, 4), bool), to_linear, constants, 3000)
    trimmed_system(basis, colours, used, np.ones((9, 3)), 2.5, 2)
    return time.perf_counter() - start
