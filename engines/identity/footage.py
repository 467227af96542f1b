"""Enrolling from footage: which frames of a clip make the identity's photos.

A production has footage of the person, not one portrait. Every frame (every ``FootageConfig.every``-th) is
tracked by the caller (stageswap's tracker, as for a faceset: ``engines.train.faceset``); each face is judged
by what makes a good identity photo:

- **sharp**: detail inside the face (``engines.train.faceset.sharpness``, the faceset's own measure, on the
  faceset's framing), so motion blur and focus pulls lose;
- **neutral**: lips closed (their gap under ``max_lips_gap`` eye-corner distances) and no smile
  (``engines.identity.expression.smile_amount``), so the identity carries no expression;
- **frontal** (yaw and pitch under ``frontal_deg``) for most of the photos, and a **few turned ones** (yaw
  between ``turned_deg``, one to each side), which see the cheeks and jaw a frontal photo sees at a grazing
  angle: merged, the identity is seen well over more of the face.

The sharpest of each kind are picked, at least ``min_gap_s`` apart (consecutive frames add nothing), and are
enrolled as photos are (``IdentityStore.enroll``: each checked, cleaned and merged by visibility).
"""

from __future__ import annotations

import heapq
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


def is_video(path: Any) -> bool:
    """Whether ``path`` names a clip (by its suffix)."""
    suffix = str(path).lower().rsplit(".", 1)
    return len(suffix) == 2 and f".{suffix[1]}" in VIDEO_SUFFIXES


def judge(image: np.ndarray, face: Any, config: FootageConfig) -> tuple[str, float] | None:
    """(kind, sharpness) of one tracked face (``TrackedFace``), or None when it is no identity photo."""
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
    for i, (image, t) in enumerate(frames):
        faces = track(image, t)  # every frame: the tracker follows the face between judged frames
        seen += 1
        if i % cfg.every or not faces:
            continue
        face = max(faces, key=lambda f: (f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
        judged = judge(image, face, cfg)
        if judged is None:
            continue
        kind, sharp = judged
        heap = heaps[kind]
        item = (sharp, i, PickedFrame(image.copy(), i, t, float(face.pose_deg[0]), sharp, kind))
        if len(heap) < cfg.keep:
            heapq.heappush(heap, item)
        elif sharp > heap[0][0]:
            heapq.heapreplace(heap, item)
    picked: list[PickedFrame] = []

    def take(kind: str, count: int) -> None:
        for _, _, frame in sorted(heaps[kind], key=lambda x: -x[0]):
            if count <= 0:
                return
            if all(abs(frame.time_s - p.time_s) >= cfg.min_gap_s for p in picked):
                picked.append(frame)
                count -= 1

    take("frontal", cfg.frontal)
    take("left", (cfg.turned + 1) // 2)
    take("right", cfg.turned // 2)
    if not any(p.kind == "frontal" for p in picked):
        raise InputError(
            f"no frame of {label} shows a sharp, frontal face with closed lips and no smile "
            f"({seen} frames read): use a clip where the person faces the camera for a moment, or photos"
        )
    return picked
