"""What a swap model is trained to minimise: masked DSSIM + MSE, extra weight on eyes and mouth, the mask.

Per person and sample (DeepFaceLab's recipe from its paper, written here from the description):

- the face is compared only inside its (slightly blurred) face mask, so background and hair cost nothing;
- ``DSSIM`` (structure: edges, texture) and ``MSE`` (colour, level) both count, weighted equally;
- the eyes and mouth, where a face is recognised and where expression shows, add an absolute-error term of
  their own (``eyes_mouth_weight``), so the model does not trade them for the easy skin;
- the predicted mask is trained against the mesh's face mask (MSE), so the exported model says itself
  where its face is.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class LossConfig:
    dssim_weight: float = 10.0
    mse_weight: float = 10.0
    eyes_mouth_weight: float = 30.0
    mask_weight: float = 10.0
    reach_outline: bool = True
    """The face mask grown and blurred by 1/32 of the side, so the loss reaches just past the mesh's outline: an
    autoencoder draws the whole crop and must get the outline right. Off for the neural renderer, which draws
    only where the mesh is: past the outline it would teach the texels at the rim the wall behind the face."""


@functools.cache
def _gaussian(size: int, sigma: float, device: str, dtype: torch.dtype) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = (g / g.sum()).to(dtype)
    return (g[:, None] * g[None, :]).expand(3, 1, size, size).contiguous().to(device)


def dssim(a: torch.Tensor, b: torch.Tensor, window: int) -> torch.Tensor:
    """(1 - SSIM) / 2 per sample (N,), images (N, 3, H, W) in 0..1, Gaussian window of ``window`` px."""
    window = max(3, window | 1)
    k = _gaussian(window, window / 6.0, str(a.device), a.dtype)
    pad = window // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (pad, pad, pad, pad), mode="reflect"), k, groups=3)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ((1.0 - ssim) / 2.0).mean(dim=(1, 2, 3))


def face_loss(
    pred: torch.Tensor,
    pred_mask: torch.Tensor,
    target: torch.Tensor,
    masks: torch.Tensor,
    cfg: LossConfig,
) -> torch.Tensor:
    """Mean loss of a batch: ``pred``/``target`` (N, 3, R, R), ``pred_mask`` (N, 1, R, R), ``masks``
    (N, 3, R, R) = (face, eyes, mouth) in 0..1 as the batch was augmented."""
    res = target.shape[-1]
    face = masks[:, 0:1]
    soft = _soften(face, max(1, res // 32)) if cfg.reach_outline else face
    features = _grow(masks[:, 1:3].amax(dim=1, keepdim=True), max(1, res // 24))
    p, t = pred * soft, target * soft
    loss = cfg.dssim_weight * dssim(p, t, max(3, res // 11))
    loss = loss + cfg.mse_weight * ((p - t) ** 2).mean(dim=(1, 2, 3))
    loss = loss + cfg.eyes_mouth_weight * ((pred - target).abs() * features).mean(dim=(1, 2, 3))
    loss = loss + cfg.mask_weight * ((pred_mask - face) ** 2).mean(dim=(1, 2, 3))
    return loss.mean()


def _soften(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """The mask grown by ``radius`` px and blurred as much: the loss reaches just past the mesh's outline."""
    grown = _grow(mask, radius)
    k = 2 * radius + 1
    return F.avg_pool2d(F.pad(grown, (radius,) * 4, mode="replicate"), k, stride=1)


def _grow(mask: torch.Tensor, radius: int) -> torch.Tensor:
    k = 2 * radius + 1
    return F.max_pool2d(F.pad(mask, (radius,) * 4, mode="replicate"), k, stride=1)
