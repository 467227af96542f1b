"""The per-face resizes as torch ops: the same code on CPU tensors and on CUDA ones.

Mirrors of the cv2 resizes the per-face stages use, for the GPU path (issue 20, item 3):

- ``resize_linear`` — ``cv2.resize(..., INTER_LINEAR)``, as ``FaceGeometry.to_window`` and ``upsample`` use
  it (the masks, the normals and the face pasted up to the window): the same pixel-centre convention and
  edge clamping (torch's ``align_corners=False``);
- ``resize_nearest`` — ``cv2.INTER_NEAREST`` (the labels);
- ``shrink`` — ``engines.resample.shrink``, the one downscale to a face's working size: bilinear to a whole
  multiple of the target, then a k x k average (what ``INTER_AREA`` does for a whole factor).

Float images match cv2 to float rounding. For uint8 images cv2 interpolates in fixed point (11-bit weights)
and these ops in float32, rounded: they differ by at most one level at some pixels
(``tests/engines/test_torch_ops.py`` states and checks the bound).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _nchw(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(H, W) or (H, W, C) -> (1, C, H, W) float32, and whether the input had no channel axis."""
    flat = image.ndim == 2
    hwc = image[..., None] if flat else image
    return hwc.permute(2, 0, 1)[None].to(torch.float32), flat


def _back(nchw: torch.Tensor, like: torch.Tensor, flat: bool) -> torch.Tensor:
    """(1, C, h, w) float32 -> (h, w[, C]) in ``like``'s dtype (integers rounded half up, as cv2's fixed-point
    paths do, and saturated)."""
    out = nchw[0].permute(1, 2, 0)
    if not like.dtype.is_floating_point:
        info = torch.iinfo(like.dtype)
        out = torch.floor(out + 0.5).clamp(info.min, info.max)
    out = out.to(like.dtype)
    return out[..., 0] if flat else out


def resize_linear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` (H, W) or (H, W, C) resized to ``size`` = (width, height), bilinear; mirrors
    ``cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)`` (no antialiasing, as cv2)."""
    w, h = size
    x, flat = _nchw(image)
    return _back(F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False), image, flat)


def resize_nearest(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` (H, W) or (H, W, C) resized to ``size`` = (width, height), nearest; mirrors
    ``cv2.resize(image, size, interpolation=cv2.INTER_NEAREST)`` (source index ``floor(x * in / out)``).
    Values are carried exactly (any dtype, e.g. int8 labels)."""
    w, h = size
    rows = (torch.arange(h, device=image.device, dtype=torch.float64) * (image.shape[0] / h)).floor().long()
    cols = (torch.arange(w, device=image.device, dtype=torch.float64) * (image.shape[1] / w)).floor().long()
    return image[rows.clamp(max=image.shape[0] - 1)][:, cols.clamp(max=image.shape[1] - 1)]


def shrink(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``image`` (H, W) or (H, W, C) resized to ``size`` = (width, height) without aliasing; mirrors
    ``engines.resample.shrink``: the same size is a copy, a factor of 2 or more is a bilinear resize to
    ``k`` times the target and a k x k average, less is bilinear."""
    w, h = size
    if tuple(image.shape[:2]) == (h, w):
        return image.clone()
    k = int(min(image.shape[1] / w, image.shape[0] / h))
    if k < 2:
        return resize_linear(image, size)
    x, flat = _nchw(image)
    if tuple(image.shape[:2]) != (k * h, k * w):
        x = F.interpolate(x, size=(k * h, k * w), mode="bilinear", align_corners=False)
        if not image.dtype.is_floating_point:  # cv2 hands the intermediate on in the image's type
            info = torch.iinfo(image.dtype)
            x = torch.floor(x + 0.5).clamp(info.min, info.max)
    return _back(F.avg_pool2d(x, k), image, flat)
