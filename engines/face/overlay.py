"""Debug overlay: the tracked mesh, ids and 5 points drawn on a frame, for people to look at."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from engines.face.tracker import TrackedFace

_COLOURS = [(80, 220, 80), (80, 180, 255), (255, 160, 60), (220, 90, 220), (60, 220, 220), (200, 200, 200)]


def draw_faces(image: np.ndarray, faces: Sequence[TrackedFace]) -> np.ndarray:
    """A copy of ``image`` with each face's mesh points, box, id and pose drawn on it."""
    out = image.copy()
    for face in faces:
        colour = _COLOURS[(face.id - 1) % len(_COLOURS)]
        pts = np.round(face.landmarks[:, :2]).astype(np.int32)
        radius = 1 if face.box[2] - face.box[0] < 300 else 2
        for x, y in pts:
            cv2.circle(out, (int(x), int(y)), radius, colour, -1, lineType=cv2.LINE_AA)
        for x, y in np.round(face.points5).astype(np.int32):
            cv2.circle(out, (int(x), int(y)), radius + 2, (0, 0, 255), -1, lineType=cv2.LINE_AA)
        x1, y1, x2, y2 = (int(v) for v in face.box)
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, 1, lineType=cv2.LINE_AA)
        yaw, pitch, roll = face.pose_deg
        label = f"#{face.id} yaw {yaw:+.0f} pitch {pitch:+.0f} roll {roll:+.0f}"
        cv2.putText(out, label, (x1, max(12, y1 - 6)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return out
