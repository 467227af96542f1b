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

from engines.compose import chroma
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


def transfer_chroma(face_bgr: torch.Tensor, field_small: torch.Tensor) -> torch.Tensor:
    """``face_bgr`` ((h, w, 3) uint8) in the colour and level of ``field_small`` ((hs, ws, 4) float32,
    ``engines.compose.chroma.chroma_field``); mirrors ``engines.compose.chroma.transfer_chroma``: the same CIE
    L*a*b* arithmetic in float32 and the same tables. The field's bilinear upsampling matches cv2's to float
    rounding (and a cube root or a matrix product may round the other way), so a value at a table step's edge may
    be encoded a level apart, rarely two."""
    h, w = int(face_bgr.shape[0]), int(face_bgr.shape[1])
    field = resize_linear(field_small.to(torch.float32), (w, h))
    tables = _chroma_tables(face_bgr.device)
    luminance = (tables.linear[face_bgr.long()] @ tables.luminance) * field[..., 2]
    fy = _lab_f(luminance)
    fade = torch.clamp((116.0 * fy - 16.0) / field[..., 3], max=1.0)
    x = _lab_f_inverse(fy + fade * field[..., 0] * (1.0 / 500.0)) * chroma.WHITE_XZ[0]
    z = _lab_f_inverse(fy - fade * field[..., 1] * (1.0 / 200.0)) * chroma.WHITE_XZ[1]
    colour = torch.stack([x, luminance, z], dim=-1) @ tables.bgr_from_xyz.T
    index = (colour * float(chroma.ENCODE_STEPS - 1) + 0.5).to(torch.int32).long()  # truncated, as numpy's astype
    return tables.code[index.clamp(0, chroma.ENCODE_STEPS - 1)]


def _lab_f(t: torch.Tensor) -> torch.Tensor:
    """``chroma._f``."""
    eps = float(chroma.EPS_LAB)
    return torch.pow(t.clamp(min=eps), 1.0 / 3.0) + float(chroma.SLOPE_LAB) * (t - eps).clamp(max=0.0)


def _lab_f_inverse(t: torch.Tensor) -> torch.Tensor:
    """``chroma._f_inverse``."""
    edge = 6.0 / 29.0
    top = t.clamp(min=edge)
    return top * top * top + (t - edge).clamp(max=0.0) / float(chroma.SLOPE_LAB)


class _ChromaTables:
    """``engines.compose.chroma``'s tables on one device: sRGB code to linear light, luminance weights, XYZ to linear
    BGR, linear light to sRGB code."""

    def __init__(self, device: torch.device) -> None:
        self.linear = torch.from_numpy(chroma.U8_TO_LINEAR.copy()).to(device)
        self.luminance = torch.from_numpy(chroma.LUMINANCE_BGR.copy()).to(device)
        self.bgr_from_xyz = torch.from_numpy(chroma.BGR_FROM_XYZ.copy()).to(device)
        self.code = torch.from_numpy(chroma.LINEAR_TO_U8.copy()).to(device)


@functools.cache
def _chroma_tables(device: torch.device) -> _ChromaTables:
    return _ChromaTables(device)


def apply_field(face_bgr: torch.Tensor, field_small: torch.Tensor) -> torch.Tensor:
    """``face_bgr`` ((h, w, 3) uint8) times the (hs, ws, 3) linear-light ``field_small`` upsampled to it; mirrors
    ``engines.compose.seam.apply_field``: the gain to the power 1 / 2.2 on the sRGB codes, bilinear as cv2, the
    product in float32 rounded half to even and saturated as ``cv2.multiply(..., dtype=CV_8U)`` does."""
    h, w = int(face_bgr.shape[0]), int(face_bgr.shape[1])
    gain = resize_linear(torch.pow(field_small.to(torch.float32), 1.0 / _GAMMA), (w, h))
    return torch.round(face_bgr.to(torch.float32) * gain).clamp(0.0, 255.0).to(torch.uint8)
