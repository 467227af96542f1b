"""Colour match and paste-back as torch ops: the same code on CPU tensors and on CUDA ones.

Each op mirrors one numpy function of ``engines.compose.blend`` — the stage the processor runs per face
today — and is held equal to it on shared clips by ``tests/engines/test_torch_ops.py``:

- ``colour_gains`` — ``blend.colour_gains``: per-channel linear-light gains from the mean skin colours;
- ``apply_gains`` — ``blend.apply_gains``: the gains as one lookup table per channel;
- ``composite`` — ``blend.composite``: ``actor + alpha * (face - actor)`` into the frame's window, in place;
- ``transfer_chroma`` — ``chroma.transfer_chroma``: a black-and-white identity takes the actor's skin colour;
- ``apply_field`` — ``seam.apply_field``: the seam's geometry-resolution gains, upsampled, on the face.

They are written for the GPU path (issue 20, item 3): every input a tensor on one device, the sRGB table
made once per device, no host round trip except where the numpy function's own result depends on a count
(``colour_gains`` returns None when too little skin shows, so it reads that count on the host).
"""

from __future__ import annotations

import functools

import torch

from engines.compose.blend import _U8_TO_LINEAR, BlendConfig
from engines.compose.seam import _GAMMA
from engines.swap.raster import Window
from engines.torch_resample import resize_linear


@functools.cache
def _u8_to_linear(device: torch.device) -> torch.Tensor:
    """(256,) float64: an sRGB code value's linear light, on ``device`` (made once per device)."""
    return torch.from_numpy(_U8_TO_LINEAR.copy()).to(device)


