"""Face tracking: detect occasionally, follow every face with the mesh, keep ids stable, smooth.

Per frame, each tracked face gets its crop from the previous frame's (unsmoothed) landmarks and one
mesh pass; a face whose mesh presence drops below the threshold is dropped. Detection runs every
``detect_every`` frames, on the frame a face was lost, and on every frame while no face is tracked;
its boxes that no track covers start new tracks. A face re-acquired where a track was lost a moment
ago (a turned head, a hand passing) gets its old id back, so ids stay stable while a face stays in
view. Smoothing is applied to what is reported, never to what the next crop is computed from, so it
adds no lag to tracking.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from engines.face.detect import Detection, FaceDetector
from engines.face.geometry import RotatedRect, box_iou, points_box
from engines.face.landmarks import (
    FaceMesh,
    MeshResult,
    five_points,
    head_pose,
    interocular,
    roi_from_detection,
    roi_from_landmarks,
)
from engines.face.smoothing import LandmarkSmoother, OneEuroConfig
from engines.stats import timed


@dataclass(frozen=True)
class TrackerConfig:
    max_faces: int = 4
    detect_every: int = 10
    """Frames between detections while every face is tracked."""
    presence_threshold: float = 0.5
    """Mesh face-presence probability below which a track is dropped."""
    min_face_px: float = 24.0
    """Detections narrower than this are ignored (too small to mesh usefully)."""
    duplicate_iou: float = 0.5
    """Two tracks overlapping more than this are the same face; the younger is dropped."""
    reacquire_frames: int = 15
    """A face found again within this many frames where a track was lost keeps that track's id."""
    reacquire_iou: float = 0.3
    smoothing: OneEuroConfig = field(default_factory=OneEuroConfig)


@dataclass(frozen=True)
class TrackedFace:
    """A face in one frame, as the engines after tracking see it."""

    id: int
    landmarks: np.ndarray  # (468, 3) float32, smoothed, frame pixels
    raw_landmarks: np.ndarray  # (468, 3) float32, as the model gave them
    presence: float
    box: np.ndarray  # (4,) x1, y1, x2, y2 of the smoothed landmarks
    points5: np.ndarray  # (5, 2) from the smoothed landmarks
    pose_deg: tuple[float, float, float]  # yaw, pitch, roll
    age: int  # frames since the track started
    roi: RotatedRect


@dataclass
class _Track:
    id: int
    raw: np.ndarray
    presence: float
    roi: RotatedRect
    smoother: LandmarkSmoother
    age: int = 0


class FaceTracker:
    """Follows up to ``max_faces`` faces through a sequence of frames."""

    def __init__(self, detector: FaceDetector, mesh: FaceMesh, config: TrackerConfig | None = None) -> None:
        self.detector = detector
        self.mesh = mesh
        self.config = config or TrackerConfig()
        self._tracks: list[_Track] = []
        self._ids = itertools.count(1)
        self._lost: list[tuple[int, np.ndarray, int]] = []  # (id, last box, frame lost)
        self._since_detect = 0
        self._frame = 0
        self.detections_run = 0
        self.last_stage_ms: dict[str, float] = {}
        """Time spent in each stage during the last ``update``: detect, landmarks, smooth (ms)."""

    def reset(self) -> None:
        self._tracks.clear()
        self._lost.clear()
        self._since_detect = 0

    def update(self, image: np.ndarray, t_s: float | None = None) -> list[TrackedFace]:
        """Track faces in the next frame (BGR uint8). ``t_s`` is its timestamp; frames at 30 fps if omitted."""
        cfg = self.config
        t = float(t_s) if t_s is not None else self._frame / 30.0
        self._frame += 1
        stage_ms: dict[str, float] = {}
        self.last_stage_ms = stage_ms
        lost = False
        kept: list[_Track] = []
        for track in self._tracks:
            with timed(stage_ms, "landmarks"):
                result = self.mesh.infer(image, roi_from_landmarks(track.raw))
            if result.presence < cfg.presence_threshold:
                lost = True
                self._lost.append((track.id, points_box(track.raw), self._frame))
                continue
            track.raw, track.presence, track.roi = result.landmarks, result.presence, result.roi
            track.age += 1
            kept.append(track)
        self._tracks = self._dedupe(kept)

        self._since_detect += 1
        if lost or not self._tracks or self._since_detect >= cfg.detect_every:
            self._detect(image, stage_ms)

        faces = []
        for track in self._tracks:
            with timed(stage_ms, "smooth"):
                smooth = track.smoother(track.raw, t, interocular(track.raw))
            faces.append(
                TrackedFace(
                    id=track.id,
                    landmarks=smooth,
                    raw_landmarks=track.raw,
                    presence=track.presence,
                    box=points_box(smooth),
                    points5=five_points(smooth),
                    pose_deg=head_pose(smooth),
                    age=track.age,
                    roi=track.roi,
                )
            )
        return faces

    def _detect(self, image: np.ndarray, stage_ms: dict[str, float]) -> None:
        cfg = self.config
        self._since_detect = 0
        self.detections_run += 1
        with timed(stage_ms, "detect"):
            found = self.detector.detect(image)
        detections = [d for d in found if d.width >= cfg.min_face_px]
        detections.sort(key=lambda d: d.width * d.height, reverse=True)
        for det in detections:
            if len(self._tracks) >= cfg.max_faces:
                break
            if any(self._covers(track, det) for track in self._tracks):
                continue
            with timed(stage_ms, "landmarks"):
                result = self._mesh_new_face(image, det)
            if result is None:
                continue
            if any(box_iou(points_box(result.landmarks), points_box(t.raw)) > cfg.duplicate_iou for t in self._tracks):
                continue
            self._tracks.append(
                _Track(
                    self._new_id(points_box(result.landmarks)),
                    result.landmarks,
                    result.presence,
                    result.roi,
                    LandmarkSmoother(cfg.smoothing),
                )
            )

    def _new_id(self, box: np.ndarray) -> int:
        """The id of a track lost here a moment ago, else a fresh one."""
        cfg = self.config
        self._lost = [e for e in self._lost if self._frame - e[2] <= cfg.reacquire_frames]
        best = max(self._lost, key=lambda e: box_iou(e[1], box), default=None)
        if best is not None and box_iou(best[1], box) > cfg.reacquire_iou:
            self._lost.remove(best)
            return best[0]
        return next(self._ids)

    def _mesh_new_face(self, image: np.ndarray, det: Detection) -> MeshResult | None:
        """Mesh a new face twice: from the detection box, then from the first mesh's own extent."""
        first = self.mesh.infer(image, roi_from_detection(det))
        if first.presence < self.config.presence_threshold:
            return None
        second = self.mesh.infer(image, roi_from_landmarks(first.landmarks))
        return second if second.presence >= self.config.presence_threshold else None

    @staticmethod
    def _covers(track: _Track, det: Detection) -> bool:
        box = points_box(track.raw)
        cx, cy = (det.box[0] + det.box[2]) / 2, (det.box[1] + det.box[3]) / 2
        inside = box[0] <= cx <= box[2] and box[1] <= cy <= box[3]
        return inside or box_iou(box, det.box) > 0.3

    def _dedupe(self, tracks: list[_Track]) -> list[_Track]:
        """Drop the younger of two tracks that have converged onto the same face."""
        kept: list[_Track] = []
        for track in sorted(tracks, key=lambda t: -t.age):
            box = points_box(track.raw)
            if all(box_iou(box, points_box(k.raw)) <= self.config.duplicate_iou for k in kept):
                kept.append(track)
        return kept
