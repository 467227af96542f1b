"""Geometry shared by the engines: rotated crops, affine transforms and point mapping.

Conventions: images are H x W x 3 uint8 BGR (OpenCV order); points are float32 (x, y[, z]) in pixels of
the image they belong to; a 2x3 affine ``M`` maps source pixels to destination pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Window:
    """A pixel rectangle: origin ``(x0, y0)`` and size ``width`` x ``height``."""

    x0: int
    y0: int
    width: int
    height: int

    @property
    def slices(self) -> tuple[slice, slice]:
        """Row and column slices of this window in the image it was taken from."""
        return slice(self.y0, self.y0 + self.height), slice(self.x0, self.x0 + self.width)


@dataclass(frozen=True)
class RotatedRect:
    """A square region of interest: centre (px), side (px) and rotation (radians, counter-clockwise)."""

    cx: float
    cy: float
    size: float
    angle: float

    def to_crop(self, out_size: int) -> np.ndarray:
        """The 2x3 affine mapping image pixels into an ``out_size`` square crop of this region, upright."""
        scale = out_size / self.size
        cos, sin = math.cos(self.angle), math.sin(self.angle)
        # Rotate by -angle about the centre (undo the face's roll), scale, then move the centre to the crop centre.
        a, b = scale * cos, scale * sin
        half = out_size / 2.0
        return np.array(
            [[a, b, half - a * self.cx - b * self.cy], [-b, a, half + b * self.cx - a * self.cy]],
            dtype=np.float64,
        )


def invert_affine(m: np.ndarray) -> np.ndarray:
    return cv2.invertAffineTransform(m.astype(np.float64))


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Map (N, 2) or (N, 3) points by a 2x3 affine; a z column is scaled by the affine's scale."""
    out = pts.astype(np.float32).copy()
    xy = pts[:, :2].astype(np.float64)
    out[:, :2] = xy @ m[:, :2].T + m[:, 2]
    if pts.shape[1] > 2:
        out[:, 2] = pts[:, 2] * affine_scale(m)
    return out


def affine_scale(m: np.ndarray) -> float:
    """Uniform scale of a similarity transform."""
    return float(math.sqrt(abs(np.linalg.det(m[:, :2]))))


def crop(image: np.ndarray, m: np.ndarray, out_size: int) -> np.ndarray:
    """Warp ``image`` by affine ``m`` into an ``out_size`` square; outside the frame is black."""
    return cv2.warpAffine(
        image, m, (out_size, out_size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )


def roll_angle(left: np.ndarray, right: np.ndarray) -> float:
    """Angle (radians) of the line from the subject's right eye (image left) to the left eye (image right)."""
    return math.atan2(float(right[1] - left[1]), float(right[0] - left[0]))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x1, y1, x2, y2) boxes."""
    ix1, iy1 = max(a[0], b[0]), max(a[1], b[1])
    ix2, iy2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, ix2 - ix1) * max(0.0, iy2 - iy1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def points_box(pts: np.ndarray) -> np.ndarray:
    """Axis-aligned (x1, y1, x2, y2) box around (N, >=2) points."""
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()], dtype=np.float32)


def similarity_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation (D, D), translation (D,)) taking the points ``src`` (N, D) closest to ``dst`` (N, D),
    least squares: Umeyama's closed form, never a reflection. Every point counts (no RANSAC), so a fit does not
    jump between inlier sets from one frame to the next. Scale 0 when ``src``'s points coincide; the callers
    say what that means for them."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = s.mean(axis=0), d.mean(axis=0)
    sc, dc = s - mu_s, d - mu_d
    u, sig, vt = np.linalg.svd(dc.T @ sc)
    sign = np.ones(len(sig))
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1.0
    rot = (u * sign) @ vt
    var_s = float((sc**2).sum())
    scale = float((sig * sign).sum()) / var_s if var_s > 0.0 else 0.0
    return scale, rot, mu_d - scale * rot @ mu_s
