"""The evaluation's "glasses kept" measure (issue 21): does the output still show the actor's glasses?

Per frame with a face, input and output are resampled into the face's own grid (``engines.face.glasses``: the
plane of the nose bridge, in front of the eyes). The glasses' region comes from the input: the detector
(``GlassesFinder``, fed the input frames) says where the frame is, and within it the lines the input frame itself
shows (at least ``LINE_LEVEL`` of its bridge's strength) are judged. A frame keeps its glasses when at least
``KEPT_SHARE`` of those line pixels are within ``KEPT_LEVELS`` of the input's luminance in the output (a rim is
dark or bright against the skin: swapped skin is not). What the detector misses (a faint lens edge) is not
judged here: the contact sheets show it.

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
    bridge_score,
    bridge_strength,
    grid_size,
    line_response,
)

MASK_CORE = 0.5
"""The detector's mask at least this high: the frame's own pixels, not the feathered band around them."""
LINE_LEVEL = 0.35
"""The input's line pixels judged: at least this share of the bridge's line strength in the same frame."""
KEPT_SHARE = 0.8
"""Share of the input's glasses-line pixels that must survive in the output for the frame to count as kept."""
KEPT_LEVELS = 8.0
"""A line pixel survives where the output's luminance is within this many 8-bit levels of the input's (the
invisible watermark and the resampling move a kept pixel by 1-3)."""
ACCEPT_KEPT_FRAMES = 0.95
"""Issue 21's acceptance: a clip with glasses keeps them in this share of its frames."""


def frame_kept(
    image_in: np.ndarray, image_out: np.ndarray, glasses: Glasses, config: GlassesConfig | None = None
) -> float | None:
    """The share (0..1) of the input's glasses-line pixels whose line survives in the output; None when the face
    has no glasses found or shows no line in their region this frame."""
    cfg = config or GlassesConfig()
    if glasses.grid_mask is None or glasses.grid_to_frame is None:
        return None
    h, w = grid_size(cfg.px_per_unit)
    gray_in, gray_out = (
        cv2.cvtColor(
            cv2.warpAffine(image, glasses.grid_to_frame, (w, h), flags=cv2.INTER_AREA | cv2.WARP_INVERSE_MAP),
            cv2.COLOR_BGR2GRAY,
        ).astype(np.float32)
        for image in (image_in, image_out)
    )
    line_in = line_response(gray_in, cfg.line_sigma)
    _, row = bridge_score(line_in, cfg.px_per_unit)
    level = LINE_LEVEL * bridge_strength(line_in, row, cfg.px_per_unit)
    region = (glasses.grid_mask >= MASK_CORE) & (line_in[..., 0] >= max(level, 1e-3))
    if int(region.sum()) < 0.2 * cfg.px_per_unit:
        return None
    survived = np.abs(gray_out[region] - gray_in[region]) <= KEPT_LEVELS
    return float(survived.mean())


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

    def to_dict(self) -> dict[str, float | int]:
        return {
            "frames": self.frames,
            "detected": self.detected,
            "kept": self.kept,
            "kept_frames": round(self.kept_frames, 4) if self.detected else float("nan"),
            "share_p50": round(self.share_p50, 4) if self.detected else float("nan"),
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
        share = frame_kept(image_in, image_out, glasses, self.config)
        self.shares.append(0.0 if share is None else share)

    def report(self) -> GlassesReport:
        kept = sum(s >= KEPT_SHARE for s in self.shares)
        p50 = float(np.median(self.shares)) if self.shares else float("nan")
        return GlassesReport(self.frames, self.detected, kept, p50)
