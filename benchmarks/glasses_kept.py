"""The evaluation's "glasses kept" measure (issue 21): does the output still show the actor's glasses?

The glasses' lines are taken from the input frame, not from the swap's own mask: inside the zone where a frame can
be (an ellipse around each eye and the bridge over the nose, placed by the face's fit, ``engines.face.glasses``),
off the actor's brows and eye openings, every pixel that stands out as a thin line (``thin_lines``) by at least
``LINE_LEVELS`` — a rim against the skin. Both frames are looked at as the swap's ``keep`` does (the box around
the zone, at no more than ``keep_px`` pixels per eye-corner distance). A frame keeps its glasses when at least
``KEPT_SHARE`` of those pixels are within ``KEPT_LEVELS`` of the input's in the output. A line the swap misses
(a faint lens edge) counts against it; so does a crease or lash line in the zone that is not the glasses' (a
frame keeps it when enough of the rest is kept).

Frames are counted only where the face wears glasses by the detector's running decision on the input (the same
``GlassesFinder`` the processor uses, fed the input), so a clip without glasses reports no frames and its
detections (``detected``: frames said to wear glasses) are the false ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from engines.face.glasses import (
    Glasses,
    GlassesConfig,
    GlassesFinder,
    face_features,
    frame_zone,
    grid_size,
    thin_lines,
    work_view,
)
from engines.swap.raster import Window

LINE_LEVELS = 16.0
"""The input's line pixels judged: thin lines (``engines.face.glasses.thin_lines``) standing out by this many 8-bit
levels — a rim against the skin; the skin's own texture stays under it."""
MIN_LINE_PIXELS = 50
"""A frame with fewer such pixels in the glasses' zone is not judged."""
KEPT_SHARE = 0.8
"""Share of the input's glasses-line pixels that must survive in the output for the frame to count as kept."""
KEPT_LEVELS = 8.0
"""A line pixel survives where the output's luminance is within this many 8-bit levels of the input's (the
invisible watermark and the resampling move a kept pixel by 1-3)."""
ACCEPT_KEPT_FRAMES = 0.95
"""Issue 21's acceptance: a clip with glasses keeps them in this share of its frames."""


def frame_kept(
    image_in: np.ndarray,
    image_out: np.ndarray,
    glasses: Glasses,
    landmarks: np.ndarray,
    config: GlassesConfig | None = None,
) -> float | None:
    """The share (0..1) of the input's glasses-line pixels that the output still shows; None when the face has no
    glasses found or shows no line where they are this frame."""
    cfg = config or GlassesConfig()
    if glasses.grid_to_frame is None:
        return None
    h, w = grid_size(cfg.px_per_unit)
    whole = Window(0, 0, image_in.shape[1], image_in.shape[0])
    view_in = work_view(image_in, glasses.grid_to_frame, (0, h, 0, w), whole, cfg)
    view_out = work_view(image_out, glasses.grid_to_frame, (0, h, 0, w), whole, cfg)
    if view_in is None or view_out is None:
        return None
    grid = frame_zone(cfg.px_per_unit) & ~face_features(landmarks, glasses.grid_to_frame, (h, w), cfg.feature_grow_px)
    zone = cv2.warpAffine(grid.astype(np.uint8), view_in.grid_to_work, view_in.size, flags=cv2.INTER_NEAREST)
    region = (zone > 0) & (thin_lines(view_in.gray, view_in.rim_px) >= LINE_LEVELS)
    if int(region.sum()) < MIN_LINE_PIXELS:
        return None
    diff = np.abs(view_out.gray[region].astype(np.int16) - view_in.gray[region].astype(np.int16))
    return float((diff <= KEPT_LEVELS).mean())


@dataclass
class GlassesReport:
    frames: int
    """Frames with a face."""
    detected: int
    """Frames the input's face was found wearing glasses (on a clip without glasses: false detections)."""
    kept: int
    """Of ``detected``, frames whose glasses survive in the output (``frame_kept`` >= ``KEPT_SHARE``)."""
    share_p50: float
    """Median share of line pixels kept over the detected frames (NaN: none)."""

    @property
    def kept_frames(self) -> float:
        """Share of the frames with glasses that keep them (NaN: no glasses)."""
        return self.kept / self.detected if self.detected else float("nan")

    def to_dict(self) -> dict[str, float | int | None]:
        """As JSON: the shares are null on a clip without glasses."""
        return {
            "frames": self.frames,
            "detected": self.detected,
            "kept": self.kept,
            "kept_frames": round(self.kept_frames, 4) if self.detected else None,
            "share_p50": round(self.share_p50, 4) if self.detected else None,
        }


@dataclass
class GlassesMeter:
    """Feeds on (input, output, landmarks) frame by frame; ``report`` at the end."""

    config: GlassesConfig = field(default_factory=GlassesConfig)
    finder: GlassesFinder = field(init=False)
    frames: int = 0
    shares: list[float] = field(default_factory=list)
    detected: int = 0

    def __post_init__(self) -> None:
        self.finder = GlassesFinder(self.config)

    def add(self, image_in: np.ndarray, image_out: np.ndarray, landmarks: np.ndarray | None, face_id: int = 0) -> None:
        if landmarks is None:
            return
        self.frames += 1
        glasses = self.finder.update(image_in, face_id, landmarks)
        if not glasses.present:
            return
        self.detected += 1
        share = frame_kept(image_in, image_out, glasses, landmarks, self.config)
        self.shares.append(0.0 if share is None else share)

    def report(self) -> GlassesReport:
        kept = sum(s >= KEPT_SHARE for s in self.shares)
        p50 = float(np.median(self.shares)) if self.shares else float("nan")
        return GlassesReport(self.frames, self.detected, kept, p50)
