"""Spherical-harmonics relighting of a face: measure the light on it, choose a target light, relight.

Per face and frame (see ``FaceRelighter``):

1. per-pixel normals from the tracked 3D mesh (``pixel_normals``, camera frame: x right, y up, z toward
   the camera — see ``engines.light.sh`` for every convention);
2. the light on the face, ``estimate_sh``: second-order SH shading (9 coefficients per colour channel)
   fitted by regularised least squares to the skin pixels in linear light, with one trimming pass that
   drops what the model cannot explain (eyes, brows, beard, glasses, specular highlights);
3. smoothed over time (``LightTracker``), so shading does not flicker with landmark noise;
4. the target light (``target_sh``): ``match`` (the measured light), ``sh``, ``direction`` or ``hdri``;
5. relit by the ratio of shadings, ``out = in * E_target(n) / E_source(n)`` (clamped), or
   ``albedo * E_target(n)`` when the caller has an albedo (a swapped-in identity texture).

Units. From one picture only albedo x light is observable, so ``estimate_sh`` without an albedo returns
the light times the face's mean albedo (the face's skin tone and the camera's exposure included). The
absolute targets (``sh``, ``direction``, ``hdri``) are expressed in the same units by ``target_sh``: they
are scaled per channel by the measured light's mean over a frontal face (``engines.light.sh.face_mean``),
so a white target whose face mean is 1 keeps the face's exposure and colour and changes only where the
light comes from; a coloured target tints the face relative to how it looks now. An identity texture
divided by its own photo's ``estimate_sh`` shading is an albedo relative to its mean (about 1), so
``albedo * E`` in those units gives the identity's skin pattern at the actor's exposure.

The per-pixel step has two equal implementations: ``relight_face`` (numpy with lookup tables, the CPU
per-frame path) and ``SHRelight`` (a torch module for CUDA and for ONNX/TensorRT export), which lives in
``engines.light.relight_torch`` so that this module, and everything the CPU path imports, loads without torch
(about 2.5 s of CPU per process: every server, every ``stageswap process``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from engines.errors import InputError
from engines.light.hdri import hdri_path
from engines.light.sh import (
    BASIS_CONSTANTS,
    BASIS_CONSTANTS64,
    SH_COUNT,
    constant_sh,
    directional_sh,
    face_mean,
    lambert,
    linear_to_srgb,
    mesh_to_camera,
    project_equirect,
    sh_basis,
    sh_from_flat,
    srgb_to_linear,
)
from engines.settings import RelightTarget

if TYPE_CHECKING:
    from engines.swap.raster import Raster, Window

DEFAULT_REG = 0.01
"""Ridge weight of ``estimate_sh`` relative to the data term (band 1 weighted 1, band 2 weighted 4).

A face shows only the front half of the sphere of normals, where 1, z and 3z^2-1 are nearly collinear;
the penalty keeps the unobservable combinations near zero (a flat, plausible light) instead of letting
them swing from frame to frame."""
_BAND_PENALTY = np.array([0.0, 1.0, 1.0, 1.0, 4.0, 4.0, 4.0, 4.0, 4.0])
FACE_BAND_PENALTY = (0.0, 1.0, 1.0, 1.0, 4.0, 400.0, 400.0, 400.0, 4.0)
"""The ridge's weights per SH function for the light on a tracked face (``RelightConfig.band_penalty``): yz, 3z^2-1
and xz kept near zero unless the face insists.

Most of a face faces the camera (z 0.7-1), so there those three are nearly lower bands again: 3z^2-1 a mix of 1
and z, xz nearly x, yz nearly y. The fit cannot tell them apart on a face, but the person around it can: the
neck, ears and hair the light is extrapolated to (``engines.light.person``) have normals with smaller z. Weighted
4 like the rest of band 2, a hard window light from camera left on s18 was split between x and xz; relit to a
light from above, the neck lost all of it and the face kept a third (side light -0.35 / +0.08, a gap of 0.44
against the bound 0.03 + 0.3 of ``benchmarks/eval_relight_real.py``); with 400, -0.37 / -0.12. The lower-order
explanation costs the synthetic ground truth (``benchmarks/eval_relight_synthetic.py``, lights that are
exactly order 2) a little: relit MSE 1.9% -> 2.7% of no relight on average, worst 7.6% -> 9.2% (bound 25%).
``estimate_sh``'s own default stays ``_BAND_PENALTY``: a photo's delighting (``engines.identity``) is not carried
past the face, and a wider spread of normals than a face's shows band 2 apart from the lower bands."""

MAX_GAIN = 4.0
"""Largest brightening the ratio relight applies to a pixel (clamp for normals the source light misses)."""
SHADING_FLOOR = 0.05
"""Shading is floored at this share of its light's face mean (``face_mean``): a normal the light misses, or
where the order-2 fit rings below zero, keeps a little light instead of dividing by ~0 or going black;
both sides of the ratio are floored alike, so relighting to the measured light changes nothing."""

COLOUR_SPREAD = 1.3
"""How far each channel of a shading ratio ``E_target / E_source`` may stray from its luminance's, relative to the
two lights' overall change of colour (their face means): a factor. The light's colour varies with direction, but
each channel's shading is fitted on its own, and where a face shows few normals (under the nose, facing down) the
channels extrapolate apart: on d13 green and blue fell to their floor there while red did not, and a key from the
right turned the skin under the nose blue-green (ratios B, G, R 4.9, 4.9, 0.8)."""
_LUMA_BGR = np.array([0.0722, 0.7152, 0.2126], dtype=np.float32)

