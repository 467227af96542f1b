"""The 468-point face mesh on a rotation-normalised 192x192 crop, and what is derived from it.

The mesh model (MediaPipe's face_landmark) wants an upright face filling the middle of the crop. The
crop comes from a detection for a new face and from the previous frame's landmarks while tracking.
Landmarks come back in frame pixels: x, y, and a relative depth z in the same pixel scale (negative is
toward the camera).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from engines.face.detect import Detection
from engines.face.geometry import RotatedRect, apply_affine, crop, invert_affine, roll_angle
from engines.runtime import Session

MESH_SIZE = 192
NUM_LANDMARKS = 468

# Named landmark indices of the 468-point topology (subject's right = image left for a frontal face).
RIGHT_EYE_OUTER, RIGHT_EYE_INNER = 33, 133
LEFT_EYE_INNER, LEFT_EYE_OUTER = 362, 263
NOSE_TIP = 1
MOUTH_RIGHT, MOUTH_LEFT = 61, 291
FOREHEAD_TOP, CHIN = 10, 152

ROI_SCALE = 1.5
"""Crop side relative to the landmarks' extent (MediaPipe's own ROI rule for the next frame)."""

DETECTION_ROI_SCALE = 1.6
"""Crop side relative to a YuNet box for a new face (YuNet boxes are a little tighter than the mesh)."""


@dataclass(frozen=True)
class MeshResult:
    landmarks: np.ndarray  # (468, 3) float32, frame pixels
    presence: float  # 0..1, the model's face-presence probability
    roi: RotatedRect


def roi_from_detection(det: Detection) -> RotatedRect:
    """Crop region for a newly detected face: the box, enlarged, rotated to level the eyes."""
    cx = float(det.box[0] + det.box[2]) / 2
    cy = float(det.box[1] + det.box[3]) / 2
    size = max(det.width, det.height) * DETECTION_ROI_SCALE
    return RotatedRect(cx, cy, size, roll_angle(det.points[0], det.points[1]))


def roi_from_landmarks(landmarks: np.ndarray, scale: float = ROI_SCALE) -> RotatedRect:
    """Crop region for the next frame from this frame's landmarks: their upright extent, enlarged."""
    angle = roll_angle(landmarks[RIGHT_EYE_OUTER], landmarks[LEFT_EYE_OUTER])
    cos, sin = math.cos(angle), math.sin(angle)
    xy = landmarks[:, :2].astype(np.float64)
    # Coordinates in the face's upright frame (rotate by -angle).
    u = xy[:, 0] * cos + xy[:, 1] * sin
    v = -xy[:, 0] * sin + xy[:, 1] * cos
    cu, cv = (u.min() + u.max()) / 2, (v.min() + v.max()) / 2
    size = max(u.max() - u.min(), v.max() - v.min()) * scale
    cx, cy = cu * cos - cv * sin, cu * sin + cv * cos
    return RotatedRect(float(cx), float(cy), float(size), angle)


class FaceMesh:
    """Runs the mesh model on one face region of a frame."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._input = session.inputs[0].name
        outputs = {o.name: o for o in session.outputs}
        # Landmarks: the output with 1404 values; presence: the one with a single value.
        self._landmarks_out = next(n for n, o in outputs.items() if _numel(o.shape) == NUM_LANDMARKS * 3)
        presence = [n for n, o in outputs.items() if _numel(o.shape) == 1]
        self._presence_out = presence[0] if presence else None

    def infer(self, image: np.ndarray, roi: RotatedRect) -> MeshResult:
        """Mesh of the face in ``roi`` of a BGR frame, in frame pixels."""
        m = roi.to_crop(MESH_SIZE)
        patch = crop(image, m, MESH_SIZE)
        x = (patch[:, :, ::-1].astype(np.float32) * (1.0 / 255.0))[None]
        out = self.session.run({self._input: x})
        pts = out[self._landmarks_out].reshape(NUM_LANDMARKS, 3)
        landmarks = apply_affine(invert_affine(m), pts)
        presence = 1.0
        if self._presence_out is not None:
            logit = float(out[self._presence_out].reshape(-1)[0])
            presence = 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, logit))))
        return MeshResult(landmarks, presence, roi)


def _numel(shape: tuple[int | str | None, ...]) -> int:
    n = 1
    for d in shape:
        if not isinstance(d, int):
            return -1
        n *= d
    return n


def five_points(landmarks: np.ndarray) -> np.ndarray:
    """The 5 keypoints (right eye, left eye, nose tip, right and left mouth corner) as (5, 2), as the
    ArcFace-style alignment templates expect them."""
    right_eye = (landmarks[RIGHT_EYE_OUTER, :2] + landmarks[RIGHT_EYE_INNER, :2]) / 2
    left_eye = (landmarks[LEFT_EYE_OUTER, :2] + landmarks[LEFT_EYE_INNER, :2]) / 2
    return np.stack(
        [right_eye, left_eye, landmarks[NOSE_TIP, :2], landmarks[MOUTH_RIGHT, :2], landmarks[MOUTH_LEFT, :2]]
    ).astype(np.float32)


def interocular(landmarks: np.ndarray) -> float:
    """Distance between the eye centres, the scale unit for jitter and smoothing."""
    p = five_points(landmarks)
    return float(np.linalg.norm(p[1] - p[0]))


def face_axes(landmarks: np.ndarray) -> np.ndarray:
    """The face's own axes (3, 3), as columns in the mesh's frame: x from the subject's right outer eye corner
    to the left, y from forehead to chin (made orthogonal to x), z their cross product (away from the camera).
    The one definition behind ``head_pose`` and ``engines.face.topology.frontal_frame``."""
    p = np.asarray(landmarks, dtype=np.float64)
    x_axis = p[LEFT_EYE_OUTER] - p[RIGHT_EYE_OUTER]
    # ``np.linalg.norm`` and ``np.cross`` of three numbers as they compute them (the same float64 operations, the
    # same bits) without their calls' ~25 us: this runs for every face in every frame (tracking and the morph).
    x_axis /= math.sqrt(float(x_axis.dot(x_axis))) + 1e-12
    y_axis = p[CHIN] - p[FOREHEAD_TOP]
    y_axis -= x_axis * float(np.dot(y_axis, x_axis))
    y_axis /= math.sqrt(float(y_axis.dot(y_axis))) + 1e-12
    (a0, a1, a2), (b0, b1, b2) = x_axis.tolist(), y_axis.tolist()
    return np.array([[a0, b0, a1 * b2 - a2 * b1], [a1, b1, a2 * b0 - a0 * b2], [a2, b2, a0 * b1 - a1 * b0]])


def head_pose(landmarks: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees from the mesh's own 3D axes; 0, 0, 0 is a frontal upright face.

    The x axis runs from the right eye corner to the left, the y axis from forehead to chin; both are
    taken from the 3D mesh, so turning the head shows up as depth along the eye line.
    """
    r = face_axes(landmarks)  # columns: face axes in camera coordinates
    yaw = math.degrees(math.asin(max(-1.0, min(1.0, -float(r[2, 0])))))
    pitch = math.degrees(math.atan2(float(r[2, 1]), float(r[2, 2])))
    roll = math.degrees(math.atan2(float(r[1, 0]), float(r[0, 0])))
    return yaw, pitch, roll
