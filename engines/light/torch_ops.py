"""The relight's per-pixel step as torch ops: the same code on CPU tensors and on CUDA ones.

``relight_window`` mirrors ``engines.light.relight.relight_face`` — the numpy stage the processor runs
per face today — step for step: the shading field on the coarse grid of normals (``_fill_empty``,
``_shading_field``), bilinear upsampling to the window, the mask's blend in linear light and the return
through the same 16384-entry sRGB table, limited to the mask's bounding box. It is written for the GPU
path (issue 20, item 3): no host synchronisation (the bounding box is a mask, the empty-cell fill runs
its fixed number of passes), the lookup tables made once per device, every input a tensor on the same
device. The suite holds it equal to ``relight_face`` on shared clips (``tests/engines/test_torch_ops.py``).

``measure_light`` mirrors ``relight.measure_light`` (``skin_samples`` and ``estimate_sh``: the light on a face
fitted to its skin by regularised least squares with one trimming pass), in float64 as there; its sample
counts decide what it returns, so it reads them on the host (a few small synchronisations per face).

``SHRelight`` (``engines.light.relight_torch``) is the export module for ONNX/TensorRT, per-pixel normals and
float images; this module is what a torch stage calls on the processor's own inputs (uint8 windows, the
coarse normal grid), and it shares ``SHRelight``'s SH basis and floored shading rather than copying them.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.light.relight import (
    _BAND_PENALTY,
    _LINEAR_LUT_SIZE,
    _LINEAR_TO_U8,
    _U8_TO_LINEAR,
    DEFAULT_REG,
    MAX_GAIN,
    SHADING_GRID_PX,
)
from engines.light.relight_torch import _SHRelightBase
from engines.light.sh import SH_COUNT


@dataclass(frozen=True)
class _Tables:
    u8_to_linear: torch.Tensor  # (256,) float32
    linear_to_u8: torch.Tensor  # (_LINEAR_LUT_SIZE + 1,) uint8
    shading: _SHRelightBase  # the SH basis and floored shading of the export module, on the device


@functools.cache
def _tables(device: torch.device) -> _Tables:
    """The sRGB tables and the shading helper on ``device``, made once per device (not per call)."""
    return _Tables(
        torch.from_numpy(_U8_TO_LINEAR.copy()).to(device),
        torch.from_numpy(_LINEAR_TO_U8.copy()).to(device),
        _SHRelightBase().to(device),
    )


def mask_weight(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` as float32 weights 0..1 (bool, uint8 0/255 or float accepted); mirrors ``relight._mask_weight``."""
    if mask.dtype == torch.bool:
        return mask.to(torch.float32)
    if mask.dtype == torch.uint8:
        return mask.to(torch.float32) * (1.0 / 255.0)
    return mask.to(torch.float32).clamp(0.0, 1.0)


def fill_empty(normals: torch.Tensor, passes: int = 2) -> torch.Tensor:
    """(h, w, 3) unit normals, empty cells (|n| < 0.2) filled from their 3x3 neighbourhood ``passes`` times;
    mirrors ``relight._fill_empty`` (cv2.blur's border is reflect-101, as torch's ``reflect`` pad). A pass
    with no empty cell changes nothing, so all passes run: no host sync to test for an early stop."""
    n = normals.to(torch.float32)
    for _ in range(passes):
        empty = (n * n).sum(dim=2, keepdim=True) < 0.04
        chw = n.permute(2, 0, 1)[None]
        blurred = F.avg_pool2d(F.pad(chw, (1, 1, 1, 1), mode="reflect"), 3, stride=1)[0].permute(1, 2, 0)
        n = torch.where(empty, blurred, n)
    length = torch.sqrt((n * n).sum(dim=2, keepdim=True))
    return torch.where(length > 1e-3, n / length.clamp(min=1e-6), torch.zeros_like(n))


def shading_field(
    normals: torch.Tensor, sh_source: torch.Tensor, sh_target: torch.Tensor, ratio: bool, max_gain: float = MAX_GAIN
) -> torch.Tensor:
    """(1, 3, h, w) BGR float32 at the normals' resolution: the gain ``E_t / E_s``, its colour bounded and
    clamped to 0..``max_gain`` (``ratio``), else ``E_t``; mirrors ``relight._shading_field``. ``sh_*``: (9, 3)
    RGB shading SH."""
    h, w = normals.shape[:2]
    shading = _tables(normals.device).shading
    basis = shading.basis(normals.permute(2, 0, 1)[None].to(torch.float32))  # (1, 9, h, w)
    basis = basis.reshape(1, SH_COUNT, h * w).transpose(1, 2)
    e_tgt = shading.shade(basis, sh_target.to(torch.float32)[None], 1, h, w)
    if not ratio:
        return e_tgt
    src = sh_source.to(torch.float32)[None]
    e_src = shading.shade(basis, src, 1, h, w)
    return torch.clamp(shading.bound_colour(e_tgt / e_src, src, sh_target.to(torch.float32)[None]), 0.0, max_gain)