SHADING_GRID_PX = 96
"""``relight_face`` evaluates the (smooth) shading on a grid this many pixels on its long side, then upsamples."""

HDRI_MAX_BYTES = 512 * 1024 * 1024
_HDRI_PROJECT_SIZE = (128, 64)  # (width, height) the image is reduced to before projection

# sRGB <-> linear lookup tables for the per-frame numpy path (immutable module constants).
_U8_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_U8_TO_LINEAR.setflags(write=False)
_LINEAR_LUT_SIZE = 16384
_LINEAR_TO_U8 = np.round(linear_to_srgb(np.arange(_LINEAR_LUT_SIZE + 1) / _LINEAR_LUT_SIZE) * 255.0).astype(np.uint8)
_LINEAR_TO_U8.setflags(write=False)
_U16_TO_U8 = np.concatenate([_LINEAR_TO_U8, np.full(65535 - _LINEAR_LUT_SIZE, 255, np.uint8)])
"""``_LINEAR_TO_U8`` indexed by any uint16 (everything past 1.0 is white): the encode needs no clamp pass."""
_U16_TO_U8.setflags(write=False)


# --------------------------------------------------------------------------------------------- estimation


def estimate_sh(
    colours_linear: np.ndarray,
    normals: np.ndarray,
    albedo: np.ndarray | None = None,
    reg: float = DEFAULT_REG,
    weights: np.ndarray | None = None,
    trim: float | None = 2.5,
    penalty: np.ndarray | tuple[float, ...] | None = None,
) -> np.ndarray:
    """Fit the shading SH (9, C) that best explains ``colours ~= albedo * (sh_basis(normals) @ sh)``.

    ``colours_linear``: (N, C) linear-light samples; ``normals``: (N, 3) unit camera-frame normals;
    ``albedo``: (N, C) or None (then the result includes the mean albedo: see the module docstring).
    Regularised least squares per channel, solved once, then once more without the samples whose
    relative residual is beyond ``trim`` robust standard deviations (None: no trimming pass); ``penalty``: the
    ridge's weight per SH function (9,), relative to ``reg`` (None: ``_BAND_PENALTY``). Columns of
    the result follow the columns of ``colours_linear`` (pass RGB to get the RGB coefficients the rest of
    stageswap uses).
    """
    y = np.asarray(colours_linear, dtype=np.float64)
    n = np.asarray(normals, dtype=np.float64)
    if y.ndim != 2 or n.shape != (y.shape[0], 3):
        raise ValueError(f"expected (N, C) colours and (N, 3) normals, got {y.shape} and {n.shape}")
    if y.shape[0] < SH_COUNT:
        raise ValueError(f"need at least {SH_COUNT} samples to estimate the light, got {y.shape[0]}")
    a = None if albedo is None else np.asarray(albedo, dtype=np.float64)
    if a is not None and a.shape != y.shape:
        raise ValueError(f"albedo shape {a.shape} does not match colours {y.shape}")
    w = np.ones(y.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    finite = _finite_rows(y) & _finite_rows(n)
    if a is not None:
        finite = finite & _finite_rows(a)
    w = np.where(finite, w, 0.0)
    y = np.where(finite[:, None], y, 0.0)
    basis = sh_basis(np.where(finite[:, None], n, 0.0))
    band = _BAND_PENALTY if penalty is None else np.asarray(penalty, dtype=np.float64)
    if band.shape != (SH_COUNT,):
        raise ValueError(f"expected {SH_COUNT} penalty weights, got shape {band.shape}")
    sh = _solve(basis, y, a, w, reg, band)
    if trim is not None:
        pred = _predict(basis, sh, a)
        # Relative residual: a dark pixel off by as much as a bright one is a bigger outlier.
        rel = (y - pred) / np.maximum(np.abs(pred), 1e-4)
        dev = np.abs(rel) @ np.full(rel.shape[1], 1.0 / rel.shape[1])  # the mean per sample (a product: fast)
        used = w > 0
        if used.sum() > 2 * SH_COUNT:
            med = float(np.median(dev[used]))
            mad = float(np.median(np.abs(dev[used] - med))) * 1.4826
            keep = dev <= med + trim * max(mad, 1e-3)
            if keep[used].sum() >= SH_COUNT * 2:
                sh = _solve(basis, y, a, np.where(keep, w, 0.0), reg, band)
    return sh


def _finite_rows(values: np.ndarray) -> np.ndarray:
    """(N,) bool: rows of (N, C) ``values`` with every entry finite (a sum of the row is finite exactly then,
    but for sums that overflow; numpy's reduction over a short last axis is ten times slower)."""
    return np.asarray(np.isfinite(values @ np.ones(values.shape[1])))


def _predict(basis: np.ndarray, sh: np.ndarray, albedo: np.ndarray | None) -> np.ndarray:
    e = basis @ sh
    return e if albedo is None else e * albedo


def _solve(
    basis: np.ndarray, y: np.ndarray, albedo: np.ndarray | None, w: np.ndarray, reg: float, band: np.ndarray
) -> np.ndarray:
    total = float(w.sum())
    if total <= 0:
        raise ValueError("no valid samples to estimate the light from")
    penalty = reg * np.diag(band) + 1e-9 * np.eye(SH_COUNT)
    if albedo is None:  # one design matrix for every channel: one solve
        weighted = basis * (w / total)[:, None]
        gram = weighted.T @ basis
        # Penalty relative to the constant term's energy, so `reg` does not depend on exposure or albedo.
        return np.linalg.solve(gram + penalty * max(float(gram[0, 0]), 1e-12), weighted.T @ y)
    out = np.empty((SH_COUNT, y.shape[1]))
    for c in range(y.shape[1]):
        design = basis * albedo[:, c : c + 1]
        weighted = design * (w / total)[:, None]
        gram = weighted.T @ design
        out[:, c] = np.linalg.solve(gram + penalty * max(float(gram[0, 0]), 1e-12), weighted.T @ y[:, c])
    return out


def skin_samples(
    image_bgr: np.ndarray, normals: np.ndarray, mask: np.ndarray, max_samples: int = 3000
) -> tuple[np.ndarray, np.ndarray]:
    """Linear RGB colours (N, 3) and normals (N, 3) of the pixels worth fitting the light to.

    Inside ``mask`` (> 0.5) and facing the camera; without clipped pixels (a channel at 250 or more:
    specular highlights, blown-out skin) or very dark ones (under a tenth of the face's median
    luminance: nostrils, eye lashes, beard, deep shadow where the model is least reliable). At most
    ``max_samples``, taken on a regular stride so the whole face is represented.
    """
    m = (np.asarray(mask) > 0.5) & (normals[..., 2] > 0.05)
    idx = np.flatnonzero(m)
    if idx.size > max_samples:
        idx = idx[:: int(math.ceil(idx.size / max_samples))]
    px = image_bgr.reshape(-1, 3)[idx]
    nrm = normals.reshape(-1, 3)[idx].astype(np.float64)
    lin = _U8_TO_LINEAR[px[:, ::-1]].astype(np.float64)  # RGB
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    brightest = np.maximum(np.maximum(px[:, 0], px[:, 1]), px[:, 2])  # column by column: fast
    ok = (brightest < 250) & (lum > 0.1 * (float(np.median(lum)) if lum.size else 0.0))
    return lin[ok], nrm[ok]


def estimate_skin_sh(
    image_bgr: np.ndarray,
    normals: np.ndarray,
    mask: np.ndarray,
    reg: float = DEFAULT_REG,
    penalty: np.ndarray | tuple[float, ...] | None = None,
    min_samples: int = SH_COUNT,
    max_samples: int = 3000,
) -> np.ndarray | None:
    """``estimate_sh(*skin_samples(image_bgr, normals, mask, max_samples), reg=reg, penalty=penalty)`` with the
    samples and the least-squares sums taken in two compiled loops (``engines.light.fused``, numba: ~45 numpy
    calls were ~0.65 ms of CPU a face, BENCHMARKS.md, issue 20); None when fewer than ``min_samples`` samples
    are usable. ``mask`` (h, w) bool. The same fit to the last digits (the sums' order differs)."""
    from engines.light import fused as kernels  # numba's import on the first face measured, not at start-up

    basis, colours, used, gram, rhs = kernels.skin_system(
        np.ascontiguousarray(image_bgr, dtype=np.uint8),
        np.ascontiguousarray(normals, dtype=np.float32),
        np.ascontiguousarray(mask, dtype=np.bool_),
        _U8_TO_LINEAR,
        BASIS_CONSTANTS64,
        int(max_samples),
    )
    if colours.shape[0] < min_samples:
        return None
    if colours.shape[0] < SH_COUNT:
        raise ValueError(f"need at least {SH_COUNT} samples to estimate the light, got {colours.shape[0]}")
    if not used.any():
        raise ValueError("no valid samples to estimate the light from")
    band = _BAND_PENALTY if penalty is None else np.asarray(penalty, dtype=np.float64)
    if band.shape != (SH_COUNT,):
        raise ValueError(f"expected {SH_COUNT} penalty weights, got shape {band.shape}")
    ridge = reg * np.diag(band) + 1e-9 * np.eye(SH_COUNT)
    sh = np.linalg.solve(gram + ridge * max(float(gram[0, 0]), 1e-12), rhs)
    trimmed = kernels.trimmed_system(basis, colours, used, sh, 2.5, 2 * SH_COUNT)
    if trimmed is not None:
        gram, rhs = trimmed
        sh = np.linalg.solve(gram + ridge * max(float(gram[0, 0]), 1e-12), rhs)
    return sh


def measure_light(
    image_bgr: np.ndarray, normals: np.ndarray, mask: np.ndarray, reg: float = DEFAULT_REG
) -> np.ndarray | None:
    """The light on a face, (9, 3) RGB shading SH, from a BGR uint8 window; None if too little skin shows."""
    colours, nrm = skin_samples(image_bgr, normals, mask)
    if colours.shape[0] < 64:
        return None
    return estimate_sh(colours, nrm, reg=reg)


# --------------------------------------------------------------------------------------------- time


class LightTracker:
    """Temporal smoothing of the measured light of one face: an exponential moving average in time.

    The light on a stage changes slowly next to the frame rate, while a per-frame estimate jitters with the
    mesh; averaging over ``time_constant_s`` removes the flicker and still follows a lamp being dimmed.
    A gap longer than ``reset_after_s`` (or time going backwards: a new clip) starts over.
    """

    def __init__(self, time_constant_s: float = 0.3, reset_after_s: float = 1.0) -> None:
        if time_constant_s < 0 or reset_after_s <= 0:
            raise ValueError("time constants must be positive")
        self.time_constant_s = time_constant_s
        self.reset_after_s = reset_after_s
        self._sh: np.ndarray | None = None
        self._t_s: float | None = None

    @property
    def current(self) -> np.ndarray | None:
        return None if self._sh is None else self._sh.copy()

    def reset(self) -> None:
        self._sh = None
        self._t_s = None

    def update(self, sh: np.ndarray, t_s: float) -> np.ndarray:
        """Feed the estimate measured at ``t_s`` seconds; returns the smoothed light (9, 3)."""
        sh = np.asarray(sh, dtype=np.float64)
        if not np.isfinite(sh).all():
            if self._sh is None:
                raise ValueError("non-finite light estimate and no previous light to fall back on")
            return self._sh.copy()
        dt = None if self._t_s is None else t_s - self._t_s
        if self._sh is None or dt is None or dt < 0 or dt > self.reset_after_s:
            self._sh = sh.copy()
        elif self.time_constant_s > 0:
            alpha = 1.0 - math.exp(-dt / self.time_constant_s)
            self._sh = self._sh + alpha * (sh - self._sh)
        else:
            self._sh = sh.copy()
        self._t_s = t_s
        return self._sh.copy()


# --------------------------------------------------------------------------------------------- targets


def target_sh(target: RelightTarget, measured: np.ndarray, hdri_dir: Path | None) -> np.ndarray:
    """The light to relight to, (9, 3) RGB shading SH, in the units of ``measured`` (see the module doc).

    - ``match``: ``measured`` itself (the light on the actor in this frame);
    - ``sh``: the 27 given coefficients (R, G, B) x the exposure of ``measured``;
    - ``direction``: ``ambient + intensity * colour * max(0, n . direction)`` x the exposure;
    - ``hdri``: the named image in ``hdri_dir`` projected to SH, normalised to a face-mean luminance
      of 1, x ``intensity`` x ``colour`` x the exposure.
    """
    measured = np.asarray(measured, dtype=np.float64)
    if target.mode == "match":
        return measured.copy()
    exposure = np.maximum(face_mean(measured), 1e-4)
    if target.mode == "sh":
        if target.sh is None:
            raise InputError("relight_target.mode 'sh' needs relight_target.sh (27 coefficients)")
        try:
            absolute = sh_from_flat(target.sh)
        except ValueError as exc:
            raise InputError(f"relight_target.sh: {exc}") from exc
    elif target.mode == "direction":
        try:
            absolute = directional_sh(target.direction, target.intensity, target.colour, target.ambient)
        except ValueError as exc:
            raise InputError(f"relight_target.direction: {exc}") from exc
    elif target.mode == "hdri":
        if not target.hdri:
            raise InputError("relight_target.mode 'hdri' needs relight_target.hdri (an image name)")
        path = hdri_path(target.hdri, hdri_dir)
        stat = path.stat()
        absolute = hdri_sh(str(path), stat.st_mtime_ns, stat.st_size) * target.intensity
        absolute = absolute * np.asarray(target.colour, dtype=np.float64)[None, :]
    else:
        raise InputError(f"unknown relight target mode {target.mode!r}")
    return absolute * exposure[None, :]


@functools.lru_cache(maxsize=16)
def hdri_sh(path: str, mtime_ns: int, size: int) -> np.ndarray:
    """Shading SH (9, 3) of an equirectangular image file, normalised to a face-mean luminance of 1.

    Memoised on (path, modification time, size): a stage's HDRI is read once, and a replaced file is
    read again. ``.hdr`` files are linear light; 8/16-bit images are decoded from sRGB.
    """
    if size > HDRI_MAX_BYTES:
        raise InputError(f"HDRI {Path(path).name} is {size / 2**20:.0f} MiB, over the {HDRI_MAX_BYTES >> 20} MiB limit")
    image = cv2.imread(path, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"cannot read HDRI image {Path(path).name}: not an image OpenCV can decode")
    h, w = image.shape[:2]
    if not 1.8 <= w / h <= 2.2:
        raise InputError(f"HDRI {Path(path).name} is {w}x{h}: an equirectangular image is twice as wide as high")
    if image.dtype == np.uint8:
        rgb = srgb_to_linear(image[:, :, ::-1] / 255.0)
    elif image.dtype == np.uint16:
        rgb = srgb_to_linear(image[:, :, ::-1] / 65535.0)
    else:
        rgb = np.nan_to_num(image[:, :, ::-1].astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    rgb = cv2.resize(np.maximum(rgb, 0.0), _HDRI_PROJECT_SIZE, interpolation=cv2.INTER_AREA)
    sh = lambert(project_equirect(rgb))
    lum = float(face_mean(sh) @ np.array([0.2126, 0.7152, 0.0722]))
    if lum <= 1e-9:
        raise InputError(f"HDRI {Path(path).name} is black toward the face: no light to relight with")
    sh = sh / lum
    sh.setflags(write=False)
    return sh


# --------------------------------------------------------------------------------------------- per pixel


def relight_face(
    image_bgr_window: np.ndarray,
    normals: np.ndarray,
    mask: np.ndarray,
    sh_source: np.ndarray,
    sh_target: np.ndarray,
    albedo: np.ndarray | None = None,
    max_gain: float = MAX_GAIN,
    shading_grid_px: int | None = SHADING_GRID_PX,
    fused: bool = False,
    albedo_lookup: tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]] | None = None,
) -> np.ndarray:
    """Relight the masked face in a BGR uint8 window; returns a new window (pixels outside ``mask`` kept).

    ``normals``: camera-frame unit normals (zero where there is no face), either (H, W, 3) per pixel or a
    coarser (h, w, 3) grid over the same window (``pixel_normals(..., grid_px=...)``); ``mask``: (H, W)
    weight 0..1 (bool and uint8 0/255 accepted); ``sh_source``/``sh_target``: (9, 3) RGB shading SH in the
    same units; ``albedo``: optional (H, W, 3) linear-light albedo, BGR like the image, in the units of the
    module docstring — then the face is ``albedo * E_target(n)`` instead of ``in * E_target(n) / E_source(n)``.

    The shading is smooth (normals interpolated over a mesh), so it is evaluated on a grid at most
    ``shading_grid_px`` on its long side and upsampled (None: every pixel, for per-pixel normals); the
    colour work is per pixel.

    ``fused``: with a binary mask and a coarse normal grid (the relight stage's case), the field's upsampling,
    the product and the sRGB lookup run as one compiled pass (``engines.fused.relight_masked``; within a level
    of this function's own passes, which stay the reference).

    ``albedo_lookup`` (instead of ``albedo``): the albedo as ``engines.swap.fused.render_texture`` would draw it —
    (texture (S, S, 3) float32, texel positions at the geometry raster (hs, ws, 2), the face's box (y0, y1, x0, x1)
    of the window): with ``fused`` on the binary-mask path it is looked up pixel by pixel inside the relight's own
    pass (``engines.swap.fused.relight_rendered``: the same numbers, no window-size albedo written and read back);
    otherwise drawn first.
    """
    img = np.asarray(image_bgr_window)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR window, got {img.dtype} {img.shape}")
    h, w = img.shape[:2]
    if normals.ndim != 3 or normals.shape[2] != 3 or normals.shape[0] > h or normals.shape[1] > w:
        raise ValueError(f"normals shape {normals.shape} does not fit the window {img.shape}")
    if albedo is not None and albedo.shape != (h, w, 3):
        raise ValueError(f"albedo shape {albedo.shape} does not match the window {img.shape}")
    binary = np.asarray(mask).dtype == np.bool_  # a copy where it is set, not a weighted sum
    looked_up = albedo_lookup is not None and fused and binary and normals.shape[:2] != img.shape[:2]
    if albedo_lookup is not None and not looked_up:  # drawn first (the reference path)
        from engines.swap.fused import render_texture

        albedo = render_texture(albedo_lookup[1], albedo_lookup[0], img.shape[:2], albedo_lookup[2])
    if binary and np.shape(mask) != (h, w):
        raise ValueError(f"mask shape {np.shape(mask)} does not match the window {(h, w)}")
    weight = np.asarray(mask) if binary else _mask_weight(mask, (h, w)).reshape(h, w)
    x0, y0, bw, bh = cv2.boundingRect(weight.view(np.uint8) if binary else (weight > (0.5 / 255.0)).astype(np.uint8))
    out = img.copy()
    if bw == 0 or bh == 0:
        return out
    ys, xs = slice(y0, y0 + bh), slice(x0, x0 + bw)
    src, tgt = np.asarray(sh_source, dtype=np.float64), np.asarray(sh_target, dtype=np.float64)
    ratio = albedo is None and albedo_lookup is None
    if normals.shape[:2] == (h, w):
        crop = normals[ys, xs]
        scale = 1.0 if shading_grid_px is None else min(1.0, shading_grid_px / max(bh, bw))
        if scale < 0.75:
            grid = _coarse_normals(crop, (max(2, round(bw * scale)), max(2, round(bh * scale))))
            field = cv2.resize(_shading_field(grid, src, tgt, ratio, max_gain), (bw, bh))
        else:
            field = _shading_field(crop, src, tgt, ratio, max_gain)
    else:
        grid = _fill_empty(normals.astype(np.float32))
        if fused and binary:
            # Imported on the first face relit, not at start-up: numba's import costs ~0.4 s of CPU (issue 17).
            from engines import fused as fused_kernels

            floors = np.stack([_floor(src), _floor(tgt)])
            bounds = (_colour_bounds(src, tgt), _LUMA_BGR)
            grid_field = fused_kernels.shading_field(
                grid, BASIS_CONSTANTS, src[:, ::-1], tgt[:, ::-1], floors, bounds, ratio, max_gain
            )
            tables = (_U8_TO_LINEAR, _U16_TO_U8, _LINEAR_LUT_SIZE)
            if looked_up:
                from engines.swap.fused import relight_rendered

                assert albedo_lookup is not None
                box = (y0, y0 + bh, x0, x0 + bw)
                return relight_rendered(out, grid_field, weight, box, albedo_lookup, tables[1:])
            return fused_kernels.relight_masked(out, grid_field, weight, (y0, y0 + bh, x0, x0 + bw), albedo, tables)
        field = cv2.resize(_shading_field(grid, src, tgt, ratio, max_gain), (w, h))[ys, xs]
    # Linear light times the table's size, rounded to uint16 by the product's own saturating conversion
    # (negatives to 0), then one lookup to sRGB (``_U16_TO_U8``: everything past 1.0 is white).
    a = weight[ys, xs]
    u16 = cv2.CV_16U
    if binary:  # the relit face where the mask is set, the window as it was elsewhere
        lin = cv2.LUT(img[ys, xs], _U8_TO_LINEAR) if albedo is None else np.asarray(albedo[ys, xs], np.float32)
        index = cv2.multiply(lin, field, scale=_LINEAR_LUT_SIZE, dtype=u16)
        crop = np.ascontiguousarray(out[ys, xs])
        cv2.copyTo(_srgb(index), a.view(np.uint8), crop)
        out[ys, xs] = crop
        return out
    # The mask blends in linear light: out = in + a * (relit - in), folded into one gain for the ratio relight.
    lin_in = cv2.LUT(img[ys, xs], _U8_TO_LINEAR)
    a3 = a[..., None]
    if albedo is None:
        index = cv2.multiply(lin_in, 1.0 + a3 * (field - 1.0), scale=_LINEAR_LUT_SIZE, dtype=u16)
    else:
        lin = lin_in + a3 * (albedo[ys, xs].astype(np.float32) * field - lin_in)
        index = cv2.multiply(lin, np.ones_like(lin), scale=_LINEAR_LUT_SIZE, dtype=u16)
    out[ys, xs] = _srgb(index)
    return out


