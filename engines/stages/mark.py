"""The last stages, on the whole frame: the debug overlay (``OverlayStage``) and the invisible watermark
(``MarkStage``, ``engines.compose.watermark``)."""

from __future__ import annotations

from collections.abc import Set

import numpy as np

from engines.compose.watermark import Watermarker
from engines.face.overlay import draw_faces
from engines.stages.base import FrameContext


class OverlayStage:
    """Each face's mesh, box, id and pose drawn on the frame, when ``settings.debug_overlay`` asks for it."""

    name = "overlay"

    def run(self, frame: FrameContext) -> None:
        if frame.settings.debug_overlay:
            with frame.timed(self.name):
                frame.out = draw_faces(frame.result, frame.faces)

    def forget(self, active: Set[int]) -> None:
        """Nothing kept."""


class MarkStage:
    """The invisible watermark on the whole frame, last, so monitors and recordings get the same marked frame
    (unless the stream's ``settings.watermark`` turns it off). A frame that failed is marked too. A moving mark
    (``WatermarkConfig.motion``) follows the picture with one motion tracker per stage, so per stream; the tracked
    faces' boxes go with the frame, for a mark kept weaker on faces (``WatermarkConfig.face_gain``)."""

    name = "watermark"

    def __init__(self, marker: Watermarker | None, watermark_id: int | None) -> None:
        self.marker = marker
        self.watermark_id = watermark_id
        """The id this processor's frames carry: one per processor, so per stream session or batch run."""
        self.motion = marker.motion() if marker is not None else None
        """Where this stream's picture has moved, for a moving mark (None for the others)."""

    def run(self, frame: FrameContext) -> None:
        frame.out = self.marked(frame.result, frame)

    def marked(self, image: np.ndarray, frame: FrameContext) -> np.ndarray:
        """``image`` with the mark, or ``image`` itself when nothing is marked (off, no id, a frame too small)."""
        marker, wid = self.marker, self.watermark_id
        if marker is None or wid is None or not frame.settings.watermark:
            return image
        if min(image.shape[:2]) < marker.config.min_side_px:
            return image
        faces = np.array([face.box for face in frame.faces], np.float32).reshape(-1, 4) if frame.faces else None
        with frame.timed(self.name):
            return marker.apply(image, wid, self.motion, faces)

    def forget(self, active: Set[int]) -> None:
        """Nothing kept per face."""
