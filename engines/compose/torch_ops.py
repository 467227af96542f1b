"""Colour match and paste-back as torch ops: the same code on CPU tensors and on CUDA ones.

Each op mirrors one numpy function of ``engines.compose.blend`` — the stage the processor runs per face
today — and is held equal to it on shared clips by ``tests/engines/test_torch_ops.py``:

- ``colour_gains`` — ``blend.colour_gains``: per-channel linear-light gains from the mean skin colours;
- ``apply_gains`` — ``blend.apply_gains``: the gains as one lookup table per channel;
- ``composite`` — ``blend.composite``: ``actor + alpha * (face - actor)`` into the frame's window, in place.

They are written for the GPU path (issue 20, item 3): every input a tensor on one device, the sRGB table
made once per device, no host round trip except where the numpy function's own result depends on a count
(``colour_gains`` returns None when too little skin shows, so it reads that count on the host).
"""

from __future__ import annotations

import functools

import torch

from engines.compose.blend import _U8_TO_LINEAR, BlendConfig
from engines.swap.raster import Window


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