def bounding_box_mask(inside: torch.Tensor) -> torch.Tensor:
    """(H, W) bool: the bounding box of ``inside``'s true cells (all false when there is none), computed
    without leaving the device — the region ``relight_face`` crops to with ``cv2.boundingRect``."""
    rows = inside.any(dim=1)
    cols = inside.any(dim=0)

    def span(v: torch.Tensor) -> torch.Tensor:
        after_first = torch.cummax(v.to(torch.int32), dim=0).values.bool()
        before_last = torch.cummax(v.flip(0).to(torch.int32), dim=0).values.bool().flip(0)
        return after_first & before_last

    return span(rows)[:, None] & span(cols)[None, :]


def relight_window(
    window: torch.Tensor,
    normals: torch.Tensor,
    mask: torch.Tensor,
    sh_source: torch.Tensor,
    sh_target: torch.Tensor,
    albedo: torch.Tensor | None = None,
    max_gain: float = MAX_GAIN,
) -> torch.Tensor:
    """The face in ``window`` relit; mirrors ``engines.light.relight.relight_face`` (its default grid path).

    ``window``: (H, W, 3) uint8 BGR; ``normals``: (h, w, 3) camera-frame unit normals on a grid over the
    window (``FaceGeometry.normals_small``), h <= H and w <= W — at (H, W) they are used per pixel, as
    ``relight_face`` does when the window's long side is at most 4/3 of ``SHADING_GRID_PX`` (larger
    windows with per-pixel normals, which ``relight_face`` first coarsens, are refused); ``mask``: (H, W) 0..1
    (bool, uint8 0/255 or float); ``sh_source``, ``sh_target``: (9, 3) RGB shading SH; ``albedo``: None
    (the ratio relight ``in * E_t / E_s``) or (H, W, 3) float32 linear BGR (``albedo * E_t``). All on one
    device. Returns a new (H, W, 3) uint8 window; pixels outside the mask's bounding box are the input's.
    """
    if window.dtype != torch.uint8 or window.ndim != 3 or window.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) uint8 BGR window, got {window.dtype} {tuple(window.shape)}")
    h, w = int(window.shape[0]), int(window.shape[1])
    if normals.ndim != 3 or normals.shape[2] != 3 or normals.shape[0] > h or normals.shape[1] > w:
        raise ValueError(f"normals shape {tuple(normals.shape)} does not fit the window {tuple(window.shape)}")
    if tuple(mask.shape) != (h, w):
        raise ValueError(f"mask shape {tuple(mask.shape)} does not match the window {(h, w)}")
    if albedo is not None and tuple(albedo.shape) != (h, w, 3):
        raise ValueError(f"albedo shape {tuple(albedo.shape)} does not match the window {tuple(window.shape)}")
    tables = _tables(window.device)
    ratio = albedo is None
    weight = mask_weight(mask)
    if tuple(normals.shape[:2]) == (h, w):
        if max(h, w) * 0.75 > SHADING_GRID_PX:
            raise ValueError(
                f"per-pixel normals over a {w}x{h} window: pass them on a grid of at most {SHADING_GRID_PX} px "
                "(engines.light.relight.pixel_normals(..., grid_px=...)), as relight_face would coarsen them"
            )
        field = shading_field(normals, sh_source, sh_target, ratio, max_gain)
    else:
        grid = fill_empty(normals)
        field = F.interpolate(
            shading_field(grid, sh_source, sh_target, ratio, max_gain),
            size=(h, w),
            mode="bilinear",
            align_corners=False,
        )
    gain = field[0].permute(1, 2, 0)  # (H, W, 3) BGR
    lin_in = tables.u8_to_linear[window.long()]
    a = weight[..., None]
    if albedo is None:
        lin = lin_in * (1.0 + a * (gain - 1.0))
    else:
        lin = lin_in + a * (albedo.to(torch.float32) * gain - lin_in)
    index = (lin.clamp(0.0, 1.0) * _LINEAR_LUT_SIZE + 0.5).long()
    relit = tables.linear_to_u8[index]
    return torch.where(bounding_box_mask(weight > (0.5 / 255.0))[..., None], relit, window)


