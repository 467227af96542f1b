"""What in front of a face is not the person: MediaPipe's selfie segmentation around each face.

The blend must not paint the swapped face over a microphone, a cup or the set behind a turned head
where the mesh overhangs the silhouette. The selfie segmentation model gives a person probability per
pixel; it runs on a head-and-shoulders square around the face (the framing it was trained on), and the
result is mapped back into the face's window. The model costs about 8 ms on one CPU core, so each face
is segmented every ``every`` frames and the last mask — kept in frame coordinates — is reused between.
A hand is part of the person to this model; the swap cannot tell a hand in front of the face from
the face with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from engines.face.geometry import RotatedRect, crop
from engines.runtime import Session
from engines.swap.raster import Window

INPUT_SIZE = 256
CONTEXT = 2.2
"""Side of the segmented square in face-box sizes: head and shoulders."""


@dataclass(frozen=True)
class OcclusionConfig:
    every: int = 4
    """Segment each face every this many frames (1: every frame)."""
    low: float = 0.15
    high: float = 0.6
    """Person probability ramp: below ``low`` nothing is painted, above ``high`` everything."""


class PersonSegmenter:
    """The selfie segmentation model on one square region of a frame."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._input = session.inputs[0].name
        self._output = session.outputs[0].name

    def segment(self, image: np.ndarray, region: RotatedRect) -> tuple[np.ndarray, np.ndarray]:
        """Person probability (256, 256) float32 of ``region`` and the affine mapping frame -> that grid."""
        m = region.to_crop(INPUT_SIZE)
        patch = crop(image, m, INPUT_SIZE)
        x = (patch[:, :, ::-1].astype(np.float32) * (1.0 / 255.0))[None]
        prob = self.session.run({self._input: x})[self._output].reshape(INPUT_SIZE, INPUT_SIZE)
        return np.clip(prob, 0.0, 1.0).astype(np.float32), m


class OcclusionMasks:
    """Per-face visibility masks for one stream (segmenting every ``config.every`` frames per face)."""

    def __init__(self, segmenter: PersonSegmenter, config: OcclusionConfig | None = None) -> None:
        self.segmenter = segmenter
        self.config = config or OcclusionConfig()
        self._last: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # id -> (age in frames, prob, affine)

    def forget(self, active_ids: set[int]) -> None:
        for face_id in [i for i in self._last if i not in active_ids]:
            del self._last[face_id]

    def visibility(self, image: np.ndarray, face_id: int, box: np.ndarray, window: Window) -> np.ndarray:
        """(h, w) float32 0..1 for ``window``: 0 where something that is not the person covers the face."""
        cfg = self.config
        entry = self._last.get(face_id)
        if entry is None or entry[0] + 1 >= cfg.every:
            cx, cy = (float(box[0]) + float(box[2])) / 2, (float(box[1]) + float(box[3])) / 2
            side = CONTEXT * max(float(box[2] - box[0]), float(box[3] - box[1]))
            prob, m = self.segmenter.segment(image, RotatedRect(cx, cy + 0.15 * side, side, 0.0))
            entry = (0, prob, m)
        else:
            entry = (entry[0] + 1, entry[1], entry[2])
        self._last[face_id] = entry
        _, prob, m = entry
        # The grid -> window mapping: shift the frame -> grid affine by the window origin, then invert.
        shift = np.array([[1.0, 0.0, window.x0], [0.0, 1.0, window.y0], [0.0, 0.0, 1.0]])
        to_grid = m @ shift
        out = cv2.warpAffine(
            prob,
            to_grid,
            (window.width, window.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=1.0,
        )
        t = np.clip((out - cfg.low) / max(cfg.high - cfg.low, 1e-6), 0.0, 1.0)
        return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
