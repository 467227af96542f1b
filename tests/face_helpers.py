"""Helpers for the swap tests: meshes of the shared photos, measured with the real detector and mesh."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engines.face.detect import FaceDetector
from engines.face.landmarks import FaceMesh, roi_from_detection, roi_from_landmarks


def photo_mesh(detector: FaceDetector, mesh: FaceMesh, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The image and the (468, 3) landmarks of the largest face in a shared photo."""
    image = cv2.imread(str(path))
    assert image is not None, path
    dets = sorted(detector.detect(image), key=lambda d: d.width * d.height, reverse=True)
    assert dets, f"no face in {path}"
    first = mesh.infer(image, roi_from_detection(dets[0]))
    return image, mesh.infer(image, roi_from_landmarks(first.landmarks)).landmarks


def enrolled_store(root: Path, faces: Path, models_dir: Path, names: tuple[str, ...] = ("s1.jpg",)):  # type: ignore[no-untyped-def]
    """An IdentityStore at ``root`` with the given shared photos enrolled (named after the file stem)."""
    from engines.identity.store import IdentityStore

    store = IdentityStore(root, models_dir)
    for name in names:
        store.enroll(Path(name).stem.replace("_", "-").lower(), [faces / name], face="largest")
    return store


def clip_frames(path: Path, count: int) -> list[tuple[np.ndarray, float]]:
    """The first ``count`` frames of a clip with their times."""
    from streamer.record.media import VideoReader

    out = []
    with VideoReader(path) as reader:
        for frame in reader.frames():
            out.append((frame.image, frame.time_s))
            if len(out) >= count:
                break
    return out
