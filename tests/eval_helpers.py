"""The evaluation-only landmark model for tests that measure the same frames more than once."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from benchmarks.quality_metrics import Landmarks68


class RememberingLandmarks68(Landmarks68):
    """PFLD whose answer for a (frame, square) is kept: a test that measures its input frames in several
    reports (or an unprocessed clip as its own output) runs the model once per frame instead of again for
    each (about 60 ms a call on the development VM). The model is deterministic, so every measure is the same."""

    def __init__(self, model_path: Path) -> None:
        super().__init__(model_path)
        self._seen: dict[tuple[bytes, tuple[int, ...], tuple[float, float, float]], np.ndarray] = {}

    def __call__(self, image_bgr: np.ndarray, square: tuple[float, float, float]) -> np.ndarray:
        digest = hashlib.blake2b(np.ascontiguousarray(image_bgr).data, digest_size=16).digest()
        key = (digest, image_bgr.shape, tuple(square))
        if key not in self._seen:
            self._seen[key] = super().__call__(image_bgr, square)
        return self._seen[key].copy()