_LUMA_RGB = (0.2126, 0.7152, 0.0722)


def skin_samples(
    window: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor, max_samples: int = 3000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear RGB colours (N, 3) and normals (N, 3), float64, of the pixels worth fitting the light to;
    mirrors ``engines.light.relight.skin_samples`` (inside the mask, facing the camera, a regular stride to
    at most ``max_samples``, without clipped or very dark pixels). ``window`` (h, w, 3) uint8 BGR and
    ``normals`` (h, w, 3) at the same resolution, ``mask`` (h, w)."""
    m = (mask.to(torch.float32) > 0.5) & (normals[..., 2] > 0.05)
    idx = torch.nonzero(m.reshape(-1)).reshape(-1)
    count = int(idx.numel())
    if count > max_samples:
        idx = idx[:: -(-count // max_samples)]
    px = window.reshape(-1, 3)[idx]
    nrm = normals.reshape(-1, 3)[idx].to(torch.float64)
    lin = _tables(window.device).u8_to_linear[px.flip(1).long()].to(torch.float64)  # RGB
    lum = lin @ torch.tensor(_LUMA_RGB, dtype=torch.float64, device=lin.device)
    median = torch.quantile(lum, 0.5) if lum.numel() else torch.zeros((), dtype=torch.float64, device=lin.device)
    ok = (px.amax(dim=1) < 250) & (lum > 0.1 * median)
    return lin[ok], nrm[ok]


def _sh_basis64(normals: torch.Tensor) -> torch.Tensor:
    """(N, 3) -> (N, 9) float64: ``engines.light.sh.sh_basis`` (the export module's basis, channels last)."""
    return _SHRelightBase.basis(normals.T[None, :, :, None])[0, :, :, 0].T


def _solve(basis: torch.Tensor, y: torch.Tensor, w: torch.Tensor, reg: float) -> torch.Tensor:
    """``relight._solve`` without an albedo: one regularised normal-equation solve for every channel."""
    total = w.sum()
    eye = torch.eye(SH_COUNT, dtype=torch.float64, device=basis.device)
    band = torch.tensor(_BAND_PENALTY, dtype=torch.float64, device=basis.device)
    penalty = reg * torch.diag(band) + 1e-9 * eye
    weighted = basis * (w / total)[:, None]
    gram = weighted.T @ basis
    return torch.linalg.solve(gram + penalty * torch.clamp(gram[0, 0], min=1e-12), weighted.T @ y)


def estimate_sh(
    colours_linear: torch.Tensor, normals: torch.Tensor, reg: float = DEFAULT_REG, trim: float | None = 2.5
) -> torch.Tensor:
    """(9, C) float64 shading SH explaining ``colours ~= sh_basis(normals) @ sh``; mirrors
    ``engines.light.relight.estimate_sh`` without an albedo or weights (how ``measure_light`` calls it): a
    regularised solve, then one more without the samples beyond ``trim`` robust deviations. Samples are
    finite (``skin_samples`` gives only such)."""
    y = colours_linear.to(torch.float64)
    basis = _sh_basis64(normals.to(torch.float64))
    w = torch.ones(y.shape[0], dtype=torch.float64, device=y.device)
    sh = _solve(basis, y, w, reg)
    if trim is None or y.shape[0] <= 2 * SH_COUNT:
        return sh
    pred = basis @ sh
    dev = ((y - pred) / pred.abs().clamp(min=1e-4)).abs().mean(dim=1)
    med = torch.quantile(dev, 0.5)
    mad = torch.quantile((dev - med).abs(), 0.5) * 1.4826
    keep = dev <= med + trim * torch.clamp(mad, min=1e-3)
    if int(keep.sum()) < 2 * SH_COUNT:  # the numpy stage keeps the first fit then: one read on the host
        return sh
    return _solve(basis, y, keep.to(torch.float64), reg)


def measure_light(
    window: torch.Tensor, normals: torch.Tensor, mask: torch.Tensor, reg: float = DEFAULT_REG
) -> torch.Tensor | None:
    """The light on a face, (9, 3) float64 RGB shading SH, from a uint8 BGR window, its normals and mask at
    the same resolution; None if too little skin shows. Mirrors ``engines.light.relight.measure_light``."""
    colours, nrm = skin_samples(window, normals, mask)
    if colours.shape[0] < 64:
        return None
    return estimate_sh(colours, nrm, reg=reg)
