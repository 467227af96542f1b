"""Helpers for the swap tests: meshes of the shared photos, measured with the real detector and mesh."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.detect import FaceDetector
from engines.landmarks import FaceMesh, roi_from_detection, roi_from_landmarks


def photo_mesh(detector: FaceDetector, mesh: FaceMesh, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image and the (468, 3) landmarks of the largest face in a shared photo."""
    image = cv2.imread(str(path))
    assert image is not None, path
    dets = sorted(detector.detect(image), key=lambda d: d.width * d.height, reverse=True)
    assert dets, f"no face in {path}"
    first = mesh.infer(image, roi_from_detection(dets[0]))
    return image, mesh.infer(image, roi_from_landmarks(first.landmarks)).landmarks
