"""Training batches from a faceset: random pose jitter, random warp of the input, colour augmentation.

All of it is torch on the training device (one ``grid_sample`` per batch), and every random number comes
from one CPU ``torch.Generator`` the trainer owns and checkpoints, so a resumed run draws exactly the
batches the uninterrupted run would have drawn, on any device.

- **Pose jitter** (input and target alike): a small random rotation, scale and shift, and for the actor a
  mirror image half of the time: more poses than the footage holds.
- **Random warp** (input only): a smooth random displacement (a coarse grid of offsets, upsampled), so the
  model learns to draw a clean face from a distorted one, and cannot just copy pixels through.
- **Colour** (input and target alike): for the src person, half of the samples take the colour statistics
  of a random actor face inside the face mask (a per-channel mean and spread transfer in YCbCr), so the
  src decoder learns to draw the src face in the actor's colour and light; everyone gets a little random
  brightness, contrast and saturation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from engines.train.faceset import Faceset


@dataclass(frozen=True)
class AugmentConfig:
    rotate_deg: float = 8.0
    scale: float = 0.05
    shift: float = 0.04
    """Fraction of the crop side."""
    flip: float = 0.0
    """Probability of a mirror image."""
    warp: float = 0.045
    """Standard deviation of the random warp's offsets, as a fraction of the crop side."""
    warp_cells: int = 5
    colour_transfer: float = 0.0
    """Probability that a sample takes a random reference face's colour statistics."""
    jitter: float = 0.06
    """Brightness / contrast / saturation jitter amplitude."""


SRC_AUGMENT = AugmentConfig(flip=0.0, colour_transfer=0.5)
DST_AUGMENT = AugmentConfig(flip=0.5, colour_transfer=0.0)

_TO_YCC = torch.tensor([[0.114, 0.587, 0.299], [0.5, -0.331264, -0.168736], [-0.081312, -0.418688, 0.5]])
"""BGR -> (Y, Cb, Cr), offsets left out (they cancel in a mean/spread transfer)."""
_FROM_YCC = torch.linalg.inv(_TO_YCC)


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """(N, R, R, C) uint8 -> (N, C, R, R) uint8 on ``device`` (kept small; batches convert to float)."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).to(device)


class FaceBatches:
    """Draws augmented batches of one person's faces."""

    def __init__(
        self,
        faceset: Faceset,
        device: torch.device,
        augment: AugmentConfig,
        colour_refs: Faceset | None = None,
    ) -> None:
        self.size = len(faceset)
        self.res = faceset.images.shape[1]
        self.device = device
        self.augment = augment
        self.images = to_tensor(faceset.images, device)
        self.masks = to_tensor(faceset.masks, device)
        self.refs: tuple[torch.Tensor, torch.Tensor] | None = None
        if colour_refs is not None and augment.colour_transfer > 0:
            self.refs = _colour_stats(to_tensor(colour_refs.images, device), to_tensor(colour_refs.masks, device))

    def sample(self, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(warped input, target, masks): float32 (n, 3, R, R) 0..1 each, on the device."""
        a = self.augment
        idx = torch.randint(0, self.size, (n,), generator=gen)
        rot = (torch.rand(n, generator=gen) * 2 - 1) * math.radians(a.rotate_deg)
        scale = 1 + (torch.rand(n, generator=gen) * 2 - 1) * a.scale
        shift = (torch.rand(n, 2, generator=gen) * 2 - 1) * a.shift * 2  # grid units span 2 per side
        flip = torch.rand(n, generator=gen) < a.flip
        offsets = torch.randn(n, 2, a.warp_cells, a.warp_cells, generator=gen) * a.warp * 2
        ref = torch.randint(0, 1 << 30, (n,), generator=gen)
        transfer = torch.rand(n, generator=gen) < a.colour_transfer
        jitter = (torch.rand(n, 3, generator=gen) * 2 - 1) * a.jitter

        dev = self.device
        images = self.images[idx.to(dev)].float() / 255.0
        masks = self.masks[idx.to(dev)].float() / 255.0
        cos, sin = torch.cos(rot) / scale, torch.sin(rot) / scale
        sx = torch.where(flip, -1.0, 1.0)
        theta = torch.stack(
            [torch.stack([cos * sx, -sin, shift[:, 0]], dim=1), torch.stack([sin * sx, cos, shift[:, 1]], dim=1)],
            dim=1,
        ).to(dev)
        grid = F.affine_grid(theta, [n, 3, self.res, self.res], align_corners=False)
        warp = F.interpolate(offsets.to(dev), size=(self.res, self.res), mode="bicubic", align_corners=True)
        both = torch.cat([images, masks], dim=1)
        target = F.grid_sample(both, grid, mode="bilinear", padding_mode="border", align_corners=False)
        warped = F.grid_sample(
            images, grid + warp.permute(0, 2, 3, 1), mode="bilinear", padding_mode="border", align_corners=False
        )
        target_img, target_masks = target[:, :3], target[:, 3:]
        if self.refs is not None:
            means, stds = self.refs
            pick = (ref % means.shape[0]).to(dev)
            m, s = _masked_stats(_ycc(target_img), target_masks[:, :1])
            use = transfer.to(dev)[:, None, None, None]
            # One mapping per sample, measured on the target, applied to input and target alike.
            target_img, warped = (
                torch.where(use, _bgr((_ycc(x) - m) / s * stds[pick] + means[pick]), x) for x in (target_img, warped)
            )
        target_img, warped = (_jitter(x, jitter.to(dev)) for x in (target_img, warped))
        return warped.clamp(0, 1), target_img.clamp(0, 1), target_masks


def _ycc(x: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _TO_YCC.to(x.device, x.dtype), x)


def _bgr(y: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,njhw->nihw", _FROM_YCC.to(y.device, y.dtype), y)


def _masked_stats(y: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = mask / mask.sum(dim=(2, 3), keepdim=True).clamp_min(1.0)
    mean = (y * w).sum(dim=(2, 3), keepdim=True)
    std = (((y - mean) ** 2) * w).sum(dim=(2, 3), keepdim=True).clamp_min(1e-6).sqrt()
    return mean, std


def _colour_stats(images: torch.Tensor, masks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per reference face: YCbCr mean and spread inside its face mask, (M, 3, 1, 1) each."""
    means, stds = [], []
    for start in range(0, images.shape[0], 64):
        y = _ycc(images[start : start + 64].float() / 255.0)
        m, s = _masked_stats(y, masks[start : start + 64, :1].float() / 255.0)
        means.append(m)
        stds.append(s)
    return torch.cat(means), torch.cat(stds)


def _jitter(x: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """Brightness (j0), contrast (j1) and saturation (j2) changes of a few percent."""
    grey = x.mean(dim=1, keepdim=True)
    x = grey + (x - grey) * (1 + j[:, 2, None, None, None])
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (1 + j[:, 1, None, None, None])
    return x + j[:, 0, None, None, None]