def _srgb(index: object) -> np.ndarray:
    """sRGB uint8 of linear light given as uint16 multiples of 1 / ``_LINEAR_LUT_SIZE`` (one table lookup)."""
    return np.take(_U16_TO_U8, np.asarray(index, np.uint16))


def _coarse_normals(normals: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area-averaged, renormalised normals on a (width, height) grid, empty cells filled from neighbours."""
    n = cv2.resize(normals.astype(np.float32, copy=False), size, interpolation=cv2.INTER_AREA)
    return _fill_empty(n)


def _fill_empty(normals: np.ndarray, passes: int = 2) -> np.ndarray:
    """Unit normals; cells without one (no face: zero) borrow their neighbours' average, ``passes`` times.

    A cell averaging face and no-face pixels keeps the face pixels' direction after renormalising; filling
    the empty border lets a feathered mask edge, upsampled, see plausible shading instead of garbage.
    """
    n = normals.astype(np.float32, copy=True)
    for _ in range(passes):
        empty = _length(n) < 0.2
        if not empty.any():
            break
        cv2.copyTo(cv2.blur(n, (3, 3)), empty.view(np.uint8), n)
    length = _length(n)
    scale = np.where(length > 1e-3, 1.0 / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    return n * scale[..., None]


def _length(vectors: np.ndarray) -> np.ndarray:
    """(h, w) float32 length of each (h, w, 3) float32 vector."""
    return cv2.magnitude(cv2.magnitude(vectors[..., 0], vectors[..., 1]), vectors[..., 2])


def _shading_field(normals: np.ndarray, src: np.ndarray, tgt: np.ndarray, ratio: bool, max_gain: float) -> np.ndarray:
    """(h, w, 3) BGR float32 at the normals' resolution: the gain ``E_t / E_s`` (clamped), or ``E_t``."""
    h, w = normals.shape[:2]
    basis = sh_basis(normals.reshape(-1, 3).astype(np.float32, copy=False))
    e_tgt = np.maximum(basis @ tgt[:, ::-1].astype(np.float32), _floor(tgt))
    if ratio:
        e_src = np.maximum(basis @ src[:, ::-1].astype(np.float32), _floor(src))
        field = np.clip(bound_colour(e_tgt / e_src, src, tgt), 0.0, max_gain)
    else:
        field = e_tgt
    return field.reshape(h, w, 3).astype(np.float32)


def bound_colour(ratio: np.ndarray, sh_source: np.ndarray, sh_target: np.ndarray) -> np.ndarray:
    """``ratio`` (..., 3) BGR ``E_target / E_source`` with each channel held within ``COLOUR_SPREAD`` of its
    luminance's, relative to the two lights' overall change of colour; the luminance kept. float32."""
    r = np.asarray(ratio, dtype=np.float32)
    lum = np.maximum(r @ _LUMA_BGR, 1e-6)
    low, high = _colour_bounds(sh_source, sh_target)
    colour = np.clip(r / lum[..., None], low, high)
    colour *= (lum / np.maximum(colour @ _LUMA_BGR, 1e-6))[..., None]
    return colour


def _colour_bounds(sh_source: np.ndarray, sh_target: np.ndarray) -> np.ndarray:
    """(2, 3) BGR float32: the least and the most each channel of a shading ratio may be, relative to its
    luminance (``bound_colour``): the two lights' overall change of colour over and times ``COLOUR_SPREAD``."""
    overall = (face_mean(sh_target) / np.maximum(face_mean(sh_source), 1e-9))[::-1].astype(np.float32)
    overall /= max(float(overall @ _LUMA_BGR), 1e-9)
    return np.stack([overall / COLOUR_SPREAD, overall * COLOUR_SPREAD]).astype(np.float32)


def _floor(sh: np.ndarray) -> np.ndarray:
    """Per-channel (BGR) shading floor of a light, see ``SHADING_FLOOR``."""
    return (SHADING_FLOOR * np.maximum(face_mean(sh), 1e-4))[::-1].astype(np.float32)


def _mask_weight(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask shape {m.shape} does not match the window {shape}")
    if m.dtype == np.bool_:
        return m.reshape(-1).astype(np.float32)
    if m.dtype == np.uint8:
        return m.reshape(-1).astype(np.float32) * (1.0 / 255.0)
    return np.clip(m.reshape(-1).astype(np.float32), 0.0, 1.0)


def shading_image(normals: np.ndarray, mask: np.ndarray, sh: np.ndarray) -> np.ndarray:
    """``E(n)`` as a BGR uint8 picture (sRGB-encoded, 0 outside ``mask``): the evaluation's shading panel.

    Scaled so the light's face mean shows as mid-grey; ``normals`` and ``mask`` of the same shape.
    """
    h, w = normals.shape[:2]
    e = sh_basis(normals.reshape(-1, 3).astype(np.float32)) @ np.asarray(sh, dtype=np.float32)[:, ::-1]
    e = e / max(float(face_mean(sh).max()) * 2.0, 1e-6)
    e *= (_mask_weight(mask, (h, w)) > 0.5)[:, None]
    return (linear_to_srgb(e) * 255.0 + 0.5).astype(np.uint8).reshape(h, w, 3)


# --------------------------------------------------------------------------------------------- normals


def grid_size(window_width: int, window_height: int, grid_px: int) -> tuple[int, int]:
    """(width, height) of the coarse grid over a window: at most ``grid_px`` on the long side, same shape."""
    scale = min(1.0, grid_px / max(window_width, window_height, 1))
    return max(2, round(window_width * scale)), max(2, round(window_height * scale))


def pixel_normals(
    landmarks: np.ndarray, window: Window, raster: Raster | None = None, grid_px: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Unit normals (camera frame) of the face mesh over ``window``, and the mesh's coverage, same grid.

    Per-vertex normals of the tracked mesh (eye and mouth openings filled, so the surface is smooth
    across them) are interpolated with the rasteriser's barycentric weights and renormalised. Per pixel
    (H, W, 3) by default — pass the swap's own ``raster`` of ``face_topology().all_triangles`` to avoid
    rasterising twice; with ``grid_px`` on a coarse grid (``grid_size``) whose cell centres line up with
    ``cv2.resize``'s, which is all ``relight_face`` needs and a fraction of the cost. Zero where no triangle is.
    """
    from engines.face.topology import face_topology, vertex_normals
    from engines.swap.raster import Window as RasterWindow
    from engines.swap.raster import rasterize

    topo = face_topology()
    triangles = topo.all_triangles
    lm = np.asarray(landmarks, dtype=np.float64)
    vn = mesh_to_camera(vertex_normals(lm, triangles))
    if grid_px is not None:
        gw, gh = grid_size(window.width, window.height, grid_px)
        if (gw, gh) != (window.width, window.height):
            sx, sy = gw / window.width, gh / window.height
            grid_lm = lm.copy()
            grid_lm[:, 0] = (lm[:, 0] - window.x0 + 0.5) * sx - 0.5
            grid_lm[:, 1] = (lm[:, 1] - window.y0 + 0.5) * sy - 0.5
            raster = rasterize(grid_lm, triangles, RasterWindow(0, 0, gw, gh))
    if raster is None:
        raster = rasterize(lm, triangles, window)
    elif raster.triangles.shape != triangles.shape:
        raise ValueError("pixel_normals needs a raster of face_topology().all_triangles")
    n = raster.interpolate(vn)
    length = np.linalg.norm(n, axis=2, keepdims=True)
    n = np.where(length > 1e-6, n / np.maximum(length, 1e-6), 0.0).astype(np.float32)
    return n, raster.mask


# --------------------------------------------------------------------------------------------- per face


@dataclass(frozen=True)
class RelightConfig:
    reg: float = DEFAULT_REG
    band_penalty: tuple[float, ...] = FACE_BAND_PENALTY
    """The ridge's weight per SH function (``estimate_sh``'s ``penalty``): see ``FACE_BAND_PENALTY``."""
    time_constant_s: float = 0.3
    """Temporal smoothing of the measured light (``LightTracker``)."""
    max_gain: float = MAX_GAIN
    shading_grid_px: int | None = SHADING_GRID_PX
    min_skin_px: int = 64
    """Fewer usable skin pixels than this: the light is not re-measured (the last estimate is kept)."""


@dataclass(frozen=True)
class RelightResult:
    image: np.ndarray
    """The relit window, BGR uint8."""
    sh_source: np.ndarray
    """The (smoothed) light measured on the face, (9, 3) RGB."""
    sh_target: np.ndarray
    """The light it was relit to, (9, 3) RGB, same units."""


class FaceRelighter:
    """Relighting for every face of one stream: measure, smooth per face id, target, relight.

    One instance per stream and thread (it holds each face's ``LightTracker``). For a swap, pass the
    actor's original window (the light is measured on the actor) and the identity's albedo for the same
    window; for the actor's own face, no albedo.
    """

    def __init__(self, config: RelightConfig | None = None, hdri_dir: Path | None = None, fused: bool = False) -> None:
        self.config = config or RelightConfig()
        self.hdri_dir = hdri_dir
        self.fused = fused
        """True: ``measure_skin`` takes the samples and the fit's sums in compiled loops (``engines.light.fused``,
        numba; ``ProcessorConfig.fused``); False: ``skin_samples`` and ``estimate_sh``, the reference."""
        self._trackers: dict[int, LightTracker] = {}
        self._frames = 0

    def relight(
        self,
        face_id: int,
        t_s: float | None,
        window_bgr: np.ndarray,
        normals: np.ndarray,
        mask: np.ndarray,
        target: RelightTarget,
        albedo: np.ndarray | None = None,
    ) -> RelightResult | None:
        """Relight one face; None when no light has been measurable on it yet (the caller keeps the window).

        ``normals`` per pixel or on a coarse grid (``pixel_normals(landmarks, window, grid_px=SHADING_GRID_PX)``,
        the fast path): the light is measured at the normals' resolution, on the window reduced to match.
        Raises InputError for a target that cannot be used (unknown HDRI, bad coefficients).
        """
        cfg = self.config
        self._frames += 1
        t = float(t_s) if t_s is not None else self._frames / 30.0
        sample_img, sample_mask = window_bgr, np.asarray(mask)
        gh, gw = normals.shape[:2]
        h, w = window_bgr.shape[:2]
        if (gh, gw) != (h, w):
            # The pixels under the grid's cell centres (the centres cv2.resize maps the grid to).
            rows = np.minimum(((np.arange(gh) + 0.5) * (h / gh)).astype(np.intp), h - 1)
            cols = np.minimum(((np.arange(gw) + 0.5) * (w / gw)).astype(np.intp), w - 1)
            sample_img = window_bgr[rows[:, None], cols[None, :]]
            sample_mask = _mask_weight(sample_mask, (h, w)).reshape(h, w)[rows[:, None], cols[None, :]] > 0.99
        colours, nrm = skin_samples(sample_img, normals, sample_mask)
        source = self.measure(face_id, t, colours, nrm)
        if source is None:
            return None
        tgt = self.target(target, source)
        image = relight_face(
            window_bgr, normals, mask, source, tgt, albedo, max_gain=cfg.max_gain, shading_grid_px=cfg.shading_grid_px
        )
        return RelightResult(image, source, tgt)

    def measure(self, face_id: int, t_s: float, colours: np.ndarray, normals: np.ndarray) -> np.ndarray | None:
        """The light on face ``face_id`` at ``t_s``, smoothed over time, from its skin samples (``skin_samples``):
        (9, 3) RGB SH. Too few samples: the last light measured on it; None when there has never been one."""
        tracker = self._trackers.get(face_id)
        if tracker is None:
            tracker = self._trackers[face_id] = LightTracker(self.config.time_constant_s)
        if colours.shape[0] >= self.config.min_skin_px:
            light = estimate_sh(colours, normals, reg=self.config.reg, penalty=self.config.band_penalty)
            return tracker.update(light, t_s)
        return tracker.current

    def measure_skin(
        self, face_id: int, t_s: float, image_bgr: np.ndarray, normals: np.ndarray, mask: np.ndarray
    ) -> np.ndarray | None:
        """``measure`` of the skin samples (``skin_samples``) of ``image_bgr`` (h, w, 3 uint8) with its per-pixel
        ``normals`` (h, w, 3 float32) where ``mask`` (h, w bool) is set: the relight stage's measure, at geometry
        resolution. With ``fused``, the samples and the fit (``estimate_skin_sh``) in compiled loops."""
        if not self.fused:
            colours, nrm = skin_samples(image_bgr, normals, mask)
            return self.measure(face_id, t_s, colours, nrm)
        cfg = self.config
        light = estimate_skin_sh(image_bgr, normals, mask, cfg.reg, cfg.band_penalty, cfg.min_skin_px)
        tracker = self._trackers.get(face_id)
        if tracker is None:
            tracker = self._trackers[face_id] = LightTracker(cfg.time_constant_s)
        return tracker.current if light is None else tracker.update(light, t_s)

    def target(self, target: RelightTarget, source: np.ndarray) -> np.ndarray:
        """The SH light a face measured under ``source`` is relit to (InputError for an unusable target)."""
        return target_sh(target, source, self.hdri_dir)

    def current(self) -> list[np.ndarray]:
        """The light measured on each face now, (9, 3) RGB SH per face that has one."""
        return [tr.current for tr in self._trackers.values() if tr.current is not None]

    def forget(self, active_ids: Iterable[int]) -> None:
        """Drop the light history of faces no longer tracked."""
        keep = set(active_ids)
        for face_id in [i for i in self._trackers if i not in keep]:
            del self._trackers[face_id]


__all__ = [
    "COLOUR_SPREAD",
    "DEFAULT_REG",
    "FACE_BAND_PENALTY",
    "SHADING_GRID_PX",
    "FaceRelighter",
    "LightTracker",
    "RelightConfig",
    "RelightResult",
    "constant_sh",
    "estimate_sh",
    "grid_size",
    "hdri_path",
    "measure_light",
    "pixel_normals",
    "relight_face",
    "sh_basis",
    "shading_image",
    "target_sh",
    "bound_colour",
]
