"""Enrolling from footage: which frames of a clip make the identity's photos.

A production has footage of the person, not one portrait. Every frame (every ``FootageConfig.every``-th) is
tracked by the caller (stageswap's tracker, as for a faceset: ``engines.train.faceset``); each face is judged
by what makes a good identity photo:

- **sharp**: detail inside the face (``engines.train.faceset.sharpness``, the faceset's own measure, on the
  faceset's framing), so motion blur and focus pulls lose;
- **neutral**: lips closed (their gap under ``max_lips_gap`` eye-corner distances), no smile
  (``engines.identity.expression.smile_amount``), and eyes and brows as the person usually holds them: the
  eyes' opening and the brows' height within ``neutral_eyes`` / ``neutral_brows`` of their median over the
  clip (``expression_measures``), so the identity carries no expression. Without the eyes and brows, d10's
  wide-eyed, raised-brow frames were picked beside a neutral one and merged: the texture's eyes doubled
  (two lash lines) and the likeness of the merged identity fell below every one of its frames alone. And the
  eyes looking at the camera, not aside (``max_gaze``, ``engines.compose.iris.gaze_aside``): d3's sharpest
  frontal frame glances past the camera and led a merged identity 0.03 of cosine below a frame of the same
  clip that looks at it; d10's second pick was a wide-eyed sideways glance the eyes' opening did not catch;
- **frontal** (yaw and pitch under ``frontal_deg``) for most of the photos, and a **few turned ones** (yaw
  between ``turned_deg``, one to each side), which see the cheeks and jaw a frontal photo sees at a grazing
  angle: merged, the identity is seen well over more of the face.

The sharpest of each kind are picked, at least ``min_gap_s`` apart (consecutive frames add nothing), and are
enrolled as photos are (``IdentityStore.enroll``: each checked, cleaned and merged by visibility).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engines.errors import InputError

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".mxf", ".ts"})
"""A file with one of these suffixes is a clip to pick frames from, not a photo."""


@dataclass(frozen=True)
class FootageConfig:
    frontal: int = 3
    """Frontal frames to pick ..."""
    turned: int = 2
    """... and turned ones (half to each side)."""
    every: int = 2
    """Judge every n-th frame (a clip at 30 fps changes little between two)."""
    frontal_deg: float = 12.0
    turned_deg: tuple[float, float] = (15.0, 35.0)
    max_lips_gap: float = 0.08
    """Lips further apart than this many eye-corner distances: a talking or open mouth, not picked."""
    max_smile: float = 0.3
    neutral_eyes: float = 0.10
    """The eyes' opening within this share of its median over the clip (wider: surprise; narrower: a squint)."""
    neutral_brows: float = 0.07
    """The brows' height above the eyes within this share of its median over the clip (raised or knit)."""
    max_gaze: float = 0.08
    """The eyes looking aside by more than this many eye widths (``engines.compose.iris.gaze_aside``): not picked.
    The texture keeps the lids and the skin around them as they sat for that glance (and the irises where they
    were). Frames looking at the camera read 0.00-0.06 on the shared clips (a wink 0.06); d3.mp4's sharpest
    frontal frame, looking past the camera, 0.12; d10.mp4's sideways glance 0.21."""
    min_gap_s: float = 0.5
    keep: int = 12
    """Candidates kept per kind while the clip is read (the sharpest), so memory stays bounded."""


@dataclass(frozen=True)
class PickedFrame:
    image: np.ndarray = field(repr=False)
    """The whole frame, BGR uint8 (enrolled as a photo: its largest face)."""
    index: int
    time_s: float
    yaw_deg: float
    sharpness: float
    kind: str
    """``"frontal"``, ``"left"`` or ``"right"``."""
    eyes: float = math.nan
    brows: float = math.nan
    """``expression_measures`` of the face."""


def is_video(path: Any) -> bool:
    """Whether ``path`` names a clip (by its suffix)."""
    suffix = str(path).lower().rsplit(".", 1)
    return len(suffix) == 2 and f".{suffix[1]}" in VIDEO_SUFFIXES


def expression_measures(landmarks: np.ndarray) -> tuple[float, float]:
    """(eyes, brows) of a 468-point mesh, seen frontal: the eyes' opening (lid gap over eye width, both eyes'
    mean) and the brows' height above the eye corners (eye-corner distances). Both move with an expression
    (surprise, a frown, a squint) and hardly with the head's pose."""
    from engines.face.topology import LEFT_BROW, RIGHT_BROW, frontalise

    f = frontalise(np.asarray(landmarks, np.float64))
    eyes = 0.0
    for top, bottom, outer, inner in ((159, 145, 33, 133), (386, 374, 263, 362)):
        eyes += abs(f[top, 1] - f[bottom, 1]) / max(abs(f[inner, 0] - f[outer, 0]), 1e-9) / 2.0
    brows = 0.0
    for brow, corners in ((RIGHT_BROW, [33, 133]), (LEFT_BROW, [263, 362])):
        brows += float(f[corners, 1].mean() - f[list(brow), 1].mean()) / 2.0
    return float(eyes), brows


