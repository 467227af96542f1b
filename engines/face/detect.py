"""Face detection with YuNet on a downscaled frame: boxes and 5 keypoints in frame pixels.

YuNet runs through the runtime seam (ONNX Runtime on the CPU) with its raw anchor-free outputs decoded
here, so the same code serves TensorRT later. Detection is the expensive, occasional step: the tracker
calls it every N frames or when it loses a face, on a frame scaled to ``input_width`` pixels wide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from engines.runtime import Session

STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class Detection:
    """One detected face. ``points`` are the 5 keypoints in YuNet order: right eye, left eye (of the subject,
    i.e. image left then image right), nose tip, right mouth corner, left mouth corner."""

    box: np.ndarray  # (4,) x1, y1, x2, y2 in frame pixels
    points: np.ndarray  # (5, 2) in frame pixels
    score: float

    @property
    def width(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def height(self) -> float:
        return float(self.box[3] - self.box[1])


class FaceDetector:
    """YuNet on a frame downscaled to ``input_width`` (rounded up to a multiple of 32, padded)."""

    def __init__(
        self,
        session: Session,
        input_width: int = 320,
        score_threshold: float = 0.6,
        nms_threshold: float = 0.3,
        top_k: int = 50,
    ) -> None:
        if input_width < 32:
            raise ValueError("input_width must be at least 32")
        self.session = session
        self.input_width = int(input_width)
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.top_k = int(top_k)
        self._input_name = session.inputs[0].name
        self._grids: dict[tuple[int, int], list[np.ndarray]] = {}

    def _grid(self, height: int, width: int) -> list[np.ndarray]:
        key = (height, width)
        if key not in self._grids:
            grids = []
            for s in STRIDES:
                rows, cols = height // s, width // s
                yy, xx = np.mgrid[0:rows, 0:cols]
                grids.append(np.stack([xx.ravel(), yy.ravel()], axis=1).astype(np.float32))
            self._grids[key] = grids
        return self._grids[key]

    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in a BGR uint8 image, best first, in the image's pixel coordinates."""
        h, w = image.shape[:2]
        scale = min(1.0, self.input_width / w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        small = cv2.resize(image, (sw, sh), interpolation=cv2.INTER_AREA) if scale < 1.0 else image
        pw, ph = -(-sw // 32) * 32, -(-sh // 32) * 32
        blob = np.zeros((1, 3, ph, pw), dtype=np.float32)
        blob[0, :, :sh, :sw] = small.transpose(2, 0, 1)
        out = self.session.run({self._input_name: blob})
        boxes, points, scores = [], [], []
        for stride, grid in zip(STRIDES, self._grid(ph, pw), strict=True):
            cls = out[f"cls_{stride}"][0, :, 0]
            obj = out[f"obj_{stride}"][0, :, 0]
            score = np.sqrt(np.clip(cls, 0, 1) * np.clip(obj, 0, 1))
            keep = np.nonzero(score >= self.score_threshold)[0]
            if keep.size == 0:
                continue
            bbox = out[f"bbox_{stride}"][0, keep]
            kps = out[f"kps_{stride}"][0, keep].reshape(-1, 5, 2)
            cell = grid[keep]
            centre = (cell + bbox[:, :2]) * stride
            size = np.exp(bbox[:, 2:4]) * stride
            boxes.append(np.concatenate([centre - size / 2, centre + size / 2], axis=1))
            points.append((kps + cell[:, None, :]) * stride)
            scores.append(score[keep])
        if not scores:
            return []
        all_boxes = np.concatenate(boxes) / scale
        all_points = np.concatenate(points) / scale
        all_scores = np.concatenate(scores)
        xywh = [[float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])] for b in all_boxes]
        keep_idx = cv2.dnn.NMSBoxes(
            xywh, all_scores.tolist(), self.score_threshold, self.nms_threshold, top_k=self.top_k
        )
        result = [
            Detection(all_boxes[i].astype(np.float32), all_points[i].astype(np.float32), float(all_scores[i]))
            for i in np.asarray(keep_idx).reshape(-1)
        ]
        result.sort(key=lambda d: d.score, reverse=True)
        return result


def held_boxes(detector: FaceDetector) -> Callable[[np.ndarray], np.ndarray]:
    """A function giving each frame's face boxes in turn ((n, 4) float32 x0, y0, x1, y1), as the tracker gives them to
    the mark stage: the detector's on that frame, the last boxes found held where it finds none (a reader of a marked
    stream weighs the faces' cells by what was drawn there: ``engines.compose.watermark``)."""
    last = np.zeros((0, 4), np.float32)

    def find(image: np.ndarray) -> np.ndarray:
        nonlocal last
        found = detector.detect(image)
        if found:
            last = np.stack([np.asarray(d.box, np.float32) for d in found])
        return last

    return find