def _linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light 0..1 to sRGB-encoded 0..1 (clipped), as ``engines.light.sh.linear_to_srgb``."""
    x = x.clamp(0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * torch.pow(x.clamp(min=0.0031308), 1.0 / 2.4) - 0.055)


def colour_gains(
    face_bgr: torch.Tensor, actor_bgr: torch.Tensor, skin: torch.Tensor, config: BlendConfig | None = None
) -> torch.Tensor | None:
    """(3,) float64 gains in linear light (BGR) moving ``face_bgr``'s mean skin colour to ``actor_bgr``'s;
    mirrors ``engines.compose.blend.colour_gains`` (same skin subsampling, same clamp); None when fewer
    than 50 skin pixels show or colour matching is off.

    ``face_bgr``, ``actor_bgr``: (h, w, 3) uint8 at geometry resolution; ``skin``: (h, w) bool."""
    cfg = config or BlendConfig()
    if not cfg.colour_match:
        return None
    idx = torch.nonzero(skin.reshape(-1)).reshape(-1)
    count = int(idx.numel())  # the numpy stage's None depends on it: one read on the host
    if count < 50:
        return None
    if count > 4000:
        idx = idx[:: count // 4000]
    table = _u8_to_linear(face_bgr.device)
    face_lin = table[face_bgr.reshape(-1, 3)[idx].long()].mean(dim=0)
    actor_lin = table[actor_bgr.reshape(-1, 3)[idx].long()].mean(dim=0)
    return torch.clamp(actor_lin / face_lin.clamp(min=1e-4), 1.0 / cfg.max_gain, cfg.max_gain)


def apply_gains(face_bgr: torch.Tensor, gains: torch.Tensor) -> torch.Tensor:
    """``face_bgr`` ((h, w, 3) uint8) with per-channel linear-light ``gains`` ((3,), BGR); mirrors
    ``engines.compose.blend.apply_gains``: a 256-entry table per channel, built as it builds it (float64,
    truncated after +0.5), then one gather."""
    table = _u8_to_linear(face_bgr.device)
    scaled = table[:, None] * gains.to(device=face_bgr.device, dtype=torch.float64)[None, :]
    lut = (_linear_to_srgb(scaled) * 255.0 + 0.5).to(torch.uint8)  # (256, 3)
    channel = torch.arange(3, device=face_bgr.device)
    return lut.reshape(-1)[face_bgr.long() * 3 + channel]


def composite(frame: torch.Tensor, window: Window, face_bgr: torch.Tensor, alpha: torch.Tensor) -> None:
    """Write ``actor + alpha * (face - actor)`` into ``frame``'s ``window``, in place; mirrors
    ``engines.compose.blend.composite`` (``cv2.blendLinear``: weights alpha and 1 - alpha over their sum
    plus 1e-5, rounded half to even).

    ``frame``: (H, W, 3) uint8; ``face_bgr``: (h, w, 3) uint8 and ``alpha``: (h, w) float, both the window's
    size (``FaceGeometry.to_window``)."""
    ys, xs = window.slices
    actor = frame[ys, xs]
    a = alpha.to(torch.float32)[..., None]
    b = 1.0 - a
    blended = (face_bgr.to(torch.float32) * a + actor.to(torch.float32) * b) / (a + b + 1e-5)
    actor.copy_(torch.round(blended).clamp(0.0, 255.0).to(torch.uint8))


# cv2's integer BGR <-> YCrCb for 8-bit images (14-bit fixed point), reproduced exactly.
_YCC_SHIFT = 14
_B2Y, _G2Y, _R2Y, _R2CR, _B2CB = 1868, 9617, 4899, 11682, 9241
_CR2R, _CR2G, _CB2G, _CB2B = 22987, -11698, -5636, 29049


def _descale(x: torch.Tensor) -> torch.Tensor:
    return (x + (1 << (_YCC_SHIFT - 1))) >> _YCC_SHIFT


def _to_ycrcb(bgr: torch.Tensor) -> torch.Tensor:
    """(h, w, 3) uint8 BGR -> int64 Y, Cr, Cb as ``cv2.cvtColor(..., COLOR_BGR2YCrCb)`` (bit-exact)."""
    b, g, r = bgr.long().unbind(dim=2)
    y = _descale(b * _B2Y + g * _G2Y + r * _R2Y)
    cr = _descale((r - y) * _R2CR + (128 << _YCC_SHIFT)).clamp(0, 255)
    cb = _descale((b - y) * _B2CB + (128 << _YCC_SHIFT)).clamp(0, 255)
    return torch.stack([y, cr, cb], dim=2)


def _to_bgr(ycc: torch.Tensor) -> torch.Tensor:
    """int64 Y, Cr, Cb -> (h, w, 3) uint8 BGR as ``cv2.cvtColor(..., COLOR_YCrCb2BGR)`` (bit-exact)."""
    y, cr, cb = ycc[..., 0], ycc[..., 1] - 128, ycc[..., 2] - 128
    b = y + _descale(cb * _CB2B)
    g = y + _descale(cb * _CB2G + cr * _CR2G)
    r = y + _descale(cr * _CR2R)
    return torch.stack([b, g, r], dim=2).clamp(0, 255).to(torch.uint8)


def transfer_chroma(face_bgr: torch.Tensor, field_small: torch.Tensor) -> torch.Tensor:
    """``face_bgr`` ((h, w, 3) uint8) with its lightness kept and the colour of ``field_small`` ((hs, ws, 3) float32,
    ``engines.compose.chroma.chroma_field``); mirrors ``engines.compose.chroma.transfer_chroma``. The YCrCb
    conversions are cv2's integer ones, bit for bit; the field's bilinear upsampling matches cv2's to float
    rounding, so a chroma rounded at a half level may differ by one, and the picture by up to two levels there
    (the inverse multiplies Cb's difference by 1.77)."""
    h, w = int(face_bgr.shape[0]), int(face_bgr.shape[1])
    field = resize_linear(field_small.to(torch.float32), (w, h))
    face = _to_ycrcb(face_bgr)
    fade = torch.clamp(face[..., 0].to(torch.float32) / field[..., 2], max=1.0)
    chroma = torch.floor(field[..., :2] * fade[..., None] + 128.5).clamp(0.0, 255.0).long()
    return _to_bgr(torch.cat([face[..., :1], chroma], dim=2))


def apply_field(face_bgr: torch.Tensor, field_small: torch.Tensor) -> torch.Tensor:
    """``face_bgr`` ((h, w, 3) uint8) times the (hs, ws, 3) linear-light ``field_small`` upsampled to it; mirrors
    ``engines.compose.seam.apply_field``: the gain to the power 1 / 2.2 on the sRGB codes, bilinear as cv2, the
    product in float32 rounded half to even and saturated as ``cv2.multiply(..., dtype=CV_8U)`` does."""
    h, w = int(face_bgr.shape[0]), int(face_bgr.shape[1])
    gain = resize_linear(torch.pow(field_small.to(torch.float32), 1.0 / _GAMMA), (w, h))
    return torch.round(face_bgr.to(torch.float32) * gain).clamp(0.0, 255.0).to(torch.uint8)
