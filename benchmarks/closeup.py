"""A close-up made from a shared clip: crop around the face so it fills a share of the frame height, then scale.

The shared clips show small to medium faces; on a stage the face is often most of the frame. Issue 20's
benchmarks make a medium close-up from a clip the way a camera operator would frame one: one fixed crop
(a camera does not follow the face frame by frame) centred on where the face is over the first frames, as
tall as ``face height / share`` and as wide as the output's aspect ratio, then scaled to the output size.
Where the clip is too small for that crop, the crop is as large as fits and the face fills more.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLOSEUP_SHARE = 0.6
"""The face's (detected box's) height as a share of the frame height (issue 20: about 60%)."""


@dataclass(frozen=True)
class Crop:
    x0: int
    y0: int
    width: int
    height: int

    def apply(self, image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """The crop of ``image`` scaled to ``size`` (width, height)."""
        part = image[self.y0 : self.y0 + self.height, self.x0 : self.x0 + self.width]
        grow = size[0] > self.width
        return cv2.resize(part, size, interpolation=cv2.INTER_CUBIC if grow else cv2.INTER_AREA)


def face_boxes(frames: list[np.ndarray], models: Path) -> np.ndarray:
    """(n, 4) x1, y1, x2, y2 of the largest detected face in each frame that has one."""
    from engines.face.detect import FaceDetector
    from engines.runtime import load_model
    from engines.runtime import models as registry

    detector = FaceDetector(load_model(registry.resolve("yunet", models), "cpu"), input_width=640)
    boxes = []
    for image in frames:
        found = detector.detect(image)
        if found:
            best = max(found, key=lambda d: d.width * d.height)
            boxes.append(np.asarray(best.box, dtype=np.float64))
    if not boxes:
        raise ValueError("no face found in the frames: no close-up can be framed")
    return np.stack(boxes)


def closeup_crop(frame_size: tuple[int, int], boxes: np.ndarray, aspect: float, share: float = CLOSEUP_SHARE) -> Crop:
    """The fixed crop of a ``frame_size`` (width, height) clip whose face (median of ``boxes``) fills ``share``
    of the crop's height, ``aspect`` (width / height) wide, moved (then shrunk) to lie inside the frame."""
    fw, fh = frame_size
    x1, y1, x2, y2 = np.median(boxes, axis=0)
    height = (y2 - y1) / share
    width = height * aspect
    scale = min(1.0, fw / width, fh / height)
    width, height = width * scale, height * scale
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + 0.1 * (y2 - y1)  # a little headroom above, shoulders below
    x0 = int(round(min(max(cx - width / 2, 0), fw - width)))
    y0 = int(round(min(max(cy - height / 2, 0), fh - height)))
    return Crop(x0, y0, int(width), int(height))
