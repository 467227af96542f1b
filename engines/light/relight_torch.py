"""The per-pixel SH relight as torch modules: ``SHRelight`` (the ratio relight of the actor's face) and
``SHRelightAlbedo`` (a swapped-in albedo under the target light).

They run on CPU and CUDA tensors and export to ONNX (opset 17) for TensorRT (``engines.catalogue``); the
suite holds them equal to the numpy path, ``engines.light.relight.relight_face`` (within one 8-bit level).
They live apart from that module so the CPU per-frame path loads without torch; the maths they share (the SH
constants, the shading floor, the gain clamp) is imported from ``engines.light.sh`` and ``relight`` rather
than copied.
"""

from __future__ import annotations

import torch
from torch import nn

from engines.light.relight import COLOUR_SPREAD, MAX_GAIN, SHADING_FLOOR
from engines.light.sh import _C1, _C2, _C20, _C22, FACE_MEAN_WEIGHTS, SH_COUNT, Y00, directional_sh


class _SHRelightBase(nn.Module):
    """Shared parts of the two per-pixel relight modules: the SH basis, colour curves, example inputs."""

    input_names: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ("relit",)
    bgr: torch.Tensor
    floor_weights: torch.Tensor
    mean_weights: torch.Tensor
    luma: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("bgr", torch.tensor([2, 1, 0], dtype=torch.int64), persistent=False)
        floor_w = torch.tensor(SHADING_FLOOR * FACE_MEAN_WEIGHTS, dtype=torch.float32)
        self.register_buffer("floor_weights", floor_w, persistent=False)
        self.register_buffer("mean_weights", torch.tensor(FACE_MEAN_WEIGHTS, dtype=torch.float32), persistent=False)
        self.register_buffer("luma", torch.tensor([0.0722, 0.7152, 0.2126], dtype=torch.float32), persistent=False)

    @staticmethod
    def basis(normals: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normals -> (B, 9, H, W) SH basis (same functions and order as ``sh_basis``)."""
        x, y, z = normals[:, 0:1], normals[:, 1:2], normals[:, 2:3]
        return torch.cat(
            [
                torch.full_like(x, Y00),
                _C1 * y,
                _C1 * z,
                _C1 * x,
                _C2 * x * y,
                _C2 * y * z,
                _C20 * (3.0 * z * z - 1.0),
                _C2 * x * z,
                _C22 * (x * x - y * y),
            ],
            dim=1,
        )

    def shade(self, basis: torch.Tensor, sh_rgb: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        """``E(n)`` (B, 3, H, W) in BGR order from a (B, HW, 9) basis and (B, 9, 3) RGB coefficients,
        floored like the numpy path (``SHADING_FLOOR``)."""
        sh_bgr = torch.index_select(sh_rgb, 2, self.bgr)
        e = torch.bmm(basis, sh_bgr).transpose(1, 2).reshape(b, 3, h, w)
        floor = torch.clamp(torch.matmul(self.floor_weights, sh_bgr), min=1e-4 * SHADING_FLOOR)  # (B, 3)
        return torch.maximum(e, floor[:, :, None, None])

    def bound_colour(self, ratio: torch.Tensor, sh_source: torch.Tensor, sh_target: torch.Tensor) -> torch.Tensor:
        """``relight.bound_colour`` on a (B, 3, H, W) BGR ratio with (B, 9, 3) RGB lights: each channel within
        ``COLOUR_SPREAD`` of the luminance's, relative to the lights' overall change of colour."""
        luma = self.luma[None, :, None, None]
        lum = torch.clamp((ratio * luma).sum(dim=1, keepdim=True), min=1e-6)
        mean_src = torch.matmul(self.mean_weights, torch.index_select(sh_source, 2, self.bgr))  # (B, 3) BGR
        mean_tgt = torch.matmul(self.mean_weights, torch.index_select(sh_target, 2, self.bgr))
        overall = mean_tgt / torch.clamp(mean_src, min=1e-9)
        overall = (overall / torch.clamp((overall * self.luma).sum(dim=1, keepdim=True), min=1e-9))[:, :, None, None]
        colour = torch.minimum(torch.maximum(ratio / lum, overall / COLOUR_SPREAD), overall * COLOUR_SPREAD)
        return colour * (lum / torch.clamp((colour * luma).sum(dim=1, keepdim=True), min=1e-6))

    def example_inputs(self, batch: int = 1, height: int = 96, width: int = 80) -> tuple[torch.Tensor, ...]:
        """Deterministic plausible inputs (a lit sphere of normals, two lights) in ``input_names`` order."""
        gen = torch.Generator().manual_seed(0)
        ys, xs = torch.meshgrid(torch.linspace(-0.9, 0.9, height), torch.linspace(-0.9, 0.9, width), indexing="ij")
        zs = torch.sqrt(torch.clamp(1.0 - xs * xs - ys * ys, min=0.0))
        n = torch.stack([xs, -ys, zs], dim=0)
        n = n / torch.clamp(n.norm(dim=0, keepdim=True), min=1e-6)
        src = torch.tensor(directional_sh((0.3, 0.2, 1.0), 1.0, (1.0, 0.9, 0.8), 0.3), dtype=torch.float32)
        tgt = torch.tensor(directional_sh((-0.7, 0.3, 0.6), 1.2, (0.9, 0.9, 1.0), 0.2), dtype=torch.float32)
        values = {
            "image": torch.rand(batch, 3, height, width, generator=gen) * 0.6 + 0.2,
            "normals": n.expand(batch, 3, height, width).contiguous(),
            "mask": (zs > 0.1).float().expand(batch, 1, height, width).contiguous(),
            "sh_source": src.expand(batch, SH_COUNT, 3).contiguous(),
            "sh_target": tgt.expand(batch, SH_COUNT, 3).contiguous(),
            "albedo": torch.rand(batch, 3, height, width, generator=gen) * 0.5 + 0.5,
        }
        return tuple(values[name] for name in self.input_names)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Faces, height and width vary; the SH inputs vary in faces only."""
        axes: dict[str, dict[int, str]] = {}
        for name in (*self.input_names, *self.output_names):
            axes[name] = {0: "faces"} if name.startswith("sh_") else {0: "faces", 2: "height", 3: "width"}
        return axes


class SHRelight(_SHRelightBase):
    """The per-pixel ratio relight as a torch module: CPU, CUDA, and ONNX export (opset 17) for TensorRT.

    Inputs (float32, NCHW, B faces): ``image`` (B, 3, H, W) sRGB 0..1 in BGR order; ``normals`` (B, 3, H, W)
    camera-frame unit normals; ``mask`` (B, 1, H, W) 0..1; ``sh_source`` and ``sh_target`` (B, 9, 3) RGB
    shading SH. Output ``relit`` (B, 3, H, W) sRGB 0..1 BGR: ``relight_face`` with per-pixel normals
    (``shading_grid_px=None``) within one 8-bit level.
    """

    input_names = ("image", "normals", "mask", "sh_source", "sh_target")

    def __init__(self, max_gain: float = MAX_GAIN) -> None:
        super().__init__()
        self.max_gain = max_gain

    def forward(
        self,
        image: torch.Tensor,
        normals: torch.Tensor,
        mask: torch.Tensor,
        sh_source: torch.Tensor,
        sh_target: torch.Tensor,
    ) -> torch.Tensor:
        b, _, h, w = image.shape
        basis = self.basis(normals).reshape(b, SH_COUNT, h * w).transpose(1, 2)  # (B, HW, 9)
        e_tgt = self.shade(basis, sh_target, b, h, w)
        e_src = self.shade(basis, sh_source, b, h, w)
        gain = torch.clamp(self.bound_colour(e_tgt / e_src, sh_source, sh_target), 0.0, self.max_gain)
        blended = 1.0 + torch.clamp(mask, 0.0, 1.0) * (gain - 1.0)  # the mask blends in linear light
        return _linear_to_srgb_t(_srgb_to_linear_t(image) * blended)


class SHRelightAlbedo(_SHRelightBase):
    """The per-pixel relight of a swapped-in albedo, ``albedo * E_target(n)``, as a torch module.

    Inputs: ``image`` (B, 3, H, W) sRGB 0..1 BGR (what shows outside the mask), ``normals``, ``mask``,
    ``sh_target`` as in ``SHRelight``, and ``albedo`` (B, 3, H, W) linear BGR. Output ``relit``.
    """

    input_names = ("image", "normals", "mask", "sh_target", "albedo")

    def forward(
        self,
        image: torch.Tensor,
        normals: torch.Tensor,
        mask: torch.Tensor,
        sh_target: torch.Tensor,
        albedo: torch.Tensor,
    ) -> torch.Tensor:
        b, _, h, w = image.shape
        basis = self.basis(normals).reshape(b, SH_COUNT, h * w).transpose(1, 2)
        lin_in = _srgb_to_linear_t(image)
        relit = albedo * self.shade(basis, sh_target, b, h, w)
        return _linear_to_srgb_t(lin_in + torch.clamp(mask, 0.0, 1.0) * (relit - lin_in))


def _srgb_to_linear_t(x: torch.Tensor) -> torch.Tensor:
    x = torch.clamp(x, 0.0, 1.0)
    return torch.where(x <= 0.04045, x / 12.92, torch.pow((torch.clamp(x, min=0.04045) + 0.055) / 1.055, 2.4))


def _linear_to_srgb_t(x: torch.Tensor) -> torch.Tensor:
    x = torch.clamp(x, 0.0, 1.0)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * torch.pow(torch.clamp(x, min=0.0031308), 1.0 / 2.4) - 0.055)


__all__ = ["SHRelight", "SHRelightAlbedo"]
