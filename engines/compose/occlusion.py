"""The person around each face (MediaPipe's selfie segmentation), and what in front of a face is not the person.

The blend must not paint the swapped face over a microphone, a cup or the set behind a turned head
where the mesh overhangs the silhouette. The selfie segmentation model gives a person probability per
pixel; it runs on a head-and-shoulders square around the face (the framing it was trained on), and the
result is mapped back into the face's window. The model costs about 8 ms on one CPU core, so each face
is segmented every ``every`` frames and the last mask — kept in frame coordinates — is reused between.
A hand is part of the person to this model; the swap cannot tell a hand in front of the face from
the face with it.

The same segmentation serves the relighting of the whole person (``engines.light.person``): ``PersonMasks``
segments each face's square once every ``every`` frames, and between those frames moves the last result
with the face's box (so a head turning or walking drags its silhouette along); the occlusion and the
relight read the same result.
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


@dataclass(frozen=True)
class PersonRegion:
    """The person probability on a square around one face, and where that square is in the frame."""

    prob: np.ndarray
    """(256, 256) float32 0..1."""
    to_grid: np.ndarray
    """(3, 3) affine: frame pixels -> ``prob`` pixels (moved with the face since it was segmented)."""

    def bounds(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the square in frame pixels."""
        inv = np.linalg.inv(self.to_grid)
        corners = np.array(
            [[0.0, 0.0, 1.0], [INPUT_SIZE, 0.0, 1.0], [0.0, INPUT_SIZE, 1.0], [INPUT_SIZE, INPUT_SIZE, 1.0]]
        )
        pts = corners @ inv.T
        return float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max())

    def sample(self, window: Window, size: tuple[int, int] | None = None, outside: float = 1.0) -> np.ndarray:
        """(h, w) float32 person probability over ``window`` (frame pixels), on a grid of ``size`` (width,
        height; default the window's own pixels) whose cell centres line up with ``cv2.resize``'s;
        ``outside`` where the window leaves the square."""
        gw, gh = size or (window.width, window.height)
        sx, sy = gw / window.width, gh / window.height
        grid_to_frame = np.array(
            [[1.0 / sx, 0.0, 0.5 / sx - 0.5 + window.x0], [0.0, 1.0 / sy, 0.5 / sy - 0.5 + window.y0], [0.0, 0.0, 1.0]]
        )
        m = (self.to_grid @ grid_to_frame)[:2]
        return cv2.warpAffine(
            self.prob,
            m,
            (gw, gh),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=outside,
        )


class PersonMasks:
    """Per face, the person around it: segmented every ``every`` frames, moved with the face's box between."""

    def __init__(self, segmenter: PersonSegmenter, every: int = 4) -> None:
        if every < 1:
            raise ValueError("every must be at least 1")
        self.segmenter = segmenter
        self.every = every
        # id -> (frame it was segmented on, frame last asked for, prob, frame->grid 3x3, box centre x, y, size)
        self._last: dict[int, tuple[int, int, np.ndarray, np.ndarray, float, float, float]] = {}
        self._frame = 0

    def next_frame(self) -> None:
        """A new frame begins: a face asked for twice in one frame (occlusion and relight) is segmented once."""
        self._frame += 1

    def forget(self, active_ids: set[int]) -> None:
        for face_id in [i for i in self._last if i not in active_ids]:
            del self._last[face_id]

    def around(self, image: np.ndarray, face_id: int, box: np.ndarray) -> PersonRegion:
        """The person probability on the head-and-shoulders square of the face in ``box`` (x1, y1, x2, y2)."""
        cx, cy = (float(box[0]) + float(box[2])) / 2, (float(box[1]) + float(box[3])) / 2
        side = CONTEXT * max(float(box[2] - box[0]), float(box[3] - box[1]), 1.0)
        entry = self._last.get(face_id)
        if entry is None or (entry[1] != self._frame and self._frame - entry[0] >= self.every):
            prob, m = self.segmenter.segment(image, RotatedRect(cx, cy + 0.15 * side, side, 0.0))
            entry = (self._frame, self._frame, prob, np.vstack([m, [0.0, 0.0, 1.0]]), cx, cy, side)
        else:
            entry = (entry[0], self._frame, *entry[2:])
        self._last[face_id] = entry
        _, _, prob, m3, cx0, cy0, side0 = entry
        # Frame pixels now -> where they were when segmented (the box's move and scale), then -> the grid.
        k = side0 / side
        moved = np.array([[k, 0.0, cx0 - k * cx], [0.0, k, cy0 - k * cy], [0.0, 0.0, 1.0]])
        return PersonRegion(prob, m3 @ moved)


class OcclusionMasks:
    """Per-face visibility masks for one stream, from the person around each face (``PersonMasks``)."""

    def __init__(self, masks: PersonMasks | PersonSegmenter, config: OcclusionConfig | None = None) -> None:
        self.config = config or OcclusionConfig()
        self.masks = masks if isinstance(masks, PersonMasks) else PersonMasks(masks, self.config.every)

    def forget(self, active_ids: set[int]) -> None:
        self.masks.forget(active_ids)

    def visibility(
        self, image: np.ndarray, face_id: int, box: np.ndarray, window: Window, size: tuple[int, int] | None = None
    ) -> np.ndarray:
        """(h, w) float32 0..1 for ``window``: 0 where something that is not the person covers the face; on a grid of
        ``size`` (width, height) over the window (default: the window's pixels)."""
        cfg = self.config
        out = self.masks.around(image, face_id, box).sample(window, size, outside=1.0)
        t = np.clip((out - cfg.low) / max(cfg.high - cfg.low, 1e-6), 0.0, 1.0)
        return (t * t * (3.0 - 2.0 * t)).astype(np.float32)