def judge(image: np.ndarray, face: Any, config: FootageConfig) -> tuple[str, float] | None:
    """(kind, sharpness) of one tracked face (``TrackedFace``), or None when it is no identity photo."""
    from engines.compose.iris import gaze_aside
    from engines.face.topology import frontalise
    from engines.identity.expression import smile_amount
    from engines.swap.align import align_mesh
    from engines.train.faceset import face_masks, sharpness

    yaw, pitch, _ = face.pose_deg
    if abs(pitch) > config.frontal_deg:
        return None
    if abs(yaw) <= config.frontal_deg:
        kind = "frontal"
    elif config.turned_deg[0] <= abs(yaw) <= config.turned_deg[1]:
        kind = "left" if yaw < 0 else "right"
    else:
        return None
    lm = np.asarray(face.raw_landmarks, np.float64)
    eye = float(np.linalg.norm(lm[33, :2] - lm[263, :2]))
    if eye <= 1.0 or float(np.linalg.norm(lm[13, :2] - lm[14, :2])) / eye > config.max_lips_gap:
        return None
    if smile_amount(frontalise(lm)) > config.max_smile:
        return None
    aside = gaze_aside(image, lm)
    if aside is not None and aside > config.max_gaze:
        return None
    alignment = align_mesh(lm, 128, 1.8)
    masks = face_masks(alignment.to_crop(lm[:, :2]).astype(np.float32), 128)
    return kind, sharpness(alignment.crop(image), masks[..., 0])


def pick_frames(
    frames: Iterable[tuple[np.ndarray, float]],
    track: Callable[[np.ndarray, float], Sequence[Any]],
    config: FootageConfig | None = None,
    label: str = "the clip",
) -> list[PickedFrame]:
    """The frames of a clip to enroll (see the module docstring). ``frames``: (BGR image, time in s) in
    order; ``track(image, t)``: its tracked faces (the largest is judged). Raises InputError when no frame
    makes a photo."""
    cfg = config or FootageConfig()
    heaps: dict[str, list[tuple[float, int, PickedFrame]]] = {"frontal": [], "left": [], "right": []}
    seen = 0
    usual: list[tuple[float, float]] = []  # every judged face's expression_measures: the person's usual face
    for i, (image, t) in enumerate(frames):
        faces = track(image, t)  # every frame: the tracker follows the face between judged frames
        seen += 1
        if i % cfg.every or not faces:
            continue
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        eyes, brows = expression_measures(face.raw_landmarks)
        usual.append((eyes, brows))
        judged = judge(image, face, cfg)
        if judged is None:
            continue
        kind, sharp = judged
        heap = heaps[kind]
        item = (sharp, i, PickedFrame(image.copy(), i, t, float(face.pose_deg[0]), sharp, kind, eyes, brows))
        if len(heap) < cfg.keep:
            heapq.heappush(heap, item)
        elif sharp > heap[0][0]:
            heapq.heapreplace(heap, item)
    picked: list[PickedFrame] = []
    median_eyes, median_brows = (float(v) for v in np.median(np.array(usual), axis=0)) if usual else (1.0, 1.0)

    def departure(frame: PickedFrame) -> float:
        """How far the frame's eyes and brows are from the person's usual face, in tolerances (<= 1: neutral)."""
        return max(
            abs(frame.eyes / max(median_eyes, 1e-9) - 1.0) / cfg.neutral_eyes,
            abs(frame.brows / max(median_brows, 1e-9) - 1.0) / cfg.neutral_brows,
        )

    def take(kind: str, count: int) -> None:
        for _, _, frame in sorted(heaps[kind], key=lambda x: -x[0]):
            if count <= 0:
                return
            if departure(frame) > 1.0:
                continue
            if all(abs(frame.time_s - p.time_s) >= cfg.min_gap_s for p in picked):
                picked.append(frame)
                count -= 1

    take("frontal", cfg.frontal)
    if not picked and heaps["frontal"]:
        # No sharp frontal frame with the usual eyes and brows among the kept ones: the one nearest to them.
        picked.append(min((item[2] for item in heaps["frontal"]), key=departure))
    take("left", (cfg.turned + 1) // 2)
    take("right", cfg.turned // 2)
    if not any(p.kind == "frontal" for p in picked):
        raise InputError(
            f"no frame of {label} shows a sharp, frontal face with closed lips and no smile "
            f"({seen} frames read): use a clip where the person faces the camera for a moment, or photos"
        )
    return picked
